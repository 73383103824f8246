"""Standing campaigns on a real Apache Kafka broker (with chDB and Milvus Lite): frames streamed in
several uploads through the ingested topic fill two campaigns exactly as their offline twins and a
plain numpy reading of the rule choose, while the sampler's consumer fails to commit twice (its
batches come again from Kafka after the group rebalances) and the whole server is restarted between
uploads (the new consumer resumes at the group's committed offsets). A campaign that fills sends its kept frames
to labeling through an automation: its full event on the ingested topic, the labeling request on the
labeling-requests topic, taken by the labeling bridge."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.settings import ShoalSettings
from shoal.sampler import standing
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sampler.workers import StandingConsumer
from tests.server.conftest import Running, start_server
from tests.server.test_automations import finished_run, labeling_items
from tests.server.test_automations_standing import REASON, THRESHOLD, campaign_rule, fill, full_events_of
from tests.server.test_sampler_standing import (
    _Faults,
    _sampler_consumer,
    arrival_order,
    check_twins,
    create_stream_project,
    plain_rule,
    start,
    stream_data,
    upload_batch,
    wait_judged,
    wait_state,
)

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_a_stream_through_kafka_fills_campaigns_exactly_through_failed_commits_and_a_restart(
    embedded_settings: ShoalSettings, kafka_broker, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    prefix = f"standing-{uuid.uuid4().hex[:8]}"
    settings = embedded_settings.model_copy(
        update={"kafka_bootstrap_servers": kafka_broker.bootstrap_servers, "topic_prefix": prefix,
                "topic_partitions": 2, "ingest_consumer_group": f"{prefix}-ingest",
                "sampler_consumer_group": f"{prefix}-sampler", "vectors_url": str(tmp_path / "vectors.db")}
    )  # fmt: skip
    p = "stream"
    d = stream_data(uploads=4, seed=7)
    r: Running = start_server(settings)
    flaky = None
    try:
        stores = r.server.stores
        original = _sampler_consumer(r)
        original.stop(30)
        faults = _Faults(stores.events, fail_commits={1, 2}, fail_insert=set())
        flaky = StandingConsumer(faults.wrap_bus(), original.topics, standing.Standing(stores.metrics, stores.vectors),
                                 group_id=original.group_id)  # fmt: skip
        flaky.start()
        with r.client(r.admin_key) as c:
            create_stream_project(c, p, d)
            start(c, p, "exact", min_distance=0.05)
            start(c, p, "small", similarity_threshold=0.8, budget=60)
            for b in d["batches"][:2]:
                upload_batch(c, p, b)
            order, _, _ = arrival_order(d["batches"][:2])
            wait_judged(c, p, "exact", len(order), timeout=300)
        assert faults.injected == 2 and faults.delivered > flaky.handled_events  # Kafka delivered them again
    finally:
        if flaky is not None:
            flaky.stop(30)
        r.server.stop(grace=2)

    # the same stores and broker, a new server: its consumer resumes at the committed offsets
    r = start_server(settings)
    try:
        with r.client(r.admin_key) as c:
            for b in d["batches"][2:]:
                upload_batch(c, p, b)
            order, x, _ = arrival_order(d["batches"])
            wait_judged(c, p, "exact", len(order), timeout=300)
            wait_state(c, p, "small", spb.STANDING_CAMPAIGN_STATE_FULL, timeout=300)
            everyone = np.ones(len(order), dtype=bool)
            check_twins(r, c, p, "exact", order, plain_rule(x, d["seeds"], threshold=0.85, min_distance=0.05,
                                                            budget=10_000, passes=everyone))  # fmt: skip
            check_twins(r, c, p, "small", order, plain_rule(x, d["seeds"], threshold=0.8, min_distance=0.02,
                                                            budget=60, passes=everyone))  # fmt: skip
            for name in ("exact", "small"):  # one verdict per frame, written once
                rows, frames = r.server.stores.metrics.query(
                    "SELECT count(), uniqExact(frame_id) FROM standing_decisions WHERE project = {p:String}"
                    " AND campaign = {c:String}", {"p": p, "c": name}).rows[0]  # fmt: skip
                assert rows == frames, name
    finally:
        r.server.stop(grace=2)


@pytest.mark.timeout(600)
def test_on_kafka_a_full_campaign_goes_to_labeling_once(
    embedded_settings: ShoalSettings, kafka_broker, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    prefix = f"full-{uuid.uuid4().hex[:8]}"
    settings = embedded_settings.model_copy(
        update={"kafka_bootstrap_servers": kafka_broker.bootstrap_servers, "topic_prefix": prefix,
                "topic_partitions": 2, "ingest_consumer_group": f"{prefix}-ingest",
                "sampler_consumer_group": f"{prefix}-sampler", "automations_consumer_group": f"{prefix}-automations",
                "vectors_url": str(tmp_path / "vectors.db")}
    )  # fmt: skip
    p = "full"
    d = stream_data(uploads=4, seed=8)
    r: Running = start_server(settings)
    try:
        with r.client(r.admin_key) as c:
            create_stream_project(c, p, d)
            c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=p, automation=campaign_rule("send")))
            start(c, p, "small", similarity_threshold=THRESHOLD, budget=30)
            full = fill(c, p, d)
            kept = list(c.standing_campaign(p, "small").frame_ids)
            assert full.kept == len(kept) == 30
            run = finished_run(c, p, "send", "")
            assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
            assert (run.trigger.campaign, run.trigger.frames) == ("small", 30)
            sent = run.steps[0].labeling
            assert [(f.frame_id, f.reason) for f in sent.frames] == [(f, REASON) for f in kept]
            items = labeling_items(c, p, sent.request_id)
            assert [(i.ref.frame_id, i.reason) for i in items] == sorted((f, REASON) for f in kept)
            # one full event, on the partition of the pool's chunks
            ((event, note),) = full_events_of(r, p)
            assert (note.campaign, note.kept, note.budget) == ("small", 30, 30)
            assert event.key == f"{p}/pool".encode()
            assert run.trigger.source.startswith(f"{event.topic}/{event.partition}/")
    finally:
        r.server.stop(grace=2)
