"""Relevance feedback through the sampler, with vectors in Milvus Lite: a seed between a wanted
cluster and a look-alike one gives a campaign of both; an oracle accepts the wanted frames and
rejects the rest, and the precision of each next batch on the wanted cluster rises round after
round, with no judged frame ever coming back."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running

D = 16


def cones_data(seed: int = 0) -> dict:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    e0, e1 = np.eye(D)[0], np.eye(D)[1]
    target = 4 * e0 + 1.5 * e1 + rng.normal(0, 0.6, (200, D))
    lookalike = 4 * e0 - 1.5 * e1 + rng.normal(0, 0.6, (200, D))
    other = rng.normal(0, 1, (12, D))[rng.integers(0, 12, 2600)] * 4 + rng.normal(0, 0.6, (2600, D))
    x = np.concatenate([target, lookalike, other]).astype(np.float32)
    order = rng.permutation(len(x))  # frame ids say nothing about the cluster
    return {"x": x[order], "ids": [f"p{i:05d}" for i in range(len(x))], "wanted": (order < 200),
            "seed": (4 * e0 + 0.2 * e1)[None, :].astype(np.float32)}  # fmt: skip


def upload_cones(running: Running, d: dict, project: str = "cones") -> None:  # type: ignore[type-arg]
    with running.client(running.admin_key) as c:
        space = pb.EmbeddingSpace(name="emb", dimension=D, metric=pb.DISTANCE_METRIC_COSINE,
                                  level=pb.EMBEDDING_LEVEL_FRAME, model_name="enc", model_version="1")  # fmt: skip
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="cone")],
            embedding_spaces=[space])))  # fmt: skip
        for name, kind in (("seen", pb.DATASET_KIND_LABELED), ("pool", pb.DATASET_KIND_UNLABELED_POOL)):
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name=name, kind=kind)))
        for dataset, ids, x in (("seen", ["s0"], d["seed"]), ("pool", d["ids"], d["x"])):
            r = c.upload(project, dataset, UploadColumns(frame_ids=ids, embeddings={"emb": x}), progress=False)
            assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, segment=apb.Segment(
            name="green-cones", dataset="seen", kind=apb.SEGMENT_KIND_COLLECTION_SEED), frame_ids=["s0"]))  # fmt: skip


def feedback_precisions(running: Running, d: dict, project: str = "cones") -> list[float]:  # type: ignore[type-arg]
    """Runs a campaign of 40 from the seed and four rounds of feedback from an oracle that accepts
    the wanted frames; returns the precision of each batch on the wanted cluster."""
    wanted = {f for f, w in zip(d["ids"], d["wanted"], strict=True) if w}
    with running.client(running.admin_key) as c:
        job = c.sampler.StartCampaign(spb.StartCampaignRequest(
            project=project, name="more-green-cones", seed_segment="green-cones", pool_dataset="pool",
            embedding_space="emb", budget=40, weights=spb.CampaignWeights(similarity=1.0, diversity=0.0))).job  # fmt: skip
        job = c.wait_for_job(project, job.job_id, service="sampler", progress=False)
        batch = [i.ref.frame_id for i in c.sampler.GetCampaign(spb.GetCampaignRequest(
            project=project, job_id=job.job_id)).items]  # fmt: skip
        precisions, seen = [], set()
        for round_ in range(1, 5):
            assert len(batch) == 40 and not set(batch) & seen  # a judged frame never comes back
            precisions.append(len(set(batch) & wanted) / len(batch))
            seen |= set(batch)
            r = c.sampler.SubmitFeedback(spb.SubmitFeedbackRequest(
                project=project, job_id=job.job_id, accepted=[f for f in batch if f in wanted],
                rejected=[f for f in batch if f not in wanted], next_batch_size=40))  # fmt: skip
            assert r.round == round_ and [x.round for x in r.rounds] == list(range(1, round_ + 1))
            assert r.rounds[-1].judged == 40 and r.rounds[-1].yield_rate == pytest.approx(precisions[-1])
            assert r.accepted_total == len(seen & wanted) + 1  # the seed counts as accepted
            scores = [x.score for x in r.next]
            assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
            batch = [x.ref.frame_id for x in r.next]
        precisions.append(len(set(batch) & wanted) / len(batch))
    print("precision by round:", precisions)
    return precisions


def assert_feedback_helps(precisions: list[float]) -> None:
    assert precisions[0] < 0.8  # the seed alone cannot tell the look-alikes apart
    assert precisions[1] > precisions[0] + 0.2  # one round of feedback can
    assert precisions == sorted(precisions) and precisions[-1] >= 0.95  # and no round loses ground


def test_feedback_raises_the_precision_on_the_wanted_cluster_round_after_round(shared: Running, project: str) -> None:
    d = cones_data()
    upload_cones(shared, d, project)
    assert_feedback_helps(feedback_precisions(shared, d, project))


def test_feedback_checks_its_input(shared: Running, project: str) -> None:
    running = shared
    d = cones_data()
    upload_cones(running, d, project)
    with running.client(running.admin_key) as c:
        job = c.sampler.StartCampaign(spb.StartCampaignRequest(
            project=project, name="s", seed_segment="green-cones", pool_dataset="pool", embedding_space="emb",
            budget=5)).job  # fmt: skip
        job = c.wait_for_job(project, job.job_id, service="sampler", progress=False)
        cases = [
            ({}, grpc.StatusCode.INVALID_ARGUMENT, "accepted"),
            ({"accepted": ["p00001"], "rejected": ["p00001"]}, grpc.StatusCode.INVALID_ARGUMENT, "both"),
            ({"accepted": [""]}, grpc.StatusCode.INVALID_ARGUMENT, "accepted[0]"),
            ({"rejected": ["nope"]}, grpc.StatusCode.NOT_FOUND, "rejected"),
            ({"accepted": ["p00001"], "next_batch_size": 5000}, grpc.StatusCode.INVALID_ARGUMENT, "next_batch_size"),
            ({"job_id": "campaign-nope", "accepted": ["p00001"]}, grpc.StatusCode.NOT_FOUND, "campaign-nope"),
        ]  # fmt: skip
        for kwargs, code, needle in cases:
            request = {"project": project, "job_id": job.job_id, **kwargs}
            with pytest.raises(grpc.RpcError) as e:
                c.sampler.SubmitFeedback(spb.SubmitFeedbackRequest(**request))
            assert e.value.code() == code and needle in e.value.details(), (kwargs, e.value.details())
        rows = running.server.stores.metrics.query(
            "SELECT count() FROM campaign_feedback WHERE project = {p:String}", {"p": project}
        ).rows
        assert rows[0][0] == 0  # refused rounds record nothing
