#!/usr/bin/env bash
# Installs the .deb from packaging/build.sh the way a user would (apt resolves its Depends, so a
# missing runtime library shows here), smoke-tests the installed /usr/bin/autopilot-wizard in
# Xvfb (.ci/smoke.sh: window, sign in by clicking, Next, screenshots), then removes it.
# Output: artifacts/deb/*.png, app.log
set -euo pipefail
cd "$(dirname "$0")/.."

DEB=$(ls target/dist/autopilot-wizard_*_amd64.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ] || { echo "deb: no .deb in target/dist (run packaging/build.sh)" >&2; exit 1; }
echo "deb: installing $DEB"
apt-get install -y -qq --no-install-recommends "./$DEB" >/dev/null
trap 'apt-get remove -y -qq autopilot-wizard >/dev/null 2>&1 || true' EXIT

dpkg -L autopilot-wizard | grep -x /usr/share/applications/autopilot-wizard.desktop >/dev/null ||
    { echo "deb: the desktop entry is not installed" >&2; exit 1; }
/usr/bin/autopilot-wizard --version
SMOKE_BIN=/usr/bin/autopilot-wizard SMOKE_OUT=artifacts/deb bash .ci/smoke.sh

apt-get remove -y -qq autopilot-wizard >/dev/null
[ ! -e /usr/bin/autopilot-wizard ] || { echo "deb: /usr/bin/autopilot-wizard left after removal" >&2; exit 1; }
echo "deb: OK (installed, ran, removed)"
