#!/usr/bin/env bash
# Install sed_eval, the reference the sound-event metrics are tested and benchmarked against, into its own venv:
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/sed-eval-venv/
#
# and print that venv's python. It cannot live in the project's .venv: sed_eval 0.2.1 needs dcase_util, whose
# modules import pkg_resources when imported, and pkg_resources is gone from the setuptools the project's venv
# has (81 and later); putting it back would mean downgrading setuptools there. dcase_util also brings librosa,
# matplotlib, soundfile and some fifteen more packages the project does not use. So the tests and the benchmark
# run sed_eval's side in a subprocess with this venv's python (tests/harness/sed_eval_reference.py).
#
# The requirements and their ranges are declared here, in REQUIREMENTS below (pyproject.toml's dev extra points here).
# Idempotent: a stamp file holding the requirements' sha256 and the installed version is written once the
# install succeeded; when it matches nothing is done. Concurrent runs wait for each other (flock).
#
# The Python used is $SED_EVAL_PYTHON, else $PYTHON, else python3 (3.11 to 3.13).
#
# Usage: scripts/ensure-sed-eval.sh [--force]    (prints the venv's python on stdout; the rest goes to stderr)
set -euo pipefail

REQUIREMENTS='sed_eval>=0.2.1,<0.3
dcase_util>=0.2.20,<0.3
setuptools>=70,<81
'

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${SHOAL_CACHE_DIR:-${repo_root}/.cache}"
case "${cache_dir}" in
  /*) ;;
  *) cache_dir="${repo_root}/${cache_dir}" ;;
esac
venv="${cache_dir}/sed-eval-venv"
stamp="${venv}/.shoal-installed"

force=0
for arg in "$@"; do
  case "${arg}" in
    --force) force=1 ;;
    -h|--help)
      sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "ensure-sed-eval.sh: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

fail() {
  echo "ensure-sed-eval.sh: $*" >&2
  exit 1
}

if command -v sha256sum >/dev/null 2>&1; then
  req_hash="$(printf '%s' "${REQUIREMENTS}" | sha256sum | cut -d' ' -f1)"
else
  req_hash="$(printf '%s' "${REQUIREMENTS}" | shasum -a 256 | cut -d' ' -f1)"
fi

is_fresh() {
  [[ -f "${stamp}" ]] && [[ "$(head -n 1 "${stamp}")" == "${req_hash}" ]] && [[ -x "${venv}/bin/python" ]]
}

done_() {
  echo "sed_eval $(sed -n 2p "${stamp}") ready in ${venv}" >&2
  echo "${venv}/bin/python"
  exit 0
}

if [[ "${force}" -eq 0 ]] && is_fresh; then
  done_
fi

mkdir -p "${cache_dir}"
if command -v flock >/dev/null 2>&1; then
  exec 9>"${cache_dir}/.sed-eval.lock"
  flock 9
  if [[ "${force}" -eq 0 ]] && is_fresh; then
    done_
  fi
fi

python="${SED_EVAL_PYTHON:-${PYTHON:-python3}}"
command -v "${python}" >/dev/null 2>&1 \
  || fail "no Python to install sed_eval with: '${python}' is not on PATH (set SED_EVAL_PYTHON=/path/to/python3.11)"
py_version="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
  || fail "could not run '${python}' (set SED_EVAL_PYTHON=/path/to/python3.11)"
case "${py_version}" in
  3.11|3.12|3.13) ;;
  *) fail "the sed_eval venv needs Python 3.11 to 3.13, '${python}' is ${py_version} (set SED_EVAL_PYTHON)" ;;
esac

log="${cache_dir}/sed-eval-install.log"
started=${SECONDS}
echo "Installing $(printf '%s' "${REQUIREMENTS}" | tr '\n' ' ')into ${venv} (log: ${log}) ..." >&2
rm -rf "${venv}"
if ! { uv="$(PYTHON="${python}" bash "${repo_root}/scripts/ensure-uv.sh")" \
        && "${uv}" venv --python "${python}" "${venv}" \
        && printf '%s' "${REQUIREMENTS}" | "${uv}" pip install --python "${venv}/bin/python" -r - ; \
      } >"${log}" 2>&1; then
  tail -n 30 "${log}" >&2 || true
  rm -rf "${venv}"
  fail "could not install sed_eval from PyPI: is the network to PyPI reachable? (full output: ${log})"
fi

# the import is the check: dcase_util imports pkg_resources and much else when sed_eval imports it
version="$("${venv}/bin/python" -c 'import importlib.metadata as m, sed_eval.sound_event; print(m.version("sed_eval"))' 2>>"${log}")" \
  || { tail -n 30 "${log}" >&2; fail "sed_eval installed but does not import (see ${log})"; }

printf '%s\n%s\n' "${req_hash}" "${version}" >"${stamp}"
echo "sed_eval ${version} installed in $((SECONDS - started))s" >&2
done_
