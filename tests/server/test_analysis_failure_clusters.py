"""Failure clusters through the server, with vectors in Milvus Lite: a planted failure mode (foggy
dogs in one corner of the space, predicted as foxes) among errors spread at random is found as
one cluster, described by its class pair and its metadata, and saved as a segment."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, JobFailed, LabeledObject, PredictedObject, UploadColumns
from tests.server.conftest import Running, finish_job

CLASSES = ["cat", "dog", "fox"]


def planted(n: int = 1500, mode: int = 120, noise: float = 0.04, seed: int = 0) -> dict:  # type: ignore[type-arg]
    """Three classes in 16-d; ``mode`` dogs in a tight corner of the dog class, 90 % of them foggy,
    all predicted fox; a random ``noise`` share of the other frames predicted wrongly."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (3, 16)) * 3
    labels = rng.integers(0, 3, n)
    x = means[labels] + rng.normal(0, 1, (n, 16))
    predicted = labels.copy()
    wrong = rng.random(n) < noise
    predicted[wrong] = (labels[wrong] + rng.integers(1, 3, wrong.sum())) % 3
    weather = rng.choice(["sun", "rain", "fog"], n, p=[0.6, 0.32, 0.08])
    light = rng.uniform(0, 100, n)
    in_mode = np.zeros(n, bool)
    in_mode[:mode] = True
    labels[:mode], predicted[:mode] = 1, 2
    x[:mode] = means[1] + 4 * np.eye(16)[0] * 3 + rng.normal(0, 0.3, (mode, 16))
    weather[: int(0.9 * mode)] = "fog"
    light[:mode] = rng.uniform(0, 10, mode)  # dark too
    probs = np.full((n, 3), 0.1, np.float32)
    probs[np.arange(n), predicted] = 0.8
    return {"ids": [f"f{i:05d}" for i in range(n)], "x": x.astype(np.float32), "labels": labels, "probs": probs,
            "weather": weather, "light": light, "in_mode": in_mode, "wrong": predicted != labels}  # fmt: skip


def _upload(running: Running, p: str, d: dict) -> None:  # type: ignore[type-arg]
    with running.client(running.admin_key) as c:
        space = pb.EmbeddingSpace(name="emb", dimension=16, metric=pb.DISTANCE_METRIC_COSINE,
                                  level=pb.EMBEDDING_LEVEL_FRAME, model_name="enc", model_version="1")  # fmt: skip
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(CLASSES)], embedding_spaces=[space])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="m1", dataset="val", model_name="net", model_version="1")))  # fmt: skip
        meta = [{"weather": str(w), "light": float(v)} for w, v in zip(d["weather"], d["light"], strict=True)]
        r = c.upload(p, "val", UploadColumns(frame_ids=d["ids"], class_ids=d["labels"], metadata=meta,
                                                  inference_set="m1", probabilities=d["probs"],
                                                  embeddings={"emb": d["x"]}), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def _start(c, p: str, **kwargs) -> cpb.Job:  # type: ignore[no-untyped-def]
    request = apb.StartFailureClustersRequest(project=p, inference_set="m1", embedding_space="emb", **kwargs)
    return c.analysis.StartFailureClusters(request).job


def test_a_planted_failure_mode_is_one_described_cluster_saved_as_a_segment(shared: Running, project: str) -> None:
    running, p = shared, project
    d = planted()
    _upload(running, p, d)
    ids = np.asarray(d["ids"])
    with running.client(running.admin_key) as c:
        job = finish_job(c, p, _start(c, p))
        got = c.analysis.GetFailureClusters(apb.GetFailureClustersRequest(project=p, job_id=job.job_id))
        assert got.summary.frames == len(ids)
        assert got.summary.errors == int(d["wrong"].sum())
        assert got.summary.clusters == len(got.clusters) >= 1

        top = got.clusters[0]
        assert top.cluster == 1
        assert (top.class_pairs[0].label_class, top.class_pairs[0].predicted_class) == (1, 2)
        assert top.class_pairs[0].share > 0.95
        values = {(v.field, v.value): v for v in top.values}
        fog = values[("metadata.weather", "fog")]
        assert fog.share > 0.8 and fog.lift > 5
        assert any(f == "metadata.light" and v.startswith("<") for f, v in values), values.keys()
        assert "dog -> fox" in top.description and "metadata.weather = fog" in top.description
        assert top.error_rate > 0.9 and top.lift > 5 and top.p_value < 1e-6
        assert set(top.example_frame_ids) <= set(ids[d["in_mode"]])
        # the errors spread at random form no cluster as large as the mode
        assert all(c2.errors < top.errors / 2 for c2 in got.clusters[1:])

        saved = c.analysis.SaveFailureClusters(apb.SaveFailureClustersRequest(
            project=p, job_id=job.job_id, clusters=[1], name_prefix="fog-dogs-", author="qa")).segments  # fmt: skip
        assert [s.name for s in saved] == ["fog-dogs-1"]
        assert saved[0].kind == apb.SEGMENT_KIND_ISSUE and "dog -> fox" in saved[0].reason
        members, token = set(), ""
        while True:
            page = c.analysis.ListSegmentMembers(apb.ListSegmentMembersRequest(
                project=p, name="fog-dogs-1", page=cpb.PageRequest(page_size=500, page_token=token)))  # fmt: skip
            members |= {m.frame_id for m in page.members}
            token = page.page.next_page_token
            if not token:
                break
        planted_ids = set(ids[d["in_mode"]])
        assert len(members & planted_ids) >= 0.85 * len(planted_ids)  # recall of the mode
        assert len(members & planted_ids) >= 0.95 * len(members)  # and little else
        assert members <= set(ids[d["wrong"]])  # errors only, by default

        # the segment works as a filter of the other analyses
        q = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project=p, inference_set="m1", filter=cpb.Filter(all=[cpb.Condition(
                field="segment", equals=cpb.Value(string_value="fog-dogs-1"))]),
            page=cpb.PageRequest(page_size=1)))  # fmt: skip
        assert q.page.total_count == len(members)

        with pytest.raises(grpc.RpcError) as e:  # the names are taken now
            c.analysis.SaveFailureClusters(apb.SaveFailureClustersRequest(project=p, job_id=job.job_id,
                                                                          name_prefix="fog-dogs-"))  # fmt: skip
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "fog-dogs-1" in e.value.details()


def test_a_filter_restricts_the_frames_and_the_job_is_reused(shared: Running, project: str) -> None:
    running, p = shared, project
    d = planted()
    _upload(running, p, d)
    with running.client(running.admin_key) as c:
        sunny = cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="sun"))])
        job = c.wait_for_job(p, _start(c, p, filter=sunny).job_id, progress=False)  # the SDK's wait
        assert job.state == cpb.JOB_STATE_SUCCEEDED and job.progress == 1.0
        got = c.analysis.GetFailureClusters(apb.GetFailureClustersRequest(project=p, job_id=job.job_id))
        assert got.summary.frames == int((d["weather"] == "sun").sum())
        # the sunny dogs of the mode are too few to be told from chance
        assert all(x.errors < 12 for x in got.clusters)
        assert _start(c, p, filter=sunny).job_id == job.job_id


def test_failure_clusters_check_their_input(shared: Running, project: str) -> None:
    running, p = shared, project
    d = planted(n=300, mode=20)
    _upload(running, p, d)
    with running.client(running.admin_key) as c:
        cases = [
            ({"inference_set": ""}, grpc.StatusCode.INVALID_ARGUMENT, "inference_set"),
            ({"inference_set": "nope"}, grpc.StatusCode.NOT_FOUND, "nope"),
            ({"embedding_space": "other"}, grpc.StatusCode.INVALID_ARGUMENT, "embedding_space"),
            ({"max_clusters": -1}, grpc.StatusCode.INVALID_ARGUMENT, "max_clusters"),
            ({"min_cluster_size": -2}, grpc.StatusCode.INVALID_ARGUMENT, "min_cluster_size"),
            ({"confidence_threshold": 1.5}, grpc.StatusCode.INVALID_ARGUMENT, "confidence_threshold"),
            ({"filter": cpb.Filter(all=[cpb.Condition(field="bogus", equals=cpb.Value(string_value="x"))])},
             grpc.StatusCode.INVALID_ARGUMENT, "filter"),
        ]  # fmt: skip
        for overrides, code, needle in cases:
            kwargs = {"project": p, "inference_set": "m1", "embedding_space": "emb", **overrides}
            with pytest.raises(grpc.RpcError) as e:
                c.analysis.StartFailureClusters(apb.StartFailureClustersRequest(**kwargs))
            assert e.value.code() == code, overrides
            assert needle in e.value.details(), (overrides, e.value.details())

        job = finish_job(c, p, _start(c, p))
        for request, code, needle in [
            (apb.SaveFailureClustersRequest(project=p, job_id=job.job_id, clusters=[99], name_prefix="x-"),
             grpc.StatusCode.INVALID_ARGUMENT, "clusters[0]"),
            (apb.SaveFailureClustersRequest(project=p, job_id=job.job_id, name_prefix=""),
             grpc.StatusCode.INVALID_ARGUMENT, "name_prefix"),
            (apb.SaveFailureClustersRequest(project=p, job_id=job.job_id, name_prefix="Bad Name "),
             grpc.StatusCode.INVALID_ARGUMENT, "name_prefix"),
        ]:  # fmt: skip
            got = c.analysis.GetFailureClusters(apb.GetFailureClustersRequest(project=p, job_id=job.job_id))
            if not got.clusters and "Bad" in request.name_prefix:
                continue  # nothing to name
            with pytest.raises(grpc.RpcError) as e:
                c.analysis.SaveFailureClusters(request)
            assert e.value.code() == code and needle in e.value.details(), e.value.details()
        other = c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=p, dataset="val", embedding_space="emb")).job  # fmt: skip
        with pytest.raises(grpc.RpcError) as e:
            c.analysis.GetFailureClusters(apb.GetFailureClustersRequest(project=p, job_id=other.job_id))
        assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
        assert "job_id" in e.value.details()


def test_detection_failure_clusters_find_frames_with_missed_boxes(shared: Running, project: str) -> None:
    """600 frames with one box each; 80 night frames in one corner of the space have their box
    missed by the model, a few others scattered have a spurious extra box."""
    running, p = shared, project
    rng = np.random.default_rng(1)
    n, mode = 600, 80
    x = rng.normal(0, 1, (n, 8))
    x[:mode] = 6 * np.eye(8)[3] + rng.normal(0, 0.3, (mode, 8))
    ids = [f"im{i:04d}" for i in range(n)]
    objects, predictions = [], []
    for i in range(n):
        box = Box(100.0 + i % 50, 100.0, 80.0, 60.0)
        cls = int(i % 2)
        objects.append([LabeledObject(f"g{i}", cls, box)])
        preds = [] if i < mode else [PredictedObject(f"p{i}", cls, 0.9, box)]
        if i >= mode and rng.random() < 0.05:  # a spurious box elsewhere in the frame
            preds.append(PredictedObject(f"q{i}", cls, 0.8, Box(500.0, 500.0, 40.0, 40.0)))
        predictions.append(preds)
    night = ["night" if i < mode or rng.random() < 0.1 else "day" for i in range(n)]
    with running.client(running.admin_key) as c:
        space = pb.EmbeddingSpace(name="emb", dimension=8, metric=pb.DISTANCE_METRIC_L2,
                                  level=pb.EMBEDDING_LEVEL_FRAME, model_name="enc", model_version="1")  # fmt: skip
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
            classes=[pb.ClassDef(id=0, name="cone"), pb.ClassDef(id=1, name="sign")],
            embedding_spaces=[space])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="det", dataset="val", model_name="det", model_version="1")))  # fmt: skip
        r = c.upload(p, "val", UploadColumns(
            frame_ids=ids, sizes=[(800, 800)] * n, metadata=[{"time": t} for t in night], objects=objects,
            inference_set="det", predictions=predictions, embeddings={"emb": x.astype(np.float32)}),
            progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        job = c.analysis.StartFailureClusters(apb.StartFailureClustersRequest(
            project=p, inference_set="det", embedding_space="emb", iou_threshold=0.5)).job  # fmt: skip
        job = finish_job(c, p, job)
        got = c.analysis.GetFailureClusters(apb.GetFailureClustersRequest(project=p, job_id=job.job_id))
        assert got.summary.metric == "euclidean"
        assert got.summary.errors == mode + sum(len(p) == 2 for p in predictions)
        top = got.clusters[0]
        pairs = {(p.label_class, p.predicted_class): p.errors for p in top.class_pairs}
        assert set(pairs) == {(0, -1), (1, -1)}  # missed cones and signs: labeled, nothing predicted
        assert {(v.field, v.value) for v in top.values} >= {("metadata.time", "night")}
        assert set(top.example_frame_ids) <= set(ids[:mode])
        assert top.errors >= 0.85 * mode and top.error_rate == 1.0
        assert "cone -> (none)" in top.description or "sign -> (none)" in top.description


def test_waiting_for_a_job_that_fails_raises_with_its_reason(shared: Running, project: str) -> None:
    running, p = shared, project
    _upload(running, p, planted(n=200, mode=10))
    with running.client(running.admin_key) as c:
        empty = apb.DriftSide(dataset="val", since=Timestamp(seconds=0), until=Timestamp(seconds=60))
        job = c.analysis.StartDrift(apb.StartDriftRequest(project=p, a=empty, b=apb.DriftSide(dataset="val"),
                                                          embedding_space="emb")).job  # fmt: skip
        with pytest.raises(JobFailed) as e:
            c.wait_for_job(p, job.job_id, progress=False)
        assert e.value.job.state == cpb.JOB_STATE_FAILED
        assert f"job {job.job_id} FAILED" in str(e.value) and "at least 2 frames" in str(e.value)
        with pytest.raises(ValueError, match="service must be one of"):
            c.wait_for_job(p, job.job_id, service="ingest")
