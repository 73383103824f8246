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
    # the console's web app: folders of data, shipped as packages of their own
    static = root / "console" / "static"
    found |= {".".join(["shoal", *d.relative_to(root).parts]) for d in [static, *static.rglob("*")] if d.is_dir()}
    assert found == listed, f"missing: {sorted(found - listed)}, stale: {sorted(listed - found)}"


def test_dependencies_have_ranges() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    for dep in config["project"]["dependencies"]:
        assert ">=" in dep and "<" in dep, f"{dep}: give a version range"


def test_every_file_of_the_console_web_app_is_package_data() -> None:
    """The console ships its scripts, styles and icons in the package (nothing from a CDN): each file
    under services/console/static must match a package-data pattern of its folder's package, or the
    wheel would lack it."""
    import fnmatch

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]
    root = REPO / "services"
    files = [p for p in (root / "console" / "static").rglob("*") if p.is_file()]
    assert files
    missing = []
    for f in files:
        package = ".".join(["shoal", *f.parent.relative_to(root).parts])
        if not any(fnmatch.fnmatch(f.name, pat) for pat in data.get(package, [])):
            missing.append(f"{f.relative_to(REPO)} ({package})")
    assert not missing, f"not in the wheel: {missing}; add a pattern to [tool.setuptools.package-data]"


def test_the_console_loads_nothing_from_elsewhere() -> None:
    """No script, style, font or image of the console names another host."""
    import re

    static = REPO / "services" / "console" / "static"
    for path in static.rglob("*"):
        if path.is_file() and path.suffix in (".js", ".css", ".html", ".svg"):
            text = path.read_text()
            # the SVG namespace is a name, not a place anything is loaded from
            text = text.replace("http://www.w3.org/2000/svg", "")
            found = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text)
            assert not found, f"{path.relative_to(REPO)} names {found}"
