"""Label scoring: without neighbours it flags exactly what cleanlab's find_label_issues flags; with the
neighbours' labels it finds more of the planted errors, at no worse precision, on a seed the blend weight was
not chosen on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from cleanlab.filter import find_label_issues
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shoal.analysis.label_scoring import score_labels


def _synthetic(seed: int, n: int = 600, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Given labels with 20 % flipped and a model's probabilities around the true class."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < 0.2
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    alpha = np.full((n, k), 0.3)
    alpha[np.arange(n), true] += rng.gamma(2.0, 2.0, n) * 2
    probs = rng.gamma(alpha)
    return given, probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_without_neighbours_flags_what_cleanlab_flags(seed: int) -> None:
    given, probs = _synthetic(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = find_label_issues(given, probs, n_jobs=1)
    got = score_labels(given, probs)
    assert expected.sum() > 0
    assert np.array_equal(got.is_issue, expected)
    # the suggestion is never the given label; the flagged frames rank below the median
    assert np.all(got.suggested != given)
    assert np.median(got.score[got.is_issue]) < np.median(got.score)


def test_neighbour_labels_find_more_planted_errors_on_digits_with_pair_swaps() -> None:
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(7)
    noisy = y.copy()
    for c in range(10):  # 20 % of every class swapped with its partner: 0 <-> 1, 2 <-> 3, ...
        members = np.flatnonzero(y == c)
        noisy[rng.choice(members, round(0.2 * len(members)), replace=False)] = c ^ 1
    planted = noisy != y
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    cv = StratifiedKFold(5, shuffle=True, random_state=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probs = cross_val_predict(model, x, noisy, cv=cv, method="predict_proba")
    z = StandardScaler().fit_transform(x)
    dist, ind = NearestNeighbors(n_neighbors=11).fit(z).kneighbors(z)
    neighbor_labels, neighbor_distances = noisy[ind[:, 1:]], dist[:, 1:]

    plain = score_labels(noisy, probs)
    combined = score_labels(noisy, probs, neighbor_labels, neighbor_distances)

    def found_and_precision(flags: np.ndarray) -> tuple[int, float]:
        return int((flags & planted).sum()), float((flags & planted).sum() / flags.sum())

    plain_found, plain_precision = found_and_precision(plain.is_issue)
    found, precision = found_and_precision(combined.is_issue)
    assert found > plain_found
    assert precision >= plain_precision
    # a flagged planted error's suggestion is mostly its true class
    hit = combined.is_issue & planted
    assert np.mean(combined.suggested[hit] == y[hit]) > 0.9
    # unknown neighbours fall back to the model alone
    unknown = score_labels(noisy, probs, np.full_like(neighbor_labels, -1), neighbor_distances)
    assert np.array_equal(unknown.is_issue, plain.is_issue)


@pytest.mark.parametrize("seed", range(5))
def test_the_smallest_margins_are_those_a_stable_sort_puts_first(seed: int) -> None:
    # the label-issue job picks, per pair of classes, the frames of smallest margin, ties by frame id order
    from shoal.analysis.label_issues import smallest

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 20, 500).astype(np.float64) / 7  # many ties
    for m in (0, 1, 3, 37, 250, 499, 500, 900):
        assert smallest(values, m).tolist() == sorted(np.argsort(values, kind="stable")[:m].tolist())
