"""Label-error detection on planted noise: cleanlab's ``find_label_issues`` beside Shoal's label scoring
(``services/analysis/label_scoring.py``), plain confident learning and blended with the labels of each frame's
nearest neighbours.

Datasets: scikit-learn's bundled digits, wine, breast cancer and iris. Noise, at rate r in 10 %, 20 %, 40 %:

- uniform: round(r n) frames drawn at random, each label replaced by a random other class;
- pair: in every class, round(r n_c) frames get the class's fixed partner (0 <-> 1, 2 <-> 3, ...; with an odd
  number of classes the last one goes to 0);
- asymmetric: in every even class c, round(r n_c) frames get c + 1 mod K; odd classes keep their labels (so about
  r / 2 of all frames are flipped, and each class's given label is still mostly right).

Probabilities: out-of-sample, ``cross_val_predict`` (5 stratified folds) of a logistic regression on standardized
features, trained on the noisy labels. Embeddings: the standardized features; the kNN graph is exact (k = 10,
Euclidean, the frame itself excluded). A planted error is a frame whose given label differs from the true one.

The blend weight is fixed in the module (``ALPHA``); ``--tune`` sweeps it on seeds 100-104, which the reported
grid (seeds 0-4) does not use.

    OMP_NUM_THREADS=1 python bench/analysis_quality/bench_label_noise.py            # the grid, writes JSON + .md
    OMP_NUM_THREADS=1 python bench/analysis_quality/bench_label_noise.py --tune     # the sweep on seeds 100-104
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results_label_noise.json"
MARKDOWN = HERE / "label_noise.md"
DATASETS = ("digits", "wine", "breast_cancer", "iris")
KINDS = ("uniform", "pair", "asymmetric")
RATES = (0.1, 0.2, 0.4)
SEEDS = (0, 1, 2, 3, 4)
TUNING_SEEDS = (100, 101, 102, 103, 104)
K_NEIGHBORS = 10


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return x.astype(np.float64), y.astype(np.int64)


def plant(y: np.ndarray, kind: str, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The noisy labels (see the module docstring for the three kinds)."""
    k = int(y.max()) + 1
    noisy = y.copy()
    if kind == "uniform":
        idx = rng.choice(len(y), round(rate * len(y)), replace=False)
        noisy[idx] = (y[idx] + rng.integers(1, k, len(idx))) % k
        return noisy
    for c in range(k):
        if kind == "pair":
            target = c ^ 1 if c ^ 1 < k else 0
        elif c % 2 == 0:
            target = (c + 1) % k
        else:
            continue
        members = np.flatnonzero(y == c)
        idx = rng.choice(members, round(rate * len(members)), replace=False)
        noisy[idx] = target
    return noisy


def knn_graph(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's K_NEIGHBORS nearest other frames (indices, Euclidean distances) on standardized features."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(x)
    dist, ind = NearestNeighbors(n_neighbors=K_NEIGHBORS + 1).fit(z).kneighbors(z)
    # drop the frame itself (not necessarily first when it has exact duplicates)
    keep = ind != np.arange(len(x))[:, None]
    keep[keep.sum(axis=1) > K_NEIGHBORS, -1] = False
    return ind[keep].reshape(len(x), K_NEIGHBORS), dist[keep].reshape(len(x), K_NEIGHBORS)


def oos_probs(x: np.ndarray, noisy: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return cross_val_predict(model, x, noisy, cv=cv, method="predict_proba", n_jobs=1)


def prf(flagged: np.ndarray, planted: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(flagged & planted))
    p = tp / max(int(flagged.sum()), 1)
    r = tp / max(int(planted.sum()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def cases(seeds: tuple[int, ...]):  # type: ignore[no-untyped-def]
    """Yields (dataset, kind, rate, seed, true, noisy, probs, neighbour labels, neighbour distances)."""
    for name in DATASETS:
        x, y = load(name)
        ind, dist = knn_graph(x)
        for kind in KINDS:
            for rate in RATES:
                for seed in seeds:
                    rng = np.random.default_rng([seed, DATASETS.index(name), KINDS.index(kind), int(rate * 100)])
                    noisy = plant(y, kind, rate, rng)
                    probs = oos_probs(x, noisy, seed)
                    yield name, kind, rate, seed, y, noisy, probs, noisy[ind], dist


def run(seeds: tuple[int, ...], alphas: tuple[float, ...], weighted: bool = True) -> dict:  # type: ignore[type-arg]
    from cleanlab.filter import find_label_issues

    from shoal.analysis.label_scoring import score_labels

    cells: dict[tuple[str, str, float], dict[str, list[list[float]]]] = {}
    for name, kind, rate, _seed, y, noisy, probs, nl, nd in cases(seeds):
        planted = noisy != y
        cell = cells.setdefault((name, kind, rate), {"planted": []})
        cell["planted"].append([float(planted.mean())])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cl = find_label_issues(noisy, probs, n_jobs=1)
        cell.setdefault("cleanlab", []).append(list(prf(cl, planted)))
        plain = score_labels(noisy, probs).is_issue
        cell.setdefault("plain", []).append(list(prf(plain, planted)))
        cell.setdefault("plain_equals_cleanlab", []).append([float(np.array_equal(plain, cl))])
        for a in alphas:
            s = score_labels(noisy, probs, nl, nd if weighted else None, alpha=a)
            cell.setdefault(f"combined@{a}", []).append(list(prf(s.is_issue, planted)))
    out = []
    for (name, kind, rate), cell in cells.items():
        row: dict[str, object] = {"dataset": name, "noise": kind, "rate": rate}
        for method, vals in cell.items():
            m = np.mean(vals, axis=0)
            if method == "planted":
                row["planted_fraction"] = round(float(m[0]), 4)
            elif method == "plain_equals_cleanlab":
                row[method] = bool(m[0] == 1.0)
            else:
                row[method] = {"precision": round(float(m[0]), 4), "recall": round(float(m[1]), 4),
                               "f1": round(float(m[2]), 4)}  # fmt: skip
        out.append(row)
    return {"seeds": list(seeds), "alphas": list(alphas), "cells": out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", action="store_true", help="sweep the blend weight on the tuning seeds")
    args = ap.parse_args()
    from shoal.analysis.label_scoring import ALPHA

    t0 = time.perf_counter()
    if args.tune:
        alphas = (0.3, 0.4, 0.5, 0.6, 0.7)
        for weighted in (True, False):
            res = run(TUNING_SEEDS, alphas, weighted)
            print("weighted" if weighted else "uniform")
            for a in alphas:
                d = [c[f"combined@{a}"]["f1"] - c["cleanlab"]["f1"] for c in res["cells"]]
                print(f"  alpha {a}: mean dF1 {np.mean(d):+.4f} wins {sum(x > 0 for x in d)}/{len(d)}"
                      f" worst {min(d):+.4f}")  # fmt: skip
        print(f"{time.perf_counter() - t0:.0f} s")
        return
    res = run(SEEDS, (ALPHA,))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["machine"] = (
        f"{platform.machine()} {platform.processor() or ''} {platform.system()}, Python {platform.python_version()}"
    )
    res["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["cells"][:2], indent=1), res["seconds"])


if __name__ == "__main__":
    main()
