"""What the benchmarks share: the machine's description, peak memory, and running one side of a
comparison in a process of its own (so that each peak memory is its own)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory} GiB, Python {platform.python_version()}"


def peak_rss_mib(pid: int | str = "self") -> float:
    """VmHWM of a process (ru_maxrss would include the parent's RSS at fork, kept across exec)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(module: str, fn: str, *args: object) -> dict:  # type: ignore[type-arg]
    """``module.fn(*args)`` in a fresh Python process; returns what it printed as JSON."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(REPO)!r})\n"
        f"from {module} import {fn}\n"
        f"print(json.dumps({fn}(*{args!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def results_header() -> dict:  # type: ignore[type-arg]
    """What every results file starts with: date, machine, the command that produced it."""
    from datetime import UTC, datetime

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "runs": {},
    }


def write_results(path: Path, results: dict) -> None:  # type: ignore[type-arg]
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
