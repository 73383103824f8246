"""A sound-event project in the console, in a real Chromium: the frame view draws the clip's waveform (loud
where the tone is, flat where it is silent) and its spectrogram (brightest at the tone's frequency), places
each labeled and predicted interval at its time, and plays the clip: choosing an interval seeks to its onset
and the position line moves with the player. The clip is served with byte ranges, as players ask."""

from __future__ import annotations

import io
import math
import wave
from typing import Any

import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.console import scenes
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.console.conftest import Console, sign_in

pytestmark = pytest.mark.browser

RATE = 16_000
DURATION = 4.0
#: a 1 kHz tone from 1.0 s to 2.5 s, silence elsewhere
TONE = (1.0, 2.5, 1000.0)
LABELS = [(1.0, 2.5, 0), (3.0, 3.5, 1)]
PREDICTIONS = [(1.1, 2.4, 0, 0.9)]


def _wav() -> bytes:
    t = np.arange(int(RATE * DURATION)) / RATE
    on = (t >= TONE[0]) & (t < TONE[1])
    x = np.where(on, 0.5 * np.sin(2 * np.pi * TONE[2] * t), 0.0)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return out.getvalue()


@pytest.fixture(scope="module")
def clip(console: Console) -> bytes:
    folder = console.media / "sounds"
    folder.mkdir(exist_ok=True)
    data = _wav()
    (folder / "beep.wav").write_bytes(data)
    p = "sounds"
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_SOUND_EVENTS, classes=[pb.ClassDef(id=0, name="beep"),
                                                                    pb.ClassDef(id=1, name="click")])))  # fmt: skip
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(name="val", kind=pb.DATASET_KIND_LABELED))
        )
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="sed", dataset="val", model_name="sed", model_version="1")))  # fmt: skip
        chunk = pb.UploadChunk(inference_set="sed")
        chunk.frames.add(frame_id="beep", media_uri=(folder / "beep.wav").as_uri(), media_type=pb.MEDIA_TYPE_AUDIO,
                         duration_seconds=DURATION, sample_rate=RATE)  # fmt: skip
        chunk.labels.add(frame_id="beep", events=[pb.SoundEvent(onset=a, offset=b, class_id=k) for a, b, k in LABELS])
        chunk.inferences.add(frame_id="beep", events=[pb.SoundEvent(onset=a, offset=b, class_id=k, score=s)
                                                      for a, b, k, s in PREDICTIONS])  # fmt: skip
        c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="val", upload_id="sounds-1", chunk=chunk)]))
        assert c.wait_for_upload(p, "sounds-1", timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return data


_COLUMN = """([id, x]) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(Math.round(x * c.width), 0, 1, c.height).data;
  const out = [];
  for (let i = 0; i < d.length; i += 4) out.push(d[i] + d[i + 1] + d[i + 2]);
  return out;
}"""


def test_the_frame_view_draws_the_clip_and_places_its_intervals(console: Console, clip: bytes, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/sounds/frame/val/beep?inference_set=sed")
    page.wait_for_selector("#sound-view[data-ready='1']")
    assert page.inner_text("#sound-status") == "4.00 s at 16,000 Hz"
    # the waveform: reaching a quarter of the height from the middle where the tone is, flat where it is not
    loud = np.array(page.evaluate(_COLUMN, ["waveform", 1.75 / DURATION]))
    quiet = np.array(page.evaluate(_COLUMN, ["waveform", 0.5 / DURATION]))
    drawn = lambda col: np.flatnonzero(col < 400)  # noqa: E731 - dark pixels
    h = len(loud)
    assert drawn(loud).min() <= 0.27 * h and drawn(loud).max() >= 0.73 * h
    assert np.all(np.abs(drawn(quiet) - h / 2) <= 2)
    # the spectrogram: brightest at 1 kHz of its 8 kHz (an eighth of the way up) while the tone sounds
    spec = np.array(page.evaluate(_COLUMN, ["spectrogram", 1.75 / DURATION]))
    assert abs(int(spec.argmax()) - (1 - 1000 / 8000) * len(spec)) <= 0.02 * len(spec)
    assert spec.max() > 3 * np.array(page.evaluate(_COLUMN, ["spectrogram", 0.5 / DURATION])).max()
    # the intervals, each at its time
    tracks = page.locator("#sound-tracks").bounding_box()
    for kind, events in (("label", LABELS), ("prediction", PREDICTIONS)):
        for i, (onset, offset, *_) in enumerate(events):
            box = page.locator(f"#{kind}-event-{i}").bounding_box()
            assert box["x"] == pytest.approx(tracks["x"] + onset / DURATION * tracks["width"], abs=1.5)
            assert box["width"] == pytest.approx((offset - onset) / DURATION * tracks["width"], abs=1.5)
    assert page.inner_text("#label-event-1") == "click" and page.inner_text("#prediction-event-0") == "beep 0.90"
    page.uncheck("#show-predictions")
    assert not page.is_visible("#prediction-event-0") and page.is_visible("#label-event-0")


def test_choosing_an_interval_plays_it_and_the_line_follows(console: Console, clip: bytes, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/sounds/frame/val/beep?inference_set=sed")
    page.wait_for_selector("#sound-view[data-ready='1']")
    page.click("#label-event-1")  # the click at 3.0 s
    page.wait_for_function(
        "() => { const p = document.getElementById('player'); return !p.paused && p.currentTime > 3.1; }"
    )
    # the line follows the player: moving while it plays, where it is once paused
    start = float(page.get_attribute("#playhead", "data-time"))
    page.wait_for_function(f"() => Number(document.getElementById('playhead').dataset.time) > {start + 0.1}")
    page.evaluate("() => document.getElementById('player').pause()")
    page.wait_for_function(
        "() => { const p = document.getElementById('player'); return p.paused && Number(document.getElementById('playhead').dataset.time) === p.currentTime; }"
    )
    at = float(page.get_attribute("#playhead", "data-time"))
    assert 3.1 < at <= DURATION
    tracks = page.locator("#sound-tracks").bounding_box()
    line = page.locator("#playhead").bounding_box()
    assert line["x"] + line["width"] / 2 == pytest.approx(tracks["x"] + at / DURATION * tracks["width"], abs=1.5)


def test_the_clip_is_served_in_byte_ranges(console: Console, clip: bytes, page: Any) -> None:
    sign_in(page, console)
    url = console.url + "/clip/sounds/val/beep"
    whole = page.request.get(url)
    assert whole.status == 200 and whole.body() == clip and whole.headers["content-type"] == "audio/wav"
    part = page.request.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206 and part.body() == clip[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(clip)}"
    assert page.request.get(url, headers={"Range": f"bytes={len(clip)}-"}).status == 416
    thumb = page.request.get(console.url + "/media/sounds/val/beep?size=thumb")
    assert thumb.status == 200 and thumb.headers["content-type"] == "image/png"


def test_a_flac_clip_is_decoded() -> None:
    import soundfile

    t = np.arange(8000) / 8000
    out = io.BytesIO()
    soundfile.write(out, np.column_stack([np.sin(2 * np.pi * 440 * t)] * 2) * 0.25, 8000, format="FLAC")
    samples, rate = scenes.decode_audio(out.getvalue())
    assert rate == 8000 and samples.shape == (8000,) and np.abs(samples).max() == pytest.approx(0.25, abs=1e-3)
    assert scenes.audio_content_type(out.getvalue(), "x") == "audio/flac"


def _m(x: float) -> str:
    """A metric as the page writes it: a dash for NaN or -1 (not defined), else three decimals."""
    return "\u2013" if math.isnan(x) or x < 0 else f"{x:.3f}"


def test_the_performance_page_shows_the_sound_event_metrics(console: Console, clip: bytes, page: Any) -> None:
    with console.client() as c:
        m = c.analysis.GetSoundEventMetrics(
            apb.GetSoundEventMetricsRequest(project="sounds", inference_set="sed")
        ).metrics
    sign_in(page, console)
    page.goto(console.url + "/#/p/sounds/performance?inference_set=sed")
    page.wait_for_selector("#per-class-table")
    assert page.inner_text("#stat-segment-f1").splitlines()[-1] == _m(m.segment_based.f1)
    assert page.inner_text("#stat-event-f1").splitlines()[-1] == _m(m.event_based.f1)
    assert page.inner_text("#stat-event-er").splitlines()[-1] == _m(m.event_based.error_rate)
    rows = page.eval_on_selector_all(
        "#per-class-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [r[:5] for r in rows] == [
        [
            c.class_name,
            _m(c.segment_based.f1),
            _m(c.segment_based.error_rate),
            _m(c.event_based.f1),
            _m(c.event_based.error_rate),
        ]
        for c in m.per_class
    ]
    # the missed click: its cell lists the interval, which opens the clip at its onset
    page.click("#cell-1-missed")
    page.wait_for_selector("#sound-events-table tbody tr")
    assert [
        r[:3]
        for r in page.eval_on_selector_all(
            "#sound-events-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
        )
    ] == [["beep", "click 3.00\u20133.50 s", "\u2013"]]
    page.click("#sound-events-table a")
    page.wait_for_selector("#sound-view[data-ready='1']")
    assert float(page.get_attribute("#playhead", "data-time")) == pytest.approx(3.0)


def test_the_issues_page_lists_sound_event_issues(console: Console, clip: bytes, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/sounds/issues?inference_set=sed")
    page.click("#start-job")
    page.wait_for_selector("#issue-one")
    with console.client() as c:
        job = next(
            j
            for j in c.analysis.ListJobs(apb.ListJobsRequest(project="sounds")).jobs
            if j.kind == "sound_event_label_issues"
        )
        got = c.analysis.QuerySoundEventIssues(
            apb.QuerySoundEventIssuesRequest(project="sounds", job_id=job.job_id)
        ).intervals
    assert got and page.get_attribute("#issue-one", "data-frame-id") == "beep"
    rows = page.eval_on_selector_all(
        "#issue-intervals tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    name = lambda t: apb.SoundEventIssueType.Name(t)[len("SOUND_EVENT_ISSUE_TYPE_") :].lower().replace("_", " ")  # noqa: E731
    assert [r[0] for r in rows] == [name(x.issue_type) for x in got]
    # the click no detector hears: a spurious label
    spurious = [r for r in rows if r[0] == "spurious"]
    assert spurious and spurious[0][1] == "click 3.00\u20133.50 s" and spurious[0][3] == "(remove the event)"
    page.wait_for_selector("#issue-one #sound-view[data-ready='1']")  # the clip, its intervals and the player
    page.click("#issue-accept")  # sent to labeling with the reason
    page.wait_for_selector("#accepted-list tr[data-frame-id='beep']")
    assert "nothing is heard of the click event at 3.00" in page.inner_text("#accepted-list")
    assert "in labeling: pending" in page.inner_text("#issue-one h2")
