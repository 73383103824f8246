"""The docs a newcomer reads stay true: the generated reference matches the code, every relative
link leads to a file, and the README stays a front page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"
README_MAX_LINES = 200
# [text](target) and ![alt](target), the target up to a space or the closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_the_generated_reference_is_current(tmp_path: Path) -> None:
    """Each page under docs/reference that scripts/gen_reference.py writes equals what it writes now.
    The generator runs in a process of its own: it opens an embedded ClickHouse in a folder of its
    own, and chDB opens one data directory per process."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_reference.py"), "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    pages = sorted(p.name for p in tmp_path.glob("*.md"))
    assert pages, "the generator wrote no page"
    stale = [
        name
        for name in pages
        if not (DOCS / "reference" / name).exists()
        or (DOCS / "reference" / name).read_text() != (tmp_path / name).read_text()
    ]
    assert not stale, f"docs/reference/{', '.join(stale)} differ from the code: run `make docs` and commit the pages"


def test_every_relative_link_leads_to_a_file() -> None:
    broken = []
    for path in markdown_files():
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)  # code blocks hold no links
        for target in LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL (http:, mailto:) or an anchor of the same page
            file = target.split("#", 1)[0]
            if not (path.parent / file).exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_the_readme_stays_a_front_page() -> None:
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: move the detail to a page under docs/ "
        "and link it from the README's map of the docs"
    )


@pytest.mark.parametrize("folder", ["guides", "operator", "reference", "developer"])
def test_every_page_is_on_the_map(folder: str) -> None:
    """A page nobody links to is a page nobody finds: each is linked from the README or docs/README.md."""
    linked = (REPO / "README.md").read_text() + (DOCS / "README.md").read_text()
    missing = [p.name for p in sorted((DOCS / folder).glob("*.md")) if f"{folder}/{p.name}" not in linked]
    assert not missing, f"docs/{folder}/ pages linked from neither README.md nor docs/README.md: {missing}"
