"""The example grid's pages at N frames sorted by loss, confidence or margin, at any depth and with any filter:
first calls through the console of pages read from the large set's whole sorts (``shoal.analysis.grid_orders``)
beside the same rows sorted from the set on the call, in the same run on the same server.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder
it loaded before). The kept sorts are removed before the server starts, so its preparer writes them as it does
after an upload; the benchmark reports how long after the server served they were all written. Each question (a
filter and a sort) is asked at chosen depths: the page token at a depth holds the sort's value and the frame id of
the row before it, read from the loaded store before the server starts (walking millions of rows in pages would
take the benchmark longer than the pages), and the page of 60 after it is asked through the console once, as the
grid's scroll asks it: its first call. The question's first depth is its first call at all, which also counts the
frames that pass the filter (reported apart: ``count_first``). The same rows are then asked sorted by the field
and then the frame id, with a filter that also names every split (the same rows in the same order, but not a kept
sort's question), which sorts the set on the call. The server's
``shoal_grid_sorted_pages_total`` says where each page was read; the two ways must give the same page.

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
    K,
    _await_prepared,
    serving,
)
from bench.harness import results_header, run_child, write_results  # noqa: E402

MODULE = "bench.console.bench_grid_pages"
#: rows before the page asked (a page of 60 starts there)
DEPTHS = (1_000, 99_000, 150_000, 1_000_000, 5_000_000)
SHALLOW = (1_000, 99_000, 150_000, 1_000_000)
#: (name, the filter's conditions as the console writes them, sort field, descending, depths)
QUESTIONS: tuple[tuple[str, tuple[dict[str, Any], ...], str, bool, tuple[int, ...]], ...] = (
    ("every frame by loss, down", (), "loss", True, DEPTHS),
    ("every frame by confidence, up", (), "confidence", False, DEPTHS),
    ("split val by margin, up", ({"field": "split", "equals": {"string_value": "val"}},), "margin", False, DEPTHS),
    ("wrong predictions by loss, down", ({"field": "correct", "equals": {"bool_value": False}},), "loss", True,
     SHALLOW),
    ("class 3 (1M frames) by loss, down", ({"field": "label_class", "equals": {"number_value": 3}},), "loss", True,
     SHALLOW),
    ("split val and wrong by loss, down", ({"field": "split", "equals": {"string_value": "val"}},
                                           {"field": "correct", "equals": {"bool_value": False}}), "loss", True,
     SHALLOW),
    ("confidence below 0.5 by margin, up", ({"field": "confidence", "range": {"max": {"number_value": 0.5},
                                                                              "max_exclusive": True}},), "margin",
     False, SHALLOW),
    ("class 3, split train, right by confidence, up", ({"field": "label_class", "equals": {"number_value": 3}},
                                                       {"field": "split", "equals": {"string_value": "train"}},
                                                       {"field": "correct", "equals": {"bool_value": True}}),
     "confidence", False, SHALLOW),
)  # fmt: skip


def reset(work: str) -> dict[str, int]:
    """Removes the kept listings from the loaded chDB, as an upload leaves a set without them; returns how many
    rows it removed."""
    from shoal.analysis import grid_orders
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(work) / "ch", database=DATABASE)
    m.migrate(grid_orders.MIGRATIONS)
    rows = int(m.query("SELECT count() FROM grid_listings").scalar())
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


#: the listings of the loaded set: every frame, by three fields up and down
LISTINGS = 3 * 2


def _await_written(port: int, bound_s: float = 1800.0) -> tuple[float, float]:
    """Seconds until the preparer wrote the set's last listing, and how many it wrote."""
    start = time.perf_counter()
    while time.perf_counter() - start < bound_s:
        n = sum(_metric(port, "shoal_grid_orders_written_total").values())
        if n >= LISTINGS:
            return time.perf_counter() - start, n
        time.sleep(0.2)
    raise RuntimeError(f"the preparer did not write the set's {LISTINGS} listings within {bound_s:.0f} s")


def _request(conditions: tuple[dict[str, Any], ...], field: str, descending: bool, size: int, token: str,
             sorted_on_call: bool = False) -> dict[str, Any]:  # fmt: skip
    """QueryDatapoints' JSON body, as examples.js writes it (``sorted_on_call``: the same rows and order spelt with
    the frame id as a second key and a filter naming every split, which no kept sort answers)."""
    sort, every = [{"field": field, "descending": descending}], list(conditions)
    if sorted_on_call:  # a statement of its own, so that the page the kept sort answered is not reused
        sort.append({"field": "frame_id"})
        every.append({"field": "split", "in": {"values": [{"string_value": "train"}, {"string_value": "val"}]}})
    body = {"project": PROJECT, "dataset": DATASET, "inference_set": INFERENCE_SET, "filter": {"all": every},
            "sort": sort}  # fmt: skip
    return {**body, "page": {"page_size": size, "page_token": token}} if size else body


def tokens(work: str) -> dict[str, Any]:
    """The page token of each question at each depth (and of its sorted-on-call twin), from the loaded store: the
    sort's value and the frame id of the row before the page, as the server's cursor holds them."""
    from google.protobuf import json_format

    from shoal.analysis import datapoints
    from shoal.analysis.v1 import analysis_pb2 as pb
    from shoal.common.data.query import SETTINGS, View, encode_cursor, order_by
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(work) / "ch", database=DATABASE)
    view = View(PROJECT, DATASET, INFERENCE_SET, tuple(range(K)), {f"class-{i}": i for i in range(K)}, 0.0)
    out: dict[str, Any] = {}
    for name, conditions, field, descending, depths in QUESTIONS:
        request = json_format.ParseDict(_request(conditions, field, descending, 0, ""), pb.QueryDatapointsRequest())
        params, base, sorts, _, _ = datapoints._query(view, request.filter, list(request.sort), {})
        for depth in depths:
            sql = (f"SELECT {sorts[0].sql}, frame_id {base} ORDER BY {order_by(sorts)} LIMIT 1"
                   f" OFFSET {depth - 1}{SETTINGS}")  # fmt: skip
            rows = m.query(sql, params.values).rows
            if not rows:
                continue
            value, frame = float(rows[0][0]), str(rows[0][1])
            for twin in (False, True):
                scope = json_format.ParseDict(_request(conditions, field, descending, 0, "", twin),
                                              pb.QueryDatapointsRequest())  # fmt: skip
                key = scope.SerializeToString(deterministic=True).hex()
                out[f"{name}|{depth}|{twin}"] = encode_cursor([value, frame], key)
    m.close()
    return out


def measure(info: dict[str, Any], pages: dict[str, str]) -> dict[str, Any]:
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
        for twin in (False, True):
            for i, depth in enumerate(depths):
                token = pages.get(f"{name}|{depth}|{twin}")
                if token is None:
                    continue
                before = _metric(port, "shoal_grid_sorted_pages_total")
                t = time.perf_counter()
                answer, grpc_ms, _ = console.call("QueryDatapoints", _request(conditions, field, descending,
                                                                              GRID_PAGE, token, twin))  # fmt: skip
                total_ms = (time.perf_counter() - t) * 1000
                after = _metric(port, "shoal_grid_sorted_pages_total")
                source = [k.split("=")[1] for k, v in after.items() if v != before.get(k, 0.0)] or ["sorted"]
                shown = [d["ref"]["frame_id"] for d in answer.get("datapoints", [])]
                key = f"{'sorted on the call' if twin else 'asked'} @ {depth}{' (count_first)' if i == 0 else ''}"
                rows[key] = {"console_ms": round(total_ms, 1), "grpc_ms": round(grpc_ms, 1), "read": source,
                             "rows": len(shown), "first": shown[:1],
                             "total": int(answer.get("page", {}).get("total_count", 0))}  # fmt: skip
                print(f"  {name:48s} {key:40s} {total_ms:7.1f} ms  {source}", flush=True)
        asked = {k.split(" @ ")[1]: v for k, v in rows.items() if k.startswith("asked")}
        for depth, a in asked.items():  # the two ways give the same page
            b = rows.get(f"sorted on the call @ {depth}")
            if not b or a["first"] != b["first"] or a["rows"] != b["rows"] or a["total"] != b["total"]:
                raise AssertionError(f"{name} at {depth}: {a} != {b}")
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
        print(f"[{n}] {removed['removed']} kept rows removed; the pages' tokens ...", flush=True)
        pages = run_child(MODULE, "tokens", str(folder))
        print(f"[{n}] serving ...", flush=True)
        with serving(folder) as (started, served):
            measured = measure(started, pages)
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
