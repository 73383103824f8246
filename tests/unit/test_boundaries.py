"""The walls between the services: a service imports ``shoal.common`` and the generated protos of
the others, never their modules; ``shoal.common`` imports no service; and a ClickHouse table is
declared (``CREATE TABLE``) by one module only. What crosses a boundary goes over gRPC or an event.

The modules at the top of ``services/`` (``app``, ``cli``, ``demo``, ``client``, ``sdk``, ...)
compose the services and may import any of them."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO

ROOT = REPO / "services"
SERVICES = ("ingest", "analysis", "sampler", "labeling_bridge", "console")
#: imports across a boundary that are still to be replaced by an RPC or an event: none are left, and a
#: new one fails the test. Each entry would be (file, imported module).
KNOWN: set[tuple[str, str]] = set()
#: a ClickHouse table's DDL: a name, its columns, and its engine (SQLite tables have none)
CREATE = re.compile(
    r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)`?\s*\(.*\bENGINE\s*=", re.IGNORECASE | re.DOTALL
)


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement names (``from shoal import x`` names ``shoal.x``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            if node.module == "shoal":
                out += [(node.lineno, f"shoal.{a.name}") for a in node.names]
    return out


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "shoal" and parts[1] in SERVICES else None


def _is_protos(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 2 and parts[2] == "v1"


def test_a_service_imports_no_other_service_but_its_protos() -> None:
    found = set()
    lines = []
    for svc in SERVICES:
        for path in _sources(ROOT / svc):
            if "v1" in path.relative_to(ROOT).parts:
                continue  # generated stubs import the protos they depend on
            for lineno, module in _imports(path):
                other = _service_of(module)
                if other is None or other == svc or _is_protos(module):
                    continue
                rel = path.relative_to(ROOT).as_posix()
                key = (rel, ".".join(module.split(".")[:2]))
                found.add(key)
                if key not in KNOWN:
                    lines.append(f"services/{rel}:{lineno} imports {module}")
    assert not lines, "imports of another service's modules (use its gRPC API or an event):\n" + "\n".join(lines)
    assert not KNOWN - found, f"no longer imported, remove from KNOWN: {sorted(KNOWN - found)}"


def test_common_imports_no_service() -> None:
    lines = [
        f"{path.relative_to(REPO)}:{lineno} imports {module}"
        for path in _sources(ROOT / "common")
        for lineno, module in _imports(path)
        if _service_of(module) is not None
    ]
    assert not lines, "shoal.common imports a service:\n" + "\n".join(lines)


def test_every_table_is_declared_by_one_module() -> None:
    declared: dict[str, set[str]] = defaultdict(set)
    for path in _sources(ROOT):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr):  # DDL built from shared column lists
                text = "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
            for table in CREATE.findall(text or ""):
                declared[table].add(path.relative_to(REPO).as_posix())
    assert {"frames", "evaluations", "segments", "jobs", "job_results"} <= set(declared)
    twice = {t: sorted(m) for t, m in declared.items() if len(m) > 1}
    assert not twice, f"tables declared in more than one module: {twice}"


def test_the_checks_see_a_crossing(tmp_path: Path) -> None:
    """The import reader finds both spellings of an import of another service."""
    f = tmp_path / "m.py"
    f.write_text("from shoal import sampler\nimport shoal.ingest.pipeline\nfrom shoal.analysis.v1 import x\n")
    modules = [m for _, m in _imports(f)]
    assert [m for m in modules if _service_of(m) and not _is_protos(m)] == ["shoal.sampler", "shoal.ingest.pipeline"]
