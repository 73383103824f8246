"""Standing campaigns in a real Chromium: one is started from the form of the campaigns page (a bad threshold is
refused beside its field first), frames streamed into the pool fill it while the list, never reloaded, shows
what it kept; its page shows the kept frames a page at a time, as GetStandingCampaign returns them, with their
nearest seeds; a second filling campaign is stopped from its page after a confirmation."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shoal.common.v1 import common_pb2 as cpb
from shoal.sampler.v1 import sampler_pb2 as spb
from tests.console.conftest import Console, sign_in
from tests.server.test_sampler_standing import create_stream_project, start, stream_data, upload_batch, wait_judged

pytestmark = pytest.mark.browser

PROJECT = "standing"
PAGE = 60  # the kept frames the campaign's page shows at a time


@pytest.fixture(scope="module")
def streams(console: Console) -> dict[str, Any]:
    """The project: seeds (segment "seeds" of the labeled set "train"), an empty unlabeled pool, frames to stream."""
    d = stream_data(uploads=2, seed=3)
    with console.client() as c:
        create_stream_project(c, PROJECT, d)
    return d


def _kept(c: Any, name: str) -> list[spb.StandingItem]:
    out: list[spb.StandingItem] = []
    token = ""
    while True:
        r = c.sampler.GetStandingCampaign(
            spb.GetStandingCampaignRequest(
                project=PROJECT, name=name, page=cpb.PageRequest(page_size=PAGE, page_token=token)
            )
        )
        out.extend(r.items)
        token = r.page.next_page_token
        if not token:
            return out


def _shown(page: Any) -> list[list[str]]:
    """The kept frames on the page: id, rank, the thumbnail's frame, the nearest seed's name."""
    return page.eval_on_selector_all(
        "#standing-kept .standing-item",
        "els => els.map(e => [e.dataset.frameId, e.dataset.rank, e.querySelector('figure.thumb').dataset.frameId,"
        " e.querySelector('a.nearest-seed').textContent])",
    )


def test_a_standing_campaign_started_in_the_form_fills_as_frames_arrive(
    console: Console, streams: dict[str, Any], page: Any
) -> None:
    sign_in(page, console)
    page.goto(f"{console.url}/#/p/{PROJECT}/campaigns")
    page.click("#tab-standing")
    page.wait_for_selector("#standing-form")
    assert page.inner_text("#standing-list-empty")
    # only the unlabeled pool, only the frame-level cosine spaces
    options = "els => els.map(e => e.value)"
    assert page.eval_on_selector_all("#standing-pool option", options) == ["pool"]
    assert page.eval_on_selector_all("#standing-space option", options) == ["clip", "dino"]
    assert page.input_value("#standing-seed") == "seeds"

    # a threshold the service refuses: its message beside the field, nothing started
    page.fill("#standing-name", "wide")
    page.fill("#standing-threshold", "1.5")
    page.click("#start-standing")
    error = page.wait_for_selector("#standing-form [data-field='similarity_threshold'] > .field-error:not([hidden])")
    assert "(0, 1]" in error.inner_text() and "1.5" in error.inner_text()
    marked = page.eval_on_selector_all(
        "#standing-form .field-error:not([hidden])", "els => els.map(e => e.parentElement.dataset.field)"
    )
    assert marked == ["similarity_threshold"]
    assert page.get_attribute("#standing-threshold", "aria-invalid") == "true"
    with console.client() as c:
        listed = c.sampler.ListStandingCampaigns(spb.ListStandingCampaignsRequest(project=PROJECT)).campaigns
        assert not listed

        page.fill("#standing-threshold", "0.85")
        page.fill("#standing-min-distance", "0.05")
        page.fill("#standing-budget", "5000")
        page.fill("#standing-retention", "2")
        page.select_option("#standing-retention-unit", "days")
        page.click("#start-standing")
        row = "#standing-list tr[data-name='wide']"
        page.wait_for_selector(f"{row}[data-state='STANDING_CAMPAIGN_STATE_FILLING']")
        assert page.get_attribute("#standing-threshold", "aria-invalid") is None  # the earlier mark is gone
        wide = c.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project=PROJECT, name="wide")).campaign
        assert (wide.pool_dataset, wide.embedding_space, wide.seed_segment, wide.seeds) == ("pool", "clip", "seeds", 4)
        assert (wide.similarity_threshold, wide.min_distance, wide.budget) == (0.85, 0.05, 5000)
        assert wide.retention_seconds == 2 * 86400
        cells = page.inner_text(row)
        assert "filling" in cells and "0 of 5,000" in cells and "similarity ≥ 0.85 · min distance 0.05" in cells, cells

        # a second one, started by a client: the list, refreshing while one fills, shows it too
        start(c, PROJECT, "halt", budget=100_000)
        page.wait_for_selector("#standing-list tr[data-name='halt'][data-state='STANDING_CAMPAIGN_STATE_FILLING']")

        # frames arrive: the list shows the counts without being reloaded
        page.evaluate("window.notReloaded = true")
        judged = 0
        for batch in streams["batches"]:
            upload_batch(c, PROJECT, batch)
            judged += len(batch["ids"])
            wide = wait_judged(c, PROJECT, "wide", judged)
            page.wait_for_selector(f"{row}[data-judged='{wide.judged}'][data-kept='{wide.kept}']")
        assert page.evaluate("window.notReloaded") is True
        assert wide.state == spb.STANDING_CAMPAIGN_STATE_FILLING and wide.kept > PAGE, wide
        assert wide.judged == wide.kept + wide.filtered + wide.below_threshold + wide.near_kept
        cells = page.inner_text(row)
        assert f"{wide.kept:,} of 5,000" in cells, cells
        assert f"{wide.below_threshold:,} below threshold · {wide.near_kept:,} near kept" in cells, cells
        assert page.get_attribute(f"{row} [role=progressbar]", "aria-valuenow") == str(math.floor(wide.kept / 50 + 0.5))

        # its page: the rule, the counts, the kept frames as GetStandingCampaign returns them, a page at a time
        page.click(f"{row} a.standing-name")
        page.wait_for_selector(f"#standing-facts[data-kept='{wide.kept}'] #standing-state")
        facts = page.inner_text("#standing-facts")
        assert f"{wide.judged:,}" in facts and "4 frames of seeds" in facts and "after 2 days" in facts, facts
        kept = _kept(c, "wide")
        assert len(kept) == wide.kept
        want = [[it.ref.frame_id, str(it.rank), it.ref.frame_id, it.nearest_seed.frame_id] for it in kept]
        page.wait_for_selector("#standing-kept .standing-item")
        assert _shown(page) == want[:PAGE]
        first = kept[0]
        caption = page.inner_text(f"#standing-kept .standing-item[data-frame-id='{first.ref.frame_id}']")
        assert f"#1 {first.ref.frame_id}" in caption and f"sim {first.similarity:.3f} to seed" in caption, caption
        src = page.get_attribute(f"#standing-kept .standing-item[data-frame-id='{first.ref.frame_id}'] img", "src")
        assert src == f"/media/{PROJECT}/pool/{first.ref.frame_id}?size=thumb"
        link = page.get_attribute(
            f"#standing-kept .standing-item[data-frame-id='{first.ref.frame_id}'] a.thumb-link", "href"
        )
        assert link == f"#/p/{PROJECT}/frame/pool/{first.ref.frame_id}"
        assert f"kept frames 1\u2013{PAGE} of {wide.kept}" in page.inner_text("#standing-page")
        page.click("#standing-next")
        page.wait_for_selector(f"#standing-kept .standing-item[data-rank='{PAGE + 1}']")
        assert _shown(page) == want[PAGE : 2 * PAGE]
        page.click("#standing-prev")
        page.wait_for_selector("#standing-kept .standing-item[data-rank='1']")
        assert _shown(page) == want[:PAGE]
        # its segment goes to labeling (recorded for a labeling platform, none being set up)
        page.click("#standing-send")
        sent = page.wait_for_selector("#standing-send-message.ok")
        assert f"({wide.kept} frames)" in sent.inner_text()
        page.click(f"#standing-kept .standing-item[data-frame-id='{first.ref.frame_id}'] a.thumb-link")
        page.wait_for_url(f"**/frame/pool/{first.ref.frame_id}")

        # the other campaign is stopped from its page, after a confirmation
        page.goto(f"{console.url}/#/p/{PROJECT}/campaigns?standing=halt")
        page.wait_for_selector("#standing-facts[data-state='STANDING_CAMPAIGN_STATE_FILLING']")
        page.click("#standing-stop")
        page.click("#standing-stop-cancel")  # kept filling: nothing asked of the service
        halt = c.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project=PROJECT, name="halt")).campaign
        assert halt.state == spb.STANDING_CAMPAIGN_STATE_FILLING
        page.click("#standing-stop")
        page.click("#standing-stop-confirm")
        page.wait_for_selector("#standing-facts[data-state='STANDING_CAMPAIGN_STATE_STOPPED']")
        assert page.inner_text("#standing-state") == "stopped"
        assert page.query_selector("#standing-stop") is None
        halt = c.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project=PROJECT, name="halt")).campaign
        assert halt.state == spb.STANDING_CAMPAIGN_STATE_STOPPED

        # back on the list: stopped, and the first still filling
        page.click("text=← Standing campaigns")
        page.wait_for_selector("#standing-list tr[data-name='halt'][data-state='STANDING_CAMPAIGN_STATE_STOPPED']")
        assert page.get_attribute(row, "data-state") == "STANDING_CAMPAIGN_STATE_FILLING"
