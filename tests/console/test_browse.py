"""Signing in, the project list, the example grid and the frame view, in a real Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from tests.console.conftest import Console, sign_in
from tests.console.data import Shapes, make_cones, make_shapes

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shapes(console: Console) -> Shapes:
    make_cones(console)
    return make_shapes(console)


def test_sign_in_shows_only_the_projects_of_the_key(console: Console, shapes: Shapes, page: Any) -> None:
    key = console.key(["shapes"], description="shapes only")
    sign_in(page, console, key)
    names = page.locator("#projects tbody tr td:nth-child(2)").all_inner_texts()
    assert names == ["shapes"]  # "cones" exists, but this key may not see it
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["shoal_key"]["httpOnly"] and cookies["shoal_key"]["sameSite"] == "Strict"
    assert key not in page.url and key not in page.content()
    assert page.evaluate("() => document.cookie").find("shoal_key") == -1  # scripts cannot read it
    # a foreign project is refused by the services, shown as a page, not a stack trace
    page.goto(console.url + "/#/p/cones")
    page.wait_for_selector("#main .error")
    assert "Not allowed" in page.inner_text("#main .error")
    # sign out: the key cookie is gone and pages ask to sign in again
    page.click("#sign-out")
    page.wait_for_selector("#signin-form")
    assert "shoal_key" not in {c["name"] for c in page.context.cookies()}
    page.goto(console.url + "/#/p/shapes/examples")
    page.wait_for_selector("#signin-form")


def test_a_wrong_key_is_refused_with_a_clear_message(console: Console, page: Any) -> None:
    page.goto(console.url + "/#/signin")
    page.fill("#api-key", "shoal_0000000000000000_" + "x" * 32)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:not([hidden])")
    assert "refused" in page.inner_text("#signin-error")
    page.fill("#api-key", "not a key")
    page.click("#signin-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#signin-error').innerText.includes('not an API key')")
    assert "shoal_key" not in {c["name"] for c in page.context.cookies()}


def test_a_revoked_key_sends_the_browser_back_to_sign_in(console: Console, shapes: Shapes, page: Any) -> None:
    key_id, key = console.server.keys.create(["shapes"], description="to revoke")
    sign_in(page, console, key)
    console.server.keys.revoke(key_id)
    console.server.keys._forget(key_id)  # the services' key cache would keep it for 10 s more
    page.goto(console.url + "/#/p/shapes/examples")
    page.wait_for_selector("#signin-form")
    assert "refused" in page.inner_text("#signin-error") or "sign in" in page.inner_text("#signin-error").lower()


def _grid_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#grid figure.thumb", "els => els.map(e => e.dataset.frameId)")


def test_filtered_grid_pages_through_every_matching_frame(console: Console, shapes: Shapes, page: Any) -> None:
    sign_in(page, console)
    # wrong predictions of squares on the val split, worst loss first
    page.goto(
        console.url
        + "/#/p/shapes/examples?dataset=shapes&inference_set=cnn&split=val&label_class=1&sort=loss&desc=true"
    )
    page.wait_for_selector("#grid figure.thumb")
    with console.client() as c:
        want = []
        token = ""
        while True:
            resp = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                project="shapes", dataset="shapes", inference_set="cnn",
                filter=cpb.Filter(all=[
                    cpb.Condition(field="split", equals=cpb.Value(string_value="val")),
                    cpb.Condition(field="label_class", equals=cpb.Value(number_value=1)),
                ]),
                sort=[apb.SortKey(field="loss", descending=True)],
                page=cpb.PageRequest(page_size=1000, page_token=token)))  # fmt: skip
            want += [d.ref.frame_id for d in resp.datapoints]
            token = resp.page.next_page_token
            if not token:
                break
    assert 10 < len(want) < 60
    # the grid loads more pages as it is scrolled, until the end of the results
    page.wait_for_selector("#grid-status:has-text('End of results')")
    assert _grid_ids(page) == want
    assert page.inner_text("#result-count").startswith(f"{len(want)} frames")
    # every thumbnail is a real image from the frame's file
    ok = page.evaluate(
        "async () => Promise.all([...document.querySelectorAll('#grid img')].slice(0, 6).map(async i => {"
        " await i.decode(); return i.naturalWidth > 0; }))"
    )
    assert all(ok)


def test_infinite_scroll_loads_pages_as_the_grid_is_scrolled(console: Console, shapes: Shapes, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes/examples?dataset=shapes&inference_set=cnn")
    page.wait_for_selector("#grid figure.thumb")
    first = len(_grid_ids(page))
    assert first < len(shapes.frame_ids)  # not everything at once
    for _ in range(20):
        if page.locator("#grid-status:has-text('End of results')").count():
            break
        page.mouse.wheel(0, 4000)
        page.wait_for_timeout(200)
    page.wait_for_selector("#grid-status:has-text('End of results')")
    assert _grid_ids(page) == sorted(shapes.frame_ids)


def test_frame_view_shows_label_versions_metadata_and_neighbours(console: Console, shapes: Shapes, page: Any) -> None:
    sign_in(page, console)
    fid = shapes.flipped[0]
    page.goto(console.url + f"/#/p/shapes/frame/shapes/{fid}?inference_set=cnn")
    page.wait_for_selector("#label-versions")
    facts = page.inner_text("#frame-facts")
    i = shapes.frame_ids.index(fid)
    assert f"Label\t{['circle', 'square', 'triangle'][shapes.labels[i]]}" in facts
    assert "camera" in page.inner_text("#frame-metadata")
    page.wait_for_selector("#neighbours figure.thumb")
    neighbours = page.eval_on_selector_all("#neighbours figure.thumb", "els => els.map(e => e.dataset.frameId)")
    assert fid not in neighbours and len(neighbours) == 12
    # neighbours in the embedding space are mostly of the frame's true class
    same = sum(shapes.truth[shapes.frame_ids.index(n)] == shapes.truth[i] for n in neighbours)
    assert same >= 9


def test_selected_frames_are_saved_as_a_segment(console: Console, shapes: Shapes, page: Any) -> None:
    sign_in(page, console)
    page.goto(
        console.url + "/#/p/shapes/examples?dataset=shapes&inference_set=cnn&camera=&meta_key=camera&meta_value=rear"
    )
    page.wait_for_selector("#grid figure.thumb")
    boxes = page.locator("#grid input.select")
    chosen = _grid_ids(page)[:3]
    for k in range(3):
        boxes.nth(k).check()
    assert page.inner_text("#selected-count") == "3 selected"
    page.fill("#segment-name", "rear-picks")
    page.click("#save-segment")
    page.wait_for_selector("#save-message.ok")
    with console.client() as c:
        members = c.analysis.ListSegmentMembers(apb.ListSegmentMembersRequest(project="shapes", name="rear-picks"))
    assert sorted(m.frame_id for m in members.members) == sorted(chosen)
    assert all(shapes.cameras[shapes.frame_ids.index(f)] == "rear" for f in chosen)


def test_overview_counts_per_split_and_class_and_the_model_lineage(console: Console, shapes: Shapes, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes")
    page.wait_for_selector("#datasets .dataset .balance")
    splits = page.inner_text("#datasets .splits")
    assert f"train\t{shapes.splits.count('train')}" in splits and f"val\t{shapes.splits.count('val')}" in splits
    bars = page.locator("#datasets .bar-row").all_inner_texts()
    for k, name in enumerate(["circle", "square", "triangle"]):
        assert f"{name}\n\n{shapes.labels.count(k)}" in bars or any(
            b.startswith(name) and b.endswith(str(shapes.labels.count(k))) for b in bars
        ), bars
    assert "cnn" in page.inner_text("#inference-sets") and "pixels" in page.inner_text("#spaces")
    # a class of the balance opens the grid of the frames labeled with it
    page.click("#datasets .bar-row:has-text('square')")
    page.wait_for_selector("#grid-status:has-text('End of results')")
    assert page.inner_text("#result-count").startswith(f"{shapes.labels.count(1)} frames")


def test_upload_history_shows_states_and_the_first_rejected_rows(console: Console, shapes: Shapes, page: Any) -> None:
    from shoal.common.topics import Topics
    from shoal.ingest.v1 import ingest_pb2 as pb

    # a producer's event with a label of an unknown class: that row is rejected, the other written
    chunk = pb.UploadChunk(labels=[pb.FrameLabels(frame_id="s-0001", class_id=0),
                                   pb.FrameLabels(frame_id="s-0002", class_id=7)])  # fmt: skip
    event = pb.UploadEvent(schema_version=1, upload_id="producer-7", project="shapes", dataset="shapes", chunk=chunk)
    topics = Topics(console.server.settings.topic_prefix)
    console.server.stores.events.publish(topics.uploads, key=b"shapes/shapes", value=event.SerializeToString()).result(
        timeout=10
    )
    with console.client() as c:
        st = c.wait_for_upload("shapes", "producer-7", timeout=120)
    assert st.rejected.labels == 1
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes")
    page.wait_for_selector("#upload-history")
    first = page.locator("#upload-history tbody tr").first.inner_text()
    assert "producer-7" in first and "s-0002" in first and "class" in first
    assert pb.UploadState.Name(st.state).replace("UPLOAD_STATE_", "").lower().replace("_", " ") in first


def test_detection_grid_draws_labels_and_predictions_over_each_image(
    console: Console, shapes: Shapes, page: Any
) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/cones/examples?dataset=road&inference_set=yolo")
    page.wait_for_selector("#grid-status:has-text('End of results')")
    counts = page.eval_on_selector_all(
        "#grid figure.thumb",
        "els => els.map(e => [e.dataset.frameId, e.querySelectorAll('g.box.label').length,"
        " e.querySelectorAll('g.box.prediction').length])",
    )
    got = {fid: (labels, preds) for fid, labels, preds in counts}
    assert len(got) == 24
    assert got["c-000"] == (1, 1) and got["c-001"] == (2, 2)
    assert got["c-003"] == (2, 1)  # the model missed one of its two boxes
    assert got["c-007"] == (2, 3)  # and saw one where nothing is
    # the boxes sit where they were uploaded, in the image's pixel coordinates
    rect = page.locator("#grid figure.thumb[data-frame-id='c-007'] g.box.prediction rect").last
    assert [rect.get_attribute(a) for a in ("x", "y", "width", "height")] == ["120", "80", "30", "30"]
    # the frame view lists the predictions with their scores
    page.click("#grid figure.thumb[data-frame-id='c-005']")
    page.wait_for_selector("#predictions")
    assert "barrel" in page.inner_text("#predictions") or "sign" in page.inner_text("#predictions")


def test_grid_opens_the_frames_that_regressed_against_a_baseline(console: Console, shapes: Shapes, page: Any) -> None:
    import numpy as np

    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    n = len(shapes.frame_ids)
    probs = np.full((n, 3), 0.1)
    for i, k in enumerate(shapes.truth):
        probs[i, (k + 1) % 3 if shapes.cameras[i] == "rear" else k] = 0.8  # wrong on every rear frame
    with console.client() as c:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="shapes", inference_set=pb.InferenceSet(
            name="cnn2", dataset="shapes", model_name="cnn", model_version="2")))  # fmt: skip
        r = c.upload("shapes", "shapes", UploadColumns(frame_ids=shapes.frame_ids, inference_set="cnn2",
                                                       probabilities=probs, skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload("shapes", r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        want = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="shapes", dataset="shapes", inference_set="cnn2", baseline_inference_set="cnn",
            filter=cpb.Filter(all=[cpb.Condition(field="change", equals=cpb.Value(string_value="regressed"))]),
            page=cpb.PageRequest(page_size=1000)))  # fmt: skip
    regressed = [d.ref.frame_id for d in want.datapoints]
    assert regressed and all(shapes.cameras[shapes.frame_ids.index(f)] == "rear" for f in regressed)
    sign_in(page, console)
    page.goto(
        console.url
        + "/#/p/shapes/examples?dataset=shapes&inference_set=cnn2&baseline_inference_set=cnn&change=regressed"
    )
    page.wait_for_selector("#grid-status:has-text('End of results')")
    assert _grid_ids(page) == regressed
    assert page.input_value("#sel-change") == "regressed"


def test_no_page_shows_a_stray_null_or_undefined(console: Console, shapes: Shapes, page: Any) -> None:
    sign_in(page, console)
    for fragment, ready in [
        ("#/p/shapes", "#upload-history"),
        (f"#/p/shapes/frame/shapes/{shapes.frame_ids[0]}", "#label-versions"),
        ("#/p/shapes/jobs", "#jobs, #no-jobs"),
        ("#/p/shapes/segments", "#segments, #no-segments"),
        ("#/p/shapes/examples", "#grid figure.thumb"),
    ]:
        page.goto(console.url + "/" + fragment)
        page.wait_for_selector(ready)
        text = page.inner_text("#main")
        assert "null" not in text.split() and "undefined" not in text.split(), (fragment, text[:500])


def test_jobs_page_follows_a_running_job_live_and_links_its_result(console: Console, shapes: Shapes, page: Any) -> None:
    sign_in(page, console)
    with console.client() as c:
        job = c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project="shapes", dataset="shapes", embedding_space="pixels", k=5, rerun=True)).job  # fmt: skip
    page.goto(console.url + "/#/p/shapes/jobs")
    row = f"#job-{job.job_id}"
    page.wait_for_selector(row)
    # the row turns succeeded without a reload (over the event stream while the job still runs)
    page.wait_for_selector(f"{row} .state .pill.succeeded")
    assert page.get_attribute(f"{row} [role=progressbar]", "aria-valuenow") == "100"
    page.click(f"{row} a.result")
    page.wait_for_selector("#outliers figure.thumb")
    assert "/findings" in page.url


def test_the_loop_is_keyboard_navigable(console: Console, shapes: Shapes, page: Any) -> None:
    page.goto(console.url + "/#/signin")
    page.wait_for_selector("#api-key:focus")  # the key field has the focus on arrival
    page.keyboard.type(console.admin_key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#projects")

    def tab_to(selector: str, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#projects a")
    page.keyboard.press("Enter")
    page.wait_for_selector("#datasets")
    tab_to("#nav a[href$='/examples']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#grid figure.thumb")
    tab_to("#grid a.thumb-link")
    # the focus is visible: the focused link draws an outline
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    page.keyboard.press("Enter")
    page.wait_for_selector("#label-versions")


def test_a_segment_is_sent_to_labeling_without_a_platform_set_up(console: Console, shapes: Shapes, page: Any) -> None:
    from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb

    with console.client() as c:
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project="shapes", segment=apb.Segment(
            name="to-label", dataset="shapes", kind=apb.SEGMENT_KIND_OTHER, reason="looks odd"),
            frame_ids=shapes.frame_ids[:4]))  # fmt: skip
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes/segments")
    page.click("#segment-to-label button.send")
    page.wait_for_selector("#segment-to-label .send-status.ok")
    assert "4 frames" in page.inner_text("#segment-to-label .send-status")
    with console.client() as c:

        def items() -> list[str]:
            resp = c.labeling_bridge.ListLabelingItems(lpb.ListLabelingItemsRequest(project="shapes"))
            return sorted(i.ref.frame_id for i in resp.items)

        from tests.server.conftest import wait_for

        wait_for(lambda: set(shapes.frame_ids[:4]) <= set(items()), what="the segment's frames to be recorded")
