"""Hand-off for labeling: RequestLabeling publishes LabelingRequestEvents on the labeling-requests
topic (split into parts, each frame once, keyed by project and request), records the frames as
sent so searches and campaigns leave them out, and sending the same request again publishes the
same events without recording them twice."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2 as cpb
from shoal.sampler import handoff
from shoal.sampler.v1 import sampler_pb2 as spb
from tests.server.conftest import Running
from tests.server.test_sampler_search import cosine, data, exact_top, seed_ref, upload


def _events(running: Running, group: str, project: str) -> list[cpb.LabelingRequestEvent]:
    """Every event of ``project`` on the labeling-requests topic, read by a consumer group of its own."""
    topic = Topics(running.server.settings.topic_prefix).labeling_requests
    out = []
    with running.server.stores.events.consumer(group, [topic]) as consumer:
        while batch := consumer.poll(2.0):
            for e in batch:
                event = cpb.LabelingRequestEvent.FromString(e.value)
                assert e.key == f"{event.project}/{event.request_id}".encode()
                assert dict(e.headers)["shoal-schema-version"] == b"1"
                if event.project == project:
                    out.append(event)
    return out


def test_a_segment_sent_for_labeling_becomes_events_and_leaves_later_searches(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, p = shared, project
    d = data()
    upload(running, d, p)
    ids, x = d["pool_ids"], d["pool_x"]
    sims = cosine(x, d["train_x"][7:8])[:, 0]
    near = exact_top(sims, ids, 30)
    monkeypatch.setattr(handoff, "EVENT_ITEMS", 12)  # several parts from a small request
    with running.client(running.admin_key) as c:
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, segment=apb.Segment(
            name="like-t7", dataset="pool", kind=apb.SEGMENT_KIND_OTHER, reason="like frame t7"),
            frame_ids=near))  # fmt: skip
        sent = c.sampler.RequestLabeling(spb.RequestLabelingRequest(project=p, segment="like-t7",
                                                                    platform="label_studio", requested_by="qa"))  # fmt: skip
        assert sent.frames == 30 and sent.events == 3 and sent.dataset == "pool" and not sent.repeated_request
        assert sent.request_id.startswith("req-") and sent.topic.endswith(".labeling.requests.v1")

        events = _events(running, f"check-1-{p}", p)
        assert [(e.part, e.parts) for e in events] == [(0, 3), (1, 3), (2, 3)]
        assert sorted(i.frame_id for e in events for i in e.items) == sorted(near)
        e = events[0]
        assert (e.request_id, e.project, e.dataset, e.source, e.reason, e.platform, e.requested_by) == (
            sent.request_id, p, "pool", "segment:like-t7", "like frame t7", "label_studio", "qa")  # fmt: skip
        assert e.schema_version == 1 and e.requested_time.seconds > 0

        # the sent frames leave later searches that ask so, and only those
        found = c.sampler.SearchSimilar(spb.SearchSimilarRequest(
            project=p, pool_dataset="pool", embedding_space="clip", seeds=[seed_ref("train", "t0007")], k=40,
            exclude_sent_for_labeling=True))  # fmt: skip
        got = [i.ref.frame_id for i in found.items]
        assert got == exact_top(sims, ids, 40, ~np.isin(ids, near))
        everything = c.sampler.SearchSimilar(spb.SearchSimilarRequest(
            project=p, pool_dataset="pool", embedding_space="clip", seeds=[seed_ref("train", "t0007")], k=40))  # fmt: skip
        assert [i.ref.frame_id for i in everything.items][:30] == near

        # the same request again: the same id and events, recorded once
        again = c.sampler.RequestLabeling(spb.RequestLabelingRequest(project=p, segment="like-t7"))
        assert again.request_id == sent.request_id and again.repeated_request
        assert len(_events(running, f"check-2-{p}", p)) == 6
        rows = running.server.stores.metrics.query(
            f"SELECT count(), uniqExact(frame_id) FROM labeling_requests FINAL WHERE project = '{p}'").rows[0]  # fmt: skip
        assert tuple(rows) == (30, 30)

        # a list of frames, with a request id of the caller's
        listed = c.sampler.RequestLabeling(spb.RequestLabelingRequest(
            project=p, frames=spb.FrameList(dataset="pool", frame_ids=[ids[0], ids[1], ids[0]]),
            request_id="batch-42", reason="spot check"))  # fmt: skip
        assert (listed.request_id, listed.frames, listed.events) == ("batch-42", 2, 1)

        # a finished campaign's sample, in rank order
        job = c.sampler.StartCampaign(spb.StartCampaignRequest(
            project=p, name="more-t7", seed_segment="like-t7", pool_dataset="pool", embedding_space="clip",
            budget=10)).job  # fmt: skip
        job = c.wait_for_job(p, job.job_id, service="sampler", progress=False)
        ranked = [i.ref.frame_id for i in c.sampler.GetCampaign(spb.GetCampaignRequest(
            project=p, job_id=job.job_id)).items]  # fmt: skip
        by_campaign = c.sampler.RequestLabeling(spb.RequestLabelingRequest(project=p, campaign_job_id=job.job_id))
        assert by_campaign.frames == len(ranked) == 10
        last = [e for e in _events(running, f"check-3-{p}", p) if e.request_id == by_campaign.request_id]
        assert [i.frame_id for i in last[0].items] == ranked and last[0].source == f"campaign:{job.job_id}"


def test_labeling_requests_check_their_input(shared: Running, project: str) -> None:
    running, p = shared, project
    upload(running, data(pool=300, train=20), p)
    cases = [
        ({}, grpc.StatusCode.INVALID_ARGUMENT, "source"),
        ({"segment": "nope"}, grpc.StatusCode.NOT_FOUND, f"segment: project '{p}' has no segment 'nope'"),
        ({"campaign_job_id": "campaign-nope"}, grpc.StatusCode.NOT_FOUND, "campaign-nope"),
        ({"frames": spb.FrameList(dataset="nope", frame_ids=["p00001"])}, grpc.StatusCode.NOT_FOUND,
         "frames.dataset"),
        ({"frames": spb.FrameList(dataset="pool", frame_ids=["p00001", "zzz"])}, grpc.StatusCode.NOT_FOUND,
         "frames.frame_ids"),
        ({"frames": spb.FrameList(dataset="pool", frame_ids=["p00001", ""])}, grpc.StatusCode.INVALID_ARGUMENT,
         "frames.frame_ids[1]"),
        ({"frames": spb.FrameList(dataset="pool")}, grpc.StatusCode.FAILED_PRECONDITION, "frames"),
        ({"frames": spb.FrameList(dataset="pool", frame_ids=["p00001"]), "request_id": "no spaces"},
         grpc.StatusCode.INVALID_ARGUMENT, "request_id"),
        ({"frames": spb.FrameList(dataset="pool", frame_ids=["p00001"]), "preannotation_inference_set": "nope"},
         grpc.StatusCode.NOT_FOUND, "nope"),
    ]  # fmt: skip
    with running.client(running.admin_key) as c:
        for kwargs, code, needle in cases:
            with pytest.raises(grpc.RpcError) as e:
                c.sampler.RequestLabeling(spb.RequestLabelingRequest(project=p, **kwargs))
            assert e.value.code() == code, (kwargs, e.value.details())
            assert needle in e.value.details(), (kwargs, e.value.details())
        refused = running.server.stores.metrics.query(
            "SELECT count() FROM labeling_requests WHERE project = {p:String}", {"p": p}
        ).rows[0][0]
        assert refused == 0
