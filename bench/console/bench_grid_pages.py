"""The example grid's deeper pages at N frames: first calls through the console of pages sorted by loss, confidence
or margin, read from the large set's kept listings (``shoal.analysis.grid_orders``) beside the same rows sorted from
the set on the call, in the same run on the same server.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder
it loaded before). The kept listings are removed before the server starts, so its preparer writes them as it does
after an upload; the benchmark reports how long after the server served they were all written. Then, for each
question (every frame by loss, down; every frame by confidence, up; the split ``val`` by margin, up; the wrong
predictions by loss, down), the grid is walked in pages of 1,000 to take the page tokens at chosen depths, and the
page of 60 at each depth is asked through the console once, as the grid's scroll asks it: its first call. The
same rows are asked with a filter that names every split (the same frames, but not a kept scope), which sorts the
set on the call. The server's ``shoal_grid_sorted_pages_total`` says where each page was read.

    python bench/console/bench_grid_pages.py --frames 10000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import (  # noqa: E402
    DATABASE,
    DATASET,
    GRID_PAGE,
    INFERENCE_SET,
    PROJECT,
    ConsoleSession,
    _await_prepared,
    serving,
)
from bench.harness import results_header, run_child, write_results  # noqa: E402

MODULE = "bench.console.bench_grid_pages"
#: rows before the page asked (a page of 60 starts there): within the first 100,000 kept rows, then past them
DEPTHS = (1_000, 10_000, 50_000, 99_000, 100_000, 150_000)
#: and within a class's first 10,000, then past them
CLASS_DEPTHS = (1_000, 5_000, 9_000, 10_000, 50_000)
#: (name, filter's equalities, sort field, descending, depths)
QUESTIONS = (
    ("every frame by loss, down", (), "loss", True, DEPTHS),
    ("every frame by confidence, up", (), "confidence", False, DEPTHS),
    ("split val by margin, up", (("split", "val"),), "margin", False, DEPTHS),
    ("wrong predictions by loss, down", (("correct", False),), "loss", True, DEPTHS),
    ("class 3 (1M frames) by loss, down", (("label_class", 3),), "loss", True, CLASS_DEPTHS),
)


def reset(work: str) -> dict[str, int]:
    """Removes the kept listings from the loaded chDB, as an upload leaves a set without them; returns how many
    rows it removed."""
    from shoal.analysis import grid_orders
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(work) / "ch", database=DATABASE)
    m.migrate(grid_orders.MIGRATIONS)
    rows = int(m.query("SELECT count() FROM grid_orders").scalar())
    for table in grid_orders.TABLES:
        m.command(f"TRUNCATE TABLE {table}")
    m.close()
    return {"removed": rows}


def _metric(port: int, name: str) -> dict[str, float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))] = sample.value
    return out


#: the listings of the loaded set: every frame, its two splits, the wrong predictions and its ten classes (of 1M
#: frames each), by three fields up and down
LISTINGS = (4 + 10) * 3 * 2


def _await_written(port: int, bound_s: float = 1800.0) -> tuple[float, float]:
    """Seconds until the preparer wrote the set's last listing, and how many it wrote."""
    start = time.perf_counter()
    while time.perf_counter() - start < bound_s:
        n = sum(_metric(port, "shoal_grid_orders_written_total").values())
        if n >= LISTINGS:
            return time.perf_counter() - start, n
        time.sleep(0.2)
    raise RuntimeError(f"the preparer did not write the set's {LISTINGS} listings within {bound_s:.0f} s")


def _request(conditions: tuple[tuple[str, Any], ...], field: str, descending: bool, size: int, token: str,
             every_split: bool = False) -> dict[str, Any]:  # fmt: skip
    """QueryDatapoints' JSON body, as examples.js writes it."""
    cond: list[dict[str, Any]] = []
    for f, v in conditions:
        kind = "bool_value" if isinstance(v, bool) else "number_value" if isinstance(v, int) else "string_value"
        cond.append({"field": f, "equals": {kind: v}})
    if every_split:
        cond.append({"field": "split", "in": {"values": [{"string_value": "train"}, {"string_value": "val"}]}})
    return {"project": PROJECT, "dataset": DATASET, "inference_set": INFERENCE_SET, "filter": {"all": cond},
            "sort": [{"field": field, "descending": descending}], "page": {"page_size": size, "page_token": token}}  # fmt: skip


def measure(info: dict[str, Any]) -> dict[str, Any]:
    console = ConsoleSession(info["url"], info["key"])
    port = info["metrics_port"]
    started = time.perf_counter()
    prepared_s = _await_prepared(port)
    _, written = _await_written(port)
    total_s = time.perf_counter() - started
    print(f"  first views prepared {prepared_s:.1f} s after the server served, its {written:.0f} listings written "
          f"{total_s:.1f} s after", flush=True)  # fmt: skip
    out: dict[str, Any] = {"first_views_prepared_s": round(prepared_s, 1), "listings_written": written,
                           "listings_written_s": round(total_s, 1), "questions": {}}  # fmt: skip
    for name, conditions, field, descending, depths in QUESTIONS:
        rows: dict[str, Any] = {}
        for every_split in (False, True):
            # the tokens at each depth, from a walk in pages of 1,000 (a token holds the last row's sort values)
            tokens, token, read = {0: ""}, "", 0
            while read < max(depths):
                answer, _, _ = console.call("QueryDatapoints", _request(conditions, field, descending, 1000, token,
                                                                        every_split))  # fmt: skip
                read += len(answer.get("datapoints", []))
                token = answer.get("page", {}).get("next_page_token", "")
                tokens[read] = token
                if not token:
                    break
            for depth in depths:
                if depth not in tokens:
                    continue
                before = _metric(port, "shoal_grid_sorted_pages_total")
                t = time.perf_counter()
                answer, grpc_ms, _ = console.call("QueryDatapoints", _request(conditions, field, descending, GRID_PAGE,
                                                                              tokens[depth], every_split))  # fmt: skip
                total_ms = (time.perf_counter() - t) * 1000
                after = _metric(port, "shoal_grid_sorted_pages_total")
                source = [k.split("=")[1] for k, v in after.items() if v != before.get(k, 0.0)]
                shown = [d["ref"]["frame_id"] for d in answer.get("datapoints", [])]
                key = f"{'sorted (a filter of every split)' if every_split else 'asked'} @ {depth}"
                rows[key] = {"console_ms": round(total_ms, 1), "grpc_ms": round(grpc_ms, 1), "read": source,
                             "rows": len(shown), "first": shown[:1]}  # fmt: skip
                print(f"  {name:34s} {key:40s} {total_ms:7.1f} ms  {source}", flush=True)
        for depth in depths:  # the two ways give the same page
            a, b = rows.get(f"asked @ {depth}"), rows.get(f"sorted (a filter of every split) @ {depth}")
            if a and b and a["first"] != b["first"]:
                raise AssertionError(f"{name} at {depth}: {a['first']} != {b['first']}")
        out["questions"][name] = rows
    return out


def run(n: int, work: str | None) -> dict[str, Any]:
    folder = Path(work) if work else Path(tempfile.mkdtemp(prefix="bench-grid-"))
    loaded: dict[str, Any] = {}
    try:
        if not (folder / "ch").exists():
            print(f"[{n}] loading ...", flush=True)
            loaded = run_child("bench.console.bench_console", "load", n, str(folder))
        removed = run_child(MODULE, "reset", str(folder))
        print(f"[{n}] {removed['removed']} kept rows removed; serving ...", flush=True)
        with serving(folder) as (started, served):
            measured = measure(started)
    finally:
        if not work:
            shutil.rmtree(folder, ignore_errors=True)
    return {"load": loaded, "server_process": served, **measured}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000_000)
    ap.add_argument("--work", default=None, help="a folder bench_console loaded before (kept), instead of a new one")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "console" / "results_grid_pages.json")
    args = ap.parse_args()
    results = results_header()
    results["command"] = " ".join(["python bench/console/bench_grid_pages.py", *sys.argv[1:]])
    results["load_average_at_start"] = os.getloadavg()[0]
    results["runs"][str(args.frames)] = run(args.frames, args.work)
    results["load_average_at_end"] = os.getloadavg()[0]
    write_results(args.out, results)


if __name__ == "__main__":
    main()
