#!/usr/bin/env bash
# A throwaway self-signed code-signing certificate for CI, so packaging/build.sh signs through
# the same path a real certificate takes. Usage: .ci/test-cert.sh DIR
# Writes DIR/cert.pem, DIR/key.pem, DIR/cert.pfx and DIR/password (the PFX's password). Never
# use it for anything that leaves CI: its key sits unencrypted beside it.
set -euo pipefail
DIR=${1:?usage: .ci/test-cert.sh DIR}
rm -rf "$DIR"
mkdir -p "$DIR"
openssl req -x509 -newkey rsa:3072 -sha256 -days 2 -nodes \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
    -subj "/CN=autopilot-wizard CI test signing/O=autopilot-wizard developers" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=codeSigning" \
    -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
openssl rand -hex 16 >"$DIR/password"
openssl pkcs12 -export -inkey "$DIR/key.pem" -in "$DIR/cert.pem" \
    -out "$DIR/cert.pfx" -passout "file:$DIR/password"
echo "test-cert: $(openssl x509 -in "$DIR/cert.pem" -noout -subject -enddate | tr '\n' ' ')"
