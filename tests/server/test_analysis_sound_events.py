"""Sound-event projects through the server: clips with labeled and predicted events (several classes, clips
without events, events at the clips' edges, predictions just inside and just outside the collars) measured
equal to sed_eval, the reference, figure by figure, over every clip and under a frame filter and a
confidence threshold; the event confusion matrix and the events behind its cells; the label-issues job on
tones with planted errors of each kind; dismissals; comparison, slices and gates; bad requests refused
naming the field.

sed_eval runs in its own venv (``tests/harness/sed_eval_reference.py``, ``make sed-eval``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pytest

from shoal.analysis import sound_event_analysis, sound_event_issues
from shoal.analysis.sound_events import EventMetrics, Intervals
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import error_detail
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.harness import sed_eval_reference, tones
from tests.server.conftest import Running, finish_job, project_name

CLASSES = [(3, "siren"), (5, "dog_bark"), (7, "engine"), (100_000, "speech")]  # ids need not be positions
IDS = [c for c, _ in CLASSES]
NAMES = [n for _, n in CLASSES]
K = len(CLASSES)


@dataclass
class Clip:
    frame_id: str
    mic: str
    duration: float
    #: (onset, offset, class position) rows, and (onset, offset, class position, score) rows
    labels: list[tuple[float, float, int]] = field(default_factory=list)
    predictions: list[tuple[float, float, int, float]] = field(default_factory=list)


def _generated(seed: int, n: int) -> list[Clip]:
    """Clips of 5 to 10 s, a third from a far microphone (more misses and confusions); some without events,
    events at the clips' edges, predictions whose onsets are just inside or outside the 200 ms collar."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        clip = Clip(f"clip-{i:03d}", "far" if i % 3 == 0 else "near", float(rng.choice([5.0, 7.5, 10.0])))
        far = clip.mic == "far"
        for _ in range(0 if i % 9 == 4 else int(rng.integers(0, 6))):
            length = float(rng.uniform(0.1, 3.0))
            edge = rng.random()  # a tenth at the clip's start, a tenth at its end
            on = 0.0 if edge < 0.1 else clip.duration - length
            if edge >= 0.2:
                on = float(rng.uniform(0, clip.duration - length))
            on = round(max(on, 0.0), 2)
            clip.labels.append((on, round(min(clip.duration, on + length), 2), int(rng.integers(K))))
        for on, off, cls in clip.labels:
            if rng.random() < (0.4 if far else 0.1):
                continue
            near_collar = rng.random() < (0.5 if far else 0.2)
            shift = float(rng.choice([-0.21, -0.19, 0.19, 0.21]) if near_collar else rng.normal(0, 0.05))
            a = round(max(0.0, on + shift), 2)
            b = round(min(clip.duration, off + rng.normal(0, 0.3 if far else 0.05)), 2)
            if b - a < 0.05:
                continue
            k = int(rng.integers(K)) if rng.random() < (0.3 if far else 0.1) else cls
            clip.predictions.append((a, b, k, round(float(rng.uniform(0.3, 1.0)), 3)))
        for _ in range(int(rng.integers(0, 3))):  # false alarms
            a = round(float(rng.uniform(0, clip.duration - 0.5)), 2)
            clip.predictions.append((a, round(a + float(rng.uniform(0.2, 0.5)), 2), int(rng.integers(K)),
                                     round(float(rng.uniform(0.3, 1.0)), 3)))  # fmt: skip
        rng.shuffle(clip.predictions)  # list order decides sed_eval's matching among equals
        out.append(clip)
    return out


def _create(c: Any, p: str, sets: tuple[str, ...] = ("crnn",)) -> None:
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=p, task_type=pb.TASK_TYPE_SOUND_EVENTS, classes=[pb.ClassDef(id=i, name=n) for i, n in CLASSES])))  # fmt: skip
    c.ingest.CreateDataset(
        pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(name="val", kind=pb.DATASET_KIND_LABELED))
    )
    for name in sets:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name=name, dataset="val", model_name=name, model_version="1")))  # fmt: skip


def _upload(c: Any, p: str, clips: list[Clip], inference_set: str, *, skip_frames: bool = False) -> None:
    cols = UploadColumns(
        frame_ids=[x.frame_id for x in clips], media_type=pb.MEDIA_TYPE_AUDIO,
        media_uris=[f"s3://audio/{x.frame_id}.flac" for x in clips], durations=[x.duration for x in clips],
        sample_rates=[16000] * len(clips), metadata=[{"mic": x.mic} for x in clips],
        label_events=None if skip_frames else [[(a, b, IDS[k]) for a, b, k in x.labels] for x in clips],
        inference_set=inference_set, skip_frames=skip_frames,
        predicted_events=[[(a, b, IDS[k], s) for a, b, k, s in x.predictions] for x in clips],
    )  # fmt: skip
    r = c.upload(p, "val", cols, progress=False)
    assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


@pytest.fixture(scope="module")
def sed_eval_python() -> object:
    python = sed_eval_reference.ensure()
    if python is None:
        pytest.fail("sed_eval's venv is missing and could not be made: run make sed-eval (needs PyPI)")
    return python


@dataclass
class Generated:
    project: str
    clips: list[Clip]
    #: the same clips predicted by a worse model ("tiny"): more misses, far clips worst
    worse: list[Clip]


@pytest.fixture(scope="module")
def generated(shared: Running) -> Generated:
    p = project_name("sound_events_generated")
    clips = _generated(1, 72)
    rng = np.random.default_rng(2)
    worse = [Clip(x.frame_id, x.mic, x.duration, x.labels, [e for e in x.predictions if rng.random() < 0.6])
             for x in clips]  # fmt: skip
    with shared.client(shared.admin_key) as c:
        _create(c, p, ("crnn", "tiny"))
        _upload(c, p, clips, "crnn")
        _upload(c, p, worse, "tiny", skip_frames=True)
    return Generated(p, clips, worse)


def _payload(clips: list[Clip], threshold: float, segment: list[dict[str, Any]],
             event: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {"labels": NAMES, "segment": segment, "event": event, "clips": [
        {"reference": [list(e) for e in x.labels], "duration": x.duration,
         "estimated": [[a, b, k] for a, b, k, s in x.predictions if s >= threshold]} for x in clips]}  # fmt: skip


def _same(got: apb.SoundEventFigures, theirs: dict[str, Any], where: str) -> int:
    """Every figure sed_eval gives of the row equal to 1e-9 (NaN where it has NaN); how many were compared."""
    want = {"f1": theirs["f_measure"]["f_measure"], "precision": theirs["f_measure"]["precision"],
            "recall": theirs["f_measure"]["recall"], **theirs["error_rate"], **theirs.get("accuracy", {})}  # fmt: skip
    want.pop("error_rate", None)
    want["error_rate"] = theirs["error_rate"]["error_rate"]
    if "count" in theirs:
        want["reference"], want["estimated"] = theirs["count"]["Nref"], theirs["count"]["Nsys"]
    for name, value in want.items():
        mine = getattr(got, name)
        if math.isnan(value):
            assert math.isnan(mine), f"{where}.{name}: {mine}, sed_eval NaN"
        else:
            assert mine == pytest.approx(value, abs=1e-9, rel=0), f"{where}.{name}: {mine}, sed_eval {value}"
    return len(want)


def _check(m: apb.SoundEventMetrics, segment: dict[str, Any], event: dict[str, Any]) -> None:
    n = _same(m.segment_based, segment["overall"], "segment_based")
    n += _same(m.event_based, event["overall"], "event_based")
    n += _same(m.segment_based_class_average, segment["class_wise_average"], "segment_based_class_average")
    n += _same(m.event_based_class_average, event["class_wise_average"], "event_based_class_average")
    for row, name in zip(m.per_class, NAMES, strict=True):
        n += _same(row.segment_based, segment["class_wise"][name], f"{name}.segment_based")
        n += _same(row.event_based, event["class_wise"][name], f"{name}.event_based")
    assert n > 100
    # the confusion: rows are the labeled events of each class, columns the predicted ones, the diagonal each
    # class's event-based true positives; the "false positive" row and "missed" column hold the rest
    cells = np.array(m.confusion).reshape(K + 1, K + 1)
    assert list(m.class_ids) == IDS and cells[K, K] == 0
    for k, row in enumerate(m.per_class):
        assert cells[k].sum() == row.event_based.reference and cells[:, k].sum() == row.event_based.estimated
        tp = round(row.event_based.recall * row.event_based.reference) if row.event_based.reference else 0
        assert cells[k, k] == tp
    assert cells[:K].sum() == m.reference_events and cells[:, :K].sum() == m.estimated_events


def _metrics(c: Any, p: str, inference_set: str = "crnn", **kwargs: Any) -> apb.SoundEventMetrics:
    return c.analysis.GetSoundEventMetrics(
        apb.GetSoundEventMetricsRequest(project=p, inference_set=inference_set, **kwargs)
    ).metrics


FAR = cpb.Filter(all=[cpb.Condition(field="metadata.mic", equals=cpb.Value(string_value="far"))])


def test_metrics_equal_sed_eval_over_every_clip_and_under_a_filter(
    shared: Running, generated: Generated, sed_eval_python: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = generated.clips
    theirs = sed_eval_reference.run(
        _payload(clips, 0.0, [{"time_resolution": 1.0}, {"time_resolution": 0.5}],
                 [{}, {"t_collar": 0.3, "percentage_of_length": 0.2}, {"evaluate_offset": False}]),
        python=sed_eval_python,
    )  # fmt: skip
    far = [x for x in clips if x.mic == "far"]
    theirs_far = sed_eval_reference.run(_payload(far, 0.6, [{}], [{}]), python=sed_eval_python)
    with shared.client(shared.admin_key) as c:
        m = _metrics(c, generated.project)
        assert (m.clips, m.time_resolution, m.t_collar, m.percentage_of_length) == (len(clips), 1.0, 0.2, 0.5)
        assert m.reference_events == sum(len(x.labels) for x in clips) > 100
        _check(m, theirs["segment"][0], theirs["event"][0])
        m = _metrics(c, generated.project, time_resolution=0.5, t_collar=0.3, percentage_of_length=0.2)
        _check(m, theirs["segment"][1], theirs["event"][1])
        _check(_metrics(c, generated.project, onset_only=True), theirs["segment"][0], theirs["event"][2])
        monkeypatch.setattr(sound_event_analysis, "CHUNK", 5)  # the clips read five at a time: the same figures
        m = _metrics(c, generated.project, frame_filter=FAR, confidence_threshold=0.6)
        assert m.clips == len(far) and m.estimated_events == sum(s >= 0.6 for x in far for *_, s in x.predictions)
        _check(m, theirs_far["segment"][0], theirs_far["event"][0])


# -- the confusion matrix and its cells -------------------------------------------------------------------------

SIREN, DOG, ENGINE = 0, 1, 2
HAND_MADE = [
    # a siren heard as a dog bark, a dog bark missed, an engine predicted where there is none
    Clip("a", "near", 10.0, [(1.0, 3.0, SIREN), (5.0, 6.0, DOG)], [(1.05, 2.9, DOG, 0.9), (7.0, 8.0, ENGINE, 0.8)]),
    # both found; a siren predicted over the engine as well (its engine matched first: a false positive)
    Clip("b", "near", 10.0, [(0.5, 2.0, SIREN), (3.0, 4.5, ENGINE)],
         [(3.05, 4.5, SIREN, 0.6), (0.6, 2.1, SIREN, 0.95), (3.1, 4.4, ENGINE, 0.7)]),
    Clip("c", "near", 4.0),  # nothing at all
    # an onset 150 ms late (within the collar: found), one 250 ms late (outside: missed and a false positive)
    Clip("d", "far", 8.0, [(2.0, 4.0, DOG), (6.0, 7.0, DOG)], [(2.15, 4.0, DOG, 0.9), (6.25, 7.0, DOG, 0.9)]),
]  # fmt: skip


def _rows(got: apb.QuerySoundEventsResponse) -> list[tuple[Any, ...]]:
    def event(e: Any, has: bool) -> tuple[Any, ...] | None:
        return (e.onset, e.offset, IDS.index(e.class_id)) if has else None

    return [(m.frame_id, event(m.label_event, m.HasField("label_event")),
             event(m.predicted_event, m.HasField("predicted_event"))) for m in got.matches]  # fmt: skip


def test_the_confusion_counts_a_wrong_class_and_a_missed_event_and_its_cells_open(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sound_event_analysis, "CHUNK", 1)  # a clip per read: pages cross the reads
    with shared.client(shared.admin_key) as c:
        _create(c, project)
        _upload(c, project, HAND_MADE, "crnn")
        m = _metrics(c, project)
        assert np.array(m.confusion).reshape(K + 1, K + 1).tolist() == [
            [1, 1, 0, 0, 0],  # siren: found once, heard as a dog bark once
            [0, 1, 0, 0, 2],  # dog bark: found once, missed twice
            [0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0],  # false positives
        ]

        def cell(**kwargs: Any) -> apb.QuerySoundEventsResponse:
            return c.analysis.QuerySoundEvents(apb.QuerySoundEventsRequest(project=project, inference_set="crnn",
                                                                           **kwargs))  # fmt: skip

        wrong = cell(label_class=IDS[SIREN], predicted_class=IDS[DOG])
        assert _rows(wrong) == [("a", (1.0, 3.0, SIREN), (1.05, 2.9, DOG))] and wrong.page.total_count == 1
        (match,) = wrong.matches
        assert match.iou == pytest.approx(1.85 / 2.0) and match.predicted_event.score == pytest.approx(0.9)
        assert (match.media_uri, match.split, match.duration_seconds) == ("s3://audio/a.flac", "", 10.0)
        missed = cell(label_class=IDS[DOG])
        assert _rows(missed) == [("a", (5.0, 6.0, DOG), None), ("d", (6.0, 7.0, DOG), None)]
        # a column: every prediction of dog bark, matched or not, a page at a time by clip then onset
        seen, token = [], ""
        while True:
            page = cell(any_label_class=True, predicted_class=IDS[DOG], page=cpb.PageRequest(page_size=1,
                                                                                             page_token=token))  # fmt: skip
            assert page.page.total_count == 3
            seen += _rows(page)
            token = page.page.next_page_token
            if not token:
                break
        assert seen == [("a", (1.0, 3.0, SIREN), (1.05, 2.9, DOG)), ("d", (2.0, 4.0, DOG), (2.15, 4.0, DOG)),
                        ("d", None, (6.25, 7.0, DOG))]  # fmt: skip
        everything = cell(any_label_class=True, any_predicted_class=True)
        assert everything.page.total_count == 9 and len(everything.matches) == 9
        # under a filter and a confidence threshold: the far clip alone; its late onset still missed
        far = cell(label_class=IDS[DOG], predicted_class=IDS[DOG], frame_filter=FAR, confidence_threshold=0.5)
        assert _rows(far) == [("d", (2.0, 4.0, DOG), (2.15, 4.0, DOG))]
        assert _rows(cell(predicted_class=IDS[ENGINE], confidence_threshold=0.85)) == []
        for kwargs, name, says in (
            ({"label_class": 4}, "label_class", "unknown class id 4"),
            ({"label_class": IDS[0], "predicted_class": 99}, "predicted_class", "unknown class id 99"),
            ({}, "label_class", "do not meet"),
            ({"onset_only": True, "offset_only": True, "label_class": IDS[0]}, "offset_only", "exclude each other"),
            ({"t_collar": -0.1, "label_class": IDS[0]}, "t_collar", "positive"),
            ({"label_class": IDS[0], "page": cpb.PageRequest(page_token="nonsense")}, "page.page_token", "token"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                cell(**kwargs)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kwargs
            assert error_detail(info.value).field == name and says in info.value.details(), info.value.details()


@pytest.mark.parametrize(
    ("kwargs", "name", "says"),
    [
        ({"time_resolution": -1.0}, "time_resolution", "positive"),
        ({"time_resolution": math.nan}, "time_resolution", "positive"),
        ({"time_resolution": 0.001}, "time_resolution", "at least 0.01"),
        ({"t_collar": math.nan}, "t_collar", "positive"),
        ({"percentage_of_length": 1.5}, "percentage_of_length", "(0, 1]"),
        ({"percentage_of_length": -0.2}, "percentage_of_length", "(0, 1]"),
        ({"onset_only": True, "offset_only": True}, "offset_only", "exclude each other"),
        ({"confidence_threshold": 2.0}, "confidence_threshold", "[0, 1]"),
        ({"inference_set": ""}, "inference_set", "empty"),
    ],
)
def test_bad_metric_requests_are_refused_naming_the_field(
    shared: Running, generated: Generated, kwargs: dict[str, Any], name: str, says: str
) -> None:
    with shared.client(shared.admin_key) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.GetSoundEventMetrics(apb.GetSoundEventMetricsRequest(
                **{"project": generated.project, "inference_set": "crnn", **kwargs}))  # fmt: skip
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_detail(info.value).field == name and says in info.value.details(), info.value.details()


def test_other_projects_are_not_sound_event_projects(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a")])))  # fmt: skip
        for call in (
            lambda: c.analysis.GetSoundEventMetrics(apb.GetSoundEventMetricsRequest(project=project, inference_set="m")),
            lambda: c.analysis.QuerySoundEvents(apb.QuerySoundEventsRequest(project=project, inference_set="m",
                                                                            any_label_class=True)),
        ):  # fmt: skip
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert error_detail(info.value).field == "project" and "SOUND_EVENTS" in info.value.details()


# -- comparison, slices and gates -------------------------------------------------------------------------------


def _clip_f1(clip: Clip, predictions: list[tuple[float, float, int, float]]) -> float:
    """A clip's event-based F1 by the metrics' core (itself equal to sed_eval): 2 TP / (labeled + predicted)."""
    if not clip.labels and not predictions:
        return 1.0
    m = EventMetrics(classes=K)
    lab = np.array(clip.labels, dtype=float).reshape(-1, 3)
    est = np.array(predictions, dtype=float).reshape(-1, 4)
    m.add(reference=Intervals(onset=lab[:, 0], offset=lab[:, 1], cls=lab[:, 2].astype(int), classes=K),
          estimated=Intervals(onset=est[:, 0], offset=est[:, 1], cls=est[:, 2].astype(int), classes=K))  # fmt: skip
    return 2 * m.report().counts["Ntp"] / (len(lab) + len(est))


def test_two_models_compared_sliced_and_gated(shared: Running, generated: Generated) -> None:
    p = generated.project
    with shared.client(shared.admin_key) as c:
        base, cand = _metrics(c, p, "crnn"), _metrics(c, p, "tiny")
        cmp = c.analysis.CompareInferenceSets(apb.CompareInferenceSetsRequest(
            project=p, baseline_inference_set="crnn", candidate_inference_set="tiny"))  # fmt: skip
        assert cmp.frames == len(generated.clips)
        assert (cmp.baseline_accuracy, cmp.candidate_accuracy) == pytest.approx((base.event_based.f1,
                                                                                  cand.event_based.f1))  # fmt: skip
        for d, b, k in zip(cmp.per_class, base.per_class, cand.per_class, strict=True):
            assert (d.baseline.f1, d.candidate.f1) == pytest.approx((b.event_based.f1, k.event_based.f1))
            assert d.f1_delta == pytest.approx(k.event_based.f1 - b.event_based.f1) and d.f1_delta < 0
            assert (d.candidate.support, d.candidate.predicted) == (k.event_based.reference, k.event_based.estimated)
        before = [_clip_f1(x, x.predictions) for x in generated.clips]
        after = [_clip_f1(x, w.predictions) for x, w in zip(generated.clips, generated.worse, strict=True)]
        assert cmp.regressed == sum(a < b for a, b in zip(after, before, strict=True)) > 10
        assert cmp.improved == sum(a > b for a, b in zip(after, before, strict=True))

        # slices by microphone: each one's event-based F1, the far one worst, its interval over its clips
        got = c.analysis.GetSlices(apb.GetSlicesRequest(project=p, inference_set="crnn", group_by="metadata.mic",
                                                        min_support=10))  # fmt: skip
        assert got.overall_accuracy == pytest.approx(base.event_based.f1) and got.frames == len(generated.clips)
        assert got.objects == base.reference_events + base.estimated_events
        by = {s.value: s for s in got.slices}
        for mic, s in by.items():
            keep = [x for x in generated.clips if x.mic == mic]
            flt = cpb.Filter(all=[cpb.Condition(field="metadata.mic", equals=cpb.Value(string_value=mic))])
            assert s.frames == len(keep)
            assert s.accuracy == pytest.approx(_metrics(c, p, frame_filter=flt).event_based.f1)
            x = np.array([len(k.labels) + len(k.predictions) for k in keep], float)
            y = np.array([_clip_f1(k, k.predictions) * n for k, n in zip(keep, x, strict=True)])
            y, x = y[x > 0], x[x > 0]
            a = y.sum() / x.sum()
            se = np.sqrt(len(x) / (len(x) - 1) * ((y - a * x) ** 2).sum()) / x.sum()
            assert (s.interval_lower, s.interval_upper) == pytest.approx((a - 1.959963984540054 * se,
                                                                          a + 1.959963984540054 * se))  # fmt: skip
        assert [s.value for s in got.worst] == ["far"]

        # a regression test on the far clips: crnn passes it, tiny does not
        far = [x.frame_id for x in generated.clips if x.mic == "far"]
        b_far, t_far = _metrics(c, p, "crnn", frame_filter=FAR), _metrics(c, p, "tiny", frame_filter=FAR)
        minimum = (b_far.event_based.f1 + t_far.event_based.f1) / 2
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, frame_ids=far, segment=apb.Segment(
            name="far-rt", dataset="val", kind=apb.SEGMENT_KIND_REGRESSION_TEST,
            gates=[apb.Gate(metric="event_f1", minimum=minimum), apb.Gate(metric="segment_macro_f1", minimum=0.0),
                   apb.Gate(metric="f1", class_id=IDS[1], minimum=0.0)])))  # fmt: skip
        for name, m, passed in (("crnn", b_far, True), ("tiny", t_far, False)):
            res = c.analysis.EvaluateGates(apb.EvaluateGatesRequest(project=p, inference_set=name)).results
            assert [(g.gate.metric, g.frames) for g in res] == [("event_f1", len(far)), ("segment_macro_f1", len(far)),
                                                                ("f1", len(far))]  # fmt: skip
            assert res[0].value == pytest.approx(m.event_based.f1) and res[0].passed is passed, name
            assert res[1].value == pytest.approx(m.segment_based_class_average.f1)
            assert res[2].value == pytest.approx(m.per_class[1].event_based.f1)
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, frame_ids=far, segment=apb.Segment(
                name="bad-rt", dataset="val", kind=apb.SEGMENT_KIND_REGRESSION_TEST,
                gates=[apb.Gate(metric="accuracy", minimum=0.5)])))  # fmt: skip
        assert error_detail(info.value).field == "segment.gates[0].metric" and "event_f1" in info.value.details()


# -- label issues -----------------------------------------------------------------------------------------------

RATES = {"missing": 0.06, "badly bounded": 0.06, "wrong class": 0.06, "spurious": 0.06}
TYPE = {"spurious": apb.SOUND_EVENT_ISSUE_TYPE_SPURIOUS, "badly bounded": apb.SOUND_EVENT_ISSUE_TYPE_BADLY_BOUNDED,
        "wrong class": apb.SOUND_EVENT_ISSUE_TYPE_WRONG_CLASS}  # fmt: skip


def _all(page: Any) -> Iterator[Any]:
    """Every page of a query, given a function of the page token."""
    token = ""
    while True:
        got = page(token)
        yield got
        token = got.page.next_page_token
        if not token:
            return


def test_label_issues_find_planted_errors_of_each_kind_first_and_dismissals_hide_a_clip(
    shared: Running, project: str
) -> None:
    """Tones heard by a simulated detector, with missing, spurious, badly bounded and wrong-class events planted
    in their labels: each kind's planted errors fill the first places of its list; the scores are the kernel's
    on the same events; a dismissed clip leaves the pages until it is restored."""
    data = tones.dataset(5, 50, classes=K, loudness=(0.1, 0.5), rates=RATES)
    clips = [Clip(f"t-{i:03d}", "near", x.duration, [(a, b, int(k)) for a, b, k in x.labels],
                  [(a, b, int(k), s) for a, b, k, s in x.predictions]) for i, x in enumerate(data)]  # fmt: skip
    with shared.client(shared.admin_key) as c:
        _create(c, project)
        _upload(c, project, clips, "crnn")
        job = finish_job(c, project, c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project=project, inference_set="crnn")).job)  # fmt: skip

        def query(**kwargs: Any) -> list[Any]:
            pages = _all(lambda t: c.analysis.QuerySoundEventIssues(apb.QuerySoundEventIssuesRequest(
                project=project, job_id=job.job_id, page=cpb.PageRequest(page_size=200, page_token=t), **kwargs)))  # fmt: skip
            return [row for page in pages for row in (page.clips or page.intervals)]

        summary = c.analysis.QuerySoundEventIssues(apb.QuerySoundEventIssuesRequest(project=project,
                                                                                    job_id=job.job_id)).summary  # fmt: skip
        every = query(include_unflagged=True)
        flagged = query()
        by_clip = query(level=apb.SOUND_EVENT_ISSUE_LEVEL_CLIP)
    position = {x.frame_id: i for i, x in enumerate(clips)}
    assert (summary.clips, summary.labeled_events, summary.predicted_events) == (
        len(clips), sum(len(x.labels) for x in clips), sum(len(x.predictions) for x in clips))  # fmt: skip
    assert (summary.confident, summary.min_iou, summary.min_overlap) == pytest.approx((0.5, 0.5, 0.1))
    # the kernel on the same events, in one batch: the same verdicts and scores
    labeled = np.vstack([x.labels for x in data])
    predicted = np.vstack([x.predictions for x in data])
    found = sound_event_issues.find(
        labeled=Intervals(onset=labeled[:, 0], offset=labeled[:, 1], cls=labeled[:, 2].astype(int), classes=K,
                          bounds=np.r_[0, np.cumsum([len(x.labels) for x in data])]),
        predicted=Intervals(onset=predicted[:, 0], offset=predicted[:, 1], cls=predicted[:, 2].astype(int), classes=K,
                            score=predicted[:, 3].astype(np.float32), bounds=np.r_[0, np.cumsum([len(x.predictions) for x in data])]),
    )  # fmt: skip
    starts = np.r_[0, np.cumsum([len(x.labels) for x in data])]
    labeled_rows = [r for r in every if r.event_index >= 0]
    assert len(labeled_rows) == len(labeled) and len(every) - len(labeled_rows) == int(found.missing.sum())
    for r in labeled_rows:
        j = starts[position[r.frame_id]] + r.event_index
        assert r.score == pytest.approx(found.score[j], abs=1e-12) and r.is_issue == (found.kind[j] != 0)
        assert (r.label_event.onset, r.label_event.offset, r.label_event.class_id) == (
            labeled[j, 0], labeled[j, 1], IDS[int(labeled[j, 2])])  # fmt: skip
    assert [r.score for r in flagged] == sorted(r.score for r in flagged) and all(r.is_issue for r in flagged)
    # each kind's planted errors first
    for kind, t in TYPE.items():
        rows = [r for r in flagged if r.issue_type == t]
        truth = [data[position[r.frame_id]].planted[r.event_index] == kind for r in rows]
        planted = sum(p == kind for x in data for p in x.planted)
        assert planted >= 5 and sum(truth) == planted and all(truth[:planted]), (kind, planted, truth)
    wrong = [r for r in flagged if r.issue_type == apb.SOUND_EVENT_ISSUE_TYPE_WRONG_CLASS]
    assert all(r.HasField("suggested_class") and r.predicted_event.class_id == r.suggested_class for r in wrong)
    missing = [r for r in flagged if r.issue_type == apb.SOUND_EVENT_ISSUE_TYPE_MISSING]
    shows = [tones.missing_found(data[position[r.frame_id]], np.array([r.predicted_event.onset, r.predicted_event.offset,
             IDS.index(r.predicted_event.class_id)])) for r in missing]  # fmt: skip
    left_out = sum(len(x.left_out) for x in data)
    assert left_out >= 5 and all(shows[:left_out]), (left_out, shows)
    assert not any(r.HasField("label_event") for r in missing) and all(r.event_index == -1 for r in missing)
    # clips: the flagged ones, worst first, each counting its flagged intervals of each type
    assert summary.flagged_clips == len(by_clip) == len({r.frame_id for r in flagged})
    worst = by_clip[0]
    mine = [r for r in flagged if r.frame_id == worst.frame_id]
    assert worst.score == pytest.approx(min(r.score for r in mine))
    assert worst.worst_type == min(mine, key=lambda r: r.score).issue_type
    assert (worst.missing, worst.spurious, worst.badly_bounded, worst.wrong_class) == tuple(
        sum(r.issue_type == t for r in mine) for t in range(1, 5))  # fmt: skip
    # a dismissed clip leaves both levels until restored
    with shared.client(shared.admin_key) as c:
        only = query(level=apb.SOUND_EVENT_ISSUE_LEVEL_CLIP, issue_types=[apb.SOUND_EVENT_ISSUE_TYPE_WRONG_CLASS])
        assert {x.frame_id for x in only} == {r.frame_id for r in wrong}
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project=project, job_id=job.job_id,
                                                                    frame_ids=[worst.frame_id], reason="heard it"))  # fmt: skip
        after = c.analysis.QuerySoundEventIssues(apb.QuerySoundEventIssuesRequest(
            project=project, job_id=job.job_id, level=apb.SOUND_EVENT_ISSUE_LEVEL_CLIP, page=cpb.PageRequest(page_size=500)))  # fmt: skip
        assert worst.frame_id not in {x.frame_id for x in after.clips} and after.dismissed_count == 1
        rows = query(include_dismissed=True)
        assert {r.frame_id for r in rows if r.dismissed} == {worst.frame_id} and len(rows) == len(flagged)
        assert worst.frame_id not in {r.frame_id for r in query()}
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project=project, job_id=job.job_id,
                                                                    frame_ids=[worst.frame_id], restore=True))  # fmt: skip
        assert len(query()) == len(flagged)
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.QuerySoundEventIssues(apb.QuerySoundEventIssuesRequest(project=project, job_id=job.job_id,
                                                                              issue_types=[9]))  # fmt: skip
        assert error_detail(info.value).field == "issue_types[0]"
