"""The console on N frames: the server time of the example grid, the confusion heat map and the embedding map's
viewports through the console's JSON API, beside the same gRPC calls made raw; and a real Chromium's time to first
paint and its frame times while panning the map.

Three processes, so that the server's peak memory is its own:

1. a loader writes N frames into chDB as Shoal's tables (a label, 10-class probabilities, a split and a media URI
   each; the ``evaluations`` rows refreshed batch by batch as the ingest consumer refreshes them) and the N points
   of a finished embedding-map job: the job's record, its summary and its points (``embedding_map.store_points``),
   each with its random priority, as the map job stores them (the points lie around one centre per class, instead
   of UMAP run on N vectors);
2. the server: the all-in-one server with the console beside it (``build_server(settings, console=True)``) on that
   chDB;
3. the clients, in this process: the raw gRPC calls, the same requests as JSON through the console's
   ``POST /api/rpc/...`` with a signed-in session, and Debian's Chromium driven by Playwright (first paint, the
   page's content, and the frames while panning the map from Chromium's performance trace).

    python -m bench.console.bench_console --frames 1000000 10000000
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.analysis_metrics.bench_classification import data  # noqa: E402
from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.console.bench_console"
CHROMIUM = os.environ.get("SHOAL_CHROMIUM", "/usr/bin/chromium")

K = 10
PROJECT, DATASET, INFERENCE_SET, SPACE, DATABASE = "bench", "d", "m", "emb", "bench"
CELL = (3, 5)  # labeled 3, predicted 5: the heat map's cell the grid opens
#: the example grid's page (services/console/static/js/pages/examples.js: PAGE_SIZE)
GRID_PAGE = 60
#: the map page's viewport budget (services/console/static/js/pages/map.js: MAX_POINTS)
MAP_POINTS = 20_000
#: distinct images the frames point at (thumbnails are made once per image)
IMAGES = 16
#: the map: one centre per class on a circle of this radius, points spread around it
RADIUS, SPREAD = 10.0, 1.6
#: frames placed at another class's centre (as confused frames are)
ASTRAY = 0.1
#: panning: strokes of a drag there and back, with a pause between them (the map asks for the viewport 120 ms
#: after the last move; its answer arrives while the next stroke runs, unless it takes more than about a second)
STROKE_SECONDS, PAUSE_SECONDS = 0.75, 0.5
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def frame_ids(start: int, stop: int) -> list[str]:
    return [f"f{i:09d}" for i in range(start, stop)]


def layout(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates: each frame near its class's centre (a tenth near another class's)."""
    n = len(labels)
    centre = np.where(rng.random(n) < ASTRAY, rng.integers(0, K, n), labels)
    angle = 2 * np.pi * centre / K
    x = RADIUS * np.cos(angle) + rng.normal(0, SPREAD, n)
    y = RADIUS * np.sin(angle) + rng.normal(0, SPREAD, n)
    return x.astype(np.float32), y.astype(np.float32)


def write_images(folder: Path) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    uris = []
    for i in range(IMAGES):
        a = np.linspace(0, 255, 256, dtype=np.float32)
        rgb = np.stack(np.broadcast_arrays(a[None, :], a[:192, None], np.full((192, 256), 16.0 * i)), axis=2)
        path = folder / f"{i:02d}.png"
        Image.fromarray(rgb.astype(np.uint8)).save(path)
        uris.append(str(path))
    return uris


def load(n: int, work: str, batch: int = 500_000) -> dict:  # type: ignore[type-arg]
    """Writes the project, N frames and a finished map of them into chDB under ``work``; batch by batch, so the
    loader's memory does not grow with N."""
    import pyarrow as pa

    from shoal.analysis import embedding_map, label_issues
    from shoal.common import jobs
    from shoal.common.data import datasets, evaluations, frames, results
    from shoal.common.data import projects as catalog
    from shoal.common.data.evaluations import EvaluationRefresher
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.ingest import writer
    from shoal.ingest.columns import constant

    root = Path(work)
    uris = np.array(write_images(root / "media"), dtype=object)
    m = EmbeddedMetricsStore(path=root / "ch", database=DATABASE)
    m.create_database()
    m.migrate([*jobs.MIGRATIONS, *catalog.MIGRATIONS, *datasets.MIGRATIONS, *frames.MIGRATIONS, *writer.MIGRATIONS,
               *evaluations.MIGRATIONS, *results.MIGRATIONS, *label_issues.MIGRATIONS, *embedding_map.MIGRATIONS])  # fmt: skip
    projects = catalog.ProjectCatalog(m)
    space = catalog.EmbeddingSpace(SPACE, 128, "COSINE", "FRAME", "bench-encoder", "1")
    projects.create(catalog.Project(PROJECT, "CLASSIFICATION", classes=tuple(catalog.ClassDef(i, f"class-{i}") for i in range(K)),
                                    embedding_spaces=(space,)))  # fmt: skip
    sets = datasets.DatasetCatalog(m, projects)
    sets.create(datasets.Dataset(PROJECT, DATASET, "LABELED", ("train", "val")))
    sets.create_inference_set(datasets.InferenceSet(PROJECT, INFERENCE_SET, DATASET, "model", "1"))
    # the map job's record, as the analysis service's job runner writes it: submitted, running, then done
    job_store = jobs.JobStore(m, service=results.SERVICE)
    params = {"dataset": DATASET, "embedding_space": SPACE, "sample_size": str(embedding_map.DEFAULT_SAMPLE)}
    job, _ = job_store.submit(PROJECT, embedding_map.KIND, params)
    job = job_store.update(job, state=jobs.RUNNING, stage="starting", progress=0.0)

    refresher = EvaluationRefresher(m)
    timed = {"load": 0.0, "refresh": 0.0, "map": 0.0}
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    fitted_share = min(1.0, embedding_map.DEFAULT_SAMPLE / n)
    fitted_on = 0
    for s in range(0, n, batch):
        e = min(s + batch, n)
        k = e - s
        rng = np.random.default_rng([1, s])
        labels, probs = data(k, seed=s)
        ids = frame_ids(s, e)
        fid = pa.array(ids, pa.string())
        one = pa.array(np.ones(k, dtype=np.uint64))
        split = np.where(rng.random(k) < 0.8, "train", "val")
        t = time.perf_counter()
        m.insert_arrow("frames", pa.table({
            "project": constant(PROJECT, k), "dataset": constant(DATASET, k), "frame_id": fid,
            "split": pa.array(split, pa.string()), "media_uri": pa.array(uris[np.arange(s, e) % IMAGES], pa.string()),
            "media_type": constant("IMAGE", k), "width": pa.array(np.full(k, 256, np.uint32)),
            "height": pa.array(np.full(k, 192, np.uint32)), "version": one}))  # fmt: skip
        m.insert_arrow("label_versions", pa.table({
            "project": constant(PROJECT, k), "dataset": constant(DATASET, k), "frame_id": fid, "label_version": constant("v", k),
            "class_id": pa.array(labels)}))  # fmt: skip
        m.insert_arrow("inferences", pa.table({
            "project": constant(PROJECT, k), "inference_set": constant(INFERENCE_SET, k), "dataset": constant(DATASET, k),
            "frame_id": fid, "pred_class": pa.array(probs.argmax(1).astype(np.int32)), "confidence": pa.array(probs.max(1)),
            "probs": pa.ListArray.from_arrays(pa.array(np.arange(0, (k + 1) * K, K, dtype=np.int32)), pa.array(probs.ravel())),
            "version": one}))  # fmt: skip
        timed["load"] += time.perf_counter() - t
        # what the ingest consumer does after each batch it writes: refresh the rows analyses read
        t = time.perf_counter()
        refresher.refresh(PROJECT, DATASET, ids, list(range(K)))
        timed["refresh"] += time.perf_counter() - t
        # the map job's rows: every frame placed, a random priority each, a sample marked as fitted
        x, y = layout(labels, rng)
        fitted = rng.random(k) < fitted_share
        fitted_on += int(fitted.sum())
        lo = np.minimum(lo, [x.min(), y.min()])
        hi = np.maximum(hi, [x.max(), y.max()])
        t = time.perf_counter()
        embedding_map.store_points(m, pa.table({
            "project": constant(PROJECT, k), "job_id": constant(job.job_id, k), "frame_id": fid,
            "x": pa.array(x), "y": pa.array(y), "priority": pa.array(rng.random(k).astype(np.float32)),
            "label_class": pa.array(labels), "split": pa.array(split, pa.string()),
            "fitted": pa.array(fitted.astype(np.uint8))}))  # fmt: skip
        timed["map"] += time.perf_counter() - t
        del labels, probs, ids, fid
    summary = embedding_map.Summary(n, fitted_on, "cosine", float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    t = time.perf_counter()
    summary = embedding_map.index_cells(m, job, summary)  # as the job's last step does
    timed["map"] += time.perf_counter() - t
    results.save_summary(m, job, summary.to_json())
    job_store.update(job, state=jobs.SUCCEEDED, stage="done", progress=1.0)
    # The server reads merged parts, as it would minutes after an upload; merging now keeps ClickHouse's
    # background merges out of the timings.
    t = time.perf_counter()
    for table in (
        "frames",
        "label_versions",
        "inferences",
        "evaluations",
        "evaluations_by_cell",
        *embedding_map.POINT_TABLES,
    ):
        m.command(f"OPTIMIZE TABLE {table} FINAL")
    optimize = time.perf_counter() - t
    m.close()
    return {"load_seconds": round(timed["load"], 1), "refresh_seconds": round(timed["refresh"], 1),
            "map_points_seconds": round(timed["map"], 1), "optimize_seconds": round(optimize, 1),
            "peak_rss_mib": round(peak_rss_mib()), "job_id": job.job_id, "summary": summary.public()}  # fmt: skip


def serve(work: str) -> None:
    """The all-in-one server with the console on the loaded chDB. Prints its addresses and an administrator key
    as a JSON line, serves until its standard input closes, then prints its peak memory."""
    logging.basicConfig(level=logging.WARNING)
    from shoal.app import build_server
    from shoal.client import Client
    from shoal.common.settings import ShoalSettings

    root = Path(work)
    settings = ShoalSettings(
        port=0,
        data_dir=root / "data",
        metrics_url=f"chdb://{root / 'ch'}",
        clickhouse_database=DATABASE,
        console_port=0,
        console_media_roots=[str(root / "media")],
        readiness_interval_seconds=0.2,
        drain_seconds=0.0,
        grace_seconds=2.0,
        metrics_port=0,
    )
    server = build_server(settings, console=True)
    port = server.start()
    target = f"127.0.0.1:{port}"
    with Client(target) as c:
        deadline = time.monotonic() + 120
        while c.health_status() != "SERVING":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on {target} did not become SERVING in 120 s")
            time.sleep(0.1)
    _, key = server.keys.create(["*"], description="bench admin")
    print(json.dumps({"target": target, "url": server.companions[0].url, "key": key,
                      "metrics_port": server.metrics_port}), flush=True)  # fmt: skip
    sys.stdin.read()
    rss = peak_rss_mib()
    server.stop(grace=1)
    print(json.dumps({"peak_rss_mib": round(rss)}), flush=True)


def run_on_loaded(
    module: str, doc: str, out: Path, steps: tuple[str, ...] = ("measure",), options: dict[str, int] | None = None
) -> None:
    """The command line of a benchmark on this module's data (``--frames``, ``--work``, ``--out``, and an integer
    option of each of ``options`` with its default): loads N frames into a new folder unless ``--work`` names one
    loaded before (kept), runs ``module``'s ``steps`` on it, each in a fresh process given the folder (the last one
    also the options' values, in order; its figures are the run's), and writes the results with the load averages
    at its start and end."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000_000)
    ap.add_argument("--work", default=None, help="a folder bench_console loaded before (kept), instead of a new one")
    ap.add_argument("--out", type=Path, default=out)
    for name, default in (options or {}).items():
        ap.add_argument(f"--{name}", type=int, default=default)
    args = ap.parse_args()
    values = [getattr(args, name.replace("-", "_")) for name in options or {}]
    results = results_header()
    script = module.replace(".", "/") + ".py"
    results["command"] = " ".join([f"python {script}", *sys.argv[1:]])
    results["load_average_at_start"] = os.getloadavg()[0]
    folder = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-console-"))
    try:
        if not (folder / "ch").exists():
            results["load"] = run_child("bench.console.bench_console", "load", args.frames, str(folder))
        for step in steps[:-1]:
            results[step] = run_child(module, step, str(folder))
        results["runs"][str(args.frames)] = run_child(module, steps[-1], str(folder), *values)
    finally:
        if not args.work:
            shutil.rmtree(folder, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()[0]
    write_results(args.out, results)


@contextmanager
def serving(work: str | Path) -> Iterator[tuple[dict, dict]]:  # type: ignore[type-arg]
    """:func:`serve` on a loaded folder in a process of its own: yields what it printed as it served (its addresses
    and key) and a dict that holds, once the block has ended and the server stopped, its peak memory."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r})\nfrom {MODULE} import serve\nserve({str(work)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    after: dict = {}  # type: ignore[type-arg]
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the server process ended before it served")
        yield json.loads(line), after
    finally:
        proc.stdin.close()
        tail = proc.stdout.read().strip().splitlines()
        proc.wait(timeout=120)
        after.update(json.loads(tail[-1]) if tail else {})


# -- the server's time ---------------------------------------------------------------------------------------------
def slider(field: str, lo: float | None, hi: float | None) -> Any:
    """The grid's filter of a slider's range of ``field`` (``[lo, hi)``, either open), as the console writes it."""
    from shoal.common.v1 import common_pb2

    r = common_pb2.Range(max_exclusive=True)
    if lo is not None:
        r.min.number_value = lo
    if hi is not None:
        r.max.number_value = hi
    return common_pb2.Filter(all=[common_pb2.Condition(field=field, range=r)])


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    """``repeats`` timed calls, the first of them the question's first: the last answer, and the times."""
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, times


def first_and_median(times: list[float]) -> dict[str, float]:
    """The first call's time (the question's first) and the median of :func:`timed`'s times, in milliseconds."""
    return {"first_ms": round(times[0] * 1e3, 1), "median_ms": round(statistics.median(times) * 1e3, 1)}


def set_count(m: Any, view: Any, flt: Any, sort: list[Any]) -> int:
    """The grid's count of ``flt`` sorted by ``sort``, read from the set (``datapoints.page_statement``'s count)."""
    from shoal.analysis import datapoints

    sql, params = datapoints.page_statement(view, flt, sort, {}, 1, None)[3:5]
    return int(m.query(sql, params).scalar())


def presence(m: Any, view: Any) -> Callable[[Any], int]:
    """``range_count``'s ``present``: the set's frames with all the fields, counted once each (the preparer keeps the
    count of each field alone; two are counted on their first call)."""
    from shoal.analysis.v1 import analysis_pb2 as pb
    from shoal.common.v1 import common_pb2

    known: dict[tuple[str, ...], int] = {}

    def present(fields: Any) -> int:
        key = tuple(fields)
        if key not in known:
            known[key] = set_count(m, view, common_pb2.Filter(), [pb.SortKey(field=f) for f in key])
        return known[key]

    return present


def open_loaded(work: str) -> tuple[Any, Any, Any]:
    """The store of a loaded folder (the grid's tables made), the view of its set and the versions of its rows."""
    from shoal.analysis import grid_orders
    from shoal.common.data.answers import AnswerCache
    from shoal.common.data.query import VIEW_TABLES, View
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(work) / "ch", database=DATABASE)
    m.migrate(grid_orders.MIGRATIONS)
    view = View(PROJECT, DATASET, INFERENCE_SET, tuple(range(K)), {f"class-{i}": i for i in range(K)}, 0.0)
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None
    return m, view, versions


def write_counted_sorts(m: Any, view: Any, versions: Any) -> dict[str, float]:
    """Writes the set's sorts as the preparer does, the worst predictions first, until each field has one counted by
    bucket (loss down, confidence up, margin up: three of the six), one step a call (a step begun is written whole);
    returns the seconds of each step written."""
    from shoal.analysis import grid_orders

    took: dict[str, float] = {}
    build = grid_orders.build_id(view, versions)
    wanted = {*grid_orders.COUNTED, *(f"{listing} counts" for listing in grid_orders.COUNTED)}
    while not wanted <= (before := set(grid_orders.written(m, view, build))):
        t = time.perf_counter()
        grid_orders.keep(m, view, versions, deadline=time.monotonic() + 0.1)
        for step in set(grid_orders.written(m, view, build)) - before - {""}:
            took[step] = round(time.perf_counter() - t, 1)
    return took


def copy_set(
    work: str, name: str, replaced: str, what: str, optimized: tuple[str, ...] = ("evaluations",)
) -> dict[str, Any]:
    """Writes a second inference set ``name`` of a loaded folder, the loaded set's rows with the columns ``replaced``
    (SQL of each row, as ``expression AS column``), unless written (its cells by ``evaluations``' own writer of
    ``evaluations_by_cell``), then merges the tables ``optimized``. Returns the time it took (as ``{what}_written_s``)."""
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(work) / "ch", database=DATABASE)
    if m.query("SELECT count() FROM evaluations WHERE inference_set = {s:String} LIMIT 1", {"s": name}).scalar():
        return {f"{what}_written_s": 0.0}
    t = time.perf_counter()
    m.command(
        f"INSERT INTO evaluations SELECT * REPLACE ({{s:String}} AS inference_set, {replaced}) FROM (SELECT * FROM"
        " evaluations FINAL WHERE inference_set = {m:String})",  # a subquery: an alias would stand for its column
        {"s": name, "m": INFERENCE_SET},
    )
    for table in optimized:
        m.command(f"OPTIMIZE TABLE {table} FINAL")
    m.close()
    return {f"{what}_written_s": round(time.perf_counter() - t, 1)}


def write_metadata(work: str, maps: dict[str, str], written: str, what: str = "metadata") -> dict[str, Any]:
    """Writes each frame's metadata of a loaded folder (or its capture time), as ``maps`` says (a column and the SQL
    of its value, of each row), unless a frame passes ``written`` (a condition of the frames' table) already: a new
    version of the frames' and the set's rows (the ingest service copies a frame's metadata there), then the tables
    merged, as a settled store has them. Returns the time it took (as ``{what}_written_s``)."""
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(work) / "ch", database=DATABASE)
    if m.query(f"SELECT count() FROM frames WHERE {written} LIMIT 1").scalar():
        return {f"{what}_written_s": 0.0}
    t = time.perf_counter()
    replaced = ", ".join(f"{value} AS {column}" for column, value in maps.items())
    for table in ("frames", "evaluations"):
        m.command(f"INSERT INTO {table} SELECT * REPLACE ({replaced}, version + 1 AS version) FROM {table} FINAL")
    for table in ("frames", "evaluations", "evaluations_by_cell"):
        m.command(f"OPTIMIZE TABLE {table} FINAL")
    out = {f"{what}_written_s": round(time.perf_counter() - t, 1)}
    m.close()
    return out


def row_before(m: Any, view: Any, flt: Any, sort: list[Any], column: str, depth: int) -> list[Any] | None:
    """The cursor of a page at ``depth`` rows of the grid sorted by one field: the field's value (``column`` of the
    set's rows) and the frame id of the row before it, in the set's own sort of the frames that pass ``flt``; None at
    depth 0, ``[]`` when fewer frames pass."""
    from shoal.analysis import datapoints

    if not depth:
        return None
    sql, params = datapoints.page_statement(view, flt, sort, {}, 1, None)[3:5]
    order = f" ORDER BY {column} {'DESC' if sort[0].descending else 'ASC'}, frame_id LIMIT 1 OFFSET {depth - 1}"
    sql = sql.replace("SELECT count()", f"SELECT {column}, frame_id", 1).replace(" SETTINGS", order + " SETTINGS", 1)
    rows = m.query(sql, params).rows
    return [rows[0][0], str(rows[0][1])] if rows else []


def beside_the_set(label: str, kept: Callable[[], Any], m: Any, view: Any, flt: Any, sort: list[Any],
                   repeats: int) -> dict[str, Any]:  # fmt: skip
    """A count read another way (``kept``) beside the set's count of the same filter (:func:`set_count`), each
    :func:`timed`, checked equal: the frames, and each's first call and median (the other way's under ``label``)."""
    got, kept_times = timed(kept, repeats)
    live, live_times = timed(lambda: set_count(m, view, flt, sort), repeats)
    assert got == live, (label, got, live)
    return {"frames": live, label: first_and_median(kept_times), "count_of_the_set": first_and_median(live_times)}


def _times(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any, float]:
    """One warm-up call, then ``repeats`` timed calls; returns the times, the last answer and the
    warm-up's time."""
    t = time.perf_counter()
    fn()
    warm_up = time.perf_counter() - t
    out, times = timed(fn, repeats)
    return times, out, warm_up


def _ms(times: list[float]) -> dict:  # type: ignore[type-arg]
    return {"best_ms": round(min(times) * 1000, 1), "median_ms": round(statistics.median(times) * 1000, 1)}


class ConsoleSession:
    """A signed-in session of the console's JSON API, as the browser holds one."""

    def __init__(self, url: str, key: str) -> None:
        import requests

        self.url = url
        self.http = requests.Session()
        self.http.get(f"{url}/").raise_for_status()  # the CSRF cookie
        self.post("/api/session", {"api_key": key}).raise_for_status()

    def post(self, path: str, body: dict) -> Any:  # type: ignore[type-arg]
        # bytes, so that http.client sends the headers and the body in one write (a str body goes in a second
        # one, and Nagle's algorithm against the server's delayed ACK adds 40 ms to every call)
        text = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-CSRF-Token": self.http.cookies.get("shoal_csrf", "")}
        return self.http.post(f"{self.url}{path}", data=text, headers=headers)

    def call(self, method: str, body: dict) -> tuple[dict, float, int]:  # type: ignore[type-arg]
        """The answer, the console's own time of the gRPC call (its Server-Timing) and the body's size."""
        r = self.post(f"/api/rpc/analysis/{method}", body)
        if r.status_code != 200:
            raise RuntimeError(f"{method} through the console: {r.status_code} {r.text[:300]}")
        timing = r.headers.get("Server-Timing", "")
        grpc_ms = float(timing.split("dur=")[1]) if "dur=" in timing else float("nan")
        return r.json(), grpc_ms, len(r.content)


def measure_server(info: dict, repeats: int) -> dict:  # type: ignore[type-arg]
    """Each request made raw over gRPC and through the console, one warm-up then ``repeats`` times each."""
    import grpc
    from google.protobuf import json_format

    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.analysis.v1 import analysis_pb2_grpc
    from shoal.common.v1 import common_pb2 as cpb

    channel = grpc.insecure_channel(info["target"], options=[("grpc.max_receive_message_length", 64 * 2**20)])
    stub = analysis_pb2_grpc.AnalysisServiceStub(channel)
    metadata = (("authorization", f"Bearer {info['key']}"),)
    console = ConsoleSession(info["url"], info["key"])

    cell = cpb.Filter(all=[cpb.Condition(field="label_class", equals=cpb.Value(number_value=CELL[0])),
                           cpb.Condition(field="predicted_class", equals=cpb.Value(number_value=CELL[1]))])  # fmt: skip
    grid = apb.QueryDatapointsRequest(project=PROJECT, dataset=DATASET, inference_set=INFERENCE_SET, filter=cell,
                                      sort=[apb.SortKey(field="loss", descending=True)],
                                      page=cpb.PageRequest(page_size=GRID_PAGE))  # fmt: skip
    # the grid as a click on the heat map's cell opens it: the console's default sort, by frame id
    clicked = apb.QueryDatapointsRequest(project=PROJECT, dataset=DATASET, inference_set=INFERENCE_SET, filter=cell,
                                         sort=[apb.SortKey(field="frame_id")], page=cpb.PageRequest(page_size=GRID_PAGE))  # fmt: skip
    heat = apb.GetClassificationMetricsRequest(project=PROJECT, inference_set=INFERENCE_SET)
    whole = apb.GetMapViewportRequest(project=PROJECT, job_id=info["job_id"], max_points=MAP_POINTS)
    s = info["summary"]
    # a quarter of the width and of the height (1/16 of the area) around the centre of class 0's cluster, and the
    # same box moved as a pan moves it (an eighth of its width right and up)
    w, h = (s["max_x"] - s["min_x"]) / 4, (s["max_y"] - s["min_y"]) / 4
    zoomed = apb.GetMapViewportRequest(project=PROJECT, job_id=info["job_id"], max_points=MAP_POINTS,
                                       min_x=RADIUS - w / 2, max_x=RADIUS + w / 2, min_y=-h / 2, max_y=h / 2)  # fmt: skip
    panned = apb.GetMapViewportRequest(project=PROJECT, job_id=info["job_id"], max_points=MAP_POINTS,
                                       min_x=RADIUS - w / 2 + w / 8, max_x=RADIUS + w / 2 + w / 8, min_y=-h / 2 + h / 8,
                                       max_y=h / 2 + h / 8)  # fmt: skip
    # The first time each question is asked of this server, once it has prepared the console's first views
    # (shoal.analysis.prepared: the heat map, the grid's counts, the whole map) and nothing else: the rest is read
    # from the dataset on the call, and kept for the calls after it (services/common/data/answers.py).
    prepared_s = _await_prepared(info["metrics_port"])
    print(f"  the server prepared its first views {prepared_s:.1f} s after it served", flush=True)
    first_seconds: dict[str, float] = {}
    for name, method, request in (
        ("heat map", "GetClassificationMetrics", heat), ("grid page 1, clicked (by frame id)", "QueryDatapoints", clicked),
        ("map, whole", "GetMapViewport", whole), ("map, zoomed (1/16 of the area)", "GetMapViewport", zoomed),
        ("map, panned", "GetMapViewport", panned), ("grid page 1", "QueryDatapoints", grid),
    ):  # fmt: skip
        t = time.perf_counter()
        answer = getattr(stub, method)(request, metadata=metadata)
        first_seconds[name] = time.perf_counter() - t
        if name == "grid page 1":
            first = answer
    grid_2 = apb.QueryDatapointsRequest()
    grid_2.CopyFrom(grid)
    grid_2.page.page_token = first.page.next_page_token
    cases: dict[str, tuple[str, Any, Callable[[Any], Any], Callable[[dict], Any]]] = {  # type: ignore[type-arg]
        "grid page 1": ("QueryDatapoints", grid, lambda r: [d.ref.frame_id for d in r.datapoints],
                        lambda j: [d["ref"]["frame_id"] for d in j.get("datapoints", [])]),
        "grid page 2": ("QueryDatapoints", grid_2, lambda r: [d.ref.frame_id for d in r.datapoints],
                        lambda j: [d["ref"]["frame_id"] for d in j.get("datapoints", [])]),
        "grid page 1, clicked (by frame id)": ("QueryDatapoints", clicked, lambda r: [d.ref.frame_id for d in r.datapoints],
                                               lambda j: [d["ref"]["frame_id"] for d in j.get("datapoints", [])]),
        "heat map": ("GetClassificationMetrics", heat,
                     lambda r: [int(c) for c in r.metrics.confusion.counts],
                     lambda j: [int(c) for c in j["metrics"]["confusion"]["counts"]]),
        "map, whole": ("GetMapViewport", whole, lambda r: (r.total_in_viewport, [p.frame_id for p in r.points]),
                       lambda j: (int(j.get("total_in_viewport", 0)), j["point_columns"]["frame_id"])),
        "map, zoomed (1/16 of the area)": ("GetMapViewport", zoomed, lambda r: (r.total_in_viewport, [p.frame_id for p in r.points]),
                                           lambda j: (int(j.get("total_in_viewport", 0)), j["point_columns"]["frame_id"])),
        "map, panned": ("GetMapViewport", panned, lambda r: (r.total_in_viewport, [p.frame_id for p in r.points]),
                        lambda j: (int(j.get("total_in_viewport", 0)), j["point_columns"]["frame_id"])),
    }  # fmt: skip
    out = {}
    for name, (method, request, raw_key, json_key) in cases.items():
        call = getattr(stub, method)
        raw_times, raw, warm_up = _times(lambda: call(request, metadata=metadata), repeats)  # noqa: B023
        first_ms = round(first_seconds.get(name, warm_up) * 1000, 1)
        body = json_format.MessageToDict(request, preserving_proto_field_name=True)
        if method == "GetMapViewport":
            body["arrow"] = True  # as the console's map asks (services/console/static/js/pages/map.js)
        console.call(method, body)  # warm-up
        web_times, grpc_ms = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            answer, ms, size = console.call(method, body)
            web_times.append(time.perf_counter() - t)
            grpc_ms.append(ms)
        assert raw_key(raw) == json_key(answer), f"{name}: the console's answer differs from the raw call's"
        text = json.dumps(answer).encode()
        row = {
            "raw_grpc_first_ms": first_ms,
            "raw_grpc": _ms(raw_times),
            "console": _ms(web_times),
            # the console's own time of the gRPC call, with the JSON conversions (its Server-Timing header)
            "console_grpc_ms": round(min(grpc_ms), 1),
            # the rest of each call through the console: HTTP in and out, the session and CSRF checks
            "console_http_ms": round(
                statistics.median(w * 1000 - g for w, g in zip(web_times, grpc_ms, strict=True)), 1
            ),
            "overhead_ms": round((min(web_times) - min(raw_times)) * 1000, 1),
            "protobuf_bytes": raw.ByteSize(),
            "json_bytes": size,
            "json_gzip_bytes": len(gzip.compress(text, 6)),
        }
        if method == "QueryDatapoints":
            row["rows"] = len(raw.datapoints)
            row["total"] = raw.page.total_count
        if method == "GetMapViewport":
            row["points"] = len(raw.points)
            row["total_in_viewport"] = raw.total_in_viewport
        out[name] = row
        print(f"  {name}: {json.dumps(row)}", flush=True)
    # a relabel of one frame through the server (an upload, as a reviewer's fix arrives): the answers that read
    # the frames' rows are computed again on their next call, on a server that is otherwise warm
    from shoal.client import Client
    from shoal.sdk import UploadColumns

    with Client(info["target"], api_key=info["key"]) as client:
        done = client.upload(PROJECT, DATASET, UploadColumns(frame_ids=frame_ids(0, 1), class_ids=[CELL[0]],
                                                             skip_frames=True), progress=False)  # fmt: skip
        client.wait_for_upload(PROJECT, done.upload_id)
    for name, (method, request, _, _) in cases.items():
        t = time.perf_counter()
        getattr(stub, method)(request, metadata=metadata)
        out[name]["raw_grpc_after_upload_ms"] = round((time.perf_counter() - t) * 1000, 1)
        print(f"  {name}, first call after a relabel: {out[name]['raw_grpc_after_upload_ms']} ms", flush=True)
    # the same, as a person meets it: the questions asked lately are computed again in the background once their
    # tables change (AnswerRefresher). Relabel another frame, wait for the refresher to finish, then ask
    before = _kept_answers(info["metrics_port"])
    with Client(info["target"], api_key=info["key"]) as client:
        done = client.upload(PROJECT, DATASET, UploadColumns(frame_ids=frame_ids(1, 2), class_ids=[CELL[0]],
                                                             skip_frames=True), progress=False)  # fmt: skip
        client.wait_for_upload(PROJECT, done.upload_id)
    upload_s = time.perf_counter() - before["at"]
    refresh_s = _await_refresh(info["metrics_port"], before)
    print(f"  upload completed after {upload_s:.2f} s, the refresher's last answer after {refresh_s:.2f} s", flush=True)
    after = _kept_answers(info["metrics_port"])
    for name, (method, request, _, _) in cases.items():
        t = time.perf_counter()
        getattr(stub, method)(request, metadata=metadata)
        out[name]["raw_grpc_after_refresh_ms"] = round((time.perf_counter() - t) * 1000, 1)
        out[name]["relabel_completed_s"] = round(upload_s, 2)
        out[name]["relabel_refreshed_s"] = round(refresh_s, 2)
        print(
            f"  {name}, first call after a relabel, refreshed: {out[name]['raw_grpc_after_refresh_ms']} ms", flush=True
        )
    final = _kept_answers(info["metrics_port"])
    out["_answers_after_refresh"] = {k: final[k] - after[k] for k in ("hit", "computed", "shared", "refreshed")}
    channel.close()
    return out


def _kept_answers(port: int) -> dict:  # type: ignore[type-arg]
    """``shoal_kept_answers_total`` by outcome, from the server's /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = {"at": time.perf_counter(), "hit": 0.0, "computed": 0.0, "shared": 0.0, "refreshed": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "shoal_kept_answers_total":
                found[sample.labels["outcome"]] = sample.value
    return found


def _await_prepared(port: int, quiet_s: float = 3.0, bound_s: float = 600.0) -> float:
    """Seconds until the server last prepared an answer, once it has prepared at least one and then nothing for
    ``quiet_s`` (a benchmark's wait: the tests wait on the preparer itself)."""
    start = time.perf_counter()
    last, last_at = 0.0, start
    while time.perf_counter() - start < bound_s:
        now = _kept_answers(port)
        if now.get("prepared", 0.0) != last:
            last, last_at = now["prepared"], now["at"]
        elif last > 0 and now["at"] - last_at >= quiet_s:
            return last_at - start
        time.sleep(0.05)
    raise RuntimeError(f"the server prepared nothing within {bound_s:.0f} s")


def _await_refresh(port: int, before: dict, quiet_s: float = 3.0, bound_s: float = 600.0) -> float:  # type: ignore[type-arg]
    """Seconds from ``before`` until the refresher last computed an answer, once it has computed at least one and
    then nothing for ``quiet_s``."""
    last, last_at = before["refreshed"], before["at"]
    while time.perf_counter() - before["at"] < bound_s:
        now = _kept_answers(port)
        if now["refreshed"] != last:
            last, last_at = now["refreshed"], now["at"]
        elif last > before["refreshed"] and now["at"] - last_at >= quiet_s:
            return last_at - before["at"]
        time.sleep(0.05)
    raise RuntimeError(f"the kept answers were not refreshed within {bound_s:.0f} s of the relabel")


# -- the browser ---------------------------------------------------------------------------------------------------
_READY = """([kind, want]) => {
  let ok = false;
  if (kind === "grid") ok = document.querySelectorAll("#grid figure").length >= want;
  else ok = !!window.shoalMap && window.shoalMap.stats().answers >= 1 && window.shoalMap.stats().drawn > 0;
  if (ok && window.__benchReady === undefined) window.__benchReady = performance.now();
  return ok;
}"""
_IMAGES_SHOWN = """() => {
  const seen = [...document.querySelectorAll("#grid img")].filter((i) => i.getBoundingClientRect().top < innerHeight);
  const ok = seen.length > 0 && seen.every((i) => i.complete && i.naturalWidth > 0);
  if (ok && window.__benchImages === undefined) window.__benchImages = performance.now();
  return ok;
}"""
_TIMES = """(method) => {
  const paint = Object.fromEntries(performance.getEntriesByType("paint").map((e) => [e.name, e.startTime]));
  const nav = performance.getEntriesByType("navigation")[0];
  // the page's first call of ``method``: its time in the browser, the console's Server-Timing, and the time from the
  // response's first byte to its last
  const call = performance.getEntriesByType("resource").find((e) => e.name.includes(`/api/rpc/${method}`));
  const grpc = call && call.serverTiming.find((t) => t.name === "grpc");
  return { fp: paint["first-paint"], fcp: paint["first-contentful-paint"], dcl: nav ? nav.domContentLoadedEventEnd : null,
           ready: window.__benchReady, images: window.__benchImages,
           call_ms: call && call.duration, call_grpc_ms: grpc && grpc.duration, call_body_ms: call && call.responseEnd - call.responseStart };
}"""
# One stroke of a drag, in the page: requestAnimationFrame timestamps (a cross-check of the trace) between two marks
# the trace shows. With ``aligned``, one pointer move is dispatched to the map at the start of each animation frame,
# as Chromium delivers a mouse's moves (coalesced, once a frame), and the stroke ends after ``ms``; otherwise the
# moves come from page.mouse, and the stroke ends when the page is told to stop.
_STROKE = """([cx, cy, ms, aligned]) => {
  const canvas = document.getElementById("map-canvas");
  const frames = [];
  let on = true, moves = 0, t0 = null, resolve = null;
  const end = () => { on = false; performance.mark("bench-pan-end"); return { frames, moves }; };
  const tick = (t) => {
    if (!on) return;
    frames.push(t);
    if (aligned) {
      if (t0 === null) t0 = t;
      if (t - t0 >= ms) { resolve(end()); return; }
      const phase = 2 * Math.PI * (t - t0) / ms;
      canvas.dispatchEvent(new PointerEvent("pointermove", { clientX: cx + 240 * Math.sin(phase), clientY: cy + 120 * Math.sin(2 * phase),
        pointerId: 1, pointerType: "mouse", isPrimary: true, buttons: 1, bubbles: true }));
      moves++;
    }
    requestAnimationFrame(tick);
  };
  performance.mark("bench-pan-start");
  requestAnimationFrame(tick);
  if (!aligned) { window.__benchStroke = end; return null; }
  return new Promise((r) => { resolve = r; });
}"""


# The peer of the pan: a bare page whose canvas draws as many points as the map holds, the way the map draws them
# (one path of arcs per colour), moved every animation frame; no app, no network.
_BARE = """<!doctype html><html><body style="margin:0"><canvas id="c"></canvas><script>
const [W, H, N, K] = [%d, %d, %d, %d];
const c = document.getElementById("c");
c.width = W; c.height = H;
const g = c.getContext("2d");
const xs = Float64Array.from({ length: N }, () => Math.random() * W), ys = Float64Array.from({ length: N }, () => Math.random() * H);
let on = false, t0 = 0, frames = [];
function draw(t) {
  if (!on) return;
  frames.push(t);
  const dx = 240 * Math.sin(2 * Math.PI * (t - t0) / %d), dy = 120 * Math.sin(4 * Math.PI * (t - t0) / %d);
  g.clearRect(0, 0, W, H);
  for (let k = 0; k < K; k++) {
    g.beginPath();
    for (let i = k; i < N; i += K) { const x = xs[i] + dx, y = ys[i] + dy; g.moveTo(x + 1.6, y); g.arc(x, y, 1.6, 0, 2 * Math.PI); }
    g.fillStyle = `hsl(${k * 36}, 70%%, 45%%)`;
    g.fill();
  }
  requestAnimationFrame(draw);
}
window.bench = {
  start: () => { performance.mark("bench-pan-start"); on = true; frames = []; t0 = performance.now(); requestAnimationFrame(draw); },
  stop: () => { on = false; performance.mark("bench-pan-end"); return frames; },
};
</script></body></html>"""


def _bare_canvas(browser: Any, seconds: float, width: int, height: int, points: int) -> dict:  # type: ignore[type-arg]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    stroke = round(STROKE_SECONDS * 1000)
    page.set_content(_BARE % (width, height, points, K, stroke, stroke))
    browser.start_tracing(page=page, categories=["devtools.timeline", "disabled-by-default-devtools.timeline.frame",
                                                 "blink.user_timing"])  # fmt: skip
    page.evaluate("() => window.bench.start()")
    page.wait_for_timeout(seconds * 1000)  # the drawing runs for this long
    frames = page.evaluate("() => window.bench.stop()")
    raw = browser.stop_tracing()
    page.close()
    return {"points": points, **trace_frames(json.loads(raw)),
            "raf": _summary([b - a for a, b in itertools.pairwise(frames)])}  # fmt: skip


def _page_load(context: Any, url: str, kind: str, want: int = 0) -> dict:  # type: ignore[type-arg]
    """Opens ``url`` in a new tab of the signed-in context; the paint entries and when the content showed."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_function(_READY, arg=[kind, want], polling="raf")
    if kind == "grid":
        page.wait_for_function(_IMAGES_SHOWN, polling="raf")
    times = page.evaluate(_TIMES, "analysis/QueryDatapoints" if kind == "grid" else "analysis/GetMapViewport")
    page.close()
    if errors:
        raise RuntimeError(f"the page threw: {errors}")
    return times


def _summary(values: list[float]) -> dict:  # type: ignore[type-arg]
    a = np.asarray(values, dtype=np.float64)
    if not len(a):
        return {"frames": 0}
    return {"frames": len(a), "median_ms": round(float(np.median(a)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "max_ms": round(float(a.max()), 1), "fps": round(1000 / float(np.mean(a)), 1)}  # fmt: skip


def trace_frames(trace: dict) -> dict:  # type: ignore[type-arg]
    """Frame intervals inside the pan strokes (between the page's bench-pan-start and bench-pan-end marks) from
    Chromium's trace: the compositor's DrawFrame events of the map's renderer, and the main thread's work per
    animation frame (FireAnimationFrame: the map's draw)."""
    events = trace["traceEvents"]
    marks = sorted((e["ts"], e["name"]) for e in events if e.get("name") in ("bench-pan-start", "bench-pan-end")
                   and e.get("ph") in ("R", "I", "n", "b", "e"))  # fmt: skip
    strokes, start = [], None
    for ts, name in marks:
        if name == "bench-pan-start":
            start = ts
        elif start is not None:
            strokes.append((start, ts))
            start = None
    inside = lambda ts: any(a <= ts <= b for a, b in strokes)  # noqa: E731
    draws: dict[int, list[float]] = {}
    for e in events:
        if e.get("name") == "DrawFrame" and inside(e.get("ts", -1)):
            draws.setdefault(e["pid"], []).append(e["ts"])
    intervals: list[float] = []
    if draws:
        ts_by_pid = max(draws.values(), key=len)
        for a, b in strokes:
            ts = sorted(t for t in ts_by_pid if a <= t <= b)
            intervals += [(y - x) / 1000 for x, y in itertools.pairwise(ts)]
    work = [e["dur"] / 1000 for e in events if e.get("name") == "FireAnimationFrame" and "dur" in e and inside(e["ts"])]
    dropped = sum(1 for e in events if e.get("name") == "DroppedFrame" and inside(e.get("ts", -1)))
    return {
        "strokes": len(strokes),
        "draw_frame": _summary(intervals),
        "dropped_frames": dropped,
        "animation_frame_work": {k: v for k, v in _summary(work).items() if k != "fps"},
    }


def measure_browser(info: dict, loads: int, pan_seconds: float, trace_path: Path | None) -> dict:  # type: ignore[type-arg]
    from playwright.sync_api import sync_playwright

    url = info["url"]
    grid_url = (f"{url}/#/p/{PROJECT}/examples?dataset={DATASET}&inference_set={INFERENCE_SET}"
                f"&label_class={CELL[0]}&predicted_class={CELL[1]}&sort=loss&desc=true")  # fmt: skip
    map_url = f"{url}/#/p/{PROJECT}/map?dataset={DATASET}&space={SPACE}&job={info['job_id']}"
    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(300_000)
        page = context.new_page()
        page.goto(f"{url}/#/signin")
        page.fill("#api-key", info["key"])
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("#projects")
        for name, target, kind, want in (("grid", grid_url, "grid", GRID_PAGE), ("map", map_url, "map", 0)):
            _page_load(context, target, kind, want)  # warm-up: thumbnails made, files cached
            runs = [_page_load(context, target, kind, want) for _ in range(loads)]
            out[f"{name}_page"] = {
                key: round(statistics.median(r[key] for r in runs), 1)
                for key in ("fp", "fcp", "dcl", "ready", "images", "call_ms", "call_grpc_ms", "call_body_ms")
                if all(r.get(key) is not None for r in runs)
            }
            print(f"  {name} page (median of {loads} loads, ms): {json.dumps(out[f'{name}_page'])}", flush=True)
        for name, aligned in (("pan", True), ("pan_playwright_mouse", False)):
            path = trace_path.with_name(f"{trace_path.stem}-{name}.json") if trace_path else None
            out[name] = _pan(browser, page, map_url, pan_seconds, aligned, path)
            print(f"  {name}: {json.dumps(out[name])}", flush=True)
        view = out["pan"]["canvas"]
        out["bare_canvas"] = _bare_canvas(
            browser, pan_seconds, view["width"], view["height"], out["pan"]["points_held"]
        )
        print(f"  bare canvas: {json.dumps(out['bare_canvas'])}", flush=True)
        context.close()
        browser.close()
    return out


def _pan(browser: Any, page: Any, map_url: str, seconds: float, aligned: bool, trace_path: Path | None) -> dict:  # type: ignore[type-arg]
    """Drags the map in strokes for about ``seconds`` under Chromium's performance trace. Each stroke presses and
    releases the mouse with page.mouse; the moves between are dispatched in the page once an animation frame
    (``aligned``), or come from page.mouse too."""
    page.goto(map_url)
    page.wait_for_function(_READY, arg=["map", 0], polling="raf")
    held = page.evaluate("() => window.shoalMap.stats().held")
    view = page.evaluate("() => window.shoalMap.view()")
    before = page.evaluate("() => window.shoalMap.stats()")
    box = page.locator("#map-canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    browser.start_tracing(page=page, categories=["devtools.timeline", "disabled-by-default-devtools.timeline.frame",
                                                 "blink.user_timing"])  # fmt: skip
    strokes = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        page.mouse.move(cx, cy)
        page.mouse.down()
        if aligned:
            strokes.append(page.evaluate(_STROKE, [cx, cy, STROKE_SECONDS * 1000, True]))
        else:
            page.evaluate(_STROKE, [cx, cy, STROKE_SECONDS * 1000, False])
            moves, t0 = 0, time.perf_counter()
            while (t := time.perf_counter() - t0) < STROKE_SECONDS:
                # there and back: the view ends each stroke where it began, over the map
                phase = 2 * np.pi * t / STROKE_SECONDS
                page.mouse.move(cx + 240 * np.sin(phase), cy + 120 * np.sin(2 * phase))
                moves += 1
            strokes.append({**page.evaluate("() => window.__benchStroke()"), "moves": moves})
        page.mouse.up()
        page.wait_for_timeout(PAUSE_SECONDS * 1000)  # a pause in the gesture: the map asks for the viewport
    raw = browser.stop_tracing()
    if trace_path is not None:
        trace_path.write_bytes(raw)
    stats = page.evaluate("() => window.shoalMap.stats()")
    deltas = [b - a for stroke in strokes for a, b in itertools.pairwise(stroke["frames"])]
    moved = sum(s["moves"] for s in strokes)
    return {"points_held": held, "canvas": {"width": view["width"], "height": view["height"], "dpr": view["dpr"]},
            "moves_per_second": round(moved / (len(strokes) * STROKE_SECONDS)),
            "viewport_requests": stats["requests"] - before["requests"],
            "viewport_answers": stats["answers"] - before["answers"], **trace_frames(json.loads(raw)),
            "raf": _summary(deltas)}  # fmt: skip


# -- the run -------------------------------------------------------------------------------------------------------
def run(n: int, repeats: int, loads: int, pan_seconds: float, browser: bool, trace_dir: Path | None) -> dict:  # type: ignore[type-arg]
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    try:
        print(f"[{n}] loading ...", flush=True)
        loaded = run_child(MODULE, "load", n, str(work))
        print(f"[{n}] {loaded}; serving ...", flush=True)
        with serving(work) as (started, served):
            info = {**started, "job_id": loaded["job_id"], "summary": loaded["summary"]}
            print(f"[{n}] server time (best of {repeats} after a warm-up) ...", flush=True)
            server = measure_server(info, repeats)
            shown = None
            if browser:
                print(f"[{n}] browser ...", flush=True)
                shown = measure_browser(info, loads, pan_seconds, trace_dir / f"pan-{n}.json" if trace_dir else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"load": loaded, "server_process": served, "server_time": server, "browser": shown}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeats", type=int, default=5, help="each server time is the best of this many calls")
    ap.add_argument("--loads", type=int, default=5, help="page loads per page (the median is reported)")
    ap.add_argument("--pan-seconds", type=float, default=3.5, help="strokes start until this much time has passed")
    ap.add_argument("--no-browser", action="store_true", help="only the server's time")
    ap.add_argument("--trace-dir", type=Path, default=None, help="keep Chromium's trace of each pan here")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "console" / "results.json")
    args = ap.parse_args()
    results = results_header()
    results["command"] = " ".join(["python -m", MODULE, *sys.argv[1:]])
    results["load_average_at_start"] = os.getloadavg()[0]
    if args.trace_dir:
        args.trace_dir.mkdir(parents=True, exist_ok=True)
    for n in args.frames:
        results["runs"][str(n)] = run(
            n, args.repeats, args.loads, args.pan_seconds, not args.no_browser, args.trace_dir
        )
    results["load_average_at_end"] = os.getloadavg()[0]
    write_results(args.out, results)


if __name__ == "__main__":
    main()
