"""Standing campaigns on the embedded bus, with vectors in Milvus Lite and metrics in chDB: frames
streamed in several uploads fill each campaign exactly as its offline twin and a plain numpy
reading of the rule choose; the budget stops a campaign and a stopped one judges nothing more;
redelivered batches, a crash between the writes and the commit, reads of vectors that come back
short and a restarted consumer keep the sample exact; retention deletes the vectors of dropped frames (and only those); the SDK's
client-side scoring chooses exactly what the campaign then keeps; bad requests are refused naming
the field."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.data.embeddings import vector_pk
from shoal.common.stores.events import EventBus
from shoal.common.stores.vectors import VectorBatch, collection_name
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sampler import standing
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sampler.workers import StandingConsumer
from shoal.sdk import UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import Running, start_server, wait_for

D = 16
TARGETS = 4
CHUNK = 100  # frames per upload chunk: the frames of one chunk are judged by frame id
SUN = cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="sun"))])


def stream_data(uploads: int, seed: int = 0, near: int = 60, groups: int = 10, background: int = 150) -> dict[str, Any]:
    """Seeds (4 labeled frames) and ``uploads`` batches of pool frames: ``near`` frames around the
    seeds (some below a 0.85 threshold), ``groups`` planted groups of 3 near-copies around them (the
    diversity rule keeps one of each) and ``background`` frames unlike any seed."""
    rng = np.random.default_rng(seed)
    targets = rng.normal(0, 1, (TARGETS, D))
    batches = []
    for u in range(uploads):
        x = [targets[rng.integers(0, TARGETS, near)] + rng.normal(0, 0.45, (near, D))]
        centres = targets[rng.integers(0, TARGETS, groups)] + rng.normal(0, 0.3, (groups, D))
        x.append(np.repeat(centres, 3, axis=0) + rng.normal(0, 0.005, (groups * 3, D)))
        x.append(rng.normal(0, 1, (background, D)))
        ids = [f"u{u}-n{i:03d}" for i in range(near)] + [f"u{u}-g{i // 3:02d}c{i % 3}" for i in range(groups * 3)]
        ids += [f"u{u}-b{i:03d}" for i in range(background)]
        perm = rng.permutation(len(ids))  # the upload's order, which the chunks keep
        vecs = np.concatenate(x).astype(np.float32)[perm]
        ids = [ids[i] for i in perm]
        weather = ["sun" if rng.random() < 0.5 else "fog" for _ in ids]
        batches.append({"ids": ids, "x": vecs, "weather": weather})
    seeds = (targets + rng.normal(0, 0.05, (TARGETS, D))).astype(np.float32)
    train = np.concatenate([seeds, rng.normal(0, 1, (40, D))]).astype(np.float32)
    return {"batches": batches, "seeds": seeds, "train_ids": [f"t{i:03d}" for i in range(len(train))], "train_x": train}


def create_stream_project(c: Any, project: str, d: dict[str, Any], pools: Sequence[str] = ("pool",)) -> None:
    """The project, its labeled set with the seeds (segment "seeds") and the pools, empty."""
    space = pb.EmbeddingSpace(name="clip", dimension=D, metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="clip", model_version="1")  # fmt: skip
    other = pb.EmbeddingSpace(name="dino", dimension=D, metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="dino", model_version="2")  # fmt: skip
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="cone")],
        embedding_spaces=[space, other])))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
        name="train", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
    for pool in pools:
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
            name=pool, kind=pb.DATASET_KIND_UNLABELED_POOL)))  # fmt: skip
    n = len(d["train_ids"])
    r = c.upload(project, "train", UploadColumns(frame_ids=d["train_ids"], class_ids=[0] * n,
                                                embeddings={"clip": d["train_x"], "dino": d["train_x"]}),
                 progress=False)  # fmt: skip
    assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, segment=apb.Segment(
        name="seeds", dataset="train", kind=apb.SEGMENT_KIND_COLLECTION_SEED), frame_ids=d["train_ids"][:TARGETS]))  # fmt: skip


def upload_batch(c: Any, project: str, batch: dict[str, Any], pool: str = "pool", chunk: int = CHUNK) -> None:
    cols = UploadColumns(frame_ids=batch["ids"], metadata=[{"weather": w} for w in batch["weather"]],
                         embeddings={"clip": batch["x"]})  # fmt: skip
    r = c.upload(project, pool, cols, chunk_size=chunk, progress=False)
    assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def arrival_order(batches: Sequence[dict[str, Any]], chunk: int = CHUNK) -> tuple[list[str], np.ndarray, list[str]]:
    """Frames in the order a campaign judges them: upload after upload, chunk after chunk, the
    frames of a chunk by id; with their vectors and weather."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    weather: list[str] = []
    for b in batches:
        for start in range(0, len(b["ids"]), chunk):
            part = sorted(range(start, min(start + chunk, len(b["ids"]))), key=lambda i: b["ids"][i])
            ids += [b["ids"][i] for i in part]
            rows.append(b["x"][part])
            weather += [b["weather"][i] for i in part]
    return ids, np.concatenate(rows), weather


def plain_rule(
    x: np.ndarray, seeds: np.ndarray, *, threshold: float, min_distance: float, budget: int, passes: np.ndarray
) -> list[int]:
    """The rule read plainly: float64 cosines of the raw vectors, one frame after another."""
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    s = seeds.astype(np.float64) / np.linalg.norm(seeds.astype(np.float64), axis=1, keepdims=True)
    kept: list[int] = []
    for i in range(len(unit)):
        if not passes[i] or (unit[i] @ s.T).max() < threshold:
            continue
        if min_distance > 0 and kept and 1 - (unit[kept] @ unit[i]).max() < min_distance:
            continue
        kept.append(i)
        if len(kept) == budget:
            break
    return kept


def start(c: Any, project: str, name: str, **kwargs: Any) -> Any:
    request = {"project": project, "name": name, "pool_dataset": "pool", "embedding_space": "clip",
               "seed_segment": "seeds", "similarity_threshold": 0.85, "budget": 10_000, **kwargs}  # fmt: skip
    return c.sampler.StartStandingCampaign(spb.StartStandingCampaignRequest(**request)).campaign


def get(c: Any, project: str, name: str) -> Any:
    return c.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project=project, name=name)).campaign


def wait_judged(c: Any, project: str, name: str, judged: int, timeout: float = 120) -> Any:
    """Waits until campaign ``name`` judged ``judged`` frames (or more) and returns it."""
    seen = [get(c, project, name)]

    def done() -> bool:
        seen[0] = get(c, project, name)
        return seen[0].judged >= judged

    wait_for(done, timeout=timeout, what=f"campaign {name} to judge {judged} frames",
             progress=lambda: (seen[0].judged, seen[0].kept, seen[0].state), stall=60)  # fmt: skip
    return seen[0]


def wait_state(c: Any, project: str, name: str, state: int, timeout: float = 120) -> Any:
    seen = [get(c, project, name)]

    def done() -> bool:
        seen[0] = get(c, project, name)
        return seen[0].state == state

    wait_for(done, timeout=timeout, what=f"campaign {name} to be {spb.StandingCampaignState.Name(state)}",
             progress=lambda: (seen[0].judged, seen[0].kept, seen[0].state), stall=60)  # fmt: skip
    return seen[0]


def members(c: Any, project: str, name: str) -> set[str]:
    out: set[str] = set()
    token = ""
    while True:
        r = c.analysis.ListSegmentMembers(apb.ListSegmentMembersRequest(
            project=project, name=name, page=cpb.PageRequest(page_size=1000, page_token=token)))  # fmt: skip
        out |= {m.frame_id for m in r.members}
        token = r.page.next_page_token
        if not token:
            return out


def check_twins(running: Running, c: Any, project: str, name: str, order: list[str], oracle: list[int]) -> list[str]:
    """The stream's sample equals the offline twin's and the plain reading's, and is the segment."""
    got = c.standing_campaign(project, name)
    stream = got.frame_ids
    twin = standing.replay(running.server.stores.metrics, running.server.stores.vectors,
                           standing.find(running.server.stores.metrics, project, name))  # fmt: skip
    assert stream == twin.kept, name
    assert stream == [order[i] for i in oracle], name
    assert members(c, project, name) == set(stream), name
    assert [it.rank for it in got.items] == list(range(1, len(stream) + 1))
    positions = [it.position for it in got.items]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    return stream


def test_streamed_frames_fill_the_campaign_as_its_offline_twin_would(shared: Running, project: str) -> None:
    running, p = shared, project
    d = stream_data(uploads=4)
    with running.client(running.admin_key) as c:
        create_stream_project(c, p, d)
        wide = start(c, p, "wide", min_distance=0.05)
        sunny = start(c, p, "sunny", similarity_threshold=0.8, budget=40, filter=SUN)
        stopped = start(
            c, p, "stopped", seed_segment="", seed_frames=[cpb.DatapointRef(dataset="train", frame_id="t000")]
        )
        assert wide.state == sunny.state == spb.STANDING_CAMPAIGN_STATE_FILLING and wide.seeds == TARGETS
        assert wide.min_distance == 0.05 and sunny.min_distance == standing.DEFAULT_MIN_DISTANCE
        assert stopped.seeds == 1 and stopped.seed_segment == "" and not wide.HasField("retention_seconds")
        stopped = c.sampler.StopStandingCampaign(spb.StopStandingCampaignRequest(project=p, name="stopped")).campaign
        assert stopped.state == spb.STANDING_CAMPAIGN_STATE_STOPPED
        # the same request again is the same campaign; another under that name is refused
        assert start(c, p, "wide", min_distance=0.05).start_time == wide.start_time
        with pytest.raises(grpc.RpcError) as e:
            start(c, p, "wide", min_distance=0.1)
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "name" in e.value.details()

        for b in d["batches"][:3]:
            upload_batch(c, p, b)
        order, x, weather = arrival_order(d["batches"][:3])
        wide = wait_judged(c, p, "wide", len(order))
        sunny = wait_state(c, p, "sunny", spb.STANDING_CAMPAIGN_STATE_FULL)
        full_at = sunny.judged
        # the last upload arrives after the budget of "sunny" was spent: only "wide" judges it
        upload_batch(c, p, d["batches"][3])
        order, x, weather = arrival_order(d["batches"])
        wide = wait_judged(c, p, "wide", len(order))
        assert wide.judged == len(order) and wide.state == spb.STANDING_CAMPAIGN_STATE_FILLING
        assert wide.judged == wide.kept + wide.filtered + wide.below_threshold + wide.near_kept
        assert wide.filtered == 0
        sunny = get(c, p, "sunny")
        assert sunny.judged == full_at and sunny.kept == 40 and sunny.filtered > 0
        assert get(c, p, "stopped").judged == 0

        everyone = np.ones(len(order), dtype=bool)
        kept = check_twins(running, c, p, "wide", order, plain_rule(x, d["seeds"], threshold=0.85, min_distance=0.05,
                                                                     budget=10_000, passes=everyone))  # fmt: skip
        groups = [f[:7] for f in kept if "-g" in f]
        assert len(groups) == len(set(groups)) >= 20  # one of each planted group near the seeds, never two
        assert wide.near_kept >= 2 * len(groups)
        sun = np.asarray([w == "sun" for w in weather])
        check_twins(running, c, p, "sunny", order, plain_rule(x, d["seeds"], threshold=0.8, min_distance=0.02,
                                                              budget=40, passes=sun))  # fmt: skip

        # what a kept frame says of itself
        item = c.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project=p, name="wide")).items[0]
        assert item.rank == 1 and item.kept_distance == 2 and item.similarity >= 0.85
        assert item.nearest_seed.dataset == "train" and item.upload_id and not item.vector.values
        listed = c.sampler.ListStandingCampaigns(spb.ListStandingCampaignsRequest(project=p)).campaigns
        assert [x.name for x in listed] == ["stopped", "sunny", "wide"]


class _Faults:
    """Fails the first commit of a batch at chosen calls (the verdicts are written, the offsets
    are not: a crash between the two), and the first write of verdicts at a chosen call (the kept
    frames are in the segment, the verdicts are not)."""

    def __init__(self, bus: EventBus, *, fail_commits: set[int], fail_insert: set[int]) -> None:
        self.bus = bus
        self.fail_commits = fail_commits
        self.fail_insert = fail_insert
        self.commits = 0
        self.inserts = 0
        self.injected = 0
        self.delivered = 0
        self.lock = threading.Lock()

    def wrap_bus(self) -> Any:
        faults = self

        class Consumer:
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

            def poll(self, *args: Any, **kwargs: Any) -> Any:
                events = self.inner.poll(*args, **kwargs)
                with faults.lock:
                    faults.delivered += len(events)
                return events

            def commit(self, offsets: Any = None) -> None:
                with faults.lock:
                    faults.commits += 1
                    fail = faults.commits in faults.fail_commits
                if fail:
                    faults.injected += 1
                    raise RuntimeError("injected: the process died before committing")
                self.inner.commit(offsets)

        class Bus:
            def __getattr__(self, name: str) -> Any:
                return getattr(faults.bus, name)

            def consumer(self, *args: Any, **kwargs: Any) -> Any:
                return Consumer(faults.bus.consumer(*args, **kwargs))

        return Bus()

    def wrap_metrics(self, metrics: Any) -> Any:
        faults = self

        class Metrics:
            def __getattr__(self, name: str) -> Any:
                return getattr(metrics, name)

            def insert_arrow(self, table: str, *args: Any, **kwargs: Any) -> Any:
                if table == "standing_decisions":
                    with faults.lock:
                        faults.inserts += 1
                        fail = faults.inserts in faults.fail_insert
                    if fail:
                        faults.injected += 1
                        raise RuntimeError("injected: the process died between the segment and the verdicts")
                return metrics.insert_arrow(table, *args, **kwargs)

        return Metrics()


class _ShortReads:
    """A vector store whose reads by key come back short at chosen calls (only the first half of
    the records), as a Milvus read can while segments are sealed or compacted."""

    def __init__(self, vectors: Any, short: set[int]) -> None:
        self.vectors = vectors
        self.short = short
        self.calls = 0
        self.shortened = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.vectors, name)

    def get(self, collection: str, ids: Sequence[str], **kwargs: Any) -> VectorBatch:
        got = self.vectors.get(collection, ids, **kwargs)
        self.calls += 1
        if self.calls not in self.short or len(got.ids) < 2:
            return got
        self.shortened += 1
        half = len(got.ids) // 2
        return VectorBatch(ids=got.ids[:half], vectors=got.vectors[:half],
                           fields={k: v[:half] for k, v in got.fields.items()})  # fmt: skip


@pytest.fixture
def own_server(tmp_path: Any, chdb_path: Any) -> Iterator[Running]:
    """A server of this test's own: its standing consumer is replaced during the test."""
    r = start_server(server_settings(tmp_path / "data", chdb_path))
    yield r
    r.server.stop(grace=1)


def _sampler_consumer(r: Running) -> StandingConsumer:
    (spec,) = [s for s in r.server.specs if s.name == "sampler"]
    (worker,) = [w for w in spec.workers if isinstance(w, StandingConsumer)]
    return worker


def test_redelivery_a_crash_before_the_commit_and_a_restart_keep_the_sample_exact(own_server: Running) -> None:
    running, p = own_server, "redelivered"
    stores = running.server.stores
    original = _sampler_consumer(running)
    original.stop(10)
    faults = _Faults(stores.events, fail_commits={1, 3}, fail_insert={2})
    short = _ShortReads(stores.vectors, short={1, 4})
    flaky = StandingConsumer(faults.wrap_bus(), original.topics,
                             standing.Standing(faults.wrap_metrics(stores.metrics), short),
                             group_id=original.group_id)  # fmt: skip
    d = stream_data(uploads=4, seed=1)
    with running.client(running.admin_key) as c:
        create_stream_project(c, p, d)
        start(c, p, "exact", min_distance=0.05)
        start(c, p, "small", similarity_threshold=0.8, budget=25)
        flaky.start()
        try:
            for b in d["batches"][:3]:
                upload_batch(c, p, b)
            order, x, _ = arrival_order(d["batches"][:3])
            wait_judged(c, p, "exact", len(order))
        finally:
            flaky.stop(10)
        assert faults.injected == 3 and faults.delivered > flaky.handled_events  # batches came again
        assert short.shortened == 2  # and reads that came back short were read again
        # a restart: the last upload is written while no consumer runs; a new one (no memory) resumes
        upload_batch(c, p, d["batches"][3])
        restarted = StandingConsumer(stores.events, original.topics, standing.Standing(stores.metrics, stores.vectors),
                                     group_id=original.group_id)  # fmt: skip
        restarted.start()
        try:
            order, x, _ = arrival_order(d["batches"])
            wait_judged(c, p, "exact", len(order))
            wait_state(c, p, "small", spb.STANDING_CAMPAIGN_STATE_FULL)
        finally:
            restarted.stop(10)
        everyone = np.ones(len(order), dtype=bool)
        check_twins(running, c, p, "exact", order, plain_rule(x, d["seeds"], threshold=0.85, min_distance=0.05,
                                                              budget=10_000, passes=everyone))  # fmt: skip
        check_twins(running, c, p, "small", order, plain_rule(x, d["seeds"], threshold=0.8, min_distance=0.02,
                                                              budget=25, passes=everyone))  # fmt: skip
        for name in ("exact", "small"):  # one verdict per frame, written once
            rows, frames = stores.metrics.query(
                "SELECT count(), uniqExact(frame_id) FROM standing_decisions WHERE project = {p:String}"
                " AND campaign = {c:String}", {"p": p, "c": name}).rows[0]  # fmt: skip
            assert rows == frames, name
        assert get(c, p, "exact").judged == len(order)


def _has_vector(running: Running, project: str, pool: str, frame_ids: Sequence[str]) -> set[str]:
    vectors = running.server.stores.vectors
    got = vectors.get(collection_name(project, "clip"), [vector_pk(pool, f, "") for f in frame_ids],
                      with_vectors=False)  # fmt: skip
    return {str(f) for f in got.fields["frame_id"]}


def test_retention_deletes_the_vectors_of_dropped_frames_only(shared: Running, project: str) -> None:
    running, p = shared, project
    d = stream_data(uploads=2, seed=2, near=30, groups=5, background=60)
    first, second = d["batches"]
    with running.client(running.admin_key) as c:
        create_stream_project(c, p, d, pools=("pool", "shared-pool"))
        # a frame of the pool is in a segment before it is judged: its vector stays whatever the verdict
        protected = next(f for f in first["ids"] if "-b" in f)
        r = c.upload(p, "pool", UploadColumns(frame_ids=[protected]), progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, segment=apb.Segment(
            name="keep-me", dataset="pool", kind=apb.SEGMENT_KIND_OTHER), frame_ids=[protected]))  # fmt: skip
        r0 = start(c, p, "r0", retention_seconds=0)
        assert r0.HasField("retention_seconds") and r0.retention_seconds == 0
        # in the shared pool, "keeper" keeps the vectors of what it drops: nothing is deleted there
        start(c, p, "r1", pool_dataset="shared-pool", retention_seconds=0)
        start(c, p, "keeper", pool_dataset="shared-pool", similarity_threshold=0.95)
        upload_batch(c, p, second, pool="shared-pool")
        wait_judged(c, p, "r1", len(second["ids"]))
        wait_judged(c, p, "keeper", len(second["ids"]))
        upload_batch(c, p, first)
        r0 = wait_judged(c, p, "r0", len(first["ids"]))
        dropped = r0.judged - r0.kept
        assert dropped > 50 and r0.kept > 10

        def swept() -> bool:
            return get(c, p, "r0").vectors_deleted == dropped - 1

        wait_for(swept, what="the dropped frames' vectors to be deleted",
                 progress=lambda: get(c, p, "r0").vectors_deleted, stall=60)  # fmt: skip
        kept = set(c.standing_campaign(p, "r0").frame_ids)
        assert protected not in kept
        assert _has_vector(running, p, "pool", first["ids"]) == kept | {protected}
        # the sweep that deleted them ran after every verdict of the shared pool was written
        assert get(c, p, "r1").vectors_deleted == 0 and get(c, p, "r1").judged - get(c, p, "r1").kept > 50
        assert _has_vector(running, p, "shared-pool", second["ids"]) == set(second["ids"])


def test_a_frame_sent_again_after_its_vector_was_deleted_is_deleted_again_when_dropped_again(
    shared: Running, project: str
) -> None:
    running, p = shared, project
    d = stream_data(uploads=1, seed=4, near=10, groups=2, background=40)
    batch = d["batches"][0]
    with running.client(running.admin_key) as c:
        create_stream_project(c, p, d)
        start(c, p, "first", retention_seconds=0)
        upload_batch(c, p, batch)
        first = wait_judged(c, p, "first", len(batch["ids"]))
        dropped = first.judged - first.kept
        wait_for(lambda: get(c, p, "first").vectors_deleted == dropped, what="the first sweep",
                 progress=lambda: get(c, p, "first").vectors_deleted, stall=60)  # fmt: skip
        gone = sorted(set(batch["ids"]) - set(c.standing_campaign(p, "first").frame_ids))
        assert not _has_vector(running, p, "pool", gone)
        # the same frames sent again, judged by a newer campaign (the first judges a frame once) and dropped
        start(c, p, "second", retention_seconds=0)
        again = [batch["ids"].index(f) for f in gone[:12]]
        upload_batch(c, p, {"ids": [batch["ids"][i] for i in again], "x": batch["x"][again],
                            "weather": [batch["weather"][i] for i in again]})  # fmt: skip
        second = wait_judged(c, p, "second", len(again))
        assert second.kept == 0
        wait_for(lambda: get(c, p, "second").vectors_deleted == len(again), what="the second sweep",
                 progress=lambda: get(c, p, "second").vectors_deleted, stall=60)  # fmt: skip
        assert not _has_vector(running, p, "pool", gone)
        assert get(c, p, "first").vectors_deleted == dropped  # its drops were swept once, and stay counted


def test_client_side_scoring_chooses_what_the_campaign_keeps(shared: Running, project: str) -> None:
    running, p = shared, project
    BUDGET = 70  # noqa: N806 - the last batch spends it
    d = stream_data(uploads=4, seed=3)
    b0, b1, b2, b3 = d["batches"]
    with running.client(running.admin_key) as c:
        create_stream_project(c, p, d)
        start(c, p, "edge", similarity_threshold=0.82, min_distance=0.1, budget=BUDGET)
        upload_batch(c, p, b0)  # the campaign keeps some frames first
        n0 = c.wait_for_standing_campaign(p, "edge", judged=len(b0["ids"]), timeout=240).campaign.judged
        assert n0 == len(b0["ids"])

        # the whole batch, scored on this side, then uploaded in one chunk: the same choice
        score = c.score_for_campaign(p, "edge", b1["ids"], b1["x"])
        assert score.kept and score.judged == len(b1["ids"])
        assert set(score.reasons.values()) >= {"kept", "below_threshold", "near_kept"}
        upload_batch(c, p, b1, chunk=len(b1["ids"]))
        wait_judged(c, p, "edge", n0 + len(b1["ids"]))
        assert c.standing_campaign(p, "edge").frame_ids[-len(score.kept) :] == score.kept
        before = get(c, p, "edge").kept

        # only the winners of the next batch are uploaded, in chunks of any size: every one is kept
        score = c.score_for_campaign(p, "edge", b2["ids"], b2["x"])
        winners = np.flatnonzero(score.kept_mask).tolist()
        upload_batch(c, p, {k: [b2[k][i] for i in winners] for k in ("ids", "weather")} | {"x": b2["x"][winners]},
                     chunk=7)  # fmt: skip
        after = wait_judged(c, p, "edge", n0 + len(b1["ids"]) + len(winners))
        assert after.kept == before + len(winners) and after.judged == n0 + len(b1["ids"]) + len(winners)
        assert set(c.standing_campaign(p, "edge").frame_ids[before:]) == set(score.kept)

        # the last batch spends the budget: it is judged until then, chunk after chunk, and the campaign is full
        score = c.score_for_campaign(p, "edge", b3["ids"], b3["x"], chunk_size=CHUNK)
        assert len(score.kept) == BUDGET - after.kept and score.judged < len(b3["ids"])
        upload_batch(c, p, b3)
        final = wait_state(c, p, "edge", spb.STANDING_CAMPAIGN_STATE_FULL)
        assert c.standing_campaign(p, "edge").frame_ids[after.kept :] == score.kept
        assert final.judged == after.judged + score.judged and final.kept == BUDGET
        assert c.score_for_campaign(p, "edge", b0["ids"], b0["x"]).kept == []  # a full campaign keeps nothing


def test_bad_standing_requests_are_refused_naming_the_field(shared: Running, project: str) -> None:
    running, p = shared, project
    inv, nf, fp = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION
    d = stream_data(uploads=0)
    ref = cpb.DatapointRef
    with running.client(running.admin_key) as c:
        create_stream_project(c, p, d)
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, segment=apb.Segment(
            name="taken", dataset="train", kind=apb.SEGMENT_KIND_OTHER), frame_ids=["t010"]))  # fmt: skip
        cases = [
            ({"name": ""}, inv, "name", "empty"),
            ({"name": "Bad Name"}, inv, "name", "segment name"),
            ({"name": "taken"}, grpc.StatusCode.ALREADY_EXISTS, "name", "'taken'"),
            ({"pool_dataset": ""}, inv, "pool_dataset", "empty"),
            ({"pool_dataset": "nope"}, nf, "pool_dataset", "'nope'"),
            ({"pool_dataset": "train"}, fp, "pool_dataset", "unlabeled pool"),
            ({"embedding_space": "nope"}, inv, "embedding_space", "clip"),
            ({"seed_embedding_space": "dino"}, fp, "seed_embedding_space", "dino@2"),
            ({"similarity_threshold": 0}, inv, "similarity_threshold", "(0, 1]"),
            ({"similarity_threshold": 1.5}, inv, "similarity_threshold", "(0, 1]"),
            ({"similarity_threshold": float("nan")}, inv, "similarity_threshold", "(0, 1]"),
            ({"min_distance": 2}, inv, "min_distance", "below 2"),
            ({"budget": 0}, inv, "budget", "100000"),
            ({"budget": 100_001}, inv, "budget", "100000"),
            ({"retention_seconds": -1}, inv, "retention_seconds", ">= 0"),
            ({"retention_seconds": float("inf")}, inv, "retention_seconds", ">= 0"),
            ({"seed_segment": ""}, inv, "seed_segment", "seed_frames"),
            ({"seed_segment": "nope"}, nf, "seed_segment", "'nope'"),
            ({"seed_frames": [ref(dataset="train", frame_id="t000")]}, inv, "seed_frames", "not both"),
            ({"seed_segment": "", "seed_frames": [ref(dataset="train", frame_id="")]}, inv, "seed_frames[0].frame_id",
             "empty"),
            ({"seed_segment": "", "seed_frames": [ref(dataset="train", frame_id="t000", object_id="o")]}, inv,
             "seed_frames[0].object_id", "a seed is a frame"),
            ({"seed_segment": "", "seed_frames": [ref(dataset="nope", frame_id="t000")]}, nf,
             "seed_frames[0].dataset", "'nope'"),
            ({"seed_segment": "", "seed_frames": [ref(dataset="train", frame_id="t000"),
                                                  ref(dataset="train", frame_id="ghost")]}, nf, "seed_frames[1]",
             "'ghost'"),
            ({"filter": cpb.Filter(all=[cpb.Condition(field="loss", equals=cpb.Value(number_value=1))])}, inv,
             "filter", "loss"),
        ]  # fmt: skip
        for overrides, code, field, needle in cases:
            with pytest.raises(grpc.RpcError) as e:
                start(c, p, **{"name": "ok", **overrides})
            assert e.value.code() == code, (overrides, e.value.details())
            assert field in e.value.details() and needle in e.value.details(), (overrides, e.value.details())
        for rpc, request in (
            (c.sampler.GetStandingCampaign, spb.GetStandingCampaignRequest(project=p, name="nope")),
            (c.sampler.StopStandingCampaign, spb.StopStandingCampaignRequest(project=p, name="nope")),
        ):
            with pytest.raises(grpc.RpcError) as e:
                rpc(request)
            assert e.value.code() == nf and "name" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            c.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project=p, name=""))
        assert e.value.code() == inv and "name" in e.value.details()
        assert not c.sampler.ListStandingCampaigns(spb.ListStandingCampaignsRequest(project=p)).campaigns
