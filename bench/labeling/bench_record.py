"""Recording a large labeling request: ``Bridge.record`` of N frames (each frame once, with the label version it
has), which SendForLabeling and the request consumer run before anything is sent. Beside it, in the same run, the
lookup it makes as one query with every frame id in a single array parameter, as the bridge did before it split
long id lists (``shoal.common.stores.metrics.IN_CHUNK``).

    python bench/labeling/bench_record.py --frames 20000 60000 100000

Embedded chDB in a temporary directory; every frame has one label version. No labeling platform is needed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.labeling.bench_record"


def _store(path: str, n: int):  # type: ignore[no-untyped-def]
    """chDB with the ingest and bridge tables, and ``n`` frames with one label version each; returns it and the ids."""
    import pyarrow as pa

    from shoal.common.data import datasets, frames
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.ingest import writer
    from shoal.ingest.columns import constant
    from shoal.labeling_bridge import state

    m = EmbeddedMetricsStore(path=Path(path) / "ch", database="bench")
    m.create_database()
    m.migrate((*frames.MIGRATIONS, *writer.MIGRATIONS, *datasets.MIGRATIONS, *state.MIGRATIONS))
    ids = [f"f{i:08d}" for i in range(n)]
    m.insert_arrow("label_versions", pa.table({
        "project": constant("p", n), "dataset": constant("d", n), "frame_id": pa.array(ids),
        "label_version": constant("v1", n), "class_id": pa.array(np.zeros(n, np.int32)), "source": constant("up", n),
    }))  # fmt: skip
    return m, ids


def shoal_side(n: int, path: str) -> dict:  # type: ignore[type-arg]
    from shoal.labeling_bridge import state
    from shoal.labeling_bridge.bridge import Bridge

    m, ids = _store(path, n)
    bridge = Bridge(m, None, None, lambda: None)  # type: ignore[arg-type]
    request = state.Request("p", "r1", "d", "label_studio", "segment:s", "why", "", "bench", state._now(), n)
    t = time.perf_counter()
    bridge.record(request, ids)
    first = time.perf_counter() - t
    t = time.perf_counter()
    bridge.record(request, ids)  # a redelivery: every frame known already
    again = time.perf_counter() - t
    recorded = sum(bridge.state.counts("p", "r1").values())
    return {"record_seconds": round(first, 2), "record_again_seconds": round(again, 2), "frames_recorded": recorded,
            "peak_rss_mib": round(peak_rss_mib())}  # fmt: skip


def one_query_side(n: int, path: str) -> dict:  # type: ignore[type-arg]
    """The label-version lookup of ``record`` as one query with all ``n`` ids in one array parameter."""
    m, ids = _store(path, n)
    t = time.perf_counter()
    rows = m.query(
        "SELECT frame_id, argMax(tuple(label_version, source, author, version_time), (version_time, label_version))"
        " FROM label_versions WHERE project = {p:String} AND dataset = {d:String} AND frame_id IN {f:Array(String)}"
        " GROUP BY frame_id",
        {"p": "p", "d": "d", "f": ids},
    ).rows
    return {"lookup_seconds": round(time.perf_counter() - t, 2), "found": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[20_000, 60_000, 100_000])
    args = parser.parse_args()
    results = results_header()
    for n in args.frames:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            run = {"shoal_record": run_child(MODULE, "shoal_side", n, a),
                   "one_query_lookup": run_child(MODULE, "one_query_side", n, b)}  # fmt: skip
        print(f"[{n}] {run}", flush=True)
        results["runs"][f"{n} frames"] = run
    write_results(Path(__file__).with_name("results_record.json"), results)


if __name__ == "__main__":
    main()
