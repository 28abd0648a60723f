#!/usr/bin/env bash
# Screenshots of every page of the wizard, from the real window at 1100×720 in a virtual X
# server, walking the whole procedure against the simulated tenant (--demo --sim-speed test):
# sign in, join permission, profile, group, import (the sample CSVs, via --pick), assignment
# board, validation.
#
# Where to click and what to type comes from a kittest twin of the window
# (tests/screenshot_walk.rs writes target/tmp/screenshot-walk.sh), so page layout changes need
# no edits here. Clicks happen in a tall window, where every page fits without scrolling; the
# window is shrunk to 1100×720 for each screenshot.
#
# Usage: .ci/screenshots.sh [--size 1440x900] [--update]
#   → artifacts/screenshots/*.png and app.log (another size: artifacts/screenshots-1440x900/);
#   --update also copies the PNGs to assets/screenshots/ (another size: a subfolder named by it)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=1100x720
UPDATE=""
while [ $# -gt 0 ]; do
    case $1 in
    --size) SIZE=$2; shift 2 ;;
    --update) UPDATE=1; shift ;;
    *) echo "usage: .ci/screenshots.sh [--size WIDTHxHEIGHT] [--update]" >&2; exit 2 ;;
    esac
done
ASSETS=assets/screenshots
if [ -z "${SHOTS_INNER:-}" ]; then
    OUT=artifacts/screenshots
    if [ "$SIZE" != 1100x720 ]; then
        OUT=$OUT-$SIZE
        ASSETS=$ASSETS/$SIZE
    fi
fi
BIN=target/debug/autopilot-wizard
WALK=target/tmp/screenshot-walk.sh
TITLE="Autopilot Wizard"

if [ -z "${SHOTS_INNER:-}" ]; then
    cargo build --locked --quiet
    # CI's test run wrote the default size's walk; another size needs its own.
    [ -n "${CI_TESTED:-}" ] && [ -f "$WALK" ] && [ "$SIZE" = 1100x720 ] ||
        SCREENSHOT_SIZE=$SIZE cargo test --locked --quiet --test app screenshot_walk:: >/dev/null
    rm -rf "$OUT"
    mkdir -p "$OUT"
    env SHOTS_INNER=1 OUT="$OUT" xvfb-run -a -s "-screen 0 ${SIZE%x*}x2300x24" bash "$0"
    if [ -n "$UPDATE" ]; then
        mkdir -p "$ASSETS"
        cp "$OUT"/*.png "$ASSETS/"
        echo "screenshots: copied to $ASSETS/"
    fi
    exit 0
fi

export XDG_RUNTIME_DIR
XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
export XDG_DATA_HOME="$XDG_RUNTIME_DIR/data" XDG_CONFIG_HOME="$XDG_RUNTIME_DIR/config"
export RUST_LOG=info,autopilot_wizard=debug
LOG=$OUT/app.log

fail() {
    echo "screenshots: FAILED: $*" >&2
    import -window root "$OUT/failure.png" 2>/dev/null || true
    echo "---- last lines of $LOG ----" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
}

# shellcheck source=/dev/null
. "$WALK"
# Not WIDTH: `xdotool getwindowgeometry --shell` below sets WIDTH (and X, Y, HEIGHT) to the
# window's first size.
SHOT_WIDTH=${WALK_WIDTH%.*} SHOT_HEIGHT=${WALK_SHOT_HEIGHT%.*} TALL_HEIGHT=${WALK_TALL_HEIGHT%.*}
PICK_ARGS=()
for f in "${WALK_PICK[@]}"; do PICK_ARGS+=(--pick "$f"); done

# shellcheck source=/dev/null
. .ci/x-ready.sh
x_ready || fail "no X server"
"$BIN" --demo --sim-speed test "${PICK_ARGS[@]}" >"$LOG" 2>&1 &
APP=$!
trap 'kill "$APP" 2>/dev/null || true; rm -rf "${WORK:-}"' EXIT
alive() { kill -0 "$APP" 2>/dev/null || fail "the app exited early"; }

WID=""
for _ in $(seq 1 120); do
    alive
    WID=$(xdotool search --onlyvisible --name "^$TITLE" 2>/dev/null | head -n 1 || true)
    [ -n "$WID" ] && break
    sleep 0.5
done
[ -n "$WID" ] || fail "no window titled '$TITLE' after 60 s"
eval "$(xdotool getwindowgeometry --shell "$WID")"
# No window manager gives the window the keyboard focus; typing needs it.
xdotool windowfocus --sync "$WID"

WORK=$(mktemp -d)
# Waits until the app has drawn the window at its new size: the bottom rows are painted (a
# grown window is black there until the next frame) and two captures in a row are the same.
# On a busy machine a click sent before that frame lands on the old layout.
painted() {
    local h=$1 prev=$WORK/prev.ppm cur=$WORK/cur.ppm
    import -window "$WID" "ppm:$prev"
    for _ in $(seq 1 40); do
        sleep 0.25
        alive
        import -window "$WID" "ppm:$cur"
        local bottom
        bottom=$(convert "$cur" -crop "${SHOT_WIDTH}x4+0+$((h - 4))" -format '%[fx:maxima]' info:)
        if [ "$bottom" != "0" ] && cmp -s "$prev" "$cur"; then
            return 0
        fi
        mv "$cur" "$prev"
    done
    echo "screenshots: the window did not settle at height $h; going on"
}

HEIGHT_NOW=0
resize() {
    [ "$HEIGHT_NOW" = "$1" ] && return 0
    xdotool windowsize "$WID" "$SHOT_WIDTH" "$1"
    HEIGHT_NOW=$1
    # The app may not draw again on a resize alone (seen under Xvfb), and until it does it
    # ignores clicks outside its old size: wiggle the pointer over the banner to wake it.
    xdotool mousemove --sync $((X + 600)) $((Y + 5)) mousemove --sync $((X + 610)) $((Y + 6))
    painted "$1"
}

# Log lines the twin says must appear after the last click.
MARK=0
count() { grep -c -- "$1" "$LOG" || true; }
# Waits until no background job is running (started = finished in the log); polling jobs may
# keep going, so this gives up quietly after a while.
idle() {
    for _ in $(seq 1 40); do
        [ "$(count 'job started')" = "$(count 'job finished\|job cancelled')" ] && return 0
        sleep 0.2
    done
}

click() {
    resize "$TALL_HEIGHT"
    idle
    alive
    MARK=$(wc -l <"$LOG")
    echo "screenshots: click '$3' at $1,$2"
    xdotool mousemove --sync $((X + $1)) $((Y + $2)) click 1
    sleep 0.5
}

retype() {
    xdotool key --clearmodifiers ctrl+a BackSpace
    xdotool type --delay 20 -- "$1"
    sleep 0.3
}

expect() {
    for _ in $(seq 1 120); do
        alive
        tail -n +$((MARK + 1)) "$LOG" | grep -qF -- "$1" && return 0
        sleep 0.25
    done
    fail "waited 30 s for the log line '$1'"
}

shot() {
    idle
    resize "$SHOT_HEIGHT"
    # The pointer off the window, so no button shows its hover colour.
    xdotool mousemove --sync $((X + SHOT_WIDTH - 1)) $((Y + TALL_HEIGHT - 1))
    painted "$SHOT_HEIGHT"
    import -window "$WID" "$OUT/$1.png"
    local size colours
    size=$(identify -format %wx%h "$OUT/$1.png")
    colours=$(identify -format %k "$OUT/$1.png")
    [ "$size" = "${SHOT_WIDTH}x${SHOT_HEIGHT}" ] || fail "$1.png is $size, not ${SHOT_WIDTH}x${SHOT_HEIGHT}"
    [ "$colours" -ge 16 ] || fail "$1.png is blank ($colours colours)"
    echo "screenshots: $1.png ($colours colours)"
}

walk
echo "screenshots: OK ($(ls "$OUT"/*.png | wc -l) pages in $OUT)"
