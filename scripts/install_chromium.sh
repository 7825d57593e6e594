#!/usr/bin/env bash
# Install Debian's chromium for the report's browser test (tests/report/test_browser.py).
# Idempotent and quiet: does nothing when a chromium binary is already on PATH; prints apt's
# log only when the install fails.
set -euo pipefail
for bin in chromium chromium-browser google-chrome; do
  if command -v "$bin" >/dev/null 2>&1; then
    exit 0
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install_chromium.sh: not root and no sudo: install the 'chromium' package by hand" >&2
    exit 1
  fi
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } \
       >"$log" 2>&1; then
  cat "$log" >&2
  echo "install_chromium.sh: apt-get could not install chromium" >&2
  exit 1
fi
command -v chromium >/dev/null 2>&1
