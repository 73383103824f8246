#!/usr/bin/env bash
# Makes sure a Chromium is present for the console's browser tests (tests/console/), which drive it
# with the Playwright client (launched with executable_path; no browser is downloaded).
# Installs Debian's `chromium` with apt-get when missing and running as root; otherwise says how.
# SHOAL_CHROMIUM names another binary.
set -euo pipefail

bin="${SHOAL_CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$bin" ]]; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium.sh: installing chromium with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
  [[ -x "$bin" ]] && exit 0
fi
echo "ensure-chromium.sh: the console's browser tests need Chromium at $bin;" \
     "install it (Debian: apt-get install chromium) or set SHOAL_CHROMIUM=/path/to/chromium" >&2
exit 1
