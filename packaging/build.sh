#!/usr/bin/env bash
# Builds every artifact that can be built on Linux into target/dist/:
#   autopilot-wizard-<version>-x64.msi          Windows installer (wixl, packaging/autopilot-wizard.wxs)
#   autopilot-wizard-<version>-windows-x64.zip  portable: the exe and the README
#   autopilot-wizard-<version>-windows-x64.exe  the bare Windows exe
#   autopilot-wizard_<version>-1_amd64.deb      Debian/Ubuntu package (cargo-deb)
#   autopilot-wizard-<version>-linux-x86_64     the Linux release binary
#   SHA256SUMS
# Each release build runs once; a second run reuses target/ and only repackages.
# Needs: rustup target x86_64-pc-windows-gnu, gcc-mingw-w64-x86-64 (linker and windres), wixl,
# zip, cargo-deb (cargo install cargo-deb --locked --version 3.8.0). .ci/run installs them all.
# macOS (.app/.dmg) cannot be built here: see "macOS" in README.md.
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
need zip "apt-get install zip"
cargo deb --version >/dev/null 2>&1 || die "cargo-deb is missing: cargo install cargo-deb --locked --version 3.8.0"

# The [package] version; Windows Installer wants three numeric fields, so no pre-release tail.
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$VERSION" ] || die "no version in Cargo.toml"
MSI_VERSION=${VERSION%%[-+]*}
echo "build.sh: version $VERSION (MSI $MSI_VERSION)"

timed() {
    local t=$SECONDS
    "$@"
    echo "build.sh: '$*' took $((SECONDS - t)) s"
}

# 1. The two release builds (cargo skips them when nothing changed).
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
timed cargo build --release --locked --target "$WIN_TARGET"
timed cargo build --release --locked

EXE=$TARGET_DIR/$WIN_TARGET/release/autopilot-wizard.exe
BIN=$TARGET_DIR/release/autopilot-wizard
[ -f "$EXE" ] && [ -f "$BIN" ] || die "release builds did not produce $EXE and $BIN"

rm -rf "$DIST"
mkdir -p "$DIST"
cp "$EXE" "$DIST/autopilot-wizard-$VERSION-windows-x64.exe"
cp "$BIN" "$DIST/autopilot-wizard-$VERSION-linux-x86_64"

# 2. Portable zip: a folder with the exe and the README (unzips to one folder on a USB stick).
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir "$STAGE/autopilot-wizard-$VERSION"
cp "$EXE" README.md "$STAGE/autopilot-wizard-$VERSION/"
(cd "$STAGE" && zip -q -X -r "autopilot-wizard-$VERSION-windows-x64.zip" "autopilot-wizard-$VERSION")
mv "$STAGE/autopilot-wizard-$VERSION-windows-x64.zip" "$DIST/"

# 3. MSI. wixl resolves sources relative to the working directory and rejects absolute paths.
rel() { realpath --relative-to=. "$1"; }
timed wixl -a x64 \
    -D "Version=$MSI_VERSION" \
    -D "ExePath=$(rel "$EXE")" \
    -D "IconPath=assets/icon.ico" \
    -D "ReadmePath=README.md" \
    -o "$DIST/autopilot-wizard-$VERSION-x64.msi" \
    packaging/autopilot-wizard.wxs

# 4. .deb from the release binary just built ([package.metadata.deb] in Cargo.toml).
timed cargo deb --locked --no-build --output "$DIST/"

(cd "$DIST" && sha256sum -- * >SHA256SUMS)
echo "build.sh: artifacts in $DIST:"
ls -l "$DIST"
