#!/usr/bin/env bash
# Install Label Studio for the labeling bridge's integration tests into its own venv:
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/label-studio-venv/
#
# Label Studio's dependency tree (Django, boto3, google-cloud, openai, label-studio-sdk, ...) must not meet the
# project's .venv, so it gets a venv of its own; the tests start it from there (tests/harness/label_studio_server.py).
# The version range is pinned in one place: tests/harness/label_studio/requirements.txt; editing it (e.g. moving
# to the next minor release) triggers a fresh install. uv installs it in 13 to 19 s on 2 cores, pip in about 47 s.
# Installing and its stamp, lock and messages: scripts/lib/reference-venv.sh.
#
# The Python used is $LABEL_STUDIO_PYTHON, else $PYTHON, else python3 (3.10 to 3.13, as label-studio 1.23 requires).
#
# Usage: scripts/ensure-label-studio.sh [--force]
set -euo pipefail

requirements="$(dirname "${BASH_SOURCE[0]}")/../tests/harness/label_studio/requirements.txt"
[[ -f "${requirements}" ]] || { echo "ensure-label-studio.sh: missing ${requirements}" >&2; exit 1; }

RV_SCRIPT=ensure-label-studio.sh
RV_NAME="Label Studio"
RV_VENV=label-studio-venv
RV_REQUIREMENTS="$(cat "${requirements}")"
RV_PYTHON_VAR=LABEL_STUDIO_PYTHON
RV_PY_VERSIONS="3.10 3.11 3.12 3.13"
RV_CHECK='import importlib.metadata as m; print(m.version("label-studio"))'
RV_EXECUTABLE=bin/label-studio
source "$(dirname "${BASH_SOURCE[0]}")/lib/reference-venv.sh"
reference_venv_main "$@"
