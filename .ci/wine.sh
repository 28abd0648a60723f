#!/usr/bin/env bash
# The Windows build under Wine, as a Windows user gets it: install the MSI from
# packaging/build.sh into a fresh 64-bit prefix, check the exe's command-line modes, compare
# `check-csv --json` with the Linux binary, smoke-test the installed exe's window in Xvfb
# (.ci/smoke.sh: sign in by clicking, Next, screenshots), uninstall, check nothing is left.
# Output: artifacts/wine/ (screenshots, app.log, the two JSON files, --help output)
#
# Wine 8.0 lacks bcryptprimitives.dll (ProcessPrng, imported by Rust's std); the test-only shim
# in packaging/wine/ is built here and copied into the prefix, never into what we ship.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=artifacts/wine
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
MSI=target/dist/autopilot-wizard-$VERSION-x64.msi
ZIP=target/dist/autopilot-wizard-$VERSION-windows-x64.zip
EXE=target/dist/autopilot-wizard-$VERSION-windows-x64.exe
LINUX_BIN=target/dist/autopilot-wizard-$VERSION-linux-x86_64
for f in "$MSI" "$ZIP" "$EXE" "$LINUX_BIN"; do
    [ -f "$f" ] || { echo "wine: $f is missing (run packaging/build.sh)" >&2; exit 1; }
done
rm -rf "$OUT"
mkdir -p "$OUT"

export WINEARCH=win64 WINEDEBUG=-all
# No Mono/Gecko install prompts: the wizard needs neither.
export WINEDLLOVERRIDES="mscoree,mshtml="
WORK=$(mktemp -d)
export WINEPREFIX=$WORK/prefix
cleanup() {
    wineserver -k 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    echo "wine: FAILED: $*" >&2
    exit 1
}
step() { echo "wine: $* ($SECONDS s)"; }

if [ -n "${WINE_PREFIX_TEMPLATE:-}" ]; then
    # Local reruns: a copy of a prefix made earlier (wineboot takes minutes on a busy machine).
    step "copying the prefix $WINE_PREFIX_TEMPLATE"
    cp -a "$WINE_PREFIX_TEMPLATE" "$WINEPREFIX"
else
    step "creating a fresh prefix"
    wineboot -i >"$OUT/wineboot.log" 2>&1 || fail "wineboot -i (see $OUT/wineboot.log)"
    wineserver -w
fi

step "building the test-only ProcessPrng shim"
x86_64-w64-mingw32-gcc -shared -O2 -o "$WORK/bcryptprimitives.dll" \
    packaging/wine/bcryptprimitives.c packaging/wine/bcryptprimitives.def -ladvapi32
cp "$WORK/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
# What we ship must run on Windows without it, and must not carry it.
if msiinfo export "$MSI" File | grep -qi bcryptprimitives; then fail "the MSI contains the Wine shim"; fi
if unzip -l "$ZIP" | grep -qi bcryptprimitives; then fail "the zip contains the Wine shim"; fi

INSTALL_DIR="$WINEPREFIX/drive_c/Program Files/Autopilot Wizard"
# Windows puts a per-machine shortcut in the all-users Start menu; Wine 8's msi puts it in the
# installing user's. Either is the Start menu.
SHORTCUTS=(
    "$WINEPREFIX/drive_c/ProgramData/Microsoft/Windows/Start Menu/Programs/Autopilot Wizard.lnk"
    "$WINEPREFIX/drive_c/users/$(id -un)/AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Autopilot Wizard.lnk"
)
WIN_EXE='C:\Program Files\Autopilot Wizard\autopilot-wizard.exe'
MSI_W=$(winepath -w "$MSI")

step "installing $MSI"
wine msiexec /i "$MSI_W" /qn /l*v 'C:\install.log' || {
    cp "$WINEPREFIX/drive_c/install.log" "$OUT/" 2>/dev/null || true
    fail "msiexec /i (log: $OUT/install.log)"
}
wineserver -w
[ -f "$INSTALL_DIR/autopilot-wizard.exe" ] || fail "no autopilot-wizard.exe under Program Files"
[ -f "$INSTALL_DIR/README.md" ] || fail "no README.md under Program Files"
cmp -s "$INSTALL_DIR/autopilot-wizard.exe" "$EXE" || fail "the installed exe is not the one built"
SHORTCUT=""
for f in "${SHORTCUTS[@]}"; do [ -f "$f" ] && SHORTCUT=$f; done
[ -n "$SHORTCUT" ] || fail "no Start-menu shortcut 'Autopilot Wizard'"
strings -a "$SHORTCUT" | grep -qF 'C:\Program Files\Autopilot Wizard\autopilot-wizard.exe' ||
    fail "the Start-menu shortcut does not point at the installed exe"
{ strings -a "$SHORTCUT"; strings -a -el "$SHORTCUT"; } | grep -q 'AppIcon.ico' ||
    fail "the Start-menu shortcut has no icon"
echo "wine: installed under C:\\Program Files\\Autopilot Wizard, Start-menu shortcut present"

step "command-line modes print to stdout"
wine "$WIN_EXE" --version >"$OUT/version.txt" || fail "--version failed"
grep -qx "autopilot-wizard $VERSION" <(tr -d '\r' <"$OUT/version.txt") ||
    fail "--version printed '$(cat "$OUT/version.txt")'"
wine "$WIN_EXE" check-csv --help >"$OUT/check-csv-help.txt" || fail "check-csv --help failed"
grep -q "Check hardware-hash CSV files" "$OUT/check-csv-help.txt" ||
    fail "check-csv --help printed nothing useful (see $OUT/check-csv-help.txt)"
echo "wine: --version and check-csv --help reach stdout"

step "check-csv --json: Linux binary and Windows exe agree"
# Every fixture: good files and every kind of broken one, as relative paths with forward
# slashes (Windows accepts them), so not even the paths in the output may differ.
mapfile -t FILES < <(cd tests/fixtures/csv && ls -- *.csv | sort)
ARGS=()
for f in "${FILES[@]}"; do ARGS+=("tests/fixtures/csv/$f"); done
linux_rc=0 win_rc=0
"$LINUX_BIN" check-csv --json "${ARGS[@]}" >"$OUT/check-csv.linux.json" || linux_rc=$?
wine "$WIN_EXE" check-csv --json "${ARGS[@]}" >"$OUT/check-csv.windows.json" || win_rc=$?
[ "$linux_rc" = "$win_rc" ] || fail "exit codes differ: Linux $linux_rc, Windows $win_rc"
cmp "$OUT/check-csv.linux.json" "$OUT/check-csv.windows.json" || {
    diff "$OUT/check-csv.linux.json" "$OUT/check-csv.windows.json" | head -n 40 >&2
    fail "check-csv --json differs between Linux and Windows"
}
echo "wine: ${#FILES[@]} files, identical JSON ($(wc -c <"$OUT/check-csv.linux.json") bytes), exit code $linux_rc on both"

step "harvest: refused with a clear message where Windows' MDM bridge is missing"
harvest_rc=0
wine "$WIN_EXE" harvest >"$OUT/harvest.out" 2>"$OUT/harvest.err" || harvest_rc=$?
[ "$harvest_rc" -ne 0 ] || fail "harvest succeeded under Wine (exit 0)"
grep -q "needs Windows 10 or 11" "$OUT/harvest.out" "$OUT/harvest.err" ||
    fail "harvest did not say what it needs (see $OUT/harvest.err)"
grep -qi "panicked" "$OUT/harvest.out" "$OUT/harvest.err" && fail "harvest panicked under Wine"
echo "wine: harvest exits $harvest_rc with: $(grep -h "needs Windows 10 or 11" "$OUT/harvest.out" "$OUT/harvest.err" | head -n 1)"

step "smoke test of the installed exe in Xvfb"
# The GUI run gets its own wineserver inside the Xvfb display.
wineserver -k 2>/dev/null || true
wineserver -w 2>/dev/null || true
SMOKE_LAUNCHER=wine SMOKE_BIN="$WIN_EXE" SMOKE_OUT="$OUT" bash .ci/smoke.sh
wineserver -k 2>/dev/null || true
wineserver -w 2>/dev/null || true
LOGS="$WINEPREFIX/drive_c/users/$(id -un)/AppData/Roaming/autopilot-wizard/data/logs"
ls "$LOGS"/*.log >/dev/null 2>&1 || fail "no log file under %APPDATA%\\autopilot-wizard\\data\\logs"
echo "wine: the log file is under %APPDATA%\\autopilot-wizard\\data\\logs"
grep -q "harvesting this PC: not available here" "$LOGS"/*.log ||
    fail "the log does not say that \"Add this PC\" is withheld under Wine"
echo "wine: \"Add this PC\" is not offered (harvesting is not available under Wine)"

step "uninstalling"
wine msiexec /x "$MSI_W" /qn || fail "msiexec /x"
wineserver -w
[ ! -e "$INSTALL_DIR/autopilot-wizard.exe" ] || fail "autopilot-wizard.exe left after uninstall"
[ ! -e "$INSTALL_DIR" ] || fail "the install folder is left after uninstall: $(ls -A "$INSTALL_DIR")"
for f in "${SHORTCUTS[@]}"; do
    [ ! -e "$f" ] || fail "the Start-menu shortcut is left after uninstall"
done
wine reg query 'HKLM\Software\autopilot-wizard' >/dev/null 2>&1 &&
    fail "the registry key HKLM\Software\autopilot-wizard is left after uninstall"
step "OK (installed, ran, uninstalled)"
