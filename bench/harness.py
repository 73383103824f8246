"""What the benchmarks share: the machine's description, peak memory, and running one side of a
comparison in a process of its own (so that each peak memory is its own)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{module}.{fn}{args!r} failed ({out.returncode}):\n{out.stderr[-4000:]}")
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


def frame_name(i: Any) -> list[str]:
    """Frame ids of row numbers, as the detection benchmarks name them."""
    return [f"f{v:08d}" for v in i.tolist()]


def load_boxes(
    path: str,
    *,
    project: str,
    dataset: str,
    inference_set: str,
    n: int,
    boxes: dict[str, Any],
    size: tuple[int, int],
    task_type: str = "OBJECT_DETECTION_2D",
) -> dict:  # type: ignore[type-arg]
    """Writes a dataset of objects into chDB's ingest tables as the consumer would: the project (of
    ``task_type``, its classes those of the objects), ``n`` frames of ``size`` with one label
    version each, the labeled objects (``g_frame``, ``g_box``, ``g_cls``, and ``g_crowd`` when there
    are crowd regions) and the predicted ones (``d_frame``, ``d_box``, ``d_cls``, ``d_score``), with
    their masks (COCO compact strings and pixel counts: ``g_mask``, ``g_area``, ``d_mask``, ``d_area``)
    when given. Returns the load time and the object counts."""
    import time

    import numpy as np
    import pyarrow as pa

    from shoal.common.data import frames as frame_tables
    from shoal.common.data import projects
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.ingest import writer
    from shoal.ingest.columns import constant

    d = boxes
    m = EmbeddedMetricsStore(path=Path(path), database="bench")
    m.create_database()
    m.migrate((*projects.MIGRATIONS, *frame_tables.MIGRATIONS, *writer.MIGRATIONS))
    classes = sorted(set(np.unique(d["g_cls"]).tolist()) | set(np.unique(d["d_cls"]).tolist()))
    projects.ProjectCatalog(m).create(
        projects.Project(project, task_type, classes=tuple(projects.ClassDef(int(c), f"c{c}") for c in classes))
    )
    t0 = time.perf_counter()
    frames = pa.array(frame_name(np.arange(n)))
    m.insert_arrow("frames", pa.table({"project": constant(project, n), "dataset": constant(dataset, n),
                                       "frame_id": frames, "width": pa.array(np.full(n, size[0], np.uint32)),
                                       "height": pa.array(np.full(n, size[1], np.uint32)),
                                       "version": pa.array(np.ones(n, np.uint64))}))  # fmt: skip
    m.insert_arrow("label_versions", pa.table({"project": constant(project, n), "dataset": constant(dataset, n),
                                               "frame_id": frames, "label_version": constant("v1", n)}))  # fmt: skip

    def shapes(side: str) -> dict[str, Any]:
        if f"{side}_mask" not in d:
            return {}
        return {"mask": pa.array(d[f"{side}_mask"], pa.string()), "mask_area": pa.array(d[f"{side}_area"], pa.uint32())}

    g = len(d["g_frame"])
    crowd = d.get("g_crowd", np.zeros(g))
    m.insert_arrow("label_objects", pa.table({
        "project": constant(project, g), "dataset": constant(dataset, g), "frame_id": pa.array(frame_name(d["g_frame"])),
        "label_version": constant("v1", g), "object_id": pa.array([f"g{i:09d}" for i in range(g)]),
        "class_id": pa.array(d["g_cls"].astype(np.int32)),
        **{c: pa.array(d["g_box"][:, j].astype(np.float32)) for j, c in enumerate("xywh")},
        "is_crowd": pa.array(np.asarray(crowd).astype(np.uint8)), **shapes("g")}))  # fmt: skip
    k = len(d["d_frame"])
    m.insert_arrow("predicted_objects", pa.table({
        "project": constant(project, k), "inference_set": constant(inference_set, k), "dataset": constant(dataset, k),
        "frame_id": pa.array(frame_name(d["d_frame"])), "object_id": pa.array([f"d{i:09d}" for i in range(k)]),
        "class_id": pa.array(d["d_cls"].astype(np.int32)), "score": pa.array(d["d_score"].astype(np.float32)),
        **{c: pa.array(d["d_box"][:, j].astype(np.float32)) for j, c in enumerate("xywh")},
        "version": pa.array(np.ones(k, np.uint64)), **shapes("d")}))  # fmt: skip
    return {"load_seconds": round(time.perf_counter() - t0, 1), "labeled": g, "predicted": k}
