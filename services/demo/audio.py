"""The demo's sound-event set: short audio clips drawn with a fixed seed, a detector that never
hears the labels, and event labels with errors planted of four kinds.

Each clip is a few seconds of 16 kHz mono audio (a WAV file, written with the standard library's
``wave``): background noise with one to four sound events, tones at two pitches (``beep_low``,
``beep_high``) and bursts of band-limited noise (``burst``), of varied loudness. The labels are the
generating intervals, each end a few milliseconds off as an annotator marks it, except where an
error is planted: an event left unlabeled, a label over silence, a label whose bounds are far off
the sound's, and an event labeled as another class.

The detector never hears the labels: it takes a short-time spectrum of each clip (numpy's FFT over
32 ms windows every 10 ms), measures the energy in each class's band against the band's noise
floor in the clip, keeps the stretches well above it (gaps under 100 ms closed, blips under 100 ms
dropped), names each by its band and scores it by how far its energy stands above the floor.
Shoal's sound-event metrics and label issues are then scored against what was planted.
"""

from __future__ import annotations

import json
import math
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoal.client import Client
from shoal.demo.names import log

PROJECT = "beeps"
DATASET = "clips"
INFERENCE_SET = "band-energy"
CLASSES = ("beep_low", "beep_high", "burst")
BEEP_LOW, BEEP_HIGH, BURST = range(3)
RATE = 16_000
#: each class's band, Hz: the tones' pitches sit in the first two, the bursts fill the third
BANDS = ((500.0, 700.0), (2200.0, 2600.0), (4000.0, 7000.0))
PITCH = (600.0, 2400.0)
#: the label errors planted, as the label-issue job names them, and how many of each
KINDS = ("missing", "spurious", "badly_bounded", "wrong_class")
PER_KIND = 4
#: the short-time spectrum: window and hop, in samples
WINDOW, HOP = 512, 160


@dataclass
class Clips:
    frame_ids: list[str] = field(default_factory=list)
    media_uris: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    #: per clip, its labeled events (onset, offset, class) and the detector's (onset, offset, class, score)
    labels: list[list[tuple[float, float, int]]] = field(default_factory=list)
    predictions: list[list[tuple[float, float, int, float]]] = field(default_factory=list)
    #: per clip, the events truly there
    truth: list[list[tuple[float, float, int]]] = field(default_factory=list)
    #: per planted kind, its (clip, interval): the labeled interval concerned, or the left-out event
    planted: dict[str, list[tuple[str, tuple[float, float, int]]]] = field(default_factory=dict)


def _events(rng: np.random.Generator, duration: float) -> list[tuple[float, float, int]]:
    """One to four events, none of a class overlapping another of the same class."""
    out: list[tuple[float, float, int]] = []
    for _ in range(int(rng.integers(1, 5))):
        for _ in range(50):
            cls = int(rng.integers(3))
            length = float(rng.uniform(0.35, 1.2))
            onset = float(rng.uniform(0.1, duration - length - 0.1))
            if all(k != cls or onset > off + 0.3 or onset + length < on - 0.3 for on, off, k in out):
                out.append((round(onset, 3), round(onset + length, 3), cls))
                break
    return sorted(out)


def _sound(rng: np.random.Generator, cls: int, n: int) -> np.ndarray:
    """``n`` samples of a class's sound, faded in and out over 10 ms."""
    t = np.arange(n) / RATE
    if cls == BURST:
        spectrum = np.fft.rfft(rng.normal(size=n))
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        spectrum[(freqs < BANDS[BURST][0] + 200) | (freqs > BANDS[BURST][1] - 200)] = 0
        x = np.fft.irfft(spectrum, n)
        x *= rng.uniform(0.006, 0.08) / (x.std() or 1.0)
    else:
        x = rng.uniform(0.004, 0.2) * np.sin(2 * math.pi * PITCH[cls] * t + rng.uniform(0, 2 * math.pi))
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * RATE))
    return x * fade


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16-bit mono PCM at :data:`RATE`."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32767


def spectrum(samples: np.ndarray) -> np.ndarray:
    """Power of the short-time spectrum: (frames, WINDOW // 2 + 1), a frame every HOP samples."""
    n = 1 + max(0, len(samples) - WINDOW) // HOP
    index = np.arange(WINDOW)[None, :] + HOP * np.arange(n)[:, None]
    return np.abs(np.fft.rfft(samples[index] * np.hanning(WINDOW), axis=1)) ** 2


def detect(samples: np.ndarray, *, margin_db: float = 8.0) -> list[tuple[float, float, int, float]]:
    """The detector: (onset, offset, class, score) of the events heard in a clip."""
    power = spectrum(samples)
    freqs = np.fft.rfftfreq(WINDOW, 1 / RATE)
    seconds = HOP / RATE
    found = []
    for cls, (lo, hi) in enumerate(BANDS):
        band = 10 * np.log10(power[:, (freqs >= lo) & (freqs <= hi)].mean(axis=1) + 1e-12)
        above = band - np.percentile(band, 20)
        # a running median over five frames smooths single-frame flickers
        padded = np.pad(above, 2, mode="edge")
        smooth = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1)
        active = smooth > margin_db
        edges = np.flatnonzero(np.diff(np.r_[0, active.astype(np.int8), 0]))
        runs = [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]
        merged: list[list[int]] = []
        for a, b in runs:
            if merged and (a - merged[-1][1]) * seconds < 0.1:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        for a, b in merged:
            if (b - a) * seconds < 0.1:
                continue
            # a window's energy is placed at its centre
            onset = max(0.0, (a * HOP + WINDOW / 2) / RATE - seconds / 2)
            offset = min(len(samples) / RATE, (b * HOP + WINDOW / 2) / RATE - seconds / 2)
            strength = float(np.median(above[a:b]))
            score = 1.0 - math.exp(-max(0.0, strength - margin_db / 2) / 8.0)
            found.append((round(onset, 3), round(offset, 3), cls, round(min(0.99, max(0.01, score)), 4)))
    return sorted(found)


def build_clips(media: Path, n: int = 30, seed: int = 5) -> Clips:
    """Writes the clips into ``media``; returns their labels (with the planted errors), the truth and
    the detector's events."""
    rng = np.random.default_rng(seed)
    media.mkdir(parents=True, exist_ok=True)
    out = Clips(planted={k: [] for k in KINDS})
    kinds = [k for k in KINDS for _ in range(PER_KIND)]
    plant = dict(zip(rng.permutation(n)[: len(kinds)].tolist(), kinds, strict=True))
    for c in range(n):
        fid = f"clip-{c:03d}.wav"
        duration = float(rng.choice([4.0, 5.0, 6.0]))
        samples = rng.normal(0, 0.006, int(duration * RATE))
        events = _events(rng, duration)
        for onset, offset, cls in events:
            a, b = int(onset * RATE), int(offset * RATE)
            samples[a:b] += _sound(rng, cls, b - a)
        path = media / fid
        write_wav(path, samples)
        # the annotator marks each end a few milliseconds off
        jitter = rng.normal(0, 0.015, (len(events), 2))
        labels = [(round(max(0.0, on + float(a)), 3), round(min(duration, off + float(b)), 3), k)
                  for (on, off, k), (a, b) in zip(events, jitter, strict=True)]  # fmt: skip
        what = plant.get(c, "")
        concerned = _plant(rng, what, labels, events, duration)
        if what and concerned[2] >= 0:
            out.planted[what].append((fid, concerned))
        out.frame_ids.append(fid)
        out.media_uris.append(path.resolve().as_uri())
        out.durations.append(duration)
        out.labels.append(sorted(labels))
        out.truth.append(events)
        out.predictions.append(detect(read_wav(path)))
    return out


def _plant(rng: np.random.Generator, what: str, labels: list[tuple[float, float, int]],
           events: list[tuple[float, float, int]], duration: float) -> tuple[float, float, int]:  # fmt: skip
    """Plants ``what`` in a clip's ``labels`` (in place); returns the labeled interval concerned (the
    left-out event, for a missing one)."""
    if not what:
        return (0.0, 0.0, -1)
    j = int(rng.integers(len(labels)))
    on, off, k = labels[j]
    if what == "missing":
        labels.pop(j)
        return events[j]
    if what == "wrong_class":
        # a class none of whose events sounds at the time (else the label would be that event's, badly bounded)
        for j in rng.permutation(len(labels)).tolist():
            on, off, k = labels[j]
            free = [
                c for c in range(3) if c != k and all(b < on - 0.1 or a > off + 0.1 for a, b, e in labels if e == c)
            ]
            if free:
                labels[j] = (on, off, int(rng.choice(free)))
                return labels[j]
        return (0.0, 0.0, -1)
    if what == "badly_bounded":
        # a label that ends well after its sound (or starts well before it), a tIoU under 0.45, over no
        # other event of its class
        for j in rng.permutation(len(labels)).tolist():
            on, off, k = labels[j]
            stretch = rng.uniform(1.3, 1.7) * (off - on)
            for bounds in ((on, min(duration, off + stretch)), (max(0.0, on - stretch), off)):
                clear = all(i == j or c != k or bounds[0] > b + 0.1 or bounds[1] < a - 0.1
                            for i, (a, b, c) in enumerate(labels))  # fmt: skip
                if clear and _tiou(bounds, (on, off)) < 0.45:
                    labels[j] = (round(bounds[0], 3), round(bounds[1], 3), k)
                    return labels[j]
        return (0.0, 0.0, -1)
    # spurious: a label over a stretch where no event of any class sounds
    for _ in range(200):
        length = float(rng.uniform(0.4, 1.0))
        onset = float(rng.uniform(0.05, duration - length - 0.05))
        if all(onset > b + 0.2 or onset + length < a - 0.2 for a, b, _ in events):
            labels.append((round(onset, 3), round(onset + length, 3), int(rng.integers(3))))
            return labels[-1]
    raise RuntimeError("no silent stretch left in the clip")


def ingest_clips(client: Client, out: Path, data_dir: Path) -> tuple[dict[str, Any], Clips]:
    """Builds the clips and uploads them (durations, sample rate), their labels and the detector's events."""
    from shoal.demo.dataset import _create_all
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    t0 = time.monotonic()
    clips = build_clips(data_dir / "media" / "beeps")
    (out / "beeps_planted.json").write_text(json.dumps(clips.planted) + "\n")
    _create_all((
        (client.ingest.CreateProject, pb.CreateProjectRequest(project=pb.Project(
            name=PROJECT, display_name="beeps (sound events)", task_type=pb.TASK_TYPE_SOUND_EVENTS,
            classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(CLASSES)]))),
        (client.ingest.CreateDataset, pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
            name=DATASET, kind=pb.DATASET_KIND_LABELED))),
        (client.ingest.CreateInferenceSet, pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name=INFERENCE_SET, dataset=DATASET, model_name="band-energy", model_version="1"))),
    ))  # fmt: skip
    n = len(clips.frame_ids)
    cols = UploadColumns(
        frame_ids=clips.frame_ids,
        media_uris=clips.media_uris,
        media_type=pb.MEDIA_TYPE_AUDIO,
        durations=clips.durations,
        sample_rates=[RATE] * n,
        label_events=clips.labels,
        inference_set=INFERENCE_SET,
        predicted_events=clips.predictions,
    )
    result = client.upload(PROJECT, DATASET, cols, progress=False)
    status = client.wait_for_upload(PROJECT, result.upload_id, timeout=300)
    counts = {
        "clips": n,
        "seconds": round(sum(clips.durations), 1),
        "labeled_events": sum(len(x) for x in clips.labels),
        "predicted_events": sum(len(x) for x in clips.predictions),
        "state": pb.UploadState.Name(status.state),
        "planted": {k: len(v) for k, v in clips.planted.items()},
    }
    log.info("beeps: %s (%.1fs)", counts, time.monotonic() - t0)
    return counts, clips


#: the colour each class is drawn in, in the pictures of clips
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44))


def _tiou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    shared = min(a[1], b[1]) - max(a[0], b[0])
    return max(0.0, shared) / (max(a[1], b[1]) - min(a[0], b[0]))


def _is_planted(clips: Clips, kinds: tuple[str, ...], issue: Any) -> bool:
    """Whether a flagged interval is an error of ``kinds`` planted: the labeled interval itself, or for
    a missing event a prediction of its class over the left-out event (a tIoU of 0.3 or more)."""
    for kind in kinds:
        for fid, planted in clips.planted[kind]:
            if fid != issue.frame_id:
                continue
            if kind == "missing":
                p = issue.predicted_event
                if issue.HasField("predicted_event") and p.class_id == planted[2]:
                    if _tiou((p.onset, p.offset), planted) >= 0.3:
                        return True
            elif issue.HasField("label_event"):
                e = issue.label_event
                if e.class_id == planted[2] and abs(e.onset - planted[0]) < 1e-6 and abs(e.offset - planted[1]) < 1e-6:
                    return True
    return False


def clip_picture(clips: Clips, out: Path, frame_id: str, flagged: list[tuple[float, float]]) -> str:
    """A picture of a clip (made with numpy and Pillow): its waveform, its spectrogram up to 8 kHz,
    then a strip of its labeled events and one of the detector's, each in its class's colour, with the
    flagged intervals outlined in black; returns the PNG's URI."""
    from PIL import Image, ImageDraw

    i = clips.frame_ids.index(frame_id)
    samples = read_wav(Path(clips.media_uris[i].removeprefix("file://")))
    width, wave_h, spec_h, strip_h = 480, 50, 110, 14
    height = wave_h + spec_h + 2 * strip_h + 6
    image = Image.new("RGB", (width, height), (251, 252, 253))
    draw = ImageDraw.Draw(image)
    # the waveform: each column's lowest and highest sample
    columns = np.array_split(samples, width)
    peak = max(1e-6, float(np.abs(samples).max()))
    for x, col in enumerate(columns):
        lo, hi = (float(col.min()), float(col.max())) if len(col) else (0.0, 0.0)
        mid = wave_h / 2
        draw.line((x, mid - hi / peak * (mid - 2), x, mid - lo / peak * (mid - 2)), fill=(87, 96, 106))
    # the spectrogram: decibels from the median (the noise) up to the loudest, dark blue to yellow, low
    # frequencies at the bottom
    db = 10 * np.log10(spectrum(samples).T + 1e-12)
    level = np.clip((db - np.median(db)) / max(1e-6, float(db.max() - np.median(db))), 0, 1)[::-1]
    ramp = np.array([(13, 8, 135), (126, 3, 168), (204, 71, 120), (248, 149, 64), (240, 249, 33)], dtype=float)
    steps = np.linspace(0, 1, len(ramp))
    rgb = np.stack([np.interp(level, steps, ramp[:, c]) for c in range(3)], axis=-1).astype(np.uint8)
    image.paste(Image.fromarray(rgb).resize((width, spec_h)), (0, wave_h))
    duration = clips.durations[i]

    def x_of(t: float) -> float:
        return t / duration * (width - 1)

    for row, (name, events) in enumerate((("labels", clips.labels[i]), ("detected", clips.predictions[i]))):
        top = wave_h + spec_h + 3 + row * (strip_h + 3)
        draw.rectangle((0, top, width - 1, top + strip_h), fill=(238, 241, 244))
        for e in events:
            draw.rectangle((x_of(e[0]), top, x_of(e[1]), top + strip_h), fill=COLOURS[int(e[2])])
        draw.text((width - 52, top + 1), name, fill=(87, 96, 106))
    for onset, offset in flagged:
        draw.rectangle((x_of(onset) - 1, wave_h, x_of(offset) + 1, height - 1), outline=(0, 0, 0), width=2)
    path = out / "beeps" / f"{Path(frame_id).stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path.resolve().as_uri()


def score_clips(client: Client, clips: Clips, out: Path) -> dict[str, Any]:
    """The detector's sound-event metrics (segment- and event-based), then the label-issue job,
    scored against what was planted: per kind, how many were flagged as that kind and how many are
    among the first flagged of it; the flags' precision."""
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.v1 import common_pb2 as cpb
    from shoal.demo.score import _finish

    m = client.analysis.GetSoundEventMetrics(
        apb.GetSoundEventMetricsRequest(project=PROJECT, inference_set=INFERENCE_SET)
    ).metrics
    job = client.analysis.StartLabelIssues(
        apb.StartLabelIssuesRequest(project=PROJECT, inference_set=INFERENCE_SET, rerun=True)
    ).job
    job = _finish(client, job, "sound-event label-issues", project=PROJECT)
    resp = client.analysis.QuerySoundEventIssues(apb.QuerySoundEventIssuesRequest(
        project=PROJECT, job_id=job.job_id, page=cpb.PageRequest(page_size=1000)))  # fmt: skip
    intervals = list(resp.intervals)
    kinds = {}
    for kind in KINDS:
        t = apb.SoundEventIssueType.Value(f"SOUND_EVENT_ISSUE_TYPE_{kind.upper()}")
        of_type = [x for x in intervals if x.issue_type == t]
        planted = len(clips.planted[kind])
        kinds[kind] = {
            "planted": planted,
            "flagged": len(of_type),
            "found": sum(1 for x in of_type if _is_planted(clips, (kind,), x)),
            "found_as_any_type": sum(1 for x in intervals if _is_planted(clips, (kind,), x)),
            "planted_in_first": sum(1 for x in of_type[:planted] if _is_planted(clips, (kind,), x)),
        }
    right = sum(1 for x in intervals if _is_planted(clips, KINDS, x))
    # the pictures: for three issue types, the clip of the type's first-ranked flag
    worst = sorted(intervals, key=lambda x: x.score)
    shown: dict[int, str] = {}
    for x in worst:
        if len(shown) < 3 and x.issue_type not in shown and x.frame_id not in shown.values():
            shown[x.issue_type] = x.frame_id
    gallery = []
    for fid in shown.values():
        mine = [x for x in worst if x.frame_id == fid]
        spans = [(e.onset, e.offset) for x in mine for e in [x.label_event if x.HasField("label_event")
                                                              else x.predicted_event]]  # fmt: skip
        gallery.append({
            "frame_id": fid,
            "issues": [{"kind": apb.SoundEventIssueType.Name(x.issue_type).removeprefix("SOUND_EVENT_ISSUE_TYPE_")
                        .lower(), "score": round(x.score, 3), "planted": _is_planted(clips, KINDS, x)} for x in mine],
            "image": clip_picture(clips, out, fid, spans),
            "legend": [(name, "#" + bytes(COLOURS[k]).hex()) for k, name in enumerate(CLASSES)],
        })  # fmt: skip

    def figures(f: Any) -> dict[str, float]:
        return {"f1": round(f.f1, 4), "precision": round(f.precision, 4), "recall": round(f.recall, 4),
                "error_rate": round(f.error_rate, 4)}  # fmt: skip

    summary = {
        "job_id": job.job_id,
        "segment_based": figures(m.segment_based),
        "event_based": figures(m.event_based),
        "per_class_event_f1": {c.class_name: round(c.event_based.f1, 4) for c in m.per_class},
        "label_issues": {
            "planted": sum(len(v) for v in clips.planted.values()),
            "flagged": len(intervals),
            "planted_flagged": right,
            "precision": round(right / len(intervals), 4) if intervals else 0.0,
            "by_kind": kinds,
        },
        "gallery": gallery,
    }
    log.info("beeps: segment F1 %.3f, event F1 %.3f; label issues %s", m.segment_based.f1, m.event_based.f1,
             summary["label_issues"])  # fmt: skip
    return summary
