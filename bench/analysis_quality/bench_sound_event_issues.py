"""Interval label issues on tones with planted errors, and the sound-event metrics' time beside sed_eval.

**Label issues** (``shoal.analysis.sound_event_issues.find``): clips of 10 s with six classes, each a tone,
in white noise, heard by a simulated detector (``tests/harness/tones.py``), with label errors planted at 5 %
of the true events per kind: missing events, badly bounded ones, wrong classes, and spurious events added.
Two settings: **clear** (tone amplitudes 0.1 to 0.5, the detector finds nearly every event) and **faint**
(0.02 to 0.5: it misses or under-scores the quietest). Per kind: precision and recall of the flags of that
kind against the errors planted of that kind; precision in the top P of the kind's ranked list (P: how many
were planted, a short list counting as misses); AUROC of the score between the planted errors of that kind and the clean labels (the other
kinds' planted errors left out). Missing events are flags on predictions: a flagged prediction is right when
it overlaps a left-out event of its class with a tIoU of at least 0.3; recall counts the left-out events
found that way.

**Metrics' time**: 100,000 labeled events in 10,000 clips of 10 s (ten classes; events of different classes
overlap) and about as many predictions (jittered, some of another class, some missed, false alarms), through
``SegmentMetrics`` (1 s) and ``EventMetrics`` (sed_eval's defaults: optimal matching) in one batch and clip by
clip, beside sed_eval 0.2.1's ``SegmentBasedMetrics`` and ``EventBasedMetrics`` run on the same lists in its
own venv (``scripts/ensure-sed-eval.sh``). The figures are compared (every one to 1e-9) before any time is
reported.

    python bench/analysis_quality/bench_sound_event_issues.py
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import results_header, write_results  # noqa: E402

RATES = {"missing": 0.05, "badly bounded": 0.05, "wrong class": 0.05, "spurious": 0.05}
SETTINGS = {"clear": (0.1, 0.5), "faint": (0.02, 0.5)}


def label_issues(clips_n: int, seed: int, loudness: tuple[float, float]) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from shoal.analysis import sound_event_issues as issues
    from shoal.analysis.sound_events import Intervals
    from tests.harness import tones

    t = time.perf_counter()
    clips = tones.dataset(seed, clips_n, loudness=loudness, rates=RATES)
    generated = time.perf_counter() - t
    labels = np.vstack([c.labels for c in clips])
    predictions = np.vstack([c.predictions for c in clips])
    lb = np.r_[0, np.cumsum([len(c.labels) for c in clips])]
    pb = np.r_[0, np.cumsum([len(c.predictions) for c in clips])]
    labeled = Intervals(onset=labels[:, 0], offset=labels[:, 1], cls=labels[:, 2].astype(np.int64), classes=6,
                        bounds=lb, what="labeled interval")  # fmt: skip
    predicted = Intervals(onset=predictions[:, 0], offset=predictions[:, 1], cls=predictions[:, 2].astype(np.int64),
                          score=predictions[:, 3], classes=6, bounds=pb, what="predicted interval")  # fmt: skip
    issues.find(labeled=labeled, predicted=predicted)  # numba's kernels loaded (or compiled) once
    t = time.perf_counter()
    found = issues.find(labeled=labeled, predicted=predicted)
    seconds = time.perf_counter() - t
    planted = np.array([p for c in clips for p in c.planted])
    clean = planted == ""
    out: dict[str, Any] = {"clips": clips_n, "labeled": len(labeled), "predicted": len(predicted),
                           "true_events": int(sum(len(c.events) for c in clips)), "find_seconds": round(seconds, 3),
                           "generate_seconds": round(generated, 1), "kinds": {}}  # fmt: skip
    for kind, name in issues.KINDS.items():
        truth = planted == name
        flagged = found.kind == kind
        ranked = found.ranked(kind)
        both = truth | clean
        out["kinds"][name] = {
            "planted": int(truth.sum()), "flagged": int(flagged.sum()),
            "precision": round(float((truth & flagged).sum() / max(1, flagged.sum())), 3),
            "recall": round(float((truth & flagged).sum() / max(1, truth.sum())), 3),
            "precision_at_planted": round(float(truth[ranked[: truth.sum()]].sum() / max(1, truth.sum())), 3),
            "auroc": round(float(roc_auc_score(truth[both], -found.score[both])), 3),
        }  # fmt: skip
    clip_of = predicted.clip_of()
    shows = np.array([tones.missing_found(clips[c], p) for c, p in zip(clip_of, predictions, strict=True)])
    left_out = sum(len(c.left_out) for c in clips)
    found_left = 0  # left-out events shown by a flagged prediction
    for i, c in enumerate(clips):
        flagged = c.predictions[found.missing[pb[i] : pb[i + 1]]]
        found_left += sum(any(_shows(lo, p) for p in flagged) for lo in c.left_out)
    ranked = found.ranked(0)
    out["kinds"]["missing"] = {
        "planted": left_out, "flagged": int(found.missing.sum()),
        "precision": round(float((shows & found.missing).sum() / max(1, found.missing.sum())), 3),
        "recall": round(found_left / max(1, left_out), 3),
        "precision_at_planted": round(float(shows[ranked[:left_out]].sum() / max(1, left_out)), 3),
        # a prediction's missing score (1 - its score where it is a candidate, 1 elsewhere): the left-out events'
        # predictions against the predictions of clean labels
        "auroc": round(float(roc_auc_score(shows, -found.missing_score)), 3),
    }  # fmt: skip
    return out


def _shows(left_out: np.ndarray, prediction: np.ndarray) -> bool:
    if int(left_out[2]) != int(prediction[2]):
        return False
    shared = min(left_out[1], prediction[1]) - max(left_out[0], prediction[0])
    return shared > 0 and shared / (max(left_out[1], prediction[1]) - min(left_out[0], prediction[0])) >= 0.3


def metric_clips(events: int, seed: int, classes: int = 10, per_clip: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """``events`` labeled events, ``per_clip`` to a clip of 10 s, and their predictions."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(events // per_clip):
        on = np.round(rng.uniform(0, 9.0, per_clip), 3)
        off = np.round(np.minimum(10.0, on + rng.uniform(0.1, 3.0, per_clip)), 3)
        cls = rng.integers(classes, size=per_clip)
        keep = rng.random(per_clip) >= 0.1
        e_on = np.clip(on + rng.normal(0, 0.1, per_clip), 0, 9.9)[keep]
        e_off = np.minimum(10.0, np.maximum(e_on + 0.05, off[keep] + rng.normal(0, 0.25, keep.sum())))
        e_cls = np.where(rng.random(keep.sum()) < 0.9, cls[keep], rng.integers(classes, size=keep.sum()))
        extra = int(rng.integers(0, 3))
        x_on = np.round(rng.uniform(0, 9.0, extra), 3)
        e = np.c_[np.r_[np.round(e_on, 3), x_on], np.r_[np.round(e_off, 3), np.round(x_on + 0.5, 3)],
                  np.r_[e_cls, rng.integers(classes, size=extra)]]  # fmt: skip
        out.append((np.c_[on, off, cls], e))
    return out


def _same(ours: Any, theirs: Any, path: str = "") -> None:
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs), path
        for k in theirs:
            _same(ours[k], theirs[k], f"{path}/{k}")
        return
    assert (math.isnan(theirs) and math.isnan(ours)) or abs(ours - theirs) <= 1e-9, (path, ours, theirs)


def metrics_time(events: int, seed: int) -> dict[str, Any]:
    from shoal.analysis.sound_events import EventMetrics, Intervals, SegmentMetrics
    from tests.harness import sed_eval_reference

    classes = 10
    labels = [f"class{k}" for k in range(classes)]
    clips = metric_clips(events, seed, classes)
    ref = np.vstack([r for r, _ in clips])
    est = np.vstack([e for _, e in clips])
    rb = np.r_[0, np.cumsum([len(r) for r, _ in clips])]
    eb = np.r_[0, np.cumsum([len(e) for _, e in clips])]

    def batch(metrics: Any) -> Any:
        metrics.add(reference=Intervals(onset=ref[:, 0], offset=ref[:, 1], cls=ref[:, 2].astype(np.int64),
                                        classes=classes, bounds=rb),
                    estimated=Intervals(onset=est[:, 0], offset=est[:, 1], cls=est[:, 2].astype(np.int64),
                                        classes=classes, bounds=eb))  # fmt: skip
        return metrics.report()

    def one_by_one(metrics: Any) -> Any:
        for r, e in clips:
            metrics.add(reference=Intervals(onset=r[:, 0], offset=r[:, 1], cls=r[:, 2].astype(np.int64), classes=classes),
                        estimated=Intervals(onset=e[:, 0], offset=e[:, 1], cls=e[:, 2].astype(np.int64), classes=classes))  # fmt: skip
        return metrics.report()

    out: dict[str, Any] = {"clips": len(clips), "labeled": len(ref), "predicted": len(est)}
    makers = {"segment": lambda: SegmentMetrics(classes=classes), "event": lambda: EventMetrics(classes=classes)}
    ours: dict[str, Any] = {}
    for name, make in makers.items():
        t = time.perf_counter()
        ours[name] = batch(make())  # the first call in this process: numba's kernels loaded from its disk cache
        first = time.perf_counter() - t
        best_batch = best_clips = math.inf
        for _ in range(3):
            t = time.perf_counter()
            batch(make())
            best_batch = min(best_batch, time.perf_counter() - t)
            t = time.perf_counter()
            one_by_one(make())
            best_clips = min(best_clips, time.perf_counter() - t)
        out[f"shoal_{name}"] = {"first_call_seconds": round(first, 3), "batch_seconds": round(best_batch, 4),
                                "clip_by_clip_seconds": round(best_clips, 3)}  # fmt: skip
    python = sed_eval_reference.ensure()
    if python is None:
        raise SystemExit("sed_eval's venv could not be made: run scripts/ensure-sed-eval.sh")

    def rows(a: np.ndarray) -> list[list[Any]]:
        return [[float(on), float(off), int(k)] for on, off, k in a]

    payload = {"labels": labels, "segment": [{}], "event": [{}],
               "clips": [{"reference": rows(r), "estimated": rows(e), "duration": None} for r, e in clips]}  # fmt: skip
    theirs = sed_eval_reference.run(payload, python=python)
    _same(ours["segment"].sed_eval(labels), theirs["segment"][0], "segment")
    _same(ours["event"].sed_eval(labels), theirs["event"][0], "event")
    out["sed_eval"] = {"segment_seconds": round(theirs["segment_seconds"][0], 2),
                       "event_seconds": round(theirs["event_seconds"][0], 2),
                       "peak_rss_mib": theirs["peak_rss_mib"], "same_figures": True}  # fmt: skip
    out["figures"] = {name: {"f1": round(r.overall.f1, 4), "error_rate": round(r.overall.error_rate, 4)}
                      for name, r in ours.items()}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1000, help="clips per label-issue setting")
    ap.add_argument("--events", type=int, default=100_000, help="labeled events of the metrics' timing")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_sound_event_issues.json")
    args = ap.parse_args()
    results = results_header()
    for name, loudness in SETTINGS.items():
        load = os.getloadavg()[0]
        run = label_issues(args.clips, 0, loudness)
        run["load_average_1min"] = [round(load, 1), round(os.getloadavg()[0], 1)]  # before and after
        results["runs"][f"label issues, {name}"] = run
        print(name, run, flush=True)
    load = os.getloadavg()[0]
    run = metrics_time(args.events, 0)
    run["load_average_1min"] = [round(load, 1), round(os.getloadavg()[0], 1)]
    results["runs"]["metrics time"] = run
    print(run, flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
