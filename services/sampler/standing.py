"""Standing campaigns: collection campaigns that judge frames as they arrive instead of ranking a
pool uploaded first.

A standing campaign watches one pool dataset in one embedding space. The ingest consumer publishes
an ``IngestedEvent`` on the ingested topic after each chunk is written, naming the frames whose
vectors it wrote; the sampler's consumer (:mod:`shoal.sampler.workers`) hands each batch of those
events to :meth:`Standing.handle`, which judges every new frame of a watched pool by the campaign's
rule (:mod:`shoal.sampler.standing_rule`) and records the verdict.

**Order.** Frames are judged in the order their events arrive (a dataset's events keep to one
partition, in the order its chunks were written); the frames of one event by frame id. A frame is
judged once, when its vector first arrives after the campaign started; a frame sent again is not
judged again.

**At least once, exactly one verdict.** A batch's verdicts are written (the kept frames to the
campaign's segment first, then every verdict in one insert) before its offsets are committed. A
batch delivered again finds its frames judged and skips them, so a crash between the writes and
the commit keeps no frame twice and no other frame. Any failure drops the in-memory state, which
is read back from the stores (seeds, kept vectors, positions) before the next batch; so does a
rebalance.

**Full.** When a campaign's budget is spent, a ``StandingCampaignFullEvent`` is published on the
ingested topic (header ``shoal-event-type: standing-campaign-full``, keyed as the pool's ingested
events) before the campaign is saved FULL: a crash between the two leaves it FILLING, and the next
batch finds its kept count at the budget (each campaign's is read once after any failure, and when
it is first seen), publishes again and saves it FULL. The event comes at least once; its consumers
(the automations) key what they do by campaign. Consumers of the ingested topic route by that
header: :meth:`Standing.handle` passes over these events.

**The offline twin.** :func:`replay` runs the same rule over the frames already in a pool, in
upload order (the chunk that wrote each frame, by its produced time, then frame id), from an empty
sample. On frames streamed after the campaign started, in chunks that reach the topic in the order
they were produced and each frame once, it keeps exactly what the stream kept.

**Retention.** :meth:`Standing.sweep` deletes the vectors of dropped frames once the campaign's
retention has passed, unless another standing campaign of the same pool and space kept the frame,
keeps dropped vectors (no retention), or its own retention has not passed, or the frame is a member
of a segment. The frames themselves, their labels and metadata stay.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf.message import DecodeError

from shoal.common.data.embeddings import read_vectors_of, vector_pk
from shoal.common.data.evaluations import frame_rows_set
from shoal.common.data.projects import Project, ProjectCatalog
from shoal.common.data.query import SETTINGS, Params, View, compile_filter, view_sql
from shoal.common.errors import Unavailable
from shoal.common.stores.events import Event, EventBus
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.stores.vectors import VectorStore, collection_name
from shoal.common.timeutil import now_ms
from shoal.common.topics import INGESTED_EVENT, STANDING_CAMPAIGN_FULL_EVENT, Topics, event_type, event_type_headers
from shoal.common.uploads import event_key
from shoal.common.v1 import common_pb2
from shoal.ingest.v1 import ingest_pb2
from shoal.sampler import search
from shoal.sampler.standing_rule import KEPT, Judge, Rule, Verdicts

log = logging.getLogger(__name__)

FILLING, FULL, STOPPED = "FILLING", "FULL", "STOPPED"
STATES = (FILLING, FULL, STOPPED)
MAX_BUDGET = 100_000
MAX_SEEDS = 1_000
DEFAULT_MIN_DISTANCE = 0.02
#: how often the sweep looks for vectors to delete, at the latest
SWEEP_SECONDS = 60.0
#: the least time between two sweeps (a retention of 0 sweeps about this long after the drop)
SWEEP_MIN_SECONDS = 1.0
#: vectors one sweep deletes per (pool, space), at most
SWEEP_BATCH = 100_000
#: frames of the pool read and judged at a time by the offline twin
REPLAY_BLOCK = 50_000
#: seconds waited before each new read of vectors a read by key did not return (a read may come back
#: short while Milvus seals or compacts segments; the stream waits for vectors that events say exist)
REREAD_WAITS = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
#: keys per read when reading again what a read did not return
REREAD_BATCH = 1_000
#: how long publishing a campaign's full event may take before the batch fails (and comes again)
PUBLISH_TIMEOUT_SECONDS = 60.0

MIGRATIONS = (
    Migration(
        component="sampler",
        version=4,
        name="standing campaigns",
        statements=(
            # one row per version of a campaign; retention_seconds < 0: dropped frames keep their vectors
            "CREATE TABLE IF NOT EXISTS standing_campaigns ("
            " project LowCardinality(String), name String, pool String, space String, seed_space String,"
            " seed_segment String, threshold Float64, min_distance Float64, filter String, budget UInt32,"
            " retention_seconds Float64, state LowCardinality(String), start_ns UInt64,"
            " update_time DateTime64(3, 'UTC'), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, name)",
            # the seeds' vectors, read once when the campaign starts
            "CREATE TABLE IF NOT EXISTS standing_seeds ("
            " project LowCardinality(String), campaign String, seed_index UInt32, dataset String, frame_id String,"
            " vector Array(Float32))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, campaign, seed_index)",
            # one verdict per judged frame; a kept frame's vector is kept with it
            "CREATE TABLE IF NOT EXISTS standing_decisions ("
            " project LowCardinality(String), campaign String, frame_id String, position UInt64, rank UInt32,"
            " kept UInt8, reason LowCardinality(String), similarity Float64, seed_index UInt32,"
            " kept_distance Float64, decide_time DateTime64(3, 'UTC'), upload_id String, chunk_index Int64,"
            " vector Array(Float32))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, campaign, frame_id)",
            # frames whose vectors a sweep deleted
            "CREATE TABLE IF NOT EXISTS standing_swept ("
            " project LowCardinality(String), dataset String, space String, frame_id String,"
            " sweep_time DateTime64(3, 'UTC'))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, dataset, space, frame_id)",
        ),
    ),
)

_CAMPAIGN_COLUMNS = (
    "project", "name", "pool", "space", "seed_space", "seed_segment", "threshold", "min_distance", "filter",
    "budget", "retention_seconds", "state", "start_ns", "update_time", "version",
)  # fmt: skip


@dataclass(frozen=True)
class Campaign:
    """A standing campaign as stored. ``min_distance`` < 0: no diversity rule; ``retention`` None:
    dropped frames keep their vectors."""

    project: str
    name: str
    pool: str
    space: str
    seed_space: str
    seed_segment: str
    threshold: float
    min_distance: float
    filter: common_pb2.Filter
    budget: int
    retention: float | None
    state: str
    start_ns: int
    update_time: datetime | None = None

    @property
    def rule(self) -> Rule:
        return Rule(threshold=self.threshold, min_distance=self.min_distance, budget=self.budget)

    def same_request(self, other: Campaign) -> bool:
        """Whether two campaigns were asked for with the same parameters."""
        keys = ("pool", "space", "seed_space", "seed_segment", "threshold", "min_distance", "budget", "retention")
        return all(getattr(self, k) == getattr(other, k) for k in keys) and self.filter.SerializeToString(
            deterministic=True
        ) == other.filter.SerializeToString(deterministic=True)


@dataclass(frozen=True)
class Seed:
    dataset: str
    frame_id: str


@dataclass
class Counts:
    judged: int = 0
    kept: int = 0
    filtered: int = 0
    below_threshold: int = 0
    near_kept: int = 0
    vectors_deleted: int = 0


@dataclass(frozen=True)
class KeptItem:
    frame_id: str
    rank: int
    position: int
    similarity: float
    seed_index: int
    kept_distance: float
    decide_time: datetime
    upload_id: str
    chunk_index: int
    vector: np.ndarray | None


# -- the catalog -----------------------------------------------------------------------------------


def _campaign(row: Sequence[object]) -> Campaign:
    (project, name, pool, space, seed_space, seed_segment, threshold, min_distance, flt, budget, retention, state,
     start_ns, update_time) = row  # fmt: skip
    return Campaign(
        project=str(project), name=str(name), pool=str(pool), space=str(space), seed_space=str(seed_space),
        seed_segment=str(seed_segment), threshold=float(threshold), min_distance=float(min_distance),  # type: ignore[arg-type]
        filter=common_pb2.Filter.FromString(bytes.fromhex(str(flt))), budget=int(budget),  # type: ignore[call-overload]
        retention=None if float(retention) < 0 else float(retention), state=str(state), start_ns=int(start_ns),  # type: ignore[arg-type, call-overload]
        update_time=update_time if isinstance(update_time, datetime) else None,
    )  # fmt: skip


_SELECT = f"SELECT {', '.join(_CAMPAIGN_COLUMNS[:-1])} FROM standing_campaigns FINAL"


def find(metrics: MetricsStore, project: str, name: str) -> Campaign | None:
    rows = metrics.query(f"{_SELECT} WHERE project = {{p:String}} AND name = {{n:String}}",
                         {"p": project, "n": name}).rows  # fmt: skip
    return _campaign(rows[0]) if rows else None


def list_campaigns(metrics: MetricsStore, project: str, *, offset: int, size: int) -> tuple[list[Campaign], int]:
    rows, total = metrics.page(
        "standing_campaigns FINAL", ", ".join(_CAMPAIGN_COLUMNS[:-1]), "project = {p:String}", "name", {"p": project},
        offset=offset, size=size,
    )  # fmt: skip
    return [_campaign(r) for r in rows], total


def all_campaigns(metrics: MetricsStore, *, state: str = "") -> list[Campaign]:
    """Every project's campaigns (only those in ``state`` when given)."""
    where = " WHERE state = {s:String}" if state else ""
    rows = metrics.query(f"{_SELECT}{where} ORDER BY project, name", {"s": state} if state else {}).rows
    return [_campaign(r) for r in rows]


def save(metrics: MetricsStore, c: Campaign) -> Campaign:
    """Writes a version of a campaign (the newest wins); returns it with its update time."""
    now = now_ms()
    c = replace(c, update_time=now)
    metrics.insert(
        "standing_campaigns",
        [[c.project, c.name, c.pool, c.space, c.seed_space, c.seed_segment, c.threshold, c.min_distance,
          c.filter.SerializeToString(deterministic=True).hex(), c.budget, -1.0 if c.retention is None else c.retention,
          c.state, c.start_ns, now, time.time_ns()]],
        _CAMPAIGN_COLUMNS,
    )  # fmt: skip
    return c


def save_seeds(metrics: MetricsStore, project: str, campaign: str, seeds: Sequence[Seed], x: np.ndarray) -> None:
    n = len(seeds)
    metrics.insert_columns(
        "standing_seeds",
        [[project] * n, [campaign] * n, list(range(n)), [s.dataset for s in seeds], [s.frame_id for s in seeds],
         [row.tolist() for row in np.asarray(x, dtype=np.float32)]],
        ["project", "campaign", "seed_index", "dataset", "frame_id", "vector"],
    )  # fmt: skip


def _vectors(table: object, column: str = "vector") -> np.ndarray:
    """An Array(Float32) column of a pyarrow table as an (N, D) float32 array."""
    col = table.column(column).combine_chunks()  # type: ignore[attr-defined]
    n = len(col)
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return flat.reshape(n, -1) if n else np.zeros((0, 0), dtype=np.float32)


def seeds_of(metrics: MetricsStore, project: str, campaign: str) -> tuple[list[Seed], np.ndarray]:
    """A campaign's seeds and their vectors (S, D), by seed index."""
    table = metrics.query_arrow(
        "SELECT dataset, frame_id, vector FROM standing_seeds FINAL WHERE project = {p:String}"
        " AND campaign = {c:String} ORDER BY seed_index",
        {"p": project, "c": campaign},
    )
    seeds = [Seed(str(d), str(f)) for d, f in zip(table.column("dataset").to_pylist(),
                                                   table.column("frame_id").to_pylist(), strict=True)]  # fmt: skip
    return seeds, _vectors(table)


def seed_refs(metrics: MetricsStore, project: str, campaign: str) -> list[Seed]:
    """A campaign's seeds, by seed index, without their vectors."""
    rows = metrics.query(
        "SELECT dataset, frame_id FROM standing_seeds FINAL WHERE project = {p:String} AND campaign = {c:String}"
        " ORDER BY seed_index",
        {"p": project, "c": campaign},
    ).rows
    return [Seed(str(d), str(f)) for d, f in rows]


def counts(metrics: MetricsStore, c: Campaign) -> Counts:
    row = metrics.query(
        "SELECT count(), countIf(d.kept = 1), countIf(d.reason = 'filtered'), countIf(d.reason = 'below_threshold'),"
        " countIf(d.reason = 'near_kept'), countIf(d.kept = 0 AND w.swept >= d.decide_time)"
        " FROM (SELECT frame_id, kept, reason, decide_time FROM standing_decisions FINAL"
        "  WHERE project = {p:String} AND campaign = {c:String}) AS d"
        " LEFT JOIN (SELECT frame_id, max(sweep_time) AS swept FROM standing_swept WHERE project = {p:String}"
        "  AND dataset = {d:String} AND space = {s:String} GROUP BY frame_id) AS w ON d.frame_id = w.frame_id",
        {"p": c.project, "c": c.name, "d": c.pool, "s": c.space},
    ).rows[0]
    return Counts(*(int(v) for v in row))


def kept_items(
    metrics: MetricsStore, c: Campaign, *, offset: int, size: int, with_vectors: bool = False
) -> list[KeptItem]:
    """A page of the kept frames, by rank."""
    vector = ", vector" if with_vectors else ""
    table = metrics.query_arrow(
        "SELECT frame_id, rank, position, similarity, seed_index, kept_distance, decide_time, upload_id, chunk_index"
        f"{vector} FROM standing_decisions FINAL WHERE project = {{p:String}} AND campaign = {{c:String}}"
        " AND kept = 1 ORDER BY rank LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
        {"p": c.project, "c": c.name, "limit": size, "offset": offset},
    )
    vecs = _vectors(table) if with_vectors else None
    cols = {name: table.column(name).to_pylist() for name in table.column_names if name != "vector"}
    return [
        KeptItem(frame_id=str(cols["frame_id"][i]), rank=int(cols["rank"][i]), position=int(cols["position"][i]),
                 similarity=float(cols["similarity"][i]), seed_index=int(cols["seed_index"][i]),
                 kept_distance=float(cols["kept_distance"][i]), decide_time=cols["decide_time"][i],
                 upload_id=str(cols["upload_id"][i]), chunk_index=int(cols["chunk_index"][i]),
                 vector=None if vecs is None else vecs[i])
        for i in range(table.num_rows)
    ]  # fmt: skip


def kept_frames(metrics: MetricsStore, project: str, campaign: str) -> list[str]:
    """The kept frames, in the order they were kept."""
    rows = metrics.query_columns(
        "SELECT frame_id FROM standing_decisions FINAL WHERE project = {p:String} AND campaign = {c:String}"
        " AND kept = 1 ORDER BY rank",
        {"p": project, "c": campaign},
    )
    return [str(f) for f in rows["frame_id"]]


def kept_counts(metrics: MetricsStore, campaigns: Sequence[Campaign]) -> dict[tuple[str, str], int]:
    """The frames each of ``campaigns`` kept, by (project, name) (0 when none)."""
    if not campaigns:
        return {}
    rows = metrics.query_ids(
        "SELECT project, campaign, countIf(kept = 1) FROM standing_decisions FINAL"
        " WHERE project IN {projects:Array(String)} AND campaign IN {names:Array(String)} GROUP BY project, campaign",
        {"projects": sorted({c.project for c in campaigns})},
        "names",
        sorted({c.name for c in campaigns}),
    )
    found = {(str(p), str(n)): int(k) for p, n, k in rows}
    return {(c.project, c.name): found.get((c.project, c.name), 0) for c in campaigns}


def full_event(c: Campaign, kept: int) -> common_pb2.StandingCampaignFullEvent:
    """The event that says campaign ``c`` is full, now."""
    e = common_pb2.StandingCampaignFullEvent(
        project=c.project, campaign=c.name, segment=c.name, pool_dataset=c.pool, embedding_space=c.space,
        budget=c.budget, kept=kept, similarity_threshold=c.threshold,
    )  # fmt: skip
    e.full_time.GetCurrentTime()
    return e


#: publishes a campaign's full event and returns once it is durable (raises when it is not)
Publish = Callable[[common_pb2.StandingCampaignFullEvent], None]


def publisher(bus: EventBus, topics: Topics, *, timeout_seconds: float = PUBLISH_TIMEOUT_SECONDS) -> Publish:
    """Publishes full events on the ingested topic, keyed as the pool's ingested events, with the
    header naming their type; waits until each is durable."""
    headers = event_type_headers(STANDING_CAMPAIGN_FULL_EVENT)

    def publish(e: common_pb2.StandingCampaignFullEvent) -> None:
        try:
            bus.publish(topics.ingested, key=event_key(e.project, e.pool_dataset), value=e.SerializeToString(),
                        headers=headers).result(timeout=timeout_seconds)  # fmt: skip
        except Unavailable:
            raise
        except Exception as exc:  # the broker did not take it: the batch fails and comes again
            raise Unavailable(f"the full event of standing campaign {e.project}/{e.campaign} was not published: "
                              f"{type(exc).__name__}: {exc}") from exc  # fmt: skip

    return publish


def _kept_state(metrics: MetricsStore, c: Campaign) -> tuple[np.ndarray, int]:
    """The kept frames' vectors (K, D) by rank and the next position to judge."""
    table = metrics.query_arrow(
        "SELECT vector FROM standing_decisions FINAL WHERE project = {p:String} AND campaign = {c:String}"
        " AND kept = 1 ORDER BY rank",
        {"p": c.project, "c": c.name},
    )
    last = metrics.query(
        "SELECT max(position) FROM standing_decisions WHERE project = {p:String} AND campaign = {c:String}",
        {"p": c.project, "c": c.name},
    ).scalar()
    return _vectors(table), int(last or 0) + 1


def read_frame_vectors(
    vectors: VectorStore,
    project: str,
    pool: str,
    space: str,
    frame_ids: Sequence[str],
    *,
    waits: Sequence[float] = REREAD_WAITS,
) -> tuple[list[str], np.ndarray]:
    """The vectors of ``frame_ids`` in ``space`` (N, D), the ids of those that have one in the order
    asked. What a read by key does not return is read again in smaller batches after each of
    ``waits`` seconds (a read by key can come back short; the frames still missing then have no
    vector)."""
    ids, x = read_vectors_of(None, vectors, project, pool, space, list(frame_ids))
    missing = sorted(set(frame_ids) - set(ids))
    if not missing:
        return ids, x
    found = dict(zip(ids, x, strict=True))
    for wait in waits:
        if not missing:
            break
        time.sleep(wait)
        for start in range(0, len(missing), REREAD_BATCH):
            more, mx = read_vectors_of(None, vectors, project, pool, space, missing[start : start + REREAD_BATCH])
            found.update(zip(more, mx, strict=True))
        still = [f for f in missing if f not in found]
        if len(still) < len(missing):
            log.info("read %d vectors again that a read by key had not returned", len(missing) - len(still))
        missing = still
    ordered = [f for f in frame_ids if f in found]
    dim = next(iter(found.values())).shape[0] if found else 0
    return ordered, np.asarray([found[f] for f in ordered], dtype=np.float32).reshape(len(ordered), dim)


def view_of(metrics: MetricsStore, project: Project, pool: str) -> View:
    """The pool's frames, for the campaign's filter."""
    return View(
        project=project.name,
        dataset=pool,
        ontology=tuple(cl.id for cl in project.classes),
        class_names={cl.name: cl.id for cl in project.classes},
        frames_from=frame_rows_set(metrics, project.name, pool),
    )


def passing(metrics: MetricsStore, view: View, flt: common_pb2.Filter, frame_ids: Sequence[str]) -> np.ndarray:
    """Whether each of ``frame_ids`` passes ``flt``, as the frame is now (N,)."""
    params = Params()
    cond = compile_filter(flt, view, params)
    if cond == "1" or not frame_ids:
        return np.ones(len(frame_ids), dtype=bool)
    source = view_sql(view, params)
    values = dict(params.values)
    found: set[str] = set()
    for start in range(0, len(frame_ids), 20_000):
        part = list(frame_ids[start : start + 20_000])
        rows = metrics.query_columns(
            f"SELECT frame_id FROM ({source}) WHERE frame_id IN {{standing_ids:Array(String)}} AND ({cond}){SETTINGS}",
            {**values, "standing_ids": part},
        )
        found.update(str(f) for f in rows["frame_id"])
    return np.asarray([f in found for f in frame_ids], dtype=bool)


# -- judging the stream ----------------------------------------------------------------------------


@dataclass
class _State:
    campaign: Campaign
    judge: Judge
    seeds: list[Seed]
    next_position: int


@dataclass(frozen=True)
class Arrival:
    frame_id: str
    written_ns: int
    upload_id: str
    chunk_index: int


@dataclass
class _Batch:
    """What one batch writes: the verdicts (a table each), the kept frames per segment, the
    campaigns now full."""

    verdicts: list[Any] = field(default_factory=list)
    members: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    #: the campaigns now full, with the frames they kept
    full: list[tuple[Campaign, int]] = field(default_factory=list)
    drops_with_retention: list[float] = field(default_factory=list)


class Standing:
    """The standing campaigns' side of the sampler over the stores: judges batches of ingested
    events (:meth:`handle`) and deletes the vectors of dropped frames (:meth:`sweep`). Used from
    one thread (the consumer's). ``publish`` sends the event of a campaign that is full (see
    :func:`publisher`); None: no event is sent."""

    def __init__(self, metrics: MetricsStore, vectors: VectorStore, publish: Publish | None = None) -> None:
        self.metrics = metrics
        self.vectors = vectors
        self.publish = publish
        self.projects = ProjectCatalog(metrics)
        self._states: dict[tuple[str, str], _State] = {}
        #: the filling campaigns whose kept count was read since the last failure (a crash may have left
        #: one FILLING with its budget spent)
        self._checked: set[tuple[str, str]] = set()
        self._last_sweep = 0.0
        self._next_sweep = 0.0
        #: frames judged and kept since the start, and full events published, for logs and tests
        self.judged = 0
        self.kept = 0
        self.published = 0

    def forget(self) -> None:
        """Drops what is held in memory; it is read from the stores again when needed."""
        self._states.clear()
        self._checked.clear()

    def _state(self, c: Campaign) -> _State:
        key = (c.project, c.name)
        st = self._states.get(key)
        if st is None or st.campaign.state != c.state:
            seeds, x = seeds_of(self.metrics, c.project, c.name)
            kept, position = _kept_state(self.metrics, c)
            st = _State(c, Judge(c.rule, x, kept if len(kept) else None), seeds, position)
            self._states[key] = st
        return st

    def handle(self, events: Sequence[Event]) -> None:
        """Judges the frames a batch of ingested events names for every filling campaign, and
        records the verdicts. Raises when a store fails (nothing of the batch counts as done: the
        caller must not commit, and calls :meth:`forget`)."""
        notes = []
        for e in events:
            if event_type(e) != INGESTED_EVENT:
                continue  # a campaign's full event (this consumer's own), or a type for other consumers
            try:
                notes.append(ingest_pb2.IngestedEvent.FromString(e.value))
            except DecodeError as exc:
                log.warning("skipping ingested event %s/%d/%d: not an IngestedEvent (%s)", e.topic, e.partition,
                            e.offset, exc)  # fmt: skip
        # read even for a batch without IngestedEvents: a campaign left FILLING with its budget spent is full now
        campaigns = all_campaigns(self.metrics, state=FILLING)
        live = {(c.project, c.name) for c in campaigns}
        for key in [k for k in self._states if k not in live]:
            del self._states[key]
        self._checked &= live
        batch = _Batch()
        self._full_already(campaigns, batch)
        watched: dict[tuple[str, str, str], list[Campaign]] = {}
        done = {(c.project, c.name) for c, _ in batch.full}
        for c in campaigns:
            if (c.project, c.name) not in done:
                watched.setdefault((c.project, c.pool, c.space), []).append(c)
        arrivals: dict[tuple[str, str, str], list[Arrival]] = {}
        for note in notes:
            written = note.written_time.ToNanoseconds() if note.HasField("written_time") else 0
            for block in note.embeddings:
                key = (note.project, note.dataset, block.space)
                if key in watched:
                    arrivals.setdefault(key, []).extend(
                        Arrival(f, written, note.upload_id, note.chunk_index) for f in sorted(set(block.frame_ids))
                    )
        for key, arrived in arrivals.items():
            self._judge_arrivals(key, watched[key], arrived, batch)
        self._write(batch)

    def _full_already(self, campaigns: list[Campaign], batch: _Batch) -> None:
        """The filling campaigns not read since the last failure whose kept frames reached the budget
        (the process stopped after their verdicts were written, before they were saved FULL): full in
        this batch, with or without frames of their pool in it."""
        unread = [c for c in campaigns if (c.project, c.name) not in self._checked]
        if not unread:
            return
        kept = kept_counts(self.metrics, unread)
        for c in unread:
            n = kept[(c.project, c.name)]
            if n >= c.budget:
                log.info("standing campaign %s/%s kept %d frames (its budget) but is not saved full: full now",
                         c.project, c.name, n)  # fmt: skip
                batch.full.append((c, n))
            self._checked.add((c.project, c.name))

    def _judge_arrivals(
        self, key: tuple[str, str, str], campaigns: list[Campaign], arrived: list[Arrival], batch: _Batch
    ) -> None:
        project_name, pool, space = key
        todo: dict[str, list[Arrival]] = {}
        for c in campaigns:
            firsts: dict[str, Arrival] = {}
            for a in arrived:
                if a.written_ns >= c.start_ns and a.frame_id not in firsts:
                    firsts[a.frame_id] = a
            if not firsts:
                continue
            done = {
                str(r[0])
                for r in self.metrics.query_ids(
                    "SELECT frame_id FROM standing_decisions WHERE project = {p:String} AND campaign = {c:String}"
                    " AND frame_id IN {ids:Array(String)}",
                    {"p": c.project, "c": c.name},
                    "ids",
                    list(firsts),
                )
            }
            todo[c.name] = [a for f, a in firsts.items() if f not in done]
        wanted = sorted({a.frame_id for mine in todo.values() for a in mine})
        if not wanted:
            return
        ids, x = read_frame_vectors(self.vectors, project_name, pool, space, wanted)
        row_of = {f: i for i, f in enumerate(ids)}
        if len(ids) < len(wanted):
            log.warning("%d frames of %s/%s named by ingested events have no vector in space %s; they are not"
                        " judged", len(wanted) - len(ids), project_name, pool, space)  # fmt: skip
        project = None
        for c in campaigns:
            mine = [a for a in todo.get(c.name, []) if a.frame_id in row_of]
            if not mine:
                continue
            st = self._state(c)
            frames = [a.frame_id for a in mine]
            passes = None
            if c.filter.all:
                project = project or self.projects.get(project_name)
                passes = passing(self.metrics, view_of(self.metrics, project, pool), c.filter, frames)
            v = st.judge.judge(x[[row_of[f] for f in frames]], passes)
            self._record(st, mine, x, row_of, v, batch)

    def _record(
        self, st: _State, mine: list[Arrival], x: np.ndarray, row_of: dict[str, int], v: Verdicts, batch: _Batch
    ) -> None:
        c = st.campaign
        n = v.judged
        judged = mine[:n]
        rank = np.zeros(n, dtype=np.uint32)
        rank[v.kept] = np.arange(1, int(v.kept.sum()) + 1, dtype=np.uint32) + (st.judge.kept_count - int(v.kept.sum()))
        kept = [judged[i].frame_id for i in v.kept_indices.tolist()]
        # a kept frame's vector travels with its verdict; a dropped one's is empty
        kept_x = x[[row_of[f] for f in kept]].astype(np.float32) if kept else np.zeros((0, 0), dtype=np.float32)
        lengths = np.where(v.kept, kept_x.shape[1] if kept else 0, 0)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        batch.verdicts.append(pa.table({
            "project": pa.array([c.project] * n, pa.string()), "campaign": pa.array([c.name] * n, pa.string()),
            "frame_id": pa.array([a.frame_id for a in judged], pa.string()),
            "position": pa.array(np.arange(st.next_position, st.next_position + n, dtype=np.uint64)),
            "rank": pa.array(rank), "kept": pa.array(v.kept.astype(np.uint8)),
            "reason": pa.array(v.reason, pa.string()), "similarity": pa.array(v.similarity.astype(np.float64)),
            "seed_index": pa.array(v.seed.astype(np.uint32)), "kept_distance": pa.array(v.kept_distance),
            "decide_time": pa.array(np.full(n, np.datetime64(now_ms().replace(tzinfo=None), "ms")),
                                    pa.timestamp("ms", tz="UTC")),
            "upload_id": pa.array([a.upload_id for a in judged], pa.string()),
            "chunk_index": pa.array(np.asarray([a.chunk_index for a in judged], dtype=np.int64)),
            "vector": pa.ListArray.from_arrays(pa.array(offsets), pa.array(kept_x.ravel(), pa.float32())),
        }))  # fmt: skip
        st.next_position += n
        self.judged += n
        self.kept += len(kept)
        if kept:
            batch.members.setdefault((c.project, c.name, c.pool), []).extend(kept)
        if c.retention is not None and len(kept) < n:
            batch.drops_with_retention.append(c.retention)
        if st.judge.full:
            batch.full.append((c, st.judge.kept_count))

    def _write(self, batch: _Batch) -> None:
        """Kept frames into the segments first (a repeat adds nothing), then every verdict in one
        insert, then the campaigns that filled up: each one's event published, then its state saved
        FULL (a crash between the two publishes it again on the next batch)."""
        version = time.time_ns()
        for (project, segment, dataset), frames in batch.members.items():
            n = len(frames)
            # versions rising in the order kept: the segment tells the order (the automations send it so)
            versions = [version + i for i in range(n)]
            self.metrics.insert_columns(
                "segment_members",
                [[project] * n, [segment] * n, [dataset] * n, frames, [""] * n, [0] * n, versions],
                ["project", "segment", "dataset", "frame_id", "object_id", "removed", "version"],
            )
        if batch.verdicts:
            self.metrics.insert_arrow("standing_decisions", pa.concat_tables(batch.verdicts))
        for c, kept in batch.full:
            if self.publish is not None:
                self.publish(full_event(c, kept))
                self.published += 1
            save(self.metrics, replace(c, state=FULL))
            log.info("standing campaign %s/%s is full: %d frames kept", c.project, c.name, kept)
            self._states.pop((c.project, c.name), None)
        if batch.drops_with_retention:
            due = time.monotonic() + min(batch.drops_with_retention)
            self._next_sweep = min(self._next_sweep or math.inf, max(due, self._last_sweep + SWEEP_MIN_SECONDS))

    # -- retention ---------------------------------------------------------------------------------

    def sweep_due(self) -> bool:
        return time.monotonic() >= self._next_sweep

    def sweep(self) -> int:
        """Deletes the vectors of dropped frames whose retention passed (see the module docstring);
        returns how many."""
        self._last_sweep = time.monotonic()
        self._next_sweep = self._last_sweep + SWEEP_SECONDS
        groups: dict[tuple[str, str, str], list[Campaign]] = {}
        for c in all_campaigns(self.metrics):
            groups.setdefault((c.project, c.pool, c.space), []).append(c)
        deleted = 0
        for (project, pool, space), cs in groups.items():
            if any(c.retention is not None for c in cs):
                deleted += self._sweep(project, pool, space, cs)
        if deleted:
            log.info("standing campaigns: deleted the vectors of %d dropped frames", deleted)
        return deleted

    def _sweep(self, project: str, pool: str, space: str, cs: list[Campaign]) -> int:
        names = [c.name for c in cs]
        retention_ms = [-1 if c.retention is None else math.ceil(c.retention * 1000) for c in cs]
        params = {"p": project, "d": pool, "s": space, "names": names, "ret": retention_ms,
                  "now": int(time.time() * 1000), "limit": SWEEP_BATCH}  # fmt: skip
        # a frame swept before and judged again since (sent again, dropped by a newer campaign) is due again
        rows = self.metrics.query_columns(
            "SELECT d.frame_id AS frame_id FROM ("
            " SELECT frame_id, max(decide_time) AS decided FROM standing_decisions"
            " WHERE project = {p:String} AND campaign IN {names:Array(String)}"
            " AND frame_id NOT IN (SELECT frame_id FROM segment_members FINAL WHERE project = {p:String}"
            "  AND dataset = {d:String} AND removed = 0)"
            " GROUP BY frame_id"
            " HAVING max(kept) = 0"
            " AND min(transform(campaign, {names:Array(String)}, {ret:Array(Int64)}, toInt64(-1))) >= 0"
            " AND max(toUnixTimestamp64Milli(decide_time)"
            "  + transform(campaign, {names:Array(String)}, {ret:Array(Int64)}, toInt64(0))) <= {now:Int64}) AS d"
            " LEFT JOIN (SELECT frame_id, max(sweep_time) AS swept FROM standing_swept WHERE project = {p:String}"
            "  AND dataset = {d:String} AND space = {s:String} GROUP BY frame_id) AS w ON d.frame_id = w.frame_id"
            " WHERE w.swept < d.decided"
            " LIMIT {limit:UInt32}",
            params,
        )
        frames = [str(f) for f in rows["frame_id"]]
        if not frames:
            return 0
        collection = collection_name(project, space)
        if self.vectors.has_collection(collection):
            for start in range(0, len(frames), 10_000):
                part = frames[start : start + 10_000]
                self.vectors.delete(collection, ids=[vector_pk(pool, f, "") for f in part], partition=pool)
        n = len(frames)
        self.metrics.insert_columns(
            "standing_swept",
            [[project] * n, [pool] * n, [space] * n, frames, [datetime.now(UTC)] * n],
            ["project", "dataset", "space", "frame_id", "sweep_time"],
        )
        if n == SWEEP_BATCH:
            self._next_sweep = self._last_sweep + SWEEP_MIN_SECONDS  # more are due
        return n


# -- the offline twin ------------------------------------------------------------------------------


@dataclass
class Replay:
    """What the offline twin decided: the kept frames in order, and every judged frame's reason."""

    kept: list[str]
    judged: list[str]
    reasons: list[str]


def upload_order(metrics: MetricsStore, project: str, pool: str) -> list[str]:
    """The pool's frames in upload order: by the produced time of the chunk that wrote each, then id."""
    rows = metrics.query_columns(
        "SELECT frame_id FROM frames FINAL WHERE project = {p:String} AND dataset = {d:String}"
        " ORDER BY version, frame_id",
        {"p": project, "d": pool},
    )
    return [str(f) for f in rows["frame_id"]]


def replay(
    metrics: MetricsStore,
    vectors: VectorStore,
    c: Campaign,
    *,
    frames: Sequence[str] | None = None,
    block: int = REPLAY_BLOCK,
) -> Replay:
    """The offline twin of campaign ``c``: its rule, seeds and filter applied to ``frames`` of its
    pool (default: every frame, in :func:`upload_order`) from an empty sample, the frames without a
    vector in its space skipped, until the budget is spent."""
    seeds, x_seeds = seeds_of(metrics, c.project, c.name)
    if not seeds:
        raise ValueError(f"campaign {c.name!r} of project {c.project!r} has no seeds")
    judge = Judge(c.rule, x_seeds)
    order = list(frames) if frames is not None else upload_order(metrics, c.project, c.pool)
    scope = None
    if c.filter.all:
        project = ProjectCatalog(metrics).get(c.project)
        scope = search.scope(metrics, view_of(metrics, project, c.pool), c.filter, exclude_labeled=False,
                             exclude_segments=[])  # fmt: skip
    out = Replay([], [], [])
    for start in range(0, len(order), block):
        ids, x = read_frame_vectors(vectors, c.project, c.pool, c.space, order[start : start + block], waits=(0.0,))
        if not ids:
            continue
        passes = None if scope is None else np.asarray([scope.admits(f) for f in ids], dtype=bool)
        v = judge.judge(x, passes)
        out.judged += ids[: v.judged]
        out.reasons += v.reason
        out.kept += [ids[i] for i in v.kept_indices.tolist()]
        if judge.full:
            break
    return out


__all__ = [
    "FILLING", "FULL", "KEPT", "MIGRATIONS", "STOPPED", "Campaign", "Counts", "KeptItem", "Replay", "Seed",
    "Standing", "all_campaigns", "counts", "find", "full_event", "kept_counts", "kept_frames", "kept_items",
    "list_campaigns", "publisher", "replay", "save", "save_seeds", "seed_refs", "seeds_of", "upload_order",
]  # fmt: skip
