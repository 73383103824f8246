#!/usr/bin/env bash
# Install Label Studio for the labeling bridge's integration tests into its own venv:
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/label-studio-venv/
#
# Label Studio's dependency tree (Django, boto3, google-cloud, openai, label-studio-sdk, ...) must
# not meet the project's .venv, so it gets a venv of its own; the tests start it from there
# (tests/harness/label_studio_server.py). The version range is pinned in one place:
# tests/harness/label_studio/requirements.txt.
#
# Idempotent: a stamp file holding the requirements file's sha256 and the installed version is
# written once the install succeeded; when it matches nothing is done. Editing the requirements
# (e.g. moving to the next minor release) triggers a fresh install.
#
# The Python used is $LABEL_STUDIO_PYTHON, else $PYTHON, else python3 (3.10 to 3.13, as
# label-studio 1.23 requires).
#
# Usage: scripts/ensure-label-studio.sh [--force]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="${repo_root}/tests/harness/label_studio/requirements.txt"

cache_dir="${SHOAL_CACHE_DIR:-${repo_root}/.cache}"
case "${cache_dir}" in
  /*) ;;
  *) cache_dir="${repo_root}/${cache_dir}" ;;
esac
venv="${cache_dir}/label-studio-venv"
stamp="${venv}/.shoal-installed"

force=0
for arg in "$@"; do
  case "${arg}" in
    --force) force=1 ;;
    -h|--help)
      sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "ensure-label-studio.sh: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

fail() {
  echo "ensure-label-studio.sh: $*" >&2
  exit 1
}

[[ -f "${requirements}" ]] || fail "missing ${requirements}"

hash_file() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

req_hash="$(hash_file "${requirements}")"

is_fresh() {
  [[ -f "${stamp}" ]] \
    && [[ "$(head -n 1 "${stamp}")" == "${req_hash}" ]] \
    && [[ -x "${venv}/bin/label-studio" ]]
}

if [[ "${force}" -eq 0 ]] && is_fresh; then
  echo "Label Studio $(sed -n 2p "${stamp}") up to date in ${venv}"
  exit 0
fi

mkdir -p "${cache_dir}"

# Serialise concurrent runs when flock is available.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${cache_dir}/.label-studio.lock"
  flock 9
  if [[ "${force}" -eq 0 ]] && is_fresh; then
    echo "Label Studio $(sed -n 2p "${stamp}") up to date in ${venv}"
    exit 0
  fi
fi

python="${LABEL_STUDIO_PYTHON:-${PYTHON:-python3}}"
command -v "${python}" >/dev/null 2>&1 \
  || fail "no Python to install Label Studio with: '${python}' is not on PATH (set LABEL_STUDIO_PYTHON=/path/to/python3.11)"
py_version="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
  || fail "could not run '${python}' (set LABEL_STUDIO_PYTHON=/path/to/python3.11)"
case "${py_version}" in
  3.10|3.11|3.12|3.13) ;;
  *) fail "label-studio 1.23 needs Python 3.10 to 3.13, '${python}' is ${py_version} (set LABEL_STUDIO_PYTHON=/path/to/python3.11)" ;;
esac
"${python}" -c 'import venv, ensurepip' 2>/dev/null \
  || fail "'${python}' cannot create venvs (on Debian: apt-get install python3-venv)"

log="${cache_dir}/label-studio-install.log"
started=${SECONDS}
echo "Installing $(grep -v '^#' "${requirements}" | grep -v '^$' | tr '\n' ' ')into ${venv} (log: ${log}) ..."
rm -rf "${venv}"
# uv (scripts/ensure-uv.sh) installs it in 13 to 19 s on 2 cores, pip in about 47 s. Its bytecode is compiled
# ahead (two thirds of that): where PYTHONDONTWRITEBYTECODE is set, each start of the server would compile what it
# imports again, 4 s a start.
if ! { uv="$(PYTHON="${python}" bash "${repo_root}/scripts/ensure-uv.sh")" \
        && "${uv}" venv --python "${python}" "${venv}" \
        && "${uv}" pip install --compile-bytecode --python "${venv}/bin/python" -r "${requirements}"; \
      } >"${log}" 2>&1; then
  tail -n 30 "${log}" >&2 || true
  rm -rf "${venv}"
  fail "could not install Label Studio from PyPI: is the network to PyPI reachable? (full output: ${log})"
fi

version="$("${venv}/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))')" \
  || fail "label-studio installed but its version cannot be read (see ${log})"
[[ -x "${venv}/bin/label-studio" ]] || fail "label-studio ${version} installed but ${venv}/bin/label-studio is missing"

printf '%s\n%s\n' "${req_hash}" "${version}" >"${stamp}"
echo "Label Studio ${version} ready in ${venv} after $((SECONDS - started))s"
