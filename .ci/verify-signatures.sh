#!/usr/bin/env bash
# Checks the Authenticode signatures packaging/build.sh made with the CI test certificate
# (.ci/test-cert.sh): the bare exe, the exe and the .com inside the zip and inside the MSI, and
# the MSI itself, each verified by osslsigncode against that certificate as the only trusted
# root (it is self-signed, so it is its own CA). A file changed after signing must fail.
# Usage: .ci/verify-signatures.sh CERT.pem
set -euo pipefail
cd "$(dirname "$0")/.."
CERT=${1:?usage: .ci/verify-signatures.sh CERT.pem}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
DIST=target/dist
OUT=artifacts/signatures
rm -rf "$OUT"
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() {
    echo "signatures: FAILED: $*" >&2
    exit 1
}
SIGNER_CN=$(openssl x509 -in "$CERT" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')

verify() { # FILE LABEL
    local log
    log="$OUT/$2.txt"
    osslsigncode verify -CAfile "$CERT" -in "$1" >"$log" 2>&1 ||
        fail "$2: osslsigncode verify (see $log)"
    grep -q "Signature verification: ok" "$log" || fail "$2: no 'Signature verification: ok' (see $log)"
    grep -qi "sha256" "$log" || fail "$2: not a SHA-256 signature (see $log)"
    echo "signatures: $2 OK"
}

verify "$DIST/autopilot-wizard-$VERSION-windows-x64.exe" exe
verify "$DIST/autopilot-wizard-$VERSION-x64.msi" msi

unzip -q "$DIST/autopilot-wizard-$VERSION-windows-x64.zip" -d "$WORK/zip"
verify "$WORK/zip/autopilot-wizard-$VERSION/autopilot-wizard.exe" zip-exe
verify "$WORK/zip/autopilot-wizard-$VERSION/autopilot-wizard.com" zip-com

msiextract -C "$WORK/msi" "$DIST/autopilot-wizard-$VERSION-x64.msi" >/dev/null
EXTRACTED_EXE=$(find "$WORK/msi" -name autopilot-wizard.exe | head -n 1)
EXTRACTED_COM=$(find "$WORK/msi" -name autopilot-wizard.com | head -n 1)
[ -n "$EXTRACTED_EXE" ] && [ -n "$EXTRACTED_COM" ] || fail "the MSI holds no autopilot-wizard.exe/.com"
verify "$EXTRACTED_EXE" msi-exe
verify "$EXTRACTED_COM" msi-com
for f in "$OUT"/*.txt; do
    grep -qF "Subject: /CN=$SIGNER_CN/" "$f" || fail "$(basename "$f" .txt): the signer is not the test certificate"
done

# A signature that still verified after the file changed would be worth nothing.
cp "$DIST/autopilot-wizard-$VERSION-windows-x64.exe" "$WORK/tampered.exe"
printf 'X' | dd of="$WORK/tampered.exe" bs=1 seek=4096 conv=notrunc status=none
if osslsigncode verify -CAfile "$CERT" -in "$WORK/tampered.exe" >"$OUT/tampered.txt" 2>&1; then
    fail "a changed exe still verifies"
fi
echo "signatures: a changed exe fails verification, as it must"
echo "signatures: OK (signer: $SIGNER_CN)"
