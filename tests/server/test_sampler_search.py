"""Similarity search through the sampler, with vectors in Milvus Lite: results equal an exact numpy
search over the same vectors, filters and exclusions hold (excluded frames never come back),
several seeds combine, and seeds from another embedding model are refused."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sampler import search
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running

D = 24


def _space(name: str, model: str, version: str = "1", metric: int = pb.DISTANCE_METRIC_COSINE) -> pb.EmbeddingSpace:
    return pb.EmbeddingSpace(name=name, dimension=D, metric=metric, level=pb.EMBEDDING_LEVEL_FRAME,
                             model_name=model, model_version=version)  # fmt: skip


def data(pool: int = 3000, train: int = 200, seed: int = 0) -> dict:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (12, D))
    xp = centres[rng.integers(0, 12, pool)] + rng.normal(0, 0.6, (pool, D))
    xt = centres[rng.integers(0, 12, train)] + rng.normal(0, 0.6, (train, D))
    return {
        "pool_ids": [f"p{i:05d}" for i in range(pool)],
        "pool_x": xp.astype(np.float32),
        "weather": rng.choice(["sun", "fog", "rain"], pool),
        "labeled": rng.random(pool) < 0.1,
        "train_ids": [f"t{i:04d}" for i in range(train)],
        "train_x": xt.astype(np.float32),
    }


def upload(running: Running, d: dict, project: str = "shop") -> None:  # type: ignore[type-arg]
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a"),
                                                                         pb.ClassDef(id=1, name="b")],
            embedding_spaces=[_space("clip", "clip"), _space("clip-copy", "clip"), _space("dino", "dino", "2"),
                              _space("euclid", "clip-l2", metric=pb.DISTANCE_METRIC_L2)])))  # fmt: skip
        for name, kind in (("train", pb.DATASET_KIND_LABELED), ("pool", pb.DATASET_KIND_UNLABELED_POOL)):
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
                name=name, kind=kind, splits=[name])))  # fmt: skip
        n = len(d["train_ids"])
        r = c.upload(project, "train", UploadColumns(frame_ids=d["train_ids"], class_ids=[0] * n, embeddings={
            "clip": d["train_x"], "dino": d["train_x"], "euclid": d["train_x"]}), progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        x = d["pool_x"]
        r = c.upload(project, "pool", UploadColumns(
            frame_ids=d["pool_ids"], splits=["pool"] * len(x), media_uris=[f"s3://p/{f}.jpg" for f in d["pool_ids"]],
            metadata=[{"weather": str(w)} for w in d["weather"]],
            embeddings={"clip": x, "clip-copy": x, "dino": x, "euclid": x}), progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        labeled = [f for f, lab in zip(d["pool_ids"], d["labeled"], strict=True) if lab]
        r = c.upload(project, "pool", UploadColumns(frame_ids=labeled, class_ids=[1] * len(labeled),
                                                   skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def exact_top(sims: np.ndarray, ids: list[str], k: int, keep: np.ndarray | None = None) -> list[str]:
    """The k best ids by similarity (ties by id), among ``keep``."""
    order = sorted(range(len(ids)), key=lambda i: (-sims[i], ids[i]))
    return [ids[i] for i in order if keep is None or keep[i]][:k]


def seed_ref(dataset: str, frame: str) -> spb.Seed:
    return spb.Seed(ref=cpb.DatapointRef(dataset=dataset, frame_id=frame))


def _search(c, p: str, **kwargs) -> spb.SearchSimilarResponse:  # type: ignore[no-untyped-def]
    kwargs.setdefault("embedding_space", "clip")
    return c.sampler.SearchSimilar(spb.SearchSimilarRequest(project=p, pool_dataset="pool", **kwargs))


@pytest.fixture
def shop(shared: Running, project: str) -> dict:  # type: ignore[type-arg]
    """The data, uploaded into the test's own project on the module's server."""
    d = data()
    upload(shared, d, project)
    return d


def test_search_equals_exact_numpy_search_with_filters_and_exclusions(
    shared: Running,
    project: str,
    shop: dict,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    running, p = shared, project
    d = shop
    ids, x = d["pool_ids"], d["pool_x"]
    with running.client(running.admin_key) as c:
        # one frame seed: the 50 nearest pool frames, as exact search finds them, with their similarity
        r = _search(c, p, seeds=[seed_ref("train", "t0007")], k=50)
        sims = cosine(x, d["train_x"][7:8])[:, 0]
        assert r.metric == "cosine" and not r.truncated
        assert [i.ref.frame_id for i in r.items] == exact_top(sims, ids, 50)
        for i in r.items:
            j = ids.index(i.ref.frame_id)
            assert i.similarity == pytest.approx(sims[j], abs=1e-5) and i.distance == pytest.approx(
                1 - sims[j], abs=1e-5
            )
            assert i.ref.dataset == "pool" and i.media_uri == f"s3://p/{i.ref.frame_id}.jpg" and i.split == "pool"

        # a filter and both exclusions: nothing excluded comes back, and the rest is still exact
        near = [i.ref.frame_id for i in r.items[:20]]
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, segment=apb.Segment(
            name="sent", dataset="pool", kind=apb.SEGMENT_KIND_OTHER), frame_ids=near))  # fmt: skip
        fog = cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="fog"))])
        keep = (d["weather"] == "fog") & ~d["labeled"] & ~np.isin(ids, near)
        want = exact_top(sims, ids, 40, keep)
        for limit in (search.PUSHDOWN_LIMIT, 5):  # the scope in the vector search's filter, then over-fetching
            monkeypatch.setattr(search, "PUSHDOWN_LIMIT", limit)
            got = _search(c, p, seeds=[seed_ref("train", "t0007")], k=40, filter=fog, exclude_labeled=True,
                          exclude_segments=["sent"])  # fmt: skip
            assert [i.ref.frame_id for i in got.items] == want, limit
            assert not set(near) & {i.ref.frame_id for i in got.items}
        monkeypatch.undo()

        # several seeds: max takes each frame's best seed, mean its mean similarity over the seeds
        seeds = [seed_ref("train", f"t{j:04d}") for j in (1, 2, 3)] + [spb.Seed(vector=spb.Vector(values=x[11]))]
        qs = np.concatenate([d["train_x"][1:4], x[11:12]])
        all_sims = cosine(x, qs)
        best = _search(c, p, seeds=seeds, k=60)
        assert [i.ref.frame_id for i in best.items] == exact_top(all_sims.max(axis=1), ids, 60)
        assert best.items[0].ref.frame_id == ids[11] and best.items[0].seed_index == 3  # the vector seed's own frame
        for i in best.items:
            assert i.seed_index == int(all_sims[ids.index(i.ref.frame_id)].argmax())
        mean = _search(c, p, seeds=seeds, k=60, aggregation=spb.AGGREGATION_MEAN)
        # the centre of the seeds finds the exact candidates in a cosine space
        assert [i.ref.frame_id for i in mean.items] == exact_top(all_sims.mean(axis=1), ids, 60)
        assert mean.items[0].similarity == pytest.approx(float(all_sims.mean(axis=1).max()), abs=1e-5)

        # an L2 space: similarity is minus the Euclidean distance
        l2 = _search(c, p, seeds=[seed_ref("train", "t0007")], k=10, embedding_space="euclid")
        dist = np.linalg.norm(x - d["train_x"][7], axis=1)
        assert l2.metric == "euclidean" and [i.ref.frame_id for i in l2.items] == exact_top(-dist, ids, 10)
        assert l2.items[0].distance == pytest.approx(dist.min(), rel=1e-4)

        # a seed space of the same model and version works; a filter nothing passes finds nothing
        same = _search(
            c, p, seeds=[seed_ref("pool", ids[5])], k=5, embedding_space="clip", seed_embedding_space="clip-copy"
        )
        assert same.items[0].ref.frame_id == ids[5]
        none = cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="snow"))])
        assert list(_search(c, p, seeds=[seed_ref("train", "t0007")], k=5, filter=none).items) == []


def test_search_refuses_mixed_models_and_bad_input(shared: Running, project: str, shop: dict) -> None:  # type: ignore[type-arg]
    running, p = shared, project
    good = [seed_ref("train", "t0001")]
    cases = [
        ({"seeds": good, "seed_embedding_space": "dino"}, grpc.StatusCode.FAILED_PRECONDITION,
         "seed_embedding_space", "dino@2"),
        ({"seeds": [spb.Seed(vector=spb.Vector(values=[0.1] * D))], "vectors_model_name": "dino",
          "vectors_model_version": "2"}, grpc.StatusCode.FAILED_PRECONDITION, "vectors_model_name", "clip@1"),
        ({"seeds": []}, grpc.StatusCode.INVALID_ARGUMENT, "seeds", "at least one seed"),
        ({"seeds": [spb.Seed()]}, grpc.StatusCode.INVALID_ARGUMENT, "seeds[0]", "ref or vector"),
        ({"seeds": [spb.Seed(vector=spb.Vector(values=[0.1] * 3))]}, grpc.StatusCode.INVALID_ARGUMENT,
         "seeds[0].vector.values", "24-d"),
        ({"seeds": [spb.Seed(vector=spb.Vector(values=[float("nan")] * D))]}, grpc.StatusCode.INVALID_ARGUMENT,
         "seeds[0].vector.values", "finite"),
        ({"seeds": [good[0], seed_ref("train", "nope")]}, grpc.StatusCode.NOT_FOUND, "seeds[1].ref", "'nope'"),
        ({"seeds": [seed_ref("nope", "t1")]}, grpc.StatusCode.NOT_FOUND, "seeds[0].ref.dataset", "'nope'"),
        ({"seeds": good, "k": 10_001}, grpc.StatusCode.INVALID_ARGUMENT, "k", "10000"),
        ({"seeds": good, "embedding_space": "nope"}, grpc.StatusCode.INVALID_ARGUMENT, "embedding_space", "clip"),
        ({"seeds": good, "pool_dataset": "nope"}, grpc.StatusCode.NOT_FOUND, "pool_dataset", "'nope'"),
        ({"seeds": good, "exclude_segments": ["nope"]}, grpc.StatusCode.NOT_FOUND, "exclude_segments[0]", "'nope'"),
        ({"seeds": good, "filter": cpb.Filter(all=[cpb.Condition(field="loss", equals=cpb.Value(number_value=1))])},
         grpc.StatusCode.INVALID_ARGUMENT, "filter", "loss"),
    ]  # fmt: skip
    with running.client(running.admin_key) as c:
        for overrides, code, field, needle in cases:
            kwargs = {"project": p, "pool_dataset": "pool", "embedding_space": "clip", **overrides}
            with pytest.raises(grpc.RpcError) as e:
                c.sampler.SearchSimilar(spb.SearchSimilarRequest(**kwargs))
            assert e.value.code() == code, (overrides, e.value.details())
            assert field in e.value.details() and needle in e.value.details(), (overrides, e.value.details())
