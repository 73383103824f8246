"""Every package folder is in the wheel: pyproject lists the `shoal.*` packages explicitly."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_package_folder_is_listed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    root = REPO / "services"
    found = {
        ".".join(["shoal", *p.parent.relative_to(root).parts])
        for p in root.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found == listed, f"missing: {sorted(found - listed)}, stale: {sorted(listed - found)}"


def test_dependencies_have_ranges() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    for dep in config["project"]["dependencies"]:
        assert ">=" in dep and "<" in dep, f"{dep}: give a version range"
