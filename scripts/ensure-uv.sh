#!/usr/bin/env bash
# uv, the installer of the project's venvs (`make venv`, scripts/ensure-label-studio.sh), installed once per
# machine from PyPI into ${SHOAL_TOOLS_DIR:-~/.cache/shoal-tools}/uv-<series>/ and its path printed:
#
#     uv="$(scripts/ensure-uv.sh)"
#
# uv downloads in parallel and keeps what it downloaded in its own cache (~/.cache/uv), so a fresh clone's venv
# installs in about 17 s on 2 cores against about 50 s with pip, and Label Studio's in about 5 s against 47 s.
# The Python that installs it is $PYTHON, else python3. Concurrent runs wait for each other (flock).
set -euo pipefail

UV_REQUIREMENT='uv>=0.13,<0.14'
UV_SERIES=0.13

tools="${SHOAL_TOOLS_DIR:-$HOME/.cache/shoal-tools}"
home="$tools/uv-$UV_SERIES"
uv="$home/bin/uv"

fail() {
  echo "ensure-uv.sh: $*" >&2
  exit 1
}

if [[ ! -x "$uv" ]]; then
  mkdir -p "$tools"
  exec 9>"$tools/.uv.lock"
  flock 9
  if [[ ! -x "$uv" ]]; then
    python="${PYTHON:-python3}"
    echo "ensure-uv.sh: installing $UV_REQUIREMENT into $home" >&2
    rm -rf "$home.partial"
    "$python" -m venv "$home.partial" >&2 \
      || fail "'$python' cannot create venvs (on Debian: apt-get install python3-venv)"
    "$home.partial/bin/python" -m pip install --quiet --disable-pip-version-check "$UV_REQUIREMENT" >&2 \
      || fail "could not install $UV_REQUIREMENT from PyPI: is PyPI reachable?"
    # installed aside and renamed once complete (uv is a native binary, so the rename does not break it): an
    # interrupted install never leaves a half venv at the path that is checked
    rm -rf "$home"
    mv "$home.partial" "$home"
    [[ -x "$uv" ]] || fail "$UV_REQUIREMENT installed but $uv is missing"
  fi
  exec 9>&-
fi
echo "$uv"
