#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser test (tests/browser), driven by the Python
# `playwright` package through executable_path. We never run `playwright install`: its browser
# builds come from a CDN, Debian's package comes from the distribution's mirrors.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
