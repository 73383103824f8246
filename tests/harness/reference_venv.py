"""The venvs of reference packages that cannot live in the project's ``.venv`` (nuscenes-devkit needs
numpy<2, sed_eval an older setuptools), each made by its ``scripts/ensure-*.sh`` under the cache
directory, and run by the tests and benchmarks in a process of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cache_dir(repo_root: Path = REPO) -> Path:
    """``${SHOAL_CACHE_DIR:-<repo>/.cache}``, a relative one taken from the repository's root, as the
    scripts take it."""
    cache = Path(os.environ.get("SHOAL_CACHE_DIR", repo_root / ".cache"))
    return cache if cache.is_absolute() else repo_root / cache


def ensure(script: str, venv: str, *, install: bool = True) -> Path | None:
    """The Python of ``venv`` (under :func:`cache_dir`): made or refreshed by ``scripts/<script>`` when
    ``install``; None when it is not there and cannot be made (the script's complaint on stderr)."""
    if install:
        done = subprocess.run(["bash", str(REPO / "scripts" / script)], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return Path(done.stdout.strip().splitlines()[-1])
        sys.stderr.write(done.stderr[-3000:])
    python = cache_dir() / venv / "bin" / "python"
    return python if python.exists() else None
