"""Collection campaigns through the sampler, with vectors in Milvus Lite and metrics in chDB: planted
near-duplicates leave the sample when diversity and de-duplication are on (and stay when they are
off), near-copies of labeled frames are skipped, the budget and exclusions hold, the sample is
saved as a segment, active learning takes the most uncertain frames and spreads them over the
predicted classes with balance, bad requests are refused naming the field, and a cancelled
campaign keeps neither its sample nor its segment."""

from __future__ import annotations

import itertools
from typing import Any

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.data import results
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sampler import campaign
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, wait_for

D = 16
GROUPS, COPIES = 50, 5  # planted groups: an original and four near copies each
BACKGROUND = 1500
UNCERTAIN = 30  # planted frames the model is most unsure about, all predicted as class 0
UNSURE_OTHERS = 40  # fairly uncertain frames predicted as class 1 or 2


def shop_data(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    targets = rng.normal(0, 1, (5, D))  # what the seeds look like
    centres = targets[np.arange(GROUPS) % 5] + rng.normal(0, 0.3, (GROUPS, D))
    planted = np.repeat(centres, COPIES, axis=0) + rng.normal(0, 0.002, (GROUPS * COPIES, D))
    background = rng.normal(0, 1, (BACKGROUND, D))
    train = np.concatenate([targets, rng.normal(0, 1, (100, D))])
    train[5] = targets[0] + rng.normal(0, 0.1, D)  # a labeled frame like the seeds, not a seed itself
    copy_of_labeled = train[5] + rng.normal(0, 0.002, D)
    x = np.concatenate([planted, background, copy_of_labeled[None]]).astype(np.float32)
    ids = [f"g{i // COPIES:02d}c{i % COPIES}" for i in range(GROUPS * COPIES)]
    ids += [f"b{i:04d}" for i in range(BACKGROUND)] + ["copy-of-t0005"]
    n = len(ids)
    # the model: confident on most frames, unsure on some background frames
    pred = rng.integers(0, 3, n)
    probs = np.full((n, 3), 0.05, dtype=np.float32)
    probs[np.arange(n), pred] = 0.9
    unsure = BACKGROUND // 2 + np.arange(UNCERTAIN + UNSURE_OTHERS) + GROUPS * COPIES
    probs[unsure[:UNCERTAIN]] = [0.34, 0.33, 0.33]  # entropy about 1, predicted 0
    for k, i in enumerate(unsure[UNCERTAIN:]):
        probs[i] = [0.2, 0.6, 0.2] if k % 2 else [0.2, 0.2, 0.6]  # entropy 0.86, predicted 1 or 2
    return {
        "ids": ids,
        "x": x,
        "probs": probs,
        "weather": np.where(np.arange(n) % 4 == 0, "fog", "sun"),
        "train_ids": [f"t{i:04d}" for i in range(len(train))],
        "train_x": train.astype(np.float32),
        "uncertain": [ids[i] for i in unsure[:UNCERTAIN]],
        "unsure_others": [ids[i] for i in unsure[UNCERTAIN:]],
    }


def upload_shop(running: Running, d: dict[str, Any], project: str = "shop") -> None:
    space = pb.EmbeddingSpace(name="clip", dimension=D, metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="clip", model_version="1")  # fmt: skip
    other = pb.EmbeddingSpace(name="dino", dimension=D, metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="dino", model_version="2")  # fmt: skip
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(("cone", "car", "sign"))],
            embedding_spaces=[space, other])))  # fmt: skip
        for name, kind in (("train", pb.DATASET_KIND_LABELED), ("pool", pb.DATASET_KIND_UNLABELED_POOL)):
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name=name, kind=kind)))
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="model", dataset="pool", model_name="net", model_version="1")))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="train-model", dataset="train", model_name="net", model_version="1")))  # fmt: skip
        n = len(d["train_ids"])
        r = c.upload(project, "train", UploadColumns(frame_ids=d["train_ids"], class_ids=[0] * n,
                                                    embeddings={"clip": d["train_x"], "dino": d["train_x"]}),
                     progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        r = c.upload(project, "pool", UploadColumns(
            frame_ids=d["ids"], media_uris=[f"s3://p/{f}.jpg" for f in d["ids"]],
            metadata=[{"weather": str(w)} for w in d["weather"]], inference_set="model", probabilities=d["probs"],
            embeddings={"clip": d["x"]}), progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, segment=apb.Segment(
            name="cones-missed", dataset="train", kind=apb.SEGMENT_KIND_COLLECTION_SEED),
            frame_ids=d["train_ids"][:5]))  # fmt: skip


@pytest.fixture
def shop(shared: Running, project: str) -> dict[str, Any]:
    """The shop's data, uploaded into the test's own project on the module's server."""
    d = shop_data()
    upload_shop(shared, d, project)
    return d


def _finish(c: Any, job: cpb.Job, timeout: float = 120.0) -> cpb.Job:
    ended = (cpb.JOB_STATE_SUCCEEDED, cpb.JOB_STATE_FAILED, cpb.JOB_STATE_CANCELLED)

    def done() -> bool:
        nonlocal job
        job = c.sampler.GetJob(spb.GetJobRequest(project=job.project, job_id=job.job_id)).job
        return job.state in ended

    wait_for(done, timeout=timeout, what=f"job {job.job_id}")
    assert job.state == cpb.JOB_STATE_SUCCEEDED, job.message
    return job


def run_campaign(c: Any, **kwargs: Any) -> tuple[spb.CampaignSummary, list[spb.CampaignItem]]:
    kwargs = {"project": "shop", "pool_dataset": "pool", "embedding_space": "clip", **kwargs}
    job = c.sampler.StartCampaign(spb.StartCampaignRequest(**kwargs)).job
    c.wait_for_job(kwargs["project"], job.job_id, service="sampler", timeout=120, progress=False)
    items: list[spb.CampaignItem] = []
    token = ""
    while True:
        r = c.sampler.GetCampaign(spb.GetCampaignRequest(project=kwargs["project"], job_id=job.job_id,
                                                         page=cpb.PageRequest(page_size=40, page_token=token)))  # fmt: skip
        items += r.items
        token = r.page.next_page_token
        if not token:
            return r.summary, items


def members(c: Any, name: str, project: str = "shop") -> set[str]:
    r = c.analysis.ListSegmentMembers(apb.ListSegmentMembersRequest(project=project, name=name,
                                                                    page=cpb.PageRequest(page_size=1000)))  # fmt: skip
    return {m.frame_id for m in r.members}


def planted_groups(items: list[spb.CampaignItem]) -> list[str]:
    return [i.ref.frame_id[:3] for i in items if i.ref.frame_id.startswith("g")]


def test_diversity_removes_planted_near_duplicates_and_the_sample_is_a_segment(
    shared: Running, project: str, shop: dict[str, Any]
) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        summary, items = run_campaign(c, project=p, name="more-cones", seed_segment="cones-missed", budget=60,
                                   weights=spb.CampaignWeights(similarity=1, diversity=0.5))  # fmt: skip
        groups = planted_groups(items)
        # at most one of each planted group (MMR fills the rest with frames unlike those picked)
        assert len(groups) == len(set(groups)) >= 40
        assert [i.rank for i in items] == list(range(1, 61)) and summary.selected == 60 and summary.budget == 60
        assert summary.skipped_duplicates_of_picked >= len(groups) * (COPIES - 1)  # their copies
        # the near copy of a labeled training frame is skipped: the labeled set is the seeds' dataset
        assert "copy-of-t0005" not in {i.ref.frame_id for i in items}
        assert summary.skipped_duplicates_of_labeled >= 1 and summary.seeds == 5
        first = items[0]
        assert first.ref.dataset == "pool" and first.media_uri == f"s3://p/{first.ref.frame_id}.jpg"
        assert first.nearest_seed.dataset == "train" and first.similarity > 0.9 and first.diversity_gain == 2
        assert first.reason.startswith(f"similar to seed train/{first.nearest_seed.frame_id} (")
        assert all(b.score <= a.score + 1e-9 for a, b in itertools.pairwise(items))  # greedy: gains fall
        # the sample is saved as a segment with exactly the chosen frames
        assert members(c, "more-cones", p) == {i.ref.frame_id for i in items}
        seg = c.analysis.GetSegment(apb.GetSegmentRequest(project=p, name="more-cones")).segment
        assert "collection campaign" in seg.reason and seg.dataset == "pool"

        # without diversity or de-duplication, the copies of the best groups crowd the sample
        _, plain = run_campaign(c, project=p, name="plain", seed_segment="cones-missed", budget=60, duplicate_distance=-1,
                             weights=spb.CampaignWeights(similarity=1, diversity=0))  # fmt: skip
        crowded = planted_groups(plain)
        assert len(crowded) >= 55 and len(set(crowded)) <= 60 // COPIES + 1  # whole groups
        assert "copy-of-t0005" in {i.ref.frame_id for i in plain}

        # k-center greedy spreads too, and de-duplication alone keeps one of each group
        _, kc = run_campaign(c, project=p, name="kcenter", seed_segment="cones-missed", budget=40,
                          diversity_method=spb.DIVERSITY_METHOD_K_CENTER)  # fmt: skip
        assert len(planted_groups(kc)) == len(set(planted_groups(kc)))
        _, dedup = run_campaign(c, project=p, name="dedup", seed_segment="cones-missed", budget=40,
                             weights=spb.CampaignWeights(similarity=1, diversity=0))  # fmt: skip
        assert len(planted_groups(dedup)) == len(set(planted_groups(dedup))) == 40

        # a taken segment name is refused at the start; the same request again is the same job
        with pytest.raises(grpc.RpcError) as e:
            c.sampler.StartCampaign(spb.StartCampaignRequest(project=p, name="more-cones", pool_dataset="pool",
                                                             embedding_space="clip", budget=10))  # fmt: skip
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "name" in e.value.details()
        again, _ = run_campaign(c, project=p, name="more-cones", seed_segment="cones-missed", budget=60,
                             weights=spb.CampaignWeights(similarity=1, diversity=0.5))  # fmt: skip
        assert again == summary


def test_budget_and_exclusions_hold(shared: Running, project: str, shop: dict[str, Any]) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        sent = [f"g{g:02d}c{k}" for g in range(10) for k in range(COPIES)]
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, segment=apb.Segment(
            name="sent", dataset="pool", kind=apb.SEGMENT_KIND_OTHER), frame_ids=sent))  # fmt: skip
        sun = cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="sun"))])
        summary, items = run_campaign(c, project=p, name="sunny", seed_segment="cones-missed", budget=25, filter=sun,
                                   exclude_segments=["sent"])  # fmt: skip
        got = [i.ref.frame_id for i in items]
        assert len(got) == 25 and [i.rank for i in items] == list(range(1, 26))
        assert not set(got) & set(sent)
        fog = {f for f, w in zip(shop["ids"], shop["weather"], strict=True) if w == "fog"}
        assert not set(got) & fog
        assert summary.candidates == sum(1 for f in shop["ids"] if f not in fog and f not in sent)
        # a budget larger than what is left: every frame left, no more
        few = cpb.Filter(
            all=[
                cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="fog")),
                cpb.Condition(field="frame_id", equals=cpb.Value(string_value="b0003"), negate=True),
            ]
        )
        small, rest = run_campaign(c, project=p, name="all-fog", budget=5000, filter=few, weights=spb.CampaignWeights(diversity=1),
                                duplicate_distance=-1)  # fmt: skip
        assert small.selected == len(rest) == small.candidates == len(fog) - ("b0003" in fog)


def test_active_learning_takes_the_most_uncertain_frames_spread_over_classes(
    shared: Running, project: str, shop: dict[str, Any]
) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        summary, items = run_campaign(c, project=p, name="unsure", budget=UNCERTAIN, uncertainty_inference_set="model",
                                   weights=spb.CampaignWeights(diversity=0))  # fmt: skip
        assert {i.ref.frame_id for i in items} == set(shop["uncertain"])
        assert all(i.uncertainty > 0.99 and i.predicted_class == 0 for i in items)
        assert "uncertain (entropy 0.99" in items[0].reason or "uncertain (entropy 1.00" in items[0].reason
        assert [(k.class_name, k.frames) for k in summary.classes] == [("cone", UNCERTAIN)]
        assert summary.seeds == 0 and "uncertainty 1 (entropy)" in summary.strategy

        balanced, spread = run_campaign(c, project=p, name="unsure-balanced", budget=UNCERTAIN, uncertainty_inference_set="model",
                                     weights=spb.CampaignWeights(diversity=0, balance=1))  # fmt: skip
        counts = {k.class_name: k.frames for k in balanced.classes}
        assert set(counts) == {"cone", "car", "sign"} and min(counts.values()) >= UNCERTAIN // 3 - 1
        picked = {i.ref.frame_id for i in spread}
        assert picked <= set(shop["uncertain"]) | set(shop["unsure_others"])
        assert spread[0].ref.frame_id in shop["uncertain"]  # the most uncertain frame still comes first

        # margin and least confidence rank the same planted frames first
        for measure in (spb.UNCERTAINTY_MEASURE_MARGIN, spb.UNCERTAINTY_MEASURE_LEAST_CONFIDENCE):
            _, got = run_campaign(c, project=p, name=f"unsure-{measure}", budget=UNCERTAIN, uncertainty_inference_set="model",
                               uncertainty_measure=measure, weights=spb.CampaignWeights(diversity=0))  # fmt: skip
            assert {i.ref.frame_id for i in got} == set(shop["uncertain"]), measure


def test_bad_campaign_requests_are_refused_naming_the_field(
    shared: Running, project: str, shop: dict[str, Any]
) -> None:
    running, p = shared, project
    inv, nf, fp = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION
    with running.client(running.admin_key) as c:
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, segment=apb.Segment(
            name="taken", dataset="pool", kind=apb.SEGMENT_KIND_OTHER), frame_ids=["b0001"]))  # fmt: skip
    cases = [
        ({"name": ""}, inv, "name", "empty"),
        ({"name": "Bad Name"}, inv, "name", "segment name"),
        ({"name": "taken"}, grpc.StatusCode.ALREADY_EXISTS, "name", "'taken'"),
        ({"budget": 0}, inv, "budget", "100000"),
        ({"budget": 100_001}, inv, "budget", "100000"),
        ({"pool_dataset": ""}, inv, "pool_dataset", "empty"),
        ({"pool_dataset": "nope"}, nf, "pool_dataset", "'nope'"),
        ({"embedding_space": "nope"}, inv, "embedding_space", "clip"),
        ({"seed_segment": "nope"}, nf, "seed_segment", "'nope'"),
        ({"seed_embedding_space": "dino"}, fp, "seed_embedding_space", "dino@2"),
        ({"weights": spb.CampaignWeights(similarity=1), "seed_segment": ""}, inv, "weights.similarity", "seed"),
        ({"weights": spb.CampaignWeights(uncertainty=1)}, inv, "weights.uncertainty", "uncertainty_inference_set"),
        ({"weights": spb.CampaignWeights(balance=0.5)}, inv, "weights.balance", "uncertainty_inference_set"),
        ({"weights": spb.CampaignWeights(diversity=-1)}, inv, "weights.diversity", ">= 0"),
        ({"weights": spb.CampaignWeights(similarity=0, diversity=0)}, inv, "weights", "every weight is 0"),
        ({"uncertainty_inference_set": "nope"}, nf, "uncertainty_inference_set", "'nope'"),
        ({"uncertainty_inference_set": "train-model"}, inv, "uncertainty_inference_set", "'train'"),
        ({"diversity_method": 7}, inv, "diversity_method", "7"),
        ({"uncertainty_measure": 7}, inv, "uncertainty_measure", "7"),
        ({"duplicate_distance": 2.5}, inv, "duplicate_distance", "below 2"),
        ({"labeled_dataset": "nope"}, nf, "labeled_dataset", "'nope'"),
        ({"exclude_segments": ["nope"]}, nf, "exclude_segments[0]", "'nope'"),
        ({"exclude_segments": ["cones-missed"]}, inv, "exclude_segments[0]", "'train'"),
        ({"filter": cpb.Filter(all=[cpb.Condition(field="loss", equals=cpb.Value(number_value=1))])}, inv, "filter",
         "loss"),
    ]  # fmt: skip
    with running.client(running.admin_key) as c:
        for overrides, code, field, needle in cases:
            kwargs = {"project": p, "name": "ok", "pool_dataset": "pool", "embedding_space": "clip",
                      "seed_segment": "cones-missed", "budget": 10, **overrides}  # fmt: skip
            with pytest.raises(grpc.RpcError) as e:
                c.sampler.StartCampaign(spb.StartCampaignRequest(**kwargs))
            assert e.value.code() == code, (overrides, e.value.details())
            assert field in e.value.details() and needle in e.value.details(), (overrides, e.value.details())
        with pytest.raises(grpc.RpcError) as e:
            c.sampler.GetCampaign(spb.GetCampaignRequest(project=p, job_id="nope"))
        assert e.value.code() == nf


def test_a_cancelled_campaign_keeps_no_sample_and_no_segment(
    shared: Running, project: str, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, p = shared, project
    metrics = running.server.stores.metrics
    save = results.save_summary
    cancelled: list[str] = []

    def cancel_then_save(m, job, text):  # type: ignore[no-untyped-def]
        """Cancels the job once its sample and segment are written, just before its summary."""
        with running.client(running.admin_key) as c:
            c.sampler.CancelJob(spb.CancelJobRequest(project=p, job_id=job.job_id))
        cancelled.append(job.job_id)
        save(m, job, text)

    monkeypatch.setattr(results, "save_summary", cancel_then_save)
    with running.client(running.admin_key) as c:
        job = c.sampler.StartCampaign(spb.StartCampaignRequest(
            project=p, name="cancelled", pool_dataset="pool", embedding_space="clip",
            seed_segment="cones-missed", budget=20)).job  # fmt: skip

        def ended() -> bool:
            state = c.sampler.GetJob(spb.GetJobRequest(project=p, job_id=job.job_id)).job.state
            return state == cpb.JOB_STATE_CANCELLED

        wait_for(ended, timeout=60, what="the job to be cancelled")
        assert cancelled == [job.job_id]
        for table in campaign.TABLES:
            n = metrics.query(
                f"SELECT count() FROM {table} WHERE project = {{p:String}} AND job_id = {{j:String}}",
                {"p": p, "j": job.job_id},
            ).scalar()
            assert n == 0, table
        assert (
            metrics.query(
                "SELECT count() FROM job_results WHERE project = {p:String} AND job_id = {j:String}",
                {"p": p, "j": job.job_id},
            ).scalar()
            == 0
        )
        with pytest.raises(grpc.RpcError) as e:
            c.analysis.GetSegment(apb.GetSegmentRequest(project=p, name="cancelled"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as e:
            c.sampler.GetCampaign(spb.GetCampaignRequest(project=p, job_id=job.job_id))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "job_id" in e.value.details()
        # the name is free again: the campaign can be run anew
        monkeypatch.undo()
        job = _finish(c, c.sampler.StartCampaign(spb.StartCampaignRequest(
            project=p, name="cancelled", pool_dataset="pool", embedding_space="clip",
            seed_segment="cones-missed", budget=20)).job)  # fmt: skip
        assert len(members(c, "cancelled", p)) == 20


def test_sdk_and_cli_run_a_campaign_and_hand_it_to_labeling(
    shared: Running, project: str, shop: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``Client.run_campaign`` waits and returns every ranked item; ``shoal campaign --json``
    runs the same request to the same sample, errors come back as the server's status and
    message, and ``shoal request-labeling`` hands the sample over."""
    running, p = shared, project
    import json

    from shoal import cli

    with running.client(running.admin_key) as c:
        sample = c.run_campaign(
            p, "sdk-sample", pool_dataset="pool", embedding_space="clip", budget=60,
            seed_segment="cones-missed", progress=False,
        )  # fmt: skip
        assert sample.summary.selected == len(sample.items) == 60 and sample.summary.segment == "sdk-sample"
        assert [i.rank for i in sample.items] == list(range(1, 61))  # every page, in rank order
        assert members(c, "sdk-sample", p) == set(sample.frame_ids)
        with pytest.raises(ValueError, match="diversity_method must be one of mmr, k_center"):
            c.run_campaign(p, "x", pool_dataset="pool", embedding_space="clip", budget=5, diversity_method="dpp")

    connect = ["--target", running.target, "--api-key", running.admin_key, "--project", p]
    args = ["--pool", "pool", "--space", "clip", "--budget", "60", "--seed-segment", "cones-missed"]
    assert cli.main(["campaign", *connect, "--name", "cli-sample", *args, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head, items = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert head["summary"]["segment"] == "cli-sample" and int(head["summary"]["selected"]) == 60
    assert [i["ref"]["frameId"] for i in items] == sample.frame_ids

    assert cli.main(["campaign", *connect, "--name", "cli-missing", *args[2:], "--pool", "nope"]) == 2
    err = capsys.readouterr().err
    assert "NOT_FOUND" in err and "nope" in err

    assert cli.main(["request-labeling", *connect, "--segment", "cli-sample", "--requested-by", "ana"]) == 0
    out = capsys.readouterr().out
    assert "60 frames of pool in 1 events" in out
