#!/usr/bin/env bash
# Makes sure Firefox and geckodriver are present for the console's tests in Firefox
# (tests/console/test_firefox.py, driven with Selenium; no browser is downloaded):
# - Debian's `firefox-esr`, installed with apt-get when missing and running as root; otherwise says how.
#   SHOAL_FIREFOX names another binary.
# - geckodriver GECKODRIVER_VERSION at ${SHOAL_TOOLS_DIR:-~/.cache/shoal-tools}/bin/geckodriver, outside the
#   repository so that every clone on the machine shares it, built once from crates.io with
#   `cargo install` (a few minutes) when missing or of another version.
# Prints nothing when everything is there.
set -euo pipefail

GECKODRIVER_VERSION="0.37.1"

bin="${SHOAL_FIREFOX:-/usr/bin/firefox-esr}"
tools="${SHOAL_TOOLS_DIR:-$HOME/.cache/shoal-tools}"
driver="$tools/bin/geckodriver"

if [[ ! -x "$bin" ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-firefox.sh: installing firefox-esr with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr fonts-dejavu-core >/dev/null
  fi
  if [[ ! -x "$bin" ]]; then
    echo "ensure-firefox.sh: the console's Firefox tests need Firefox at $bin;" \
         "install it (Debian: apt-get install firefox-esr) or set SHOAL_FIREFOX=/path/to/firefox" >&2
    exit 1
  fi
fi

# The version read whole before it is looked at: `geckodriver --version | head -n 1` under pipefail fails
# whenever head closes the pipe before geckodriver has written its last lines, and the driver was rebuilt.
if [[ -x "$driver" ]] && [[ "$("$driver" --version 2>/dev/null || true)" == "geckodriver $GECKODRIVER_VERSION"* ]]; then
  exit 0
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "ensure-firefox.sh: the console's Firefox tests need geckodriver $GECKODRIVER_VERSION at $driver," \
       "built with Rust's cargo, which is not on PATH; install a current Rust toolchain (https://rustup.rs)" \
       "and run this again, or put a geckodriver $GECKODRIVER_VERSION binary there (SHOAL_TOOLS_DIR moves the folder)" >&2
  exit 1
fi
echo "ensure-firefox.sh: building geckodriver $GECKODRIVER_VERSION with cargo into $tools (a few minutes, once per machine)" >&2
mkdir -p "$tools"
cargo install geckodriver --version "$GECKODRIVER_VERSION" --locked --force --root "$tools" >&2
"$driver" --version >/dev/null
