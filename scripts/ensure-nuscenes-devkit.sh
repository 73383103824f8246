#!/usr/bin/env bash
# Install the nuScenes devkit, the reference of the 3-D cuboid metrics (tests/unit/test_cuboid_metrics.py,
# bench/analysis_metrics/bench_cuboids.py), into its own venv:
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/nuscenes-devkit-venv/
#
# nuscenes-devkit 1.2.0 requires numpy<2 (and Shapely~=2.0.3, opencv-python-headless, matplotlib): installed
# into the project's .venv it would take numpy 2 away from everything else, so it gets a venv of its own, and
# tests/harness/nuscenes_devkit.py runs the devkit's side there in a subprocess. The tests run this script
# themselves (about a minute the first time) and skip, naming it, when it cannot install. The version range is
# pinned here, in REQUIREMENT.
#
# Idempotent: a stamp file holding the requirement and the installed version is written once the install
# succeeded; when it matches nothing is done. Editing REQUIREMENT triggers a fresh install.
#
# The Python used is $NUSCENES_PYTHON, else $PYTHON, else python3 (3.9 to 3.12: numpy<2 has no wheels for 3.13).
# Prints the venv's python as its last line.
#
# Usage: scripts/ensure-nuscenes-devkit.sh [--force]
set -euo pipefail

REQUIREMENT='nuscenes-devkit>=1.2,<1.3'

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${SHOAL_CACHE_DIR:-${repo_root}/.cache}"
case "${cache_dir}" in
  /*) ;;
  *) cache_dir="${repo_root}/${cache_dir}" ;;
esac
venv="${cache_dir}/nuscenes-devkit-venv"
stamp="${venv}/.shoal-installed"

force=0
for arg in "$@"; do
  case "${arg}" in
    --force) force=1 ;;
    -h|--help)
      sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "ensure-nuscenes-devkit.sh: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

fail() {
  echo "ensure-nuscenes-devkit.sh: $*" >&2
  exit 1
}

is_fresh() {
  [[ -f "${stamp}" ]] && [[ "$(head -n 1 "${stamp}")" == "${REQUIREMENT}" ]] && [[ -x "${venv}/bin/python" ]]
}

done_message() {
  echo "nuscenes-devkit $(sed -n 2p "${stamp}") up to date in ${venv}" >&2
  echo "${venv}/bin/python"
}

if [[ "${force}" -eq 0 ]] && is_fresh; then
  done_message
  exit 0
fi

mkdir -p "${cache_dir}"

# Serialise concurrent runs (two test processes may ask at once).
exec 9>"${cache_dir}/.nuscenes-devkit.lock"
flock 9
if [[ "${force}" -eq 0 ]] && is_fresh; then
  done_message
  exit 0
fi

python="${NUSCENES_PYTHON:-${PYTHON:-python3}}"
command -v "${python}" >/dev/null 2>&1 \
  || fail "no Python to install the devkit with: '${python}' is not on PATH (set NUSCENES_PYTHON=/path/to/python3.11)"
py_version="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
  || fail "could not run '${python}' (set NUSCENES_PYTHON=/path/to/python3.11)"
case "${py_version}" in
  3.9|3.10|3.11|3.12) ;;
  *) fail "nuscenes-devkit 1.2 needs numpy<2, which has wheels for Python 3.9 to 3.12; '${python}' is ${py_version} (set NUSCENES_PYTHON=/path/to/python3.11)" ;;
esac

log="${cache_dir}/nuscenes-devkit-install.log"
started=${SECONDS}
echo "Installing ${REQUIREMENT} into ${venv} (log: ${log}) ..." >&2
rm -rf "${venv}"
if ! { uv="$(PYTHON="${python}" bash "${repo_root}/scripts/ensure-uv.sh")" \
        && "${uv}" venv --python "${python}" "${venv}" \
        && "${uv}" pip install --compile-bytecode --python "${venv}/bin/python" "${REQUIREMENT}"; \
      } >"${log}" 2>&1; then
  tail -n 30 "${log}" >&2 || true
  rm -rf "${venv}"
  fail "could not install ${REQUIREMENT} from PyPI: is the network to PyPI reachable? (full output: ${log})"
fi

version="$("${venv}/bin/python" -c 'import importlib.metadata as m, nuscenes.eval.detection.algo; print(m.version("nuscenes-devkit"))')" \
  || fail "nuscenes-devkit installed but nuscenes.eval.detection.algo cannot be imported (see ${log})"

printf '%s\n%s\n' "${REQUIREMENT}" "${version}" >"${stamp}"
echo "nuscenes-devkit ${version} ready in ${venv} after $((SECONDS - started))s" >&2
echo "${venv}/bin/python"
