"""The neighbour job through the server, with vectors in Milvus Lite: outliers against cleanlab's
OutOfDistribution and scikit-learn's IsolationForest, planted duplicates and leaks across splits,
and neighbour labels."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from cleanlab.outlier import OutOfDistribution
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, computed_answers, create_pixel_digits, finish_job, preparer_of, wait_for


def planted() -> dict:  # type: ignore[type-arg]
    """Digits 0-4 as the data, 5 % of digits 5-9 injected as outliers, 10 exact and 10 near
    copies of data frames; the copies of 12 of them are in the test split (leaks)."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    inl = np.flatnonzero(y < 5)
    out = rng.choice(np.flatnonzero(y >= 5), size=round(0.05 * len(inl)), replace=False)
    base = np.concatenate([inl, out])
    vecs = [x[base]]
    ids = [f"f{i:05d}" for i in range(len(base))]
    labels = list(y[base])
    splits = ["train"] * len(base)
    pairs = []
    sources = rng.choice(len(inl), size=20, replace=False)
    for j, src in enumerate(sources):
        v = x[inl[src]].copy()
        if j >= 10:  # near: a little noise
            v = v + rng.normal(0, 0.02, v.shape)
        vecs.append(v[None, :])
        ids.append(f"dup{j:02d}")
        labels.append(int(y[inl[src]]))
        splits.append("test" if j % 10 < 6 else "train")
        pairs.append((ids[src], f"dup{j:02d}", j < 10, splits[-1] != "train"))
    return {
        "x": np.concatenate(vecs).astype(np.float32),
        "ids": ids,
        "labels": np.array(labels),
        "splits": splits,
        "is_outlier": np.array([i >= len(inl) and i < len(base) for i in range(len(ids))]),
        "pairs": pairs,
    }


def _upload(running: Running, p: str, d: dict) -> None:  # type: ignore[type-arg]
    with running.client(running.admin_key) as c:
        create_pixel_digits(c, p)
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="all", kind=pb.DATASET_KIND_LABELED, splits=["train", "test"])))  # fmt: skip
        r = c.upload(p, "all", UploadColumns(frame_ids=d["ids"], splits=d["splits"], class_ids=d["labels"],
                                                    media_uris=[f"s3://d/{i}.png" for i in d["ids"]],
                                                    embeddings={"pixels": d["x"]}), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def _finish(c, p: str, job: cpb.Job) -> cpb.Job:  # type: ignore[no-untyped-def]
    return finish_job(c, p, job)


def _all(call, request, field: str) -> list:  # type: ignore[no-untyped-def,type-arg]
    out, token = [], ""
    while True:
        request.page.CopyFrom(cpb.PageRequest(page_size=500, page_token=token))
        resp = call(request)
        out += list(getattr(resp, field))
        token = resp.page.next_page_token
        if not token:
            return out


def test_outliers_duplicates_and_leaks(shared: Running, project: str) -> None:
    running, p = shared, project
    d = planted()
    _upload(running, p, d)
    with running.client(running.admin_key) as c:
        job = _finish(c, p, c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=p, dataset="all", embedding_space="pixels")).job)  # fmt: skip
        frames = _all(c.analysis.QueryOutliers, apb.QueryOutliersRequest(project=p, job_id=job.job_id), "frames")
        pairs = _all(c.analysis.QueryDuplicates, apb.QueryDuplicatesRequest(project=p, job_id=job.job_id),
                     "pairs")  # fmt: skip
        leaks = _all(c.analysis.QueryDuplicates, apb.QueryDuplicatesRequest(
            project=p, job_id=job.job_id, cross_split_only=True), "pairs")  # fmt: skip
        # the Findings page's first pages (24 outliers, 24 pairs) are prepared once the job has finished
        preparer = preparer_of(running)
        wait_for(lambda: preparer.job_prepared(p, job.job_id), what="the findings' first pages to be prepared")
        computed = computed_answers()
        first = cpb.PageRequest(page_size=24)
        top = c.analysis.QueryOutliers(apb.QueryOutliersRequest(project=p, job_id=job.job_id, page=first)).frames
        c.analysis.QueryDuplicates(apb.QueryDuplicatesRequest(project=p, job_id=job.job_id, page=first))
        assert computed_answers() == computed
        summary = c.analysis.QueryOutliers(apb.QueryOutliersRequest(project=p, job_id=job.job_id)).summary
        # pages asked again are kept: the same answers without reading the job's results again
        computed = computed_answers()
        again = _all(c.analysis.QueryOutliers, apb.QueryOutliersRequest(project=p, job_id=job.job_id), "frames")
        pairs_again = _all(c.analysis.QueryDuplicates, apb.QueryDuplicatesRequest(project=p, job_id=job.job_id),
                           "pairs")  # fmt: skip
        assert computed_answers() == computed
        assert again == frames and pairs_again == pairs and list(top) == frames[:24]

    # outliers: the injected digits 5-9 rank high, at least as well as the peers on the same vectors
    index = {f: i for i, f in enumerate(d["ids"])}
    score = np.zeros(len(d["ids"]))
    for f in frames:
        score[index[f.ref.frame_id]] = f.outlier_score
    assert len(frames) == len(d["ids"]) and summary.exact_search and summary.k == 10
    truth = d["is_outlier"]
    ours = roc_auc_score(truth, score)
    ood = OutOfDistribution()
    cleanlab_auc = roc_auc_score(truth, -ood.fit_score(features=d["x"]))
    forest_auc = roc_auc_score(truth, -IsolationForest(random_state=0).fit(d["x"]).score_samples(d["x"]))
    print(f"outlier AUROC: shoal {ours:.4f}, cleanlab {cleanlab_auc:.4f}, isolation forest {forest_auc:.4f}")
    assert ours >= cleanlab_auc - 1e-9 and ours >= forest_auc and ours > 0.9
    scores = [f.outlier_score for f in frames]
    assert scores == sorted(scores, reverse=True)

    # every planted duplicate is found (recall 1.0 at the default threshold), exact ones as exact
    found = {(p.a.frame_id, p.b.frame_id): p for p in pairs}
    for src, dup, exact, _ in d["pairs"]:
        key = (min(src, dup), max(src, dup))
        assert key in found, key
        assert found[key].exact is exact and (found[key].distance <= 1e-6) is exact
    assert summary.exact_duplicate_pairs >= 10 and summary.near_duplicate_pairs >= 10
    # and every leak across splits
    leak_keys = {(p.a.frame_id, p.b.frame_id) for p in leaks}
    want = {(min(s, t), max(s, t)) for s, t, _, leak in d["pairs"] if leak}
    assert want <= leak_keys and all(p.split_a != p.split_b for p in leaks) and summary.cross_split_pairs == len(leaks)

    # neighbour labels: a frame's neighbours, their majority label and disagreement
    by_id = {f.ref.frame_id: f for f in frames}
    f = by_id[d["ids"][0]]
    assert len(f.neighbors) == 10 and [n.distance for n in f.neighbors] == sorted(n.distance for n in f.neighbors)
    labels = {fid: int(lab) for fid, lab in zip(d["ids"], d["labels"], strict=True)}
    votes = [labels[n.frame_id] for n in f.neighbors]
    assert f.neighbor_label == max(sorted(set(votes)), key=votes.count)
    assert f.label_disagreement == pytest.approx(sum(v != labels[f.ref.frame_id] for v in votes) / 10)
    assert f.media_uri == f"s3://d/{f.ref.frame_id}.png"


def test_within_class_outliers_are_found_where_the_global_score_misses_them(shared: Running, project: str) -> None:
    """15 images of other digits (three each of 1, 2, 6, 7 and 9) labeled 0 sit among their own
    kind (not outlying globally) but far from every 0: the within-class score ranks them first;
    unlabeled frames get none."""
    running, p = shared, project
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(3)
    odd = np.concatenate([rng.choice(np.flatnonzero(y == v), size=3, replace=False) for v in (1, 2, 6, 7, 9)])
    labels = y.copy()
    labels[odd] = 0
    unlabeled = rng.choice(np.setdiff1d(np.arange(len(y)), odd), size=20, replace=False)
    ids = [f"f{i:05d}" for i in range(len(y))]
    d = {"ids": ids, "splits": ["train"] * len(y), "labels": labels, "x": x.astype(np.float32)}
    d["labels"] = np.where(np.isin(np.arange(len(y)), unlabeled), -1, labels)
    _upload(running, p, d)
    with running.client(running.admin_key) as c:
        job = _finish(c, p, c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=p, dataset="all", embedding_space="pixels")).job)  # fmt: skip
        by_class = _all(c.analysis.QueryOutliers, apb.QueryOutliersRequest(
            project=p, job_id=job.job_id, order=apb.OUTLIER_ORDER_CLASS_OUTLIER), "frames")  # fmt: skip
    truth = np.isin(np.arange(len(y)), odd)
    index = {f: i for i, f in enumerate(ids)}
    within, overall = np.zeros(len(y)), np.zeros(len(y))
    for f in by_class:
        i = index[f.ref.frame_id]
        overall[i] = f.outlier_score
        assert f.HasField("class_outlier_score") is (i not in set(unlabeled)), f.ref.frame_id
        within[i] = f.class_outlier_score if f.HasField("class_outlier_score") else -1
    ranks = sorted(i for i, f in enumerate(by_class) if truth[index[f.ref.frame_id]])
    assert ranks[:10] == list(range(10))  # the first ten are planted (a few odd real zeros follow)
    assert roc_auc_score(truth, within) > 0.99
    assert roc_auc_score(truth, overall) < 0.7  # the global score cannot tell them
    assert all(not f.HasField("class_outlier_score") for f in by_class[-20:])  # unlabeled last


def test_label_issues_are_explained_by_neighbour_labels(shared: Running, project: str) -> None:
    running, p = shared, project
    d = planted()
    _upload(running, p, d)
    rng = np.random.default_rng(1)
    # a model that is sure of the true digit, and 30 labels flipped after it predicted
    probs = np.full((len(d["ids"]), 10), 0.02, dtype=np.float32)
    probs[np.arange(len(d["ids"])), d["labels"]] = 0.82
    flipped = rng.choice(len(d["ids"]), size=30, replace=False)
    given = d["labels"].copy()
    given[flipped] = (given[flipped] + 1) % 10
    with running.client(running.admin_key) as c:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="oracle", dataset="all", model_name="oracle", model_version="1")))  # fmt: skip
        r = c.upload(p, "all", UploadColumns(frame_ids=d["ids"], class_ids=given, inference_set="oracle",
                                                    probabilities=probs, skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        near = _finish(c, p, c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=p, dataset="all", embedding_space="pixels")).job)  # fmt: skip
        issues = _finish(c, p, c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project=p, inference_set="oracle")).job)  # fmt: skip
        rows = _all(c.analysis.QueryLabelIssues, apb.QueryLabelIssuesRequest(
            project=p, job_id=issues.job_id, neighbor_job_id=near.job_id), "issues")  # fmt: skip
    assert {r.ref.frame_id for r in rows} == {d["ids"][i] for i in flipped}
    # the neighbours mostly carry the true digit, not the flipped label
    agree = [r.neighbor_label == d["labels"][d["ids"].index(r.ref.frame_id)] for r in rows]
    assert sum(agree) >= 0.8 * len(rows) and all(r.HasField("neighbor_disagreement") for r in rows)


def test_neighbor_job_checks_its_input(shared: Running, project: str) -> None:
    running, p = shared, project
    _upload(running, p, planted())
    with running.client(running.admin_key) as c:
        for req, field in (
            (apb.StartNeighborAnalysisRequest(project=p, dataset="all", embedding_space="nope"),
             "embedding_space"),
            (apb.StartNeighborAnalysisRequest(project=p, dataset="all", embedding_space="pixels", k=1000), "k"),
            (apb.StartNeighborAnalysisRequest(project=p, dataset="", embedding_space="pixels"), "dataset"),
        ):  # fmt: skip
            with pytest.raises(grpc.RpcError) as info:
                c.analysis.StartNeighborAnalysis(req)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in info.value.details()
        job = c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=p, dataset="all", embedding_space="pixels", k=5)).job  # fmt: skip
        # a running or queued job has no result yet; a finished one of another kind is refused
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(project=p, job_id=job.job_id))
        assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
        _finish(c, p, job)
        assert c.analysis.QueryOutliers(apb.QueryOutliersRequest(project=p, job_id=job.job_id)).summary.k == 5


def test_a_graph_built_in_shards_answers_as_the_exact_graph_and_a_missing_shard_fails_the_job(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the Pods of an Indexed Job do (shoal job run --shards 3, then --after-shards 3), on the
    server's stores: each shard writes the neighbours of its third of the frames, and the run that
    finishes the job scores the whole graph, which is the exact one. A shard that never ran fails the
    job, saying how many frames have neighbours; a Pod made for an older submission does nothing. Each
    shard reads every vector once, for its slice and its classes alike."""
    from shoal.analysis import neighbors
    from shoal.common import jobs

    running, p = shared, project
    d = planted()
    _upload(running, p, d)
    service = next(w for s in running.server.specs for w in s.workers
                   if isinstance(w, jobs.JobRunner) and w.store.service == "analysis")  # fmt: skip
    pod = jobs.JobRunner(service.store, service.kinds)  # a Pod's runner: never started, runs what it is told
    params = {"dataset": "all", "embedding_space": "pixels", "k": "10", "duplicate_distance": repr(0.0)}
    first, _ = service.store.submit(p, neighbors.KIND, params)
    r1 = jobs.revision(first)
    assert pod.run_shard(p, first.job_id, r1, 0, 3) and pod.run_shard(p, first.job_id, r1, 1, 3)
    failed = pod.run_one(p, first.job_id, expect=r1, shards=3)
    n = len(d["ids"])
    written = len(neighbors.shard_rows(n, 0, 3)) + len(neighbors.shard_rows(n, 1, 3))
    assert failed.state == jobs.FAILED and f"wrote the neighbours of {written} of {n} frames" in failed.message

    again, _ = service.store.submit(p, neighbors.KIND, params, rerun=True)
    r2 = jobs.revision(again)
    assert not pod.run_shard(p, first.job_id, r1, 2, 3)  # made for the first submission: nothing to do
    store = running.server.stores.vectors
    real_get, read = store.get, []

    def get(collection: str, ids: list[str], *, with_vectors: bool = True) -> object:
        read.append(len(ids) if with_vectors else 0)
        return real_get(collection, ids, with_vectors=with_vectors)

    for i in range(3):
        read.clear()
        monkeypatch.setattr(store, "get", get)
        assert pod.run_shard(p, again.job_id, r2, i, 3)
        monkeypatch.setattr(store, "get", real_get)
        assert sum(read) == n  # every vector once, for its slice and its classes alike
    rows = running.server.stores.metrics.query(
        "SELECT count(), uniqExact(frame_id) FROM knn_graph_parts FINAL WHERE project = {p:String}"
        " AND job_id = {j:String}",
        {"p": p, "j": again.job_id},
    ).rows
    assert rows[0] == (n, n)  # every frame's neighbours, once, from three shards
    assert service.store.get(p, again.job_id).state == jobs.PENDING  # the shards never write the job
    done = pod.run_one(p, again.job_id, expect=r2, shards=3)
    assert done.state == jobs.SUCCEEDED, done.message

    with running.client(running.admin_key) as c:
        frames = _all(c.analysis.QueryOutliers, apb.QueryOutliersRequest(project=p, job_id=again.job_id), "frames")
        pairs = _all(c.analysis.QueryDuplicates, apb.QueryDuplicatesRequest(project=p, job_id=again.job_id),
                     "pairs")  # fmt: skip
    _, exact = neighbors.knn(d["x"], 10, "cosine")  # a COSINE space, fewer frames than EXACT_LIMIT: the exact graph
    index = {f: i for i, f in enumerate(d["ids"])}
    assert len(frames) == n
    for f in frames:
        np.testing.assert_allclose([x.distance for x in f.neighbors], exact[index[f.ref.frame_id]], atol=1e-4)
    found = {tuple(sorted((x.a.frame_id, x.b.frame_id))) for x in pairs}
    assert {tuple(sorted((a, b))) for a, b, _, _ in d["pairs"]} <= found


def test_a_graph_too_large_for_exact_shards_is_built_in_cells_shared_by_the_shards(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the exact shards' limit (lowered here to the test's size), each shard builds the graphs of its
    share of overlapping k-means cells, and the run that finishes the job merges them: every frame gets its
    k neighbours, nearly all of them the exact ones, the planted copies are found as duplicates, and the
    shards also build the graphs within classes, dealt by size (one the finishing run builds when no shard did),
    and the parts are gone once the job is done. The finishing run holds the vectors of that class only."""
    from shoal.analysis import neighbors
    from shoal.common import jobs

    monkeypatch.setattr(neighbors, "SHARDED_EXACT_LIMIT", 200)
    monkeypatch.setattr(neighbors, "PARTITIONED_CELL_FRAMES", 400)  # about 2 x 1,000 / 400 = 5 cells
    running, p = shared, project
    d = planted()
    _upload(running, p, d)
    n = len(d["ids"])
    service = next(w for s in running.server.specs for w in s.workers
                   if isinstance(w, jobs.JobRunner) and w.store.service == "analysis")  # fmt: skip
    pod = jobs.JobRunner(service.store, service.kinds)
    params = {"dataset": "all", "embedding_space": "pixels", "k": "10", "duplicate_distance": repr(0.0)}
    job, _ = service.store.submit(p, neighbors.KIND, params)
    r = jobs.revision(job)
    assert all(pod.run_shard(p, job.job_id, r, i, 2) for i in range(2))
    parts = running.server.stores.metrics.query(
        "SELECT count(), uniqExact(frame_id), uniqExact(part) FROM knn_graph_parts FINAL"
        " WHERE project = {p:String} AND job_id = {j:String}",
        {"p": p, "j": job.job_id},
    ).rows[0]
    assert parts[1] == n and parts[0] == 2 * n and parts[2] >= 4  # each frame in two cells, of several
    scored = running.server.stores.metrics.query(
        "SELECT count() FROM knn_class_parts FINAL WHERE project = {p:String} AND job_id = {j:String}",
        {"p": p, "j": job.job_id},
    ).rows[0][0]
    assert scored == n  # the graphs within classes, dealt to the shards: every labeled frame once
    # as if a shard had not built class 3's graph: the finishing run builds it
    running.server.stores.metrics.command(
        "DELETE FROM knn_class_parts WHERE project = {p:String} AND job_id = {j:String} AND label_class = 3",
        {"p": p, "j": job.job_id},
    )
    # the finishing run reads which frames have a vector, and the vectors of class 3's frames only
    store = running.server.stores.vectors
    read, real_get = [], store.get

    def get(collection: str, ids: list[str], *, with_vectors: bool = True) -> Any:
        read.append((len(ids), with_vectors))
        return real_get(collection, ids, with_vectors=with_vectors)

    monkeypatch.setattr(store, "get", get)
    done = pod.run_one(p, job.job_id, expect=r, shards=2)
    monkeypatch.setattr(store, "get", real_get)
    assert done.state == jobs.SUCCEEDED, done.message
    assert sum(m for m, with_vectors in read if not with_vectors) == n
    assert sum(m for m, with_vectors in read if with_vectors) == int((d["labels"] == 3).sum()) > 0

    with running.client(running.admin_key) as c:
        result = c.analysis.QueryOutliers(apb.QueryOutliersRequest(project=p, job_id=job.job_id))
        frames = _all(c.analysis.QueryOutliers, apb.QueryOutliersRequest(project=p, job_id=job.job_id), "frames")
        pairs = _all(c.analysis.QueryDuplicates, apb.QueryDuplicatesRequest(project=p, job_id=job.job_id),
                     "pairs")  # fmt: skip
    assert not result.summary.exact_search
    exact, _ = neighbors.knn(d["x"], 10, "cosine")
    index = {f: i for i, f in enumerate(d["ids"])}
    assert len(frames) == n and all(len(f.neighbors) == 10 for f in frames)
    found = [len({index[x.frame_id] for x in f.neighbors} & set(exact[index[f.ref.frame_id]])) for f in frames]
    assert np.mean(found) / 10 > 0.9  # nearly the exact graph: frames near a border meet in a cell they share
    dup = {tuple(sorted((x.a.frame_id, x.b.frame_id))) for x in pairs}
    assert {tuple(sorted((a, b))) for a, b, _, _ in d["pairs"]} <= dup
    within = neighbors.class_outlier_scores(d["x"], d["labels"], 10, "cosine")
    got = np.array([f.class_outlier_score for f in frames])
    np.testing.assert_allclose(got, within[[index[f.ref.frame_id] for f in frames]], rtol=1e-4)
    left = running.server.stores.metrics.query(
        "SELECT (SELECT count() FROM knn_graph_parts WHERE project = {p:String} AND job_id = {j:String}),"
        " (SELECT count() FROM knn_class_parts WHERE project = {p:String} AND job_id = {j:String})",
        {"p": p, "j": job.job_id},
    ).rows[0]
    assert left == (0, 0)
