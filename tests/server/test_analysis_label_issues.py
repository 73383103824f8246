"""Label issues through the server, against cleanlab's find_label_issues on the same out-of-fold
probabilities: digits with 20 % uniform and 40 % class-conditional label noise."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from cleanlab.count import estimate_joint
from cleanlab.filter import find_label_issues
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, computed_answers, finish_job, preparer_of


def noisy_digits(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, given labels, out-of-fold probabilities as float32)."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    given = y.copy()
    if kind == "uniform":  # 20 % of the labels replaced by another class, uniformly
        flip = rng.random(len(y)) < 0.2
        given[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
    else:  # 40 % of each class, mostly to one class-specific other class
        flip = rng.random(len(y)) < 0.4
        to = np.where(rng.random(len(y)) < 0.7, (y + 1) % 10, (y + 3) % 10)
        given[flip] = to[flip]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    probs = cross_val_predict(model, x, given, cv=5, method="predict_proba")
    return y, given, probs.astype(np.float32)


def _prf(found: set[int], truth: set[int]) -> tuple[float, float, float]:
    tp = len(found & truth)
    p = tp / len(found) if found else 0.0
    r = tp / len(truth) if truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _upload(running: Running, p: str, given: np.ndarray, probs: np.ndarray) -> list[str]:
    ids = [f"d{i:05d}" for i in range(len(given))]
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=str(i)) for i in range(10)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="train", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="oof", dataset="train", model_name="logreg", model_version="1")))  # fmt: skip
        r = c.upload(p, "train", UploadColumns(frame_ids=ids, media_uris=[f"s3://d/{i}.png" for i in ids],
                                                      class_ids=given, inference_set="oof", probabilities=probs),
                     progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return ids


def _run(c, p: str, **kwargs) -> cpb.Job:  # type: ignore[no-untyped-def]
    job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=p, inference_set="oof",
                                                                  **kwargs)).job  # fmt: skip
    return finish_job(c, p, job)


def _issues(c, p: str, job_id: str, **kwargs) -> list[apb.LabelIssue]:  # type: ignore[no-untyped-def]
    out, token = [], ""
    while True:
        resp = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
            project=p, job_id=job_id, page=cpb.PageRequest(page_size=500, page_token=token), **kwargs))  # fmt: skip
        out += list(resp.issues)
        token = resp.page.next_page_token
        if not token:
            return out


@pytest.mark.parametrize("kind", ["uniform", "class-conditional"])
def test_label_issues_match_cleanlab(shared: Running, project: str, kind: str) -> None:
    running, p = shared, project
    truth, given, probs = noisy_digits(kind)
    ids = _upload(running, p, given, probs)
    flipped = {i for i in range(len(given)) if given[i] != truth[i]}
    with running.client(running.admin_key) as c:
        job = _run(c, p)
        found_rows = _issues(c, p, job.job_id)
        summary = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(project=p, job_id=job.job_id)).summary
    found = {ids.index(r.ref.frame_id) for r in found_rows}
    reference = set(np.flatnonzero(find_label_issues(given, probs)).tolist())
    ours, theirs = _prf(found, flipped), _prf(reference, flipped)
    print(f"{kind}: shoal P/R/F1 {ours}, cleanlab {theirs}, {len(found)} vs {len(reference)} flagged")
    assert ours[2] >= theirs[2] and ours[2] > 0.6
    # the same algorithm: the same frames, up to ties between equal margins
    assert len(found ^ reference) <= 0.01 * len(reference)
    assert summary.frames == len(given) and summary.issues == len(found)
    k = len(summary.class_ids)
    joint = np.array(summary.joint).reshape(k, k)
    assert np.allclose(joint, estimate_joint(given, probs), atol=1e-9)  # the same estimate of P(given, true)
    noise = np.array(summary.noise_matrix).reshape(k, k)
    assert np.allclose(noise.sum(axis=0), 1.0)  # P(given | true): a distribution per true class
    # rows: lowest self-confidence first, each with the model's view of the given and suggested labels
    confs = [r.self_confidence for r in found_rows]
    assert confs == sorted(confs)
    for r in found_rows[:50]:
        i = ids.index(r.ref.frame_id)
        assert r.given_label == given[i] and r.suggested_label != given[i]
        assert r.self_confidence == pytest.approx(probs[i, given[i]], abs=1e-6)
        assert r.suggested_probability == pytest.approx(np.delete(probs[i], given[i]).max(), abs=1e-6)
        assert r.media_uri == f"s3://d/{r.ref.frame_id}.png" and r.is_issue


def test_label_issue_jobs_are_idempotent_scoped_and_checked(shared: Running, project: str) -> None:
    running, p = shared, project
    _, given, probs = noisy_digits("uniform", seed=1)
    _upload(running, p, given, probs)
    with running.client(running.admin_key) as c:
        job = _run(c, p)
        again = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=p, inference_set="oof")).job
        assert again.job_id == job.job_id and again.state == cpb.JOB_STATE_SUCCEEDED
        # a filter is part of the job: only the frames it selects are examined
        some = cpb.Filter(all=[cpb.Condition(field="label_class", equals=cpb.Value(string_value="3"))])
        part = _run(c, p, filter=some)
        assert part.job_id != job.job_id
        all_rows = _issues(c, p, part.job_id, all_frames=True)
        assert len(all_rows) == int((given == 3).sum()) and {r.given_label for r in all_rows} == {3}
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=p, inference_set="oof",
                                                                    filter=cpb.Filter(all=[cpb.Condition(
                                                                        field="nope", equals=cpb.Value(
                                                                            string_value="x"))])))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "filter.all[0]" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(project=p, job_id="label_issues-nope"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_every_frame_s_scores_come_back_in_one_export_call(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ExportJobResult streams the job's per-frame table as Arrow: every frame once, in frame id order, with
    the scores QueryLabelIssues pages through; the same table however the stream is cut."""
    from shoal.analysis import export

    running, p = shared, project
    _, given, probs = noisy_digits("uniform", seed=2)
    ids = _upload(running, p, given, probs)
    with running.client(running.admin_key) as c:
        job = _run(c, p)
        table = c.export_job_result(p, job.job_id)
        flagged = {r.ref.frame_id for r in _issues(c, p, job.job_id)}
        # small batches, and the stream cut into messages of 4 KiB: the same rows
        monkeypatch.setattr(export, "MESSAGE_BYTES", 4096)
        pieces = list(c.analysis.ExportJobResult(apb.ExportJobResultRequest(project=p, job_id=job.job_id,
                                                                            batch_rows=100)))  # fmt: skip
        again = c.export_job_result(p, job.job_id, batch_rows=100)
        errors = {}
        for request in (apb.ExportJobResultRequest(project=p, job_id=job.job_id, batch_rows=-1),
                        apb.ExportJobResultRequest(project=p, job_id="label_issues-nope"),
                        apb.ExportJobResultRequest(project=p)):  # fmt: skip
            with pytest.raises(grpc.RpcError) as err:
                list(c.analysis.ExportJobResult(request))
            errors[request.job_id + str(request.batch_rows)] = (err.value.code(), err.value.details())
    assert table.num_rows == len(ids)
    assert table.column("frame_id").to_pylist() == sorted(ids)
    order = np.argsort(ids)
    assert np.array_equal(table.column("given_label").to_numpy(), given[order])
    assert np.allclose(table.column("self_confidence").to_numpy(), probs[order, given[order]], atol=1e-6)
    issues = table.filter(table.column("is_issue"))
    assert set(issues.column("frame_id").to_pylist()) == flagged
    assert pieces[0].total_rows == len(ids) and pieces[0].kind == "label_issues" and len(pieces) > 10
    assert max(len(m.arrow) for m in pieces) <= 4096
    assert again.equals(table)
    code, details = errors[job.job_id + "-1"]
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "batch_rows" in details
    assert errors["label_issues-nope0"][0] == grpc.StatusCode.NOT_FOUND
    code, details = errors["0"]
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "job_id" in details


@pytest.mark.parametrize("kind", ["uniform", "class-conditional"])
def test_in_memory_and_in_store_scoring_write_the_same_result(
    shared: Running, project: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small job scores the probabilities in memory, a large one by aggregations in the store; forced
    down the store's path, the same job writes the same rows and summary."""
    from shoal.analysis import label_issues

    running, p = shared, project
    _, given, probs = noisy_digits(kind, seed=3)
    _upload(running, p, given, probs)
    with running.client(running.admin_key) as c:
        job = _run(c, p)
        memory = c.export_job_result(p, job.job_id)
        memory_summary = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(project=p, job_id=job.job_id)).summary
        in_memory = label_issues.IN_MEMORY_CELLS
        monkeypatch.setattr(label_issues, "IN_MEMORY_CELLS", 0)
        again = _run(c, p, rerun=True)
        store = c.export_job_result(p, again.job_id)
        store_summary = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(project=p, job_id=job.job_id)).summary
        # a rerun in memory writes over the rows in place; a row of a frame it no longer scores goes
        monkeypatch.setattr(label_issues, "IN_MEMORY_CELLS", in_memory)
        running.server.stores.metrics.insert(
            "label_issue_frames", [(p, job.job_id, "gone", 0, 1, 1, 0.1, -0.5, 1.0, 0.6)],
            ["project", "job_id", "frame_id", "given_label", "suggested_label", "is_issue", "self_confidence",
             "normalized_margin", "weighted_entropy", "suggested_probability"],
        )  # fmt: skip
        _run(c, p, rerun=True)
        third = c.export_job_result(p, job.job_id)
        third_summary = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(project=p, job_id=job.job_id)).summary
    assert again.job_id == job.job_id and memory_summary.issues > 100
    assert memory_summary == store_summary == third_summary
    assert third.equals(memory), "the rerun's rows, and no other"
    for column in ("frame_id", "given_label", "suggested_label", "is_issue"):
        assert memory.column(column).equals(store.column(column)), column
    for column in ("self_confidence", "normalized_margin", "weighted_entropy", "suggested_probability"):
        assert np.allclose(memory.column(column).to_numpy(), store.column(column).to_numpy(), rtol=1e-6), column


def test_neighbour_labels_find_more_label_errors_than_the_model_alone(shared: Running, project: str) -> None:
    """20 % of every digit swapped with its partner (0 <-> 1, 2 <-> 3, ...), a model trained on the noisy
    labels, and the frames' standardized pixels as embeddings (L2): with a neighbour job's graph the job
    flags what the reference blend (shoal.analysis.label_scoring) flags on the same graph, and finds
    more of the planted errors than the model alone at no lower precision."""
    from shoal.analysis.label_scoring import ALPHA, score_labels

    running, p = shared, project
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(7)
    given = y.copy()
    for c in range(10):
        members = np.flatnonzero(y == c)
        given[rng.choice(members, round(0.2 * len(members)), replace=False)] = c ^ 1
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    probs = cross_val_predict(model, x, given, cv=5, method="predict_proba").astype(np.float32)
    z = StandardScaler().fit_transform(x).astype(np.float32)
    ids = [f"d{i:05d}" for i in range(len(y))]
    planted = {i for i in range(len(y)) if given[i] != y[i]}
    with running.client(running.admin_key) as c:
        space = pb.EmbeddingSpace(name="pixels", dimension=64, metric=pb.DISTANCE_METRIC_L2,
                                  level=pb.EMBEDDING_LEVEL_FRAME, model_name="raw", model_version="1")  # fmt: skip
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=i, name=str(i)) for i in range(10)],
            embedding_spaces=[space])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="train", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="oof", dataset="train", model_name="logreg", model_version="1")))  # fmt: skip
        r = c.upload(p, "train", UploadColumns(frame_ids=ids, class_ids=given, inference_set="oof", probabilities=probs,
                                               embeddings={"pixels": z}), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        graph = finish_job(c, p, c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=p, dataset="train", embedding_space="pixels")).job)  # fmt: skip
        plain = {ids.index(r.ref.frame_id) for r in _issues(c, p, _run(c, p).job_id)}
        job = _run(c, p, neighbor_job_id=graph.job_id)
        blended = {ids.index(r.ref.frame_id) for r in _issues(c, p, job.job_id)}
        summary = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(project=p, job_id=job.job_id)).summary
        frames, token = [], ""
        while True:
            resp = c.analysis.QueryOutliers(apb.QueryOutliersRequest(
                project=p, job_id=graph.job_id, page=cpb.PageRequest(page_size=500, page_token=token)))  # fmt: skip
            frames += list(resp.frames)
            token = resp.page.next_page_token
            if not token:
                break

        scores = c.export_job_result(p, graph.job_id)
        # the neighbour job must be a finished neighbour job of this dataset
        for bad, code in ((job.job_id, grpc.StatusCode.INVALID_ARGUMENT), ("nope", grpc.StatusCode.NOT_FOUND)):
            with pytest.raises(grpc.RpcError) as err:
                c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=p, inference_set="oof",
                                                                        neighbor_job_id=bad))  # fmt: skip
            assert err.value.code() == code
        assert "neighbor_job_id" in err.value.details() or code == grpc.StatusCode.NOT_FOUND

    assert summary.neighbor_job_id == graph.job_id and summary.neighbor_weight == ALPHA
    # the neighbour job's scores in one call: those QueryOutliers pages through
    assert scores.column("frame_id").to_pylist() == sorted(ids)
    by_frame = dict(zip(scores.column("frame_id").to_pylist(), scores.column("outlier_score").to_pylist(), strict=True))
    assert all(by_frame[f.ref.frame_id] == pytest.approx(f.outlier_score, rel=1e-6) for f in frames)
    index = {f: i for i, f in enumerate(ids)}
    neighbor_labels = np.full((len(ids), 10), -1)
    neighbor_distances = np.zeros((len(ids), 10))
    for f in frames:
        row = index[f.ref.frame_id]
        for j, n in enumerate(f.neighbors):
            neighbor_labels[row, j] = given[index[n.frame_id]]
            neighbor_distances[row, j] = n.distance
    reference = set(np.flatnonzero(score_labels(given, probs, neighbor_labels, neighbor_distances).is_issue).tolist())
    assert len(blended ^ reference) <= 0.01 * len(reference), "the blend the reference computes, up to ties"
    found_plain, found = len(plain & planted), len(blended & planted)
    print(f"planted {len(planted)}: model alone found {found_plain} of {len(plain)} flags,"
          f" with neighbours {found} of {len(blended)}")  # fmt: skip
    assert found > found_plain
    assert found / len(blended) >= found_plain / len(plain)


def test_the_issues_first_page_is_prepared_and_every_page_is_kept_until_a_dismissal(
    shared: Running, project: str
) -> None:
    """Once a label-issue job has finished, the Issues page's first page (48 frames, the default order) is kept
    before anyone asks; a page asked once is kept; a dismissal is seen at once."""
    from tests.server.conftest import wait_for

    running, p = shared, project
    preparer, computed = preparer_of(running), computed_answers
    _, given, probs = noisy_digits("uniform", seed=2)
    _upload(running, p, given, probs)
    with running.client(running.admin_key) as c:
        job = _run(c, p)
        wait_for(lambda: preparer.job_prepared(p, job.job_id), what="the first page of the label issues to be prepared")

        def page(token: str = "") -> apb.QueryLabelIssuesResponse:
            return c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
                project=p, job_id=job.job_id, page=cpb.PageRequest(page_size=48, page_token=token)))  # fmt: skip

        every = [r.ref.frame_id for r in _issues(c, p, job.job_id)]
        before = computed()
        first = page()
        assert computed() == before  # prepared
        for order in (apb.LABEL_ISSUE_ORDER_MARGIN, apb.LABEL_ISSUE_ORDER_WEIGHTED_ENTROPY):  # and in the other orders
            other = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
                project=p, job_id=job.job_id, order=order, page=cpb.PageRequest(page_size=48)))  # fmt: skip
            assert len(other.issues) == 48 and computed() == before, order
        assert [r.ref.frame_id for r in first.issues] == every[:48]
        second = page(first.page.next_page_token)
        assert computed() == before + 1 and [r.ref.frame_id for r in second.issues] == every[48:96]
        page(first.page.next_page_token)
        assert computed() == before + 1  # kept
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(
            project=p, job_id=job.job_id, frame_ids=[every[0]], reason="checked"))  # fmt: skip
        after = page()
        assert every[0] not in [r.ref.frame_id for r in after.issues] and after.dismissed_count == 1


def test_a_finished_jobs_lists_longer_than_its_end_ranks_are_ranked_whole_in_the_background(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's end ranks the first rows of each list (here 250, as 100,000 of a large job's); the preparer ranks
    the rest, after which every page of every order is read from the ranked rows: each frame once, in order."""
    from shoal.analysis import label_issues, ranked
    from tests.server.conftest import wait_for

    monkeypatch.setattr(ranked, "RANKED", 250)
    running, p = shared, project
    metrics = running.server.stores.metrics
    _, given, probs = noisy_digits("uniform", seed=4)
    ids = _upload(running, p, given, probs)
    with running.client(running.admin_key) as c:
        job = _run(c, p)
        lengths = {lst.name: ranked.length(metrics, p, job.job_id, lst) for lst in label_issues.LISTINGS}
        assert lengths["frames.0"] is not None and lengths["frames.0"][0] == len(ids)
        wait_for(lambda: all(ranked.length(metrics, p, job.job_id, lst) == (n, n)
                             for lst, (n, _) in zip(label_issues.LISTINGS, lengths.values(), strict=True)),
                 what="the rest of the job's lists to be ranked")  # fmt: skip
        fields = {0: "self_confidence", 1: "normalized_margin", 2: "weighted_entropy"}
        for order, field in fields.items():
            rows = _issues(c, p, job.job_id, all_frames=True, order=order)
            assert sorted(r.ref.frame_id for r in rows) == ids
            keys = [(-getattr(r, field) if order == 2 else getattr(r, field), r.ref.frame_id) for r in rows]
            assert keys == sorted(keys)
            flagged = [r.ref.frame_id for r in _issues(c, p, job.job_id, order=order)]
            assert flagged == [r.ref.frame_id for r in rows if r.is_issue]
            found = label_issues._ranked_page(metrics, p, job.job_id, dataset="train", all_frames=True,
                                              include_dismissed=False, order=order, offset=len(ids) - 100,
                                              size=100)  # fmt: skip
            assert found is not None and [r[0] for r in found[0]] == [r.ref.frame_id for r in rows[-100:]]
