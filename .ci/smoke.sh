#!/usr/bin/env bash
# Smoke test of the real binary in a real (virtual) X server: start `--demo`, wait for the
# window, sign in to the simulated tenant with the device code flow by clicking, open step 2
# with Next, take screenshots, and fail if the app died, the sign-in or Next did not happen or
# the screenshot is blank.
#
# Usage: .ci/smoke.sh            (builds the debug binary, then reruns itself under xvfb-run)
# Output: artifacts/smoke/{start,signed-in,join-permission}.png, app.log
# The same test for an installed program (.ci/deb.sh, .ci/wine.sh):
#   SMOKE_BIN=/usr/bin/autopilot-wizard SMOKE_OUT=artifacts/deb .ci/smoke.sh
#   SMOKE_LAUNCHER=wine SMOKE_BIN='C:\…\autopilot-wizard.exe' SMOKE_OUT=artifacts/wine .ci/smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${SMOKE_OUT:-artifacts/smoke}
BIN=${SMOKE_BIN:-target/debug/autopilot-wizard}
LAUNCHER=${SMOKE_LAUNCHER:-}
TITLE="Autopilot Wizard"
# Wine's first start of a program in a fresh prefix takes a while.
WINDOW_WAIT=$([ -n "$LAUNCHER" ] && echo 120 || echo 60)

if [ -z "${SMOKE_INNER:-}" ]; then
    [ -n "${SMOKE_BIN:-}" ] || cargo build --locked --quiet
    # Where to click: measured by the kittest twin of the window (see tests/ui_shell.rs).
    # .ci/run has just run every test (CI_TESTED); on its own, this script runs the one it needs.
    [ -n "${CI_TESTED:-}" ] && [ -f target/tmp/smoke-click-points.sh ] ||
        cargo test --locked --quiet --test app smoke_click_points >/dev/null
    mkdir -p "$OUT"
    exec env SMOKE_INNER=1 xvfb-run -a -s "-screen 0 1280x1024x24" bash "$0" "$@"
fi

# Private runtime and data dirs: quiets Mesa, and keeps the run's persistence and log files out
# of the machine's home.
export XDG_RUNTIME_DIR
XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
export XDG_DATA_HOME="$XDG_RUNTIME_DIR/data" XDG_CONFIG_HOME="$XDG_RUNTIME_DIR/config"
export RUST_LOG=info,autopilot_wizard=debug

fail() {
    echo "smoke: FAILED: $*" >&2
    echo "---- last lines of $OUT/app.log ----" >&2
    tail -n 40 "$OUT/app.log" >&2 || true
    exit 1
}

# shellcheck source=/dev/null
. .ci/x-ready.sh
x_ready || fail "no X server"
# shellcheck disable=SC2086 # LAUNCHER is a command word or nothing
$LAUNCHER "$BIN" --demo --sim-speed test >"$OUT/app.log" 2>&1 &
APP=$!
trap 'kill "$APP" 2>/dev/null || true' EXIT

alive() { kill -0 "$APP" 2>/dev/null || fail "the app exited early"; }

WID=""
for _ in $(seq 1 $((WINDOW_WAIT * 2))); do
    alive
    WID=$(xdotool search --onlyvisible --name "^$TITLE" 2>/dev/null | head -n 1 || true)
    [ -n "$WID" ] && break
    sleep 0.5
done
[ -n "$WID" ] || fail "no window titled '$TITLE' after $WINDOW_WAIT s"
echo "smoke: window $WID is up"

# Window origin on the screen (no window manager: normally 0,0, but do not rely on it).
eval "$(xdotool getwindowgeometry --shell "$WID")"
echo "smoke: window at ${X},${Y} size ${WIDTH}x${HEIGHT}"
sleep 2
alive
import -window root "$OUT/start.png"

# Clicks at a point given relative to the window's top-left corner.
click_at() {
    xdotool mousemove --sync $((X + $1)) $((Y + $2)) click 1
    sleep 0.5
}

# Waits up to $2 seconds for the app log to contain $1.
wait_log() {
    for _ in $(seq 1 $(($2 * 4))); do
        alive
        grep -q -- "$1" "$OUT/app.log" && return 0
        sleep 0.25
    done
    return 1
}

POINTS=target/tmp/smoke-click-points.sh
[ -f "$POINTS" ] || fail "$POINTS is missing (written by: cargo test --test app smoke_click_points)"
# shellcheck source=/dev/null
. "$POINTS"
echo "smoke: clicking 'Sign in with a code' at ${SIGN_IN_CODE_X},${SIGN_IN_CODE_Y}"
click_at "$SIGN_IN_CODE_X" "$SIGN_IN_CODE_Y"
wait_log "step=Sign in status=Done" 30 ||
    fail "clicking 'Sign in with a code' did not sign in (see $OUT/start.png)"
echo "smoke: signed in to the simulated tenant"
click_at "$LOG_X" "$LOG_Y"
sleep 1
alive
import -window root "$OUT/signed-in.png"

COLOURS=$(identify -format %k "$OUT/signed-in.png")
echo "smoke: screenshot has $COLOURS colours"
[ "$COLOURS" -ge 16 ] || fail "the screenshot is blank ($COLOURS colours)"

# Next opens step 2 (join permission) now that sign-in validated.
echo "smoke: clicking 'Next' at ${NEXT_X},${NEXT_Y}"
click_at "$NEXT_X" "$NEXT_Y"
wait_log "step opened step=Join permission" 15 ||
    fail "clicking 'Next' did not open the join permission step (see $OUT/signed-in.png)"
sleep 1
alive
import -window root "$OUT/join-permission.png"
echo "smoke: step 2 is open"
alive
echo "smoke: OK"
