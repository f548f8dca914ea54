#!/usr/bin/env bash
# Installs Debian's headless Chromium for the dashboard test (idempotent: a no-op when
# /usr/bin/chromium already runs). Needs root (apt-get); CI runs as root.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && chromium --version >/dev/null 2>&1; then
    echo "==> chromium present: $(chromium --version)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "==> installing Debian chromium (headless dashboard test)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "==> chromium installed: $(chromium --version)"
