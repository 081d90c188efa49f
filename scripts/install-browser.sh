#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/web/test_web.py). Playwright drives this binary;
# `playwright install` would download a browser build of its own, which this machine cannot fetch.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "Chromium is missing and installing it needs root: apt-get install chromium" >&2
  exit 1
fi
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
echo "Chromium is missing: installing Debian's package" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium fonts-dejavu-core >/dev/null  # a font, so screenshots show text on a bare machine
test -x "$CHROMIUM" || { echo "apt-get installed no $CHROMIUM" >&2; exit 1; }
