"""The neighbour and embedding-map jobs with vectors in a real Milvus server: the all-in-one
server reads the frame vectors back from the server in chunks, and finds the same outliers,
duplicates and train/test leaks as with Milvus Lite (tests/server/test_analysis_neighbors.py):
planted digits 5-9 and one noise image among digits 0-4, exact and near copies across splits."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from cleanlab.outlier import OutOfDistribution
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from shoal.analysis import neighbors
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import Client
from shoal.common.data import embeddings
from shoal.common.stores.vectors import ServerVectorStore, collection_name
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import Running, finish_job, start_server
from tests.server.test_analysis_neighbors import planted

pytestmark = pytest.mark.integration

SPACE = "pixels"


@pytest.fixture
def project() -> str:
    """A project of its own: the Milvus server is shared by the whole session."""
    return f"nb-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def on_milvus_server(
    tmp_path: pathlib.Path, chdb_path: pathlib.Path, database: str, milvus_server: str, project: str
) -> Iterator[Running]:
    """The all-in-one server with its vectors in the Milvus server (metrics on chDB)."""
    settings = server_settings(tmp_path / "data", chdb_path, database, vectors_url=milvus_server)
    running = start_server(settings)
    yield running
    running.server.stop(grace=1)
    store = ServerVectorStore(url=milvus_server, timeout_seconds=30)
    try:
        name = collection_name(project, SPACE)
        if store.has_collection(name):
            store.drop_collection(name)
    finally:
        store.close()


def _with_noise_image(d: dict[str, Any]) -> dict[str, Any]:
    """``planted()`` and one more frame, in the test split: uniform noise at the digits' pixel
    scale, unlike anything else."""
    noise = np.random.default_rng(7).uniform(0, 16, (1, d["x"].shape[1])).astype(np.float32)
    return {
        **d,
        "x": np.concatenate([d["x"], noise]),
        "ids": [*d["ids"], "noise"],
        "labels": np.append(d["labels"], 0),
        "splits": [*d["splits"], "test"],
        "is_outlier": np.append(d["is_outlier"], True),
    }


def _upload(c: Client, project: str, d: dict[str, Any]) -> None:
    space = pb.EmbeddingSpace(name=SPACE, dimension=d["x"].shape[1], metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="raw", model_version="1")  # fmt: skip
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=i, name=str(i)) for i in range(10)],
        embedding_spaces=[space])))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
        name="all", kind=pb.DATASET_KIND_LABELED, splits=["train", "test"])))  # fmt: skip
    r = c.upload(project, "all", UploadColumns(frame_ids=d["ids"], splits=d["splits"], class_ids=d["labels"],
                                               media_uris=[f"s3://d/{i}.png" for i in d["ids"]],
                                               embeddings={SPACE: d["x"]}), progress=False)  # fmt: skip
    assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def _all(call: Any, request: Any, field: str) -> list[Any]:
    out: list[Any] = []
    token = ""
    while True:
        request.page.CopyFrom(cpb.PageRequest(page_size=500, page_token=token))
        resp = call(request)
        out += list(getattr(resp, field))
        token = resp.page.next_page_token
        if not token:
            return out


def test_outliers_duplicates_leaks_and_map_with_vectors_in_a_milvus_server(
    on_milvus_server: Running, milvus_server: str, project: str
) -> None:
    d = _with_noise_image(planted())
    with on_milvus_server.client(on_milvus_server.admin_key) as c:
        _upload(c, project, d)
        job = finish_job(c, project, c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=project, dataset="all", embedding_space=SPACE)).job)  # fmt: skip
        frames = _all(c.analysis.QueryOutliers, apb.QueryOutliersRequest(project=project, job_id=job.job_id), "frames")
        pairs = _all(c.analysis.QueryDuplicates, apb.QueryDuplicatesRequest(project=project, job_id=job.job_id),
                     "pairs")  # fmt: skip
        leaks = _all(c.analysis.QueryDuplicates, apb.QueryDuplicatesRequest(
            project=project, job_id=job.job_id, cross_split_only=True), "pairs")  # fmt: skip
        summary = c.analysis.QueryOutliers(apb.QueryOutliersRequest(project=project, job_id=job.job_id)).summary

        # the map job reads the same vectors from the server: every frame gets a point
        job_map = finish_job(c, project, c.analysis.StartEmbeddingMap(apb.StartEmbeddingMapRequest(
            project=project, dataset="all", embedding_space=SPACE)).job, timeout=300)  # fmt: skip
        view = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=project, job_id=job_map.job_id,
                                                                   max_points=5000))  # fmt: skip

    # the vectors were in the server, not in a Milvus Lite file
    store = ServerVectorStore(url=milvus_server, timeout_seconds=30)
    try:
        assert store.count(collection_name(project, SPACE), partition="all") == len(d["ids"])
    finally:
        store.close()

    # every frame scored, highest first; the noise image first, then the injected digits 5-9,
    # ranked at least as well as the peers on the same vectors
    assert len(frames) == summary.frames == len(d["ids"]) and summary.exact_search and summary.k == 10
    scores = [f.outlier_score for f in frames]
    assert scores == sorted(scores, reverse=True) and frames[0].ref.frame_id == "noise"
    index = {f: i for i, f in enumerate(d["ids"])}
    score = np.zeros(len(d["ids"]))
    for f in frames:
        score[index[f.ref.frame_id]] = f.outlier_score
    truth = d["is_outlier"]
    ours = roc_auc_score(truth, score)
    cleanlab_auc = roc_auc_score(truth, -OutOfDistribution().fit_score(features=d["x"]))
    forest_auc = roc_auc_score(truth, -IsolationForest(random_state=0).fit(d["x"]).score_samples(d["x"]))
    print(f"outlier AUROC: shoal {ours:.4f}, cleanlab {cleanlab_auc:.4f}, isolation forest {forest_auc:.4f}")
    assert ours >= cleanlab_auc - 1e-9 and ours >= forest_auc and ours > 0.9

    # every planted duplicate found (recall 1.0 at the default threshold), the exact ones as exact
    found = {(p.a.frame_id, p.b.frame_id): p for p in pairs}
    for src, dup, exact, _ in d["pairs"]:
        key = (min(src, dup), max(src, dup))
        assert key in found, key
        assert found[key].exact is exact and (found[key].distance <= 1e-6) is exact
    assert summary.exact_duplicate_pairs >= 10 and summary.near_duplicate_pairs >= 10
    # and every leak across splits, and only pairs across splits as leaks
    leak_keys = {(p.a.frame_id, p.b.frame_id) for p in leaks}
    want = {(min(s, t), max(s, t)) for s, t, _, leak in d["pairs"] if leak}
    assert want <= leak_keys and all(p.split_a != p.split_b for p in leaks) and summary.cross_split_pairs == len(leaks)

    # neighbour labels: a frame's neighbours nearest first, their majority label and disagreement
    by_id = {f.ref.frame_id: f for f in frames}
    f = by_id[d["ids"][0]]
    assert len(f.neighbors) == 10 and [n.distance for n in f.neighbors] == sorted(n.distance for n in f.neighbors)
    labels = {fid: int(lab) for fid, lab in zip(d["ids"], d["labels"], strict=True)}
    votes = [labels[n.frame_id] for n in f.neighbors]
    assert f.neighbor_label == max(sorted(set(votes)), key=votes.count)
    assert f.label_disagreement == pytest.approx(sum(v != labels[f.ref.frame_id] for v in votes) / 10)

    # the map: one finite point per frame, with its label and split
    points = {p.frame_id: p for p in view.points}
    assert view.summary.frames == view.total_in_viewport == len(points) == len(d["ids"])
    assert all(np.isfinite([p.x, p.y]).all() for p in view.points)
    assert [points[i].label_class for i in d["ids"]] == [int(v) for v in d["labels"]]
    assert [points[i].split for i in d["ids"]] == d["splits"]


def test_a_dataset_larger_than_one_read_batch_is_read_whole_from_the_milvus_server(
    on_milvus_server: Running, project: str
) -> None:
    """More frames than the job reads from the store at once (still an exact graph): every frame
    comes back once, with the exact copies across splits and the one far-away frame found."""
    n = embeddings.READ_BATCH + 5_000
    assert n + 11 <= neighbors.EXACT_LIMIT
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    sources = rng.choice(n, size=10, replace=False)
    x = np.concatenate([x, x[sources], 40 * rng.normal(size=(1, 16)).astype(np.float32)])
    ids = [f"g{i:06d}" for i in range(n)] + [f"copy{j}" for j in range(10)] + ["far"]
    splits = ["train"] * n + ["test"] * 10 + ["train"]
    with on_milvus_server.client(on_milvus_server.admin_key) as c:
        space = pb.EmbeddingSpace(name=SPACE, dimension=16, metric=pb.DISTANCE_METRIC_L2,
                                  level=pb.EMBEDDING_LEVEL_FRAME, model_name="random", model_version="1")  # fmt: skip
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, embedding_spaces=[space])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
            name="big", kind=pb.DATASET_KIND_UNLABELED_POOL, splits=["train", "test"])))  # fmt: skip
        r = c.upload(project, "big", UploadColumns(frame_ids=ids, splits=splits, embeddings={SPACE: x}), progress=False)
        assert c.wait_for_upload(project, r.upload_id, timeout=300).state == pb.UPLOAD_STATE_COMPLETED
        job = finish_job(c, project, c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=project, dataset="big", embedding_space=SPACE)).job, timeout=300)  # fmt: skip
        frames = _all(c.analysis.QueryOutliers, apb.QueryOutliersRequest(project=project, job_id=job.job_id), "frames")
        leaks = _all(c.analysis.QueryDuplicates, apb.QueryDuplicatesRequest(
            project=project, job_id=job.job_id, cross_split_only=True), "pairs")  # fmt: skip
        summary = c.analysis.QueryOutliers(apb.QueryOutliersRequest(project=project, job_id=job.job_id)).summary

    got = [f.ref.frame_id for f in frames]
    assert len(got) == len(set(got)) == summary.frames == len(ids) and set(got) == set(ids)
    assert summary.exact_search and summary.metric == "euclidean" and got[0] == "far"
    # each copy is an exact duplicate of its source, across splits; random data holds no others
    want = {(min(ids[s], f"copy{j}"), max(ids[s], f"copy{j}")) for j, s in enumerate(sources)}
    assert {(p.a.frame_id, p.b.frame_id) for p in leaks if p.exact} == want
    assert summary.exact_duplicate_pairs == 10
