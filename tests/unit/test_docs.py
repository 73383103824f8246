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


def _hand_written() -> list[Path]:
    return [p for p in markdown_files() if "reference" not in p.relative_to(REPO).parts]


def test_the_settings_make_targets_and_commands_the_docs_name_exist() -> None:
    """A variable, a make target or a flag of `shoal` that the docs name and the code lacks sends a
    newcomer nowhere. (The generated reference is right by construction.)"""
    import argparse

    from shoal.cli import parser
    from shoal.common.settings import ShoalSettings

    in_code = " ".join(
        p.read_text(errors="replace")
        for folder in ("services", "tests", "scripts", "bench", "deploy")
        for p in (REPO / folder).rglob("*")
        if p.is_file() and p.suffix in (".py", ".sh", ".yaml", ".yml", ".tpl", ".json", ".txt")
    )
    variables = {f"SHOAL_{n.upper()}" for n in ShoalSettings.model_fields} | set(
        re.findall(r"SHOAL_[A-Z0-9_]+", in_code)
    )
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    wrong = []
    for path in _hand_written():
        text = path.read_text().replace("\\\n", " ")
        where = path.relative_to(REPO)
        wrong += [f"{where}: {v}" for v in set(re.findall(r"SHOAL_[A-Z0-9_]*[A-Z0-9]", text)) - variables]
        wrong += [f"{where}: make {t}" for t in set(re.findall(r"`make ([a-z][a-z-]*)", text)) - targets]
        for m in re.finditer(
            r"(?<![\w./-])shoal ([a-z][a-z-]*)((?: +(?:[a-z-]+|--[a-z-]+(?:[ =][^\s`-][^\s`]*)?|'[^']*'))*)", text
        ):
            if text[: m.start()].endswith(("-n ", "helm install ")):
                continue  # kubectl -n shoal ..., helm install shoal <chart>
            command = commands.get(m.group(1))
            if command is None:
                wrong.append(f"{where}: shoal {m.group(1)}")
                continue
            words = m.group(2).split()
            nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
            if nested and words and words[0] in nested[0].choices:
                command = nested[0].choices[words[0]]
            options = {o for a in command._actions for o in a.option_strings}
            wrong += [
                f"{where}: shoal {m.group(1)} {f}" for f in re.findall(r"--[a-z-]+", m.group(2)) if f not in options
            ]
    assert not wrong, "the docs name what the code lacks:\n" + "\n".join(sorted(wrong))
