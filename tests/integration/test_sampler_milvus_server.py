"""The sampler with vectors in a real Milvus server (an HNSW index): similarity search keeps a
recall@100 against an exact numpy search of the same vectors at or above the documented 0.95, and
excluded frames never come back; a campaign's diversity removes planted near-duplicates; relevance
feedback raises the precision on a planted cluster round after round. tests/server/ holds the
same tests on Milvus Lite."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.stores.vectors import ServerVectorStore, collection_name
from shoal.common.v1 import common_pb2 as cpb
from shoal.sampler.v1 import sampler_pb2 as spb
from tests.conftest import server_settings
from tests.server.conftest import Running, start_server
from tests.server.test_sampler_campaign import COPIES, members, planted_groups, run_campaign, shop_data, upload_shop
from tests.server.test_sampler_feedback import assert_feedback_helps, cones_data, feedback_precisions, upload_cones
from tests.server.test_sampler_search import cosine, data, exact_top, seed_ref, upload

pytestmark = pytest.mark.integration

#: the recall the sampler documents for an approximate (HNSW) index at k = 100
RECALL = 0.95


@pytest.fixture
def project() -> str:
    return f"smp-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def on_milvus_server(
    tmp_path: pathlib.Path, chdb_path: pathlib.Path, database: str, milvus_server: str, project: str
) -> Iterator[Running]:
    settings = server_settings(tmp_path / "data", chdb_path, database, vectors_url=milvus_server)
    running = start_server(settings)
    yield running
    running.server.stop(grace=1)
    store = ServerVectorStore(url=milvus_server, timeout_seconds=30)
    try:
        for space in ("clip", "clip-copy", "dino", "euclid", "emb"):
            if store.has_collection(collection_name(project, space)):
                store.drop_collection(collection_name(project, space))
    finally:
        store.close()


def test_search_recall_and_exclusions_on_the_milvus_server(on_milvus_server: Running, project: str) -> None:
    d = data(pool=6000, train=100, seed=3)
    upload(on_milvus_server, d, project)
    ids, x = d["pool_ids"], d["pool_x"]
    with on_milvus_server.client(on_milvus_server.admin_key) as c:

        def run(**kwargs) -> spb.SearchSimilarResponse:  # type: ignore[no-untyped-def]
            return c.sampler.SearchSimilar(spb.SearchSimilarRequest(project=project, pool_dataset="pool",
                                                                    embedding_space="clip", k=100, **kwargs))  # fmt: skip

        recalls = []
        for j in range(0, 100, 5):  # 20 seeds
            got = [i.ref.frame_id for i in run(seeds=[seed_ref("train", f"t{j:04d}")]).items]
            want = exact_top(cosine(x, d["train_x"][j : j + 1])[:, 0], ids, 100)
            recalls.append(len(set(got) & set(want)) / 100)
        print(f"recall@100 on the Milvus server: mean {np.mean(recalls):.4f}, min {min(recalls):.2f}")
        assert np.mean(recalls) >= RECALL

        # exclusions hold whatever the index returns
        sims = cosine(x, d["train_x"][7:8])[:, 0]
        near = exact_top(sims, ids, 30)
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, segment=apb.Segment(
            name="sent", dataset="pool", kind=apb.SEGMENT_KIND_OTHER), frame_ids=near))  # fmt: skip
        rain = cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="rain"))])
        got = run(seeds=[seed_ref("train", "t0007")], filter=rain, exclude_labeled=True, exclude_segments=["sent"])
        keep = (d["weather"] == "rain") & ~d["labeled"] & ~np.isin(ids, near)
        allowed = {f for f, ok in zip(ids, keep, strict=True) if ok}
        returned = [i.ref.frame_id for i in got.items]
        assert len(returned) == 100 and set(returned) <= allowed
        assert len(set(returned) & set(exact_top(sims, ids, 100, keep))) / 100 >= RECALL


def test_campaign_diversity_removes_planted_near_duplicates_on_the_milvus_server(
    on_milvus_server: Running, project: str
) -> None:
    upload_shop(on_milvus_server, shop_data(), project)
    with on_milvus_server.client(on_milvus_server.admin_key) as c:
        summary, items = run_campaign(c, project=project, name="more-cones", seed_segment="cones-missed", budget=60,
                                      weights=spb.CampaignWeights(similarity=1, diversity=0.5))  # fmt: skip
        groups = planted_groups(items)
        assert len(groups) == len(set(groups)) >= 40 and summary.selected == 60
        assert summary.skipped_duplicates_of_picked >= len(groups) * (COPIES - 1)
        assert "copy-of-t0005" not in {i.ref.frame_id for i in items} and summary.skipped_duplicates_of_labeled >= 1
        assert members(c, "more-cones", project) == {i.ref.frame_id for i in items}
        # without diversity or de-duplication the copies of the best groups crowd the sample
        _, plain = run_campaign(c, project=project, name="plain", seed_segment="cones-missed", budget=60,
                                duplicate_distance=-1, weights=spb.CampaignWeights(similarity=1, diversity=0))  # fmt: skip
        assert len(set(planted_groups(plain))) <= 60 // COPIES + 1


def test_feedback_raises_the_precision_round_after_round_on_the_milvus_server(
    on_milvus_server: Running, project: str
) -> None:
    d = cones_data()
    upload_cones(on_milvus_server, d, project)
    assert_feedback_helps(feedback_precisions(on_milvus_server, d, project))
