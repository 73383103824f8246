#!/usr/bin/env bash
# Install the nuScenes devkit, the reference of the 3-D cuboid metrics (tests/unit/test_cuboid_metrics.py,
# bench/analysis_metrics/bench_cuboids.py), into its own venv:
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/nuscenes-devkit-venv/
#
# nuscenes-devkit 1.2.0 requires numpy<2 (and Shapely~=2.0.3, opencv-python-headless, matplotlib): installed
# into the project's .venv it would take numpy 2 away from everything else, so it gets a venv of its own, and
# tests/harness/nuscenes_devkit.py runs the devkit's side there in a subprocess. The version range is pinned
# here, in RV_REQUIREMENTS. Installing and its stamp, lock and messages: scripts/lib/reference-venv.sh.
#
# The Python used is $NUSCENES_PYTHON, else $PYTHON, else python3 (3.9 to 3.12: numpy<2 has no wheels for 3.13).
#
# Usage: scripts/ensure-nuscenes-devkit.sh [--force]    (prints the venv's python on stdout; the rest goes to stderr)
set -euo pipefail

RV_SCRIPT=ensure-nuscenes-devkit.sh
RV_NAME=nuscenes-devkit
RV_VENV=nuscenes-devkit-venv
RV_REQUIREMENTS='nuscenes-devkit>=1.2,<1.3'
RV_PYTHON_VAR=NUSCENES_PYTHON
RV_PY_VERSIONS="3.9 3.10 3.11 3.12"
RV_PY_WHY="numpy<2 has wheels for these"
RV_CHECK='import importlib.metadata as m, nuscenes.eval.detection.algo; print(m.version("nuscenes-devkit"))'
RV_PRINT_PYTHON=1
source "$(dirname "${BASH_SOURCE[0]}")/lib/reference-venv.sh"
reference_venv_main "$@"
