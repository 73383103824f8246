"""Generate the Python stubs of every .proto under protos/ into the services/ tree.

protos/shoal/<api>/v1/<name>.proto (package shoal.<api>.v1) becomes the Python module
shoal.<api>.v1.<name>_pb2 (with .pyi and _pb2_grpc), stored in services/<api>/v1/ because the
import package `shoal` is the services/ folder. The stubs are committed; run
`python scripts/gen_protos.py` after editing a .proto, and `--check` to fail on drift.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "protos"
PACKAGE_ROOT = REPO / "services"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every .proto into ``out_dir``; return the generated files (relative)."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    return sorted(p.relative_to(out_dir) for p in out_dir.rglob("*") if p.name.endswith(SUFFIXES))


def target_of(generated: Path) -> Path:
    """shoal/ingest/v1/ingest_pb2.py -> services/ingest/v1/ingest_pb2.py"""
    parts = generated.parts
    if parts[0] != "shoal":
        raise SystemExit(f"{generated}: every .proto must live under protos/shoal/")
    return PACKAGE_ROOT.joinpath(*parts[1:])


def committed_stubs() -> set[Path]:
    return {p for p in PACKAGE_ROOT.rglob("*") if p.name.endswith(SUFFIXES)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs differ")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generated = generate(out)
        wanted = {target_of(g): out / g for g in generated}
        stale = committed_stubs() - set(wanted)
        if args.check:
            drift = [t for t, src in wanted.items() if not t.exists() or not filecmp.cmp(t, src, shallow=False)]
            drift += sorted(stale)
            if drift:
                print("generated stubs drift from protos/; run `python scripts/gen_protos.py`:", file=sys.stderr)
                for t in drift:
                    print(f"  {t.relative_to(REPO)}", file=sys.stderr)
                return 1
            return 0
        for target, src in wanted.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            init = target.parent / "__init__.py"
            init.touch()
        for path in stale:
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
