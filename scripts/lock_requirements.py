"""Write requirements.lock: the exact versions of Shoal's runtime dependencies, for the image.

The lock is the closure of the `dependencies` of pyproject.toml (not the dev extras) over the
distributions installed in this environment, each pinned to its installed version. The
Dockerfile installs with it as a constraints file, so an image gets exactly the versions the
tests ran with.

    .venv/bin/python scripts/lock_requirements.py           # rewrite requirements.lock
    .venv/bin/python scripts/lock_requirements.py --check   # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
HEADER = """\
# The exact versions of Shoal's runtime dependencies (pyproject.toml `dependencies` and what they
# need), installed by the Dockerfile as constraints. Regenerate after changing dependencies:
#     .venv/bin/python scripts/lock_requirements.py
# Python {python} on {platform}.
"""


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    env = dict(default_environment())
    return any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))


def closure(roots: list[str]) -> dict[str, str]:
    """canonical name -> installed version, for the roots and everything they require."""
    pinned: dict[str, str] = {}
    todo = [(Requirement(r), set[str]()) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, _ = todo.pop()
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{req.name} is not installed: run `.venv/bin/pip install -e .` first")
        pinned[name] = dist.version
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if _applies(sub, set(req.extras)):
                todo.append((sub, set(sub.extras)))
    return pinned


def render() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = closure(project["dependencies"])
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    header = HEADER.format(python=".".join(map(str, sys.version_info[:2])), platform=sys.platform)
    return header + "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when requirements.lock differs")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not LOCK.exists() or LOCK.read_text() != text:
            print("requirements.lock is stale: run .venv/bin/python scripts/lock_requirements.py", file=sys.stderr)
            return 1
        return 0
    LOCK.write_text(text)
    print(f"wrote {LOCK.relative_to(REPO)} ({text.count('==')} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
