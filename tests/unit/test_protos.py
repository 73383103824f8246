"""The committed stubs are exactly what the pinned grpcio-tools makes of protos/."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_generated_stubs_match_the_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_generator_is_the_pinned_version() -> None:
    from importlib.metadata import version

    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"grpcio-tools=={version("grpcio-tools")}"' in pyproject
