#!/usr/bin/env bash
# The Windows build under Wine, as a Windows user gets it: install the MSI from
# packaging/build.sh into a fresh 64-bit prefix, check the exe's command-line modes, compare
# `check-csv --json` with the Linux binary, the console companion from `cmd` (order, ERRORLEVEL,
# `/?`), PATH, the Programs and Features entry, a same-version rebuild replacing itself,
# smoke-test the installed exe's window in Xvfb
# (.ci/smoke.sh: sign in by clicking, Next, screenshots), uninstall, check nothing is left, then
# the installer's own dialogs as after a double-click (.ci/msi-dialogs.sh).
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
if msiinfo export "$MSI" File | grep -i bcryptprimitives >/dev/null; then fail "the MSI contains the Wine shim"; fi
if unzip -l "$ZIP" | grep -i bcryptprimitives >/dev/null; then fail "the zip contains the Wine shim"; fi

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
strings -a "$SHORTCUT" | grep -F 'C:\Program Files\Autopilot Wizard\autopilot-wizard.exe' >/dev/null ||
    fail "the Start-menu shortcut does not point at the installed exe"
{ strings -a "$SHORTCUT"; strings -a -el "$SHORTCUT"; } | grep 'AppIcon.ico' >/dev/null ||
    fail "the Start-menu shortcut has no icon"
echo "wine: installed under C:\\Program Files\\Autopilot Wizard, Start-menu shortcut present"

step "what ships: console companion, licence, notices, example plan and samples"
for f in autopilot-wizard.com README.txt LICENSE.txt THIRD-PARTY-NOTICES.txt \
    examples/example-plan.toml examples/samples/01-utf16-plain-hp.csv \
    examples/samples/03-utf16-plain-lenovo.csv examples/samples/04-utf16-plain-lenovo2.csv; do
    [ -f "$INSTALL_DIR/$f" ] || fail "no $f in the install folder"
    unzip -l "$ZIP" | grep -F "autopilot-wizard-$VERSION/$f" >/dev/null || fail "no $f in the zip"
done
grep -q "MIT License" "$INSTALL_DIR/LICENSE.txt" || fail "LICENSE.txt is not the MIT licence"
grep -q "^eframe " "$INSTALL_DIR/THIRD-PARTY-NOTICES.txt" || fail "the notices do not list eframe"
echo "wine: autopilot-wizard.com, LICENSE.txt, THIRD-PARTY-NOTICES.txt, README.txt, examples\\ installed and in the zip"

step "Programs and Features entry"
UNINSTALL='HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall'
wine reg query "$UNINSTALL" /s >"$OUT/uninstall-1.txt" 2>/dev/null || true
arp() { tr -d '\r' <"$OUT/uninstall-1.txt" | grep -iE "^\s+$1\s" | head -n 1 | sed -E 's/^\s+\S+\s+\S+\s+//'; }
[ "$(arp DisplayName)" = "Autopilot Wizard" ] || fail "no 'Autopilot Wizard' in $UNINSTALL (see $OUT/uninstall-1.txt)"
[ "$(arp Publisher)" = "autopilot-wizard developers" ] || fail "Publisher is '$(arp Publisher)'"
arp HelpLink | grep -F 'README.txt' >/dev/null || fail "HelpLink is '$(arp HelpLink)'"
arp URLInfoAbout | grep -F 'README.txt' >/dev/null || fail "URLInfoAbout is '$(arp URLInfoAbout)'"
arp InstallLocation | grep -F 'Autopilot Wizard' >/dev/null || fail "InstallLocation is '$(arp InstallLocation)'"
[ "$(arp NoModify)" = "0x1" ] || fail "NoModify is '$(arp NoModify)'"
[ "$(arp NoRepair)" = "0x1" ] || fail "NoRepair is '$(arp NoRepair)'"
echo "wine: publisher, help and about links, install location, no Change/Repair"

step "the install folder is on the system PATH"
ENV_KEY='HKLM\System\CurrentControlSet\Control\Session Manager\Environment'
wine reg query "$ENV_KEY" /v PATH >"$OUT/path-installed.txt" 2>&1 || true
grep -qiF 'Autopilot Wizard' "$OUT/path-installed.txt" || fail "PATH does not name the install folder (see $OUT/path-installed.txt)"
echo "wine: $(tr -d '\r' <"$OUT/path-installed.txt" | grep -i 'PATH' | head -n 1 | sed -E 's/^\s+//')"

step "console companion from cmd: waits, prints in order, sets ERRORLEVEL"
# A batch file: cmd expands %ERRORLEVEL% line by line there, so it is the program's.
cp tests/fixtures/csv/01-utf16-plain-hp.csv tests/fixtures/csv/bad-values.csv "$WINEPREFIX/drive_c/"
printf '%s\r\n' '@echo off' 'cd /d C:\' 'echo before' \
    'autopilot-wizard check-csv 01-utf16-plain-hp.csv' 'echo good=%ERRORLEVEL%' \
    'autopilot-wizard check-csv bad-values.csv' 'echo bad=%ERRORLEVEL%' \
    'autopilot-wizard /?' 'echo help=%ERRORLEVEL%' 'echo after' >"$WINEPREFIX/drive_c/cli-test.bat"
wine cmd /c 'C:\cli-test.bat' >"$OUT/cmd-cli.txt" 2>&1 || true
tr -d '\r' <"$OUT/cmd-cli.txt" >"$OUT/cmd-cli.unix.txt"
good_rc=0 bad_rc=0
(cd tests/fixtures/csv && "../../../$LINUX_BIN" check-csv 01-utf16-plain-hp.csv >/dev/null) || good_rc=$?
(cd tests/fixtures/csv && "../../../$LINUX_BIN" check-csv bad-values.csv >/dev/null) || bad_rc=$?
[ "$bad_rc" != 0 ] || fail "the Linux binary accepts bad-values.csv; pick another broken fixture"
grep -qx "good=$good_rc" "$OUT/cmd-cli.unix.txt" || fail "ERRORLEVEL after a good CSV is not $good_rc (see $OUT/cmd-cli.txt)"
grep -qx "bad=$bad_rc" "$OUT/cmd-cli.unix.txt" || fail "ERRORLEVEL after a bad CSV is not $bad_rc (see $OUT/cmd-cli.txt)"
grep -qx "help=0" "$OUT/cmd-cli.unix.txt" || fail "'autopilot-wizard /?' did not exit 0 (see $OUT/cmd-cli.txt)"
grep -q "Usage: autopilot-wizard" "$OUT/cmd-cli.unix.txt" || fail "'autopilot-wizard /?' printed no help (see $OUT/cmd-cli.txt)"
# In order: each program's output before the next line of the batch file.
order=$(grep -nE '^(before|good=|bad=|help=|after)|Usage: autopilot-wizard|bad-values\.csv' "$OUT/cmd-cli.unix.txt" |
    sed -E 's/^[0-9]+://; s/^(good|bad|help)=.*/\1/; s/.*Usage: autopilot-wizard.*/usage/; s/.*bad-values\.csv.*/badcsv/' | uniq | tr '\n' ' ')
[ "$order" = "before good badcsv bad usage help after " ] || fail "output out of order: '$order' (see $OUT/cmd-cli.txt)"
rc=0
wine cmd /c 'cd /d C:\ && autopilot-wizard check-csv bad-values.csv' >/dev/null 2>&1 || rc=$?
[ "$rc" = "$bad_rc" ] || fail "cmd /c exit code $rc, the program's is $bad_rc"
echo "wine: 'autopilot-wizard check-csv' in cmd (found on PATH as the .com): ERRORLEVEL $good_rc/$bad_rc like Linux, output in order, /? shows the help"

step "a rebuild of the same version replaces the installed one"
# What a rebuild changes: the ProductCode (Product Id="*") and the package code.
REBUILT=$WORK/rebuilt.msi
cp "$MSI" "$REBUILT"
NEW_CODE=$(tr a-z A-Z </proc/sys/kernel/random/uuid)
msibuild "$REBUILT" -q "UPDATE \`Property\` SET \`Value\` = '{$NEW_CODE}' WHERE \`Property\` = 'ProductCode'" \
    -s "Autopilot Wizard $VERSION installer" "autopilot-wizard developers" "x64;1033" "{$(tr a-z A-Z </proc/sys/kernel/random/uuid)}"
REBUILT_W=$(winepath -w "$REBUILT")
wine msiexec /i "$REBUILT_W" /qn /l*v 'C:\upgrade.log' || {
    cp "$WINEPREFIX/drive_c/upgrade.log" "$OUT/" 2>/dev/null || true
    fail "msiexec /i of the rebuilt MSI (log: $OUT/upgrade.log)"
}
wineserver -w
wine reg query "$UNINSTALL" /s >"$OUT/uninstall-2.txt" 2>/dev/null || true
entries=$(tr -d '\r' <"$OUT/uninstall-2.txt" | grep -cE '^\s+DisplayName\s+REG_SZ\s+Autopilot Wizard$' || true)
[ "$entries" = 1 ] || fail "$entries 'Autopilot Wizard' entries after installing a same-version rebuild (see $OUT/uninstall-2.txt)"
grep -qiF "{$NEW_CODE}" "$OUT/uninstall-2.txt" || fail "the remaining entry is not the rebuilt one"
[ -f "$INSTALL_DIR/autopilot-wizard.exe" ] || fail "the exe is gone after the same-version upgrade"
echo "wine: one 'Autopilot Wizard' entry after the rebuild, the rebuilt one"
MSI_W=$REBUILT_W

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
LOGS="$WINEPREFIX/drive_c/users/$(id -un)/AppData/Local/autopilot-wizard/logs"
ls "$LOGS"/*.log >/dev/null 2>&1 || fail "no log file under %LOCALAPPDATA%\\autopilot-wizard\\logs"
echo "wine: the log file is under %LOCALAPPDATA%\\autopilot-wizard\\logs (not roaming)"
grep -q "harvesting this PC: not available here" "$LOGS"/*.log ||
    fail "the log does not say that \"Add this PC\" is withheld under Wine"
echo "wine: \"Add this PC\" is not offered (harvesting is not available under Wine)"

step "uninstalling"
wine msiexec /x "$MSI_W" /qn || fail "msiexec /x"
wineserver -w
[ ! -e "$INSTALL_DIR/autopilot-wizard.exe" ] || fail "autopilot-wizard.exe left after uninstall"
[ ! -e "$INSTALL_DIR" ] || fail "the install folder is left after uninstall: $(ls -A "$INSTALL_DIR")"
wine reg query "$ENV_KEY" /v PATH >"$OUT/path-uninstalled.txt" 2>&1 || true
grep -qiF 'Autopilot Wizard' "$OUT/path-uninstalled.txt" && fail "the install folder is still on PATH after uninstall"
echo "wine: PATH no longer names the install folder"
for f in "${SHORTCUTS[@]}"; do
    [ ! -e "$f" ] || fail "the Start-menu shortcut is left after uninstall"
done
wine reg query 'HKLM\Software\autopilot-wizard' >/dev/null 2>&1 &&
    fail "the registry key HKLM\Software\autopilot-wizard is left after uninstall"
step "double-click install: the installer's own dialogs (Xvfb)"
wineserver -k 2>/dev/null || true
wineserver -w 2>/dev/null || true
xvfb-run -a -s "-screen 0 1100x720x24" bash .ci/msi-dialogs.sh "$MSI_W" "$INSTALL_DIR" "$OUT"
wineserver -k 2>/dev/null || true
wineserver -w 2>/dev/null || true

step "OK (installed, ran, uninstalled)"
