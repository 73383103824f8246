# Sourced by the scripts that install a tool into a venv of its own under ${SHOAL_CACHE_DIR:-<repo>/.cache}/
# (scripts/ensure-label-studio.sh, ensure-sed-eval.sh, ensure-nuscenes-devkit.sh): tools whose dependency trees
# must not meet the project's .venv. The caller sets, then calls `reference_venv_main "$@"`:
#
#   RV_SCRIPT        its file name, for messages                      e.g. ensure-sed-eval.sh
#   RV_NAME          what it installs, for messages                   e.g. sed_eval
#   RV_VENV          the venv's directory name under the cache        e.g. sed-eval-venv
#   RV_REQUIREMENTS  the requirements, one per line, with ranges (the text's sha256 is the stamp)
#   RV_PYTHON_VAR    the variable naming the Python to use (else $PYTHON, else python3), e.g. SED_EVAL_PYTHON
#   RV_PY_VERSIONS   the Python versions it installs on, e.g. "3.11 3.12 3.13", and RV_PY_WHY why these
#   RV_CHECK         Python code run in the venv that imports the tool and prints its version
#   RV_EXECUTABLE    a file of the venv that must exist (default bin/python)
#   RV_PRINT_PYTHON  1: print the venv's python on stdout when ready (everything else goes to stderr)
#
# Idempotent: a stamp holding the requirements' sha256 and the installed version is written once the install
# succeeded and its import check passed; when it matches nothing is done, and editing the requirements triggers
# a fresh install. Concurrent runs wait for each other (flock). uv (scripts/ensure-uv.sh) installs, with the
# bytecode compiled ahead: where PYTHONDONTWRITEBYTECODE is set, every start would otherwise compile again.
# `--force` installs again; `--help` prints the caller's header comment.

rv_fail() {
  echo "${RV_SCRIPT}: $*" >&2
  exit 1
}

rv_ready() {
  echo "${RV_NAME} $(sed -n 2p "${rv_stamp}") ready in ${rv_venv}" >&2
  if [[ "${RV_PRINT_PYTHON:-0}" -eq 1 ]]; then
    echo "${rv_venv}/bin/python"
  fi
  exit 0
}

rv_is_fresh() {
  [[ -f "${rv_stamp}" ]] && [[ "$(head -n 1 "${rv_stamp}")" == "${rv_hash}" ]] \
    && [[ -x "${rv_venv}/${RV_EXECUTABLE:-bin/python}" ]]
}

reference_venv_main() {
  local repo_root cache_dir force=0 arg
  repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  cache_dir="${SHOAL_CACHE_DIR:-${repo_root}/.cache}"
  case "${cache_dir}" in
    /*) ;;
    *) cache_dir="${repo_root}/${cache_dir}" ;;
  esac
  rv_venv="${cache_dir}/${RV_VENV}"
  rv_stamp="${rv_venv}/.shoal-installed"
  for arg in "$@"; do
    case "${arg}" in
      --force) force=1 ;;
      -h|--help)
        sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
      *) echo "${RV_SCRIPT}: unknown argument: ${arg}" >&2; exit 2 ;;
    esac
  done
  if command -v sha256sum >/dev/null 2>&1; then
    rv_hash="$(printf '%s' "${RV_REQUIREMENTS}" | sha256sum | cut -d' ' -f1)"
  else
    rv_hash="$(printf '%s' "${RV_REQUIREMENTS}" | shasum -a 256 | cut -d' ' -f1)"
  fi
  if [[ "${force}" -eq 0 ]] && rv_is_fresh; then
    rv_ready
  fi
  mkdir -p "${cache_dir}"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"${cache_dir}/.${RV_VENV}.lock"
    flock 9
    if [[ "${force}" -eq 0 ]] && rv_is_fresh; then
      rv_ready
    fi
  fi

  local python py_version
  python="${!RV_PYTHON_VAR:-${PYTHON:-python3}}"
  command -v "${python}" >/dev/null 2>&1 \
    || rv_fail "no Python to install ${RV_NAME} with: '${python}' is not on PATH (set ${RV_PYTHON_VAR}=/path/to/python3.11)"
  py_version="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
    || rv_fail "could not run '${python}' (set ${RV_PYTHON_VAR}=/path/to/python3.11)"
  [[ " ${RV_PY_VERSIONS} " == *" ${py_version} "* ]] \
    || rv_fail "${RV_NAME} needs Python ${RV_PY_VERSIONS// /, }${RV_PY_WHY:+ (${RV_PY_WHY})}; '${python}' is ${py_version} (set ${RV_PYTHON_VAR}=/path/to/python3.11)"

  local log="${cache_dir}/${RV_VENV%-venv}-install.log" started=${SECONDS} uv version
  echo "Installing $(printf '%s' "${RV_REQUIREMENTS}" | grep -v '^#' | tr '\n' ' ')into ${rv_venv} (log: ${log}) ..." >&2
  rm -rf "${rv_venv}"
  if ! { uv="$(PYTHON="${python}" bash "${repo_root}/scripts/ensure-uv.sh")" \
          && "${uv}" venv --python "${python}" "${rv_venv}" \
          && printf '%s\n' "${RV_REQUIREMENTS}" | "${uv}" pip install --compile-bytecode --python "${rv_venv}/bin/python" -r - ; \
        } >"${log}" 2>&1; then
    tail -n 30 "${log}" >&2 || true
    rm -rf "${rv_venv}"
    rv_fail "could not install ${RV_NAME} from PyPI: is the network to PyPI reachable? (full output: ${log})"
  fi
  version="$("${rv_venv}/bin/python" -c "${RV_CHECK}" 2>>"${log}")" \
    || { tail -n 30 "${log}" >&2; rv_fail "${RV_NAME} installed but does not import (see ${log})"; }
  [[ -x "${rv_venv}/${RV_EXECUTABLE:-bin/python}" ]] \
    || rv_fail "${RV_NAME} ${version} installed but ${rv_venv}/${RV_EXECUTABLE} is missing"
  printf '%s\n%s\n' "${rv_hash}" "${version}" >"${rv_stamp}"
  echo "${RV_NAME} ${version} installed in $((SECONDS - started))s" >&2
  rv_ready
}
