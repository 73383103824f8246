"""Multi-label label issues beside cleanlab's ``multilabel_classification`` on planted errors.

Two datasets, each with a model's out-of-fold per-class probabilities (5-fold, one logistic regression
per class), and label errors planted at random at several rates: a class the frame has removed from
its labels, or one it does not have added (half each).

- **digit mosaics**: images made of four of scikit-learn's bundled 8 x 8 digits (a 16 x 16 mosaic),
  each frame's classes the digits it shows (one to four distinct digits of ten);
- **generated**: scikit-learn's ``make_multilabel_classification`` (20 classes, 40 features).

Both methods read the same labels and probabilities. Frame-level figures: precision, recall and F1
of the flagged frames against the frames with a planted error, and the AUROC of each method's label
quality score (Shoal: the frame's worst self-confidence; cleanlab: ``get_label_quality_scores``).
Shoal's flags are also checked per (frame, class): the share of flagged pairs that are planted.

    python bench/analysis_quality/bench_multilabel_issues.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import results_header, write_results  # noqa: E402

RATES = (0.05, 0.1, 0.2)


def mosaics(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 256) and labels (n, 10) of 2 x 2 mosaics of the digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    images, targets = digits.images / 16.0, digits.target
    x = np.zeros((n, 16, 16))
    y = np.zeros((n, 10), dtype=bool)
    for i in range(n):
        picks = rng.integers(0, len(images), 4)
        blank = rng.random(4) < 0.3  # some cells empty: one to four digits
        blank[rng.integers(0, 4)] = False
        for cell, (pick, empty) in enumerate(zip(picks, blank, strict=True)):
            if empty:
                continue
            r, c = divmod(cell, 2)
            x[i, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = images[pick]
            y[i, targets[pick]] = True
    return x.reshape(n, -1), y


def generated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(n_samples=n, n_features=40, n_classes=20, n_labels=3,
                                          allow_unlabeled=True, random_state=seed)  # fmt: skip
    return x, y.astype(bool)


def out_of_fold(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    p = np.zeros(y.shape)
    for train, test in KFold(5, shuffle=True, random_state=seed).split(x):
        for c in range(y.shape[1]):
            if y[train, c].all() or not y[train, c].any():
                p[test, c] = float(y[train, c].mean())
                continue
            model = LogisticRegression(max_iter=500, C=0.5).fit(x[train], y[train, c])
            p[test, c] = model.predict_proba(x[test])[:, 1]
    return p


def plant(y: np.ndarray, rate: float, seed: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Errors in ``rate`` of the frames: half a class removed, half a class added."""
    rng = np.random.default_rng(seed)
    given = y.copy()
    frames = rng.choice(len(y), int(rate * len(y)), replace=False)
    pairs = set()
    for f in frames:
        on, off = np.flatnonzero(y[f]), np.flatnonzero(~y[f])
        c = int(rng.choice(on)) if (rng.random() < 0.5 and len(on)) or not len(off) else int(rng.choice(off))
        given[f, c] = ~given[f, c]
        pairs.add((int(f), c))
    return given, pairs


def scores(found: np.ndarray, truth: np.ndarray, quality: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    tp = int((found & truth).sum())
    precision = tp / found.sum() if found.sum() else 0.0
    recall = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"flagged": int(found.sum()), "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(f1, 4), "auroc": round(float(roc_auc_score(truth, -quality)), 4)}  # fmt: skip


def main() -> None:
    from cleanlab.multilabel_classification import filter as cl_filter
    from cleanlab.multilabel_classification import rank as cl_rank

    from shoal.analysis.multilabel_issues import find

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_multilabel_issues.json")
    args = ap.parse_args()
    results = results_header()
    for name, make in (("digit mosaics", mosaics), ("generated", generated)):
        x, y = make(args.frames, 0)
        t = time.perf_counter()
        p = out_of_fold(x, y, 0)
        model_seconds = round(time.perf_counter() - t, 1)
        for rate in RATES:
            given, pairs = plant(y, rate, int(rate * 1000))
            truth = np.zeros(len(y), dtype=bool)
            truth[[f for f, _ in pairs]] = True
            t = time.perf_counter()
            f = find(given, p)
            ours_seconds = time.perf_counter() - t
            flagged_pairs = {tuple(int(v) for v in q) for q in np.argwhere(f.missing | f.extra)}
            labels = [list(np.flatnonzero(r)) for r in given]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                cl_found = cl_filter.find_label_issues(labels, p)
                cl_quality = cl_rank.get_label_quality_scores(labels, p)
                cl_seconds = time.perf_counter() - t
            run = {
                "frames": len(y), "classes": y.shape[1], "planted_frames": int(truth.sum()),
                "shoal": {**scores(f.flagged, truth, f.score), "seconds": round(ours_seconds, 3),
                          "flagged_pairs_planted": round(len(flagged_pairs & pairs) / max(1, len(flagged_pairs)), 4)},
                "cleanlab": {**scores(np.asarray(cl_found), truth, np.asarray(cl_quality)),
                             "seconds": round(cl_seconds, 3)},
                "model_seconds": model_seconds,
            }  # fmt: skip
            results["runs"][f"{name} @ {rate:.0%}"] = run
            print(f"{name} @ {rate:.0%}: {json.dumps(run)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
