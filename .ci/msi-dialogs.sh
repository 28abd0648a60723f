#!/usr/bin/env bash
# The MSI's own dialogs (packaging/windows/msi-ui.sql), clicked through as a person does after a
# double-click, under Wine in an X display (.ci/wine.sh runs this under xvfb-run with its
# prefix): Cancel on the welcome page installs nothing and ends with "cancelled" (1602); Install
# shows the progress, installs, and waits on "installed" until Finish; an uninstall waits on
# "removed" until Finish. Screenshots: OUT/msi-*.png.
# Usage: .ci/msi-dialogs.sh MSI_WINDOWS_PATH INSTALL_DIR OUT
set -euo pipefail
MSI_W=$1 INSTALL_DIR=$2 OUT=$3
fail() {
    echo "msi dialogs: FAILED: $*" >&2
    exit 1
}
# The setup window (every dialog has this title); fails after a minute without one.
setup_window() {
    local w="" i
    for i in $(seq 1 120); do
        w=$(xdotool search --name '^Autopilot Wizard Setup$' 2>/dev/null | head -n 1) || true
        [ -n "$w" ] && break
        sleep 0.5
    done
    [ -n "$w" ] || fail "no 'Autopilot Wizard Setup' window: $1"
    sleep 1.5 # drawn
    echo "$w"
}
press() { # WINDOW KEY
    xdotool windowfocus --sync "$1" 2>/dev/null || true
    xdotool key "$2"
}
# Waits for msiexec (pid $1) to end; its exit code, or fails after a minute.
ended() {
    local i
    for i in $(seq 1 120); do
        kill -0 "$1" 2>/dev/null || { wait "$1"; return $?; }
        sleep 0.5
    done
    fail "msiexec is still running a minute after the last dialog ($2)"
}
still_waiting() { # PID WHAT: msiexec did not end by itself (a dialog holds it)
    sleep 2
    kill -0 "$1" 2>/dev/null || fail "msiexec ended without waiting on the $2 dialog"
}

wine msiexec /i "$MSI_W" & pid=$!
w=$(setup_window "welcome")
import -window root "$OUT/msi-1-welcome.png"
press "$w" Escape
still_waiting $pid "cancelled"
import -window root "$OUT/msi-2-cancelled.png"
press "$(setup_window cancelled)" Return
rc=0
ended $pid "cancelled" || rc=$?
# A Linux exit status keeps the low 8 bits of Windows' 1602: 66.
[ "$rc" = $((1602 % 256)) ] || fail "Cancel on the welcome page ended with $rc, not 1602 (cancelled by the user)"
[ ! -e "$INSTALL_DIR/autopilot-wizard.exe" ] || fail "Cancel on the welcome page installed the exe"
echo "msi dialogs: welcome, Cancel: nothing installed, exit code 1602"

wine msiexec /i "$MSI_W" & pid=$!
w=$(setup_window "welcome")
press "$w" Return
for _ in $(seq 1 120); do
    [ -e "$INSTALL_DIR/autopilot-wizard.exe" ] && break
    sleep 0.5
done
[ -e "$INSTALL_DIR/autopilot-wizard.exe" ] || fail "Install on the welcome page installed nothing"
still_waiting $pid "installed"
import -window root "$OUT/msi-3-installed.png"
press "$(setup_window installed)" Return
rc=0
ended $pid "installed" || rc=$?
[ "$rc" = 0 ] || fail "the double-click install ended with $rc"
echo "msi dialogs: welcome, Install, progress, installed, Finish: exit code 0"

wine msiexec /x "$MSI_W" & pid=$!
for _ in $(seq 1 120); do
    [ -e "$INSTALL_DIR/autopilot-wizard.exe" ] || break
    sleep 0.5
done
still_waiting $pid "removed"
import -window root "$OUT/msi-4-removed.png"
press "$(setup_window removed)" Return
rc=0
ended $pid "removed" || rc=$?
[ "$rc" = 0 ] || fail "the uninstall ended with $rc"
[ ! -e "$INSTALL_DIR/autopilot-wizard.exe" ] || fail "the uninstall left the exe"
echo "msi dialogs: uninstall, removed, Finish: exit code 0"
