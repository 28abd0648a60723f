#!/usr/bin/env bash
# Builds every artifact that can be built on Linux into target/dist/:
#   autopilot-wizard-<version>-x64.msi          Windows installer (wixl, packaging/autopilot-wizard.wxs)
#   autopilot-wizard-<version>-windows-x64.zip  portable: both exes, README, LICENSE, notices, examples
#   autopilot-wizard-<version>-windows-x64.exe  the bare windowed Windows exe
#   autopilot-wizard_<version>-1_amd64.deb      Debian/Ubuntu package (cargo-deb)
#   autopilot-wizard-<version>-linux-x86_64     the Linux release binary
#   winget/<version>/…yaml                       winget manifests of the MSI (when RELEASE_URL is set)
#   SHA256SUMS
# Each release build runs once; a second run reuses target/ and only repackages.
#
# Code signing (Authenticode, SHA-256, osslsigncode): the two Windows exes are signed before
# they go into the zip and the MSI, then the MSI itself. A certificate is given by either
#   SIGN_PFX=cert.pfx [SIGN_PASSWORD=…]               a PKCS#12 file with the key
#   SIGN_CERT=cert.pem SIGN_KEY=key.pem [SIGN_PASSWORD=…]   PEM/DER certificate chain and key
# and SIGN_TIMESTAMP_URL=… (an RFC 3161 time-stamping service) makes the signatures outlive the
# certificate. Without a certificate nothing is signed, and the script says so at the start and
# at the end.
#
# winget: RELEASE_URL=https://…/ (the folder the MSI will be downloaded from) writes the three
# manifests of this MSI (packaging/winget/ with the version, the MSI's address, SHA-256 and
# product code filled in), ready for a pull request to microsoft/winget-pkgs. Without it no
# manifest is written, and the script says so.
#
# Needs: rustup target x86_64-pc-windows-gnu, gcc-mingw-w64-x86-64 (linker and windres), wixl
# and msibuild (msitools), zip, osslsigncode, cargo-deb (cargo install cargo-deb --locked
# --version 3.8.0), cargo-about (cargo install cargo-about --locked --version 0.9.3 --features cli).
# .ci/run installs them all. macOS (.app/.dmg) cannot be built here: see "macOS" in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

WIN_TARGET=x86_64-pc-windows-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-target}
DIST=$TARGET_DIR/dist

die() { echo "build.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "'$1' is missing: $2"; }
need x86_64-w64-mingw32-gcc "apt-get install gcc-mingw-w64-x86-64"
need x86_64-w64-mingw32-windres "apt-get install binutils-mingw-w64-x86-64"
need wixl "apt-get install wixl"
need msibuild "apt-get install msitools"
need zip "apt-get install zip"
cargo deb --version >/dev/null 2>&1 || die "cargo-deb is missing: cargo install cargo-deb --locked --version 3.8.0"
cargo about --version >/dev/null 2>&1 || die "cargo-about is missing: cargo install cargo-about --locked --version 0.9.3 --features cli"

# The [package] version; Windows Installer wants three numeric fields, so no pre-release tail.
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$VERSION" ] || die "no version in Cargo.toml"
MSI_VERSION=${VERSION%%[-+]*}
echo "build.sh: version $VERSION (MSI $MSI_VERSION)"

# --- Signing -----------------------------------------------------------------------------------
SIGN_ARGS=()
if [ -n "${SIGN_PFX:-}" ]; then
    [ -f "$SIGN_PFX" ] || die "SIGN_PFX=$SIGN_PFX: no such file"
    SIGN_ARGS=(-pkcs12 "$SIGN_PFX")
    SIGN_WITH="the PKCS#12 file $SIGN_PFX"
elif [ -n "${SIGN_CERT:-}" ] || [ -n "${SIGN_KEY:-}" ]; then
    [ -f "${SIGN_CERT:-}" ] && [ -f "${SIGN_KEY:-}" ] ||
        die "SIGN_CERT and SIGN_KEY must both name files (certificate chain and private key)"
    SIGN_ARGS=(-certs "$SIGN_CERT" -key "$SIGN_KEY")
    SIGN_WITH="the certificate $SIGN_CERT and the key $SIGN_KEY"
fi
if [ ${#SIGN_ARGS[@]} -gt 0 ]; then
    need osslsigncode "apt-get install osslsigncode"
    echo "build.sh: signing the exes and the MSI with $SIGN_WITH" \
        "(${SIGN_TIMESTAMP_URL:+time stamp from $SIGN_TIMESTAMP_URL}${SIGN_TIMESTAMP_URL:-no time stamp: SIGN_TIMESTAMP_URL is not set})"
else
    echo "build.sh: NOT SIGNING: no certificate given (SIGN_PFX, or SIGN_CERT and SIGN_KEY)." \
        "The exes and the MSI will show 'Unknown publisher'."
fi
# sign FILE DESCRIPTION: Authenticode signature in place (exe or MSI), SHA-256.
sign() {
    [ ${#SIGN_ARGS[@]} -gt 0 ] || return 0
    local args=("${SIGN_ARGS[@]}" -h sha256 -n "$2")
    # The password through a pipe, not the command line (ps shows arguments to every user).
    [ -z "${SIGN_PASSWORD:-}" ] || args+=(-readpass /dev/stdin)
    [ -z "${SIGN_TIMESTAMP_URL:-}" ] || args+=(-ts "$SIGN_TIMESTAMP_URL")
    printf '%s' "${SIGN_PASSWORD:-}" |
        osslsigncode sign "${args[@]}" -in "$1" -out "$1.signed" >/dev/null ||
        die "signing $1 failed"
    mv "$1.signed" "$1"
    echo "build.sh: signed $1"
}

timed() {
    local t=$SECONDS
    "$@"
    echo "build.sh: '$*' took $((SECONDS - t)) s"
}

# 1. The two release builds (cargo skips them when nothing changed). The Windows one makes the
#    windowed exe and its console companion.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
timed cargo build --release --locked --target "$WIN_TARGET"
timed cargo build --release --locked

EXE=$TARGET_DIR/$WIN_TARGET/release/autopilot-wizard.exe
CLI_EXE=$TARGET_DIR/$WIN_TARGET/release/autopilot-wizard-cli.exe
BIN=$TARGET_DIR/release/autopilot-wizard
[ -f "$EXE" ] && [ -f "$CLI_EXE" ] && [ -f "$BIN" ] ||
    die "release builds did not produce $EXE, $CLI_EXE and $BIN"

rm -rf "$DIST"
mkdir -p "$DIST"
cp "$BIN" "$DIST/autopilot-wizard-$VERSION-linux-x86_64"

# 2. Third-party notices from the dependency tree (both targets), as text Notepad opens.
NOTICES=$TARGET_DIR/THIRD-PARTY-NOTICES.txt
# They depend only on the dependency tree and the template: reused while those stay the same
# (generating them reads every dependency's licence files, about two minutes).
NOTICES_KEY=$(cat Cargo.lock Cargo.toml packaging/about.toml packaging/about.hbs | sha256sum | cut -c1-16)
NOTICES_CACHED=$TARGET_DIR/notices-cache/$NOTICES_KEY.txt
if [ -s "$NOTICES_CACHED" ]; then
    cp "$NOTICES_CACHED" "$NOTICES"
    echo "build.sh: third-party notices unchanged since the last build (key $NOTICES_KEY)"
else
    timed cargo about generate --locked --fail -c packaging/about.toml -o "$NOTICES" packaging/about.hbs
    mkdir -p "$(dirname "$NOTICES_CACHED")"
    cp "$NOTICES" "$NOTICES_CACHED"
fi
grep -q "^eframe " "$NOTICES" || die "$NOTICES lists no eframe: cargo-about produced no notices"

# 3. What ships on Windows, staged once (inside target/: wixl takes relative paths only). The
#    console companion becomes autopilot-wizard.com, which cmd and PowerShell prefer when the
#    extension is left out. The example plan's CSV paths are rewritten for the layout here.
STAGE=$TARGET_DIR/stage-windows
rm -rf "$STAGE"
mkdir -p "$STAGE/examples/samples"
cp "$EXE" "$STAGE/autopilot-wizard.exe"
cp "$CLI_EXE" "$STAGE/autopilot-wizard.com"
sign "$STAGE/autopilot-wizard.exe" "Autopilot Wizard"
sign "$STAGE/autopilot-wizard.com" "Autopilot Wizard (command line)"
cp README.md "$STAGE/README.md"
# CRLF: older Notepad shows LF-only text as one line.
sed 's/$/\r/' README.md >"$STAGE/README.txt"
sed 's/$/\r/' LICENSE >"$STAGE/LICENSE.txt"
sed 's/$/\r/' "$NOTICES" >"$STAGE/THIRD-PARTY-NOTICES.txt"
SAMPLES=(01-utf16-plain-hp.csv 03-utf16-plain-lenovo.csv 04-utf16-plain-lenovo2.csv)
for f in "${SAMPLES[@]}"; do cp "tests/fixtures/csv/$f" "$STAGE/examples/samples/"; done
sed 's#"\.\./tests/fixtures/csv/#"samples/#' packaging/example-plan.toml >"$STAGE/examples/example-plan.toml"
grep -q '"samples/01-utf16-plain-hp.csv"' "$STAGE/examples/example-plan.toml" ||
    die "the example plan's CSV paths were not rewritten for the packages"
cp "$STAGE/autopilot-wizard.exe" "$DIST/autopilot-wizard-$VERSION-windows-x64.exe"

# 4. Portable zip: one folder (unzips to one folder on a USB stick).
ZIPDIR=$(mktemp -d)
trap 'rm -rf "$ZIPDIR"' EXIT
cp -r "$STAGE" "$ZIPDIR/autopilot-wizard-$VERSION"
(cd "$ZIPDIR" && zip -q -X -r "autopilot-wizard-$VERSION-windows-x64.zip" "autopilot-wizard-$VERSION")
mv "$ZIPDIR/autopilot-wizard-$VERSION-windows-x64.zip" "$DIST/"

# 5. MSI. wixl resolves sources relative to the working directory and rejects absolute paths.
MSI=$DIST/autopilot-wizard-$VERSION-x64.msi
rel() { realpath --relative-to=. "$1"; }
timed wixl -a x64 \
    -D "Version=$MSI_VERSION" \
    -D "StageDir=$(rel "$STAGE")" \
    -D "IconPath=assets/icon.ico" \
    -o "$MSI" \
    packaging/autopilot-wizard.wxs
# What wixl 0.101 cannot write: the dialogs (packaging/windows/msi-ui.sql), and the PATH
# entries and file versions. The install folder goes on PATH ("=-": set on install, removed
# on uninstall; "*": the system's; "[~];" appends to what is there). The File table carries the
# exes' versions (winresource's FILEVERSION: major.minor.patch.0), so Windows Installer compares
# versions, not dates, when it replaces them.
FILE_VERSION=$MSI_VERSION.0
# The dialogs of a double-click install (welcome, progress, finished, cancelled, failed).
UI_QUERIES=()
while IFS= read -r query; do
    case $query in '' | --*) continue ;; esac
    UI_QUERIES+=(-q "$query")
done <packaging/windows/msi-ui.sql
msibuild "$MSI" "${UI_QUERIES[@]}"
msiinfo export "$MSI" InstallUISequence | grep -q '^WelcomeDlg' || die "the MSI has no welcome dialog"
msibuild "$MSI" \
    -q "CREATE TABLE \`Environment\` (\`Environment\` CHAR(72) NOT NULL, \`Name\` CHAR(255) NOT NULL LOCALIZABLE, \`Value\` CHAR(255) LOCALIZABLE, \`Component_\` CHAR(72) NOT NULL PRIMARY KEY \`Environment\`)" \
    -q "INSERT INTO \`Environment\` (\`Environment\`, \`Name\`, \`Value\`, \`Component_\`) VALUES ('PathSystem', '=-*PATH', '[~];[INSTALLDIR]', 'PathSystem')" \
    -q "INSERT INTO \`Environment\` (\`Environment\`, \`Name\`, \`Value\`, \`Component_\`) VALUES ('PathUser', '=-PATH', '[~];[INSTALLDIR]', 'PathUser')" \
    -q "UPDATE \`Component\` SET \`Condition\` = 'MSIINSTALLPERUSER<>1' WHERE \`Component\` = 'PathSystem'" \
    -q "UPDATE \`Component\` SET \`Condition\` = 'MSIINSTALLPERUSER=1' WHERE \`Component\` = 'PathUser'" \
    -q "UPDATE \`File\` SET \`Version\` = '$FILE_VERSION', \`Language\` = '1033' WHERE \`File\` = 'AutopilotWizardExe'" \
    -q "UPDATE \`File\` SET \`Version\` = '$FILE_VERSION', \`Language\` = '1033' WHERE \`File\` = 'AutopilotWizardCom'"
msiinfo export "$MSI" Environment | grep '=-\*PATH' >/dev/null || die "the MSI has no PATH entry"
sign "$MSI" "Autopilot Wizard $VERSION installer"

# 5b. winget manifests of the MSI just signed (its hash is final now).
WINGET_DIR=$DIST/winget/$VERSION
if [ -n "${RELEASE_URL:-}" ]; then
    case $RELEASE_URL in https://*) ;; *) die "RELEASE_URL must start with https:// (winget downloads over HTTPS only)" ;; esac
    MSI_URL=${RELEASE_URL%/}/$(basename "$MSI")
    MSI_SHA256=$(sha256sum "$MSI" | cut -d' ' -f1 | tr a-f A-F)
    PRODUCT_CODE=$(msiinfo export "$MSI" Property | awk -F'\t' '$1 == "ProductCode" { print $2 }' | tr -d '\r')
    [ -n "$PRODUCT_CODE" ] || die "no ProductCode in the MSI's Property table"
    mkdir -p "$WINGET_DIR"
    for f in packaging/winget/*.yaml; do
        sed -e "s|@VERSION@|$VERSION|g" -e "s|@URL@|$MSI_URL|g" -e "s|@SHA256@|$MSI_SHA256|g" \
            -e "s|@PRODUCT_CODE@|$PRODUCT_CODE|g" -e '/^# winget .*(template/,/^# yaml-language-server/{/^# yaml-language-server/!d}' \
            "$f" >"$WINGET_DIR/$(basename "$f")"
    done
    if grep -l '@[A-Z_0-9]*@' "$WINGET_DIR"/*.yaml; then die "placeholders left in the winget manifests above"; fi
    echo "build.sh: winget manifests in $WINGET_DIR (installer $MSI_URL)"
else
    echo "build.sh: no winget manifests (set RELEASE_URL to the https:// folder the MSI is published in)"
fi

# 6. .deb from the release binary just built ([package.metadata.deb] in Cargo.toml; it takes
#    LICENSE and the notices generated above).
timed cargo deb --locked --no-build --output "$DIST/"

(cd "$DIST" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\0' | sort -z | xargs -0 sha256sum -- >SHA256SUMS)
echo "build.sh: artifacts in $DIST:"
ls -l "$DIST"
if [ ${#SIGN_ARGS[@]} -gt 0 ]; then
    echo "build.sh: signed: autopilot-wizard.exe, autopilot-wizard.com, the MSI"
else
    echo "build.sh: NOT SIGNED (no certificate given): see 'Signing' in README.md"
fi
