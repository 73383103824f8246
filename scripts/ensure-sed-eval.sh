#!/usr/bin/env bash
# Install sed_eval, the reference the sound-event metrics are tested and benchmarked against, into its own venv:
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/sed-eval-venv/
#
# It cannot live in the project's .venv: sed_eval 0.2.1 needs dcase_util, whose modules import pkg_resources
# when imported, and pkg_resources is gone from the setuptools the project's venv has (81 and later); putting it
# back would mean downgrading setuptools there. dcase_util also brings librosa, matplotlib, soundfile and some
# fifteen more packages the project does not use. So the tests and the benchmark run sed_eval's side in a
# subprocess with this venv's python (tests/harness/sed_eval_reference.py). The requirements and their ranges are
# declared here, in RV_REQUIREMENTS (pyproject.toml's dev extra points here). Installing and its stamp, lock and
# messages: scripts/lib/reference-venv.sh.
#
# The Python used is $SED_EVAL_PYTHON, else $PYTHON, else python3 (3.11 to 3.13).
#
# Usage: scripts/ensure-sed-eval.sh [--force]    (prints the venv's python on stdout; the rest goes to stderr)
set -euo pipefail

RV_SCRIPT=ensure-sed-eval.sh
RV_NAME=sed_eval
RV_VENV=sed-eval-venv
RV_REQUIREMENTS='sed_eval>=0.2.1,<0.3
dcase_util>=0.2.20,<0.3
setuptools>=70,<81'
RV_PYTHON_VAR=SED_EVAL_PYTHON
RV_PY_VERSIONS="3.11 3.12 3.13"
# the import is the check: dcase_util imports pkg_resources and much else when sed_eval imports it
RV_CHECK='import importlib.metadata as m, sed_eval.sound_event; print(m.version("sed_eval"))'
RV_PRINT_PYTHON=1
source "$(dirname "${BASH_SOURCE[0]}")/lib/reference-venv.sh"
reference_venv_main "$@"
