#!/usr/bin/env bash
# Installs Debian's headless Chromium for the dashboard test (idempotent: a no-op when
# /usr/bin/chromium already runs). Needs root (apt-get); CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if command -v chromium >/dev/null 2>&1 && chromium --version >/dev/null 2>&1; then
    echo "==> chromium present: $(chromium --version)"
    exit 0
fi

echo "==> installing Debian chromium (headless dashboard test)"
apt_install chromium fonts-dejavu-core
echo "==> chromium installed: $(chromium --version)"
