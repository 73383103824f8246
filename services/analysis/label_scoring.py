"""Label errors in classification from the model's probabilities and, when there are embeddings, the
labels of each frame's nearest neighbours.

Plain confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 2021; cleanlab's ``find_label_issues`` with its defaults):

1. per class ``k`` a threshold: the mean probability of ``k`` over the frames labeled ``k``;
2. the confident joint: per given label, how many frames reach the threshold of some class (the most
   probable one when several reach theirs), calibrated so that its rows sum to the class counts;
3. for each given class ``k`` and other class ``j``, that many frames labeled ``k`` with the largest
   ``p_j - p_k`` are flagged, but never a frame whose most probable class is its label.

With neighbours, the model is not the only witness. A frame's neighbours in embedding space mostly
carry its true label even when its own is wrong: that is the local vote of SimiFeat (Zhu, Dong and
Liu, "Detecting Corrupted Labels Without Training a Model to Predict", ICML 2022) and of deep k-NN
filtering (Bahri, Jiang and Gupta, "Deep k-NN for Noisy Labels", ICML 2020), which keep a frame
only if its neighbours agree with its label. The model and the vote make different mistakes: the
model is fooled where a class's noise is systematic (it learns the swap), the vote where classes
touch in embedding space. So each frame's probabilities are blended with its neighbours' label
distribution before confident learning::

    q = (1 - alpha) * p + alpha * v

where ``v`` is the share of the neighbours' weight (inverse distance) carried by each class; a
frame without known neighbours keeps ``q = p``. Confident learning then runs on ``q`` unchanged:
its thresholds, joint and pruning adapt to the blend, so the number of flags is still estimated
from the data rather than fixed by a cut on the vote.

Everything is per frame (its K probabilities, its label, its neighbours' labels and distances)
plus dataset-wide aggregates (K thresholds, K class counts, a K x K joint), so it is computed by a
few aggregation passes in a database as the label-issues job computes plain confident learning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: weight of the neighbours' label distribution in the blend (fixed a priori, checked on seeds the
#: benchmark does not report)
ALPHA = 0.5
#: a neighbour's distance counts as at least this share of the frame's mean neighbour distance
DUPLICATE_FLOOR = 0.1
#: slack of the threshold comparisons, as cleanlab's
SLACK = 1e-6
#: a class nobody is labeled with gets a threshold no probability reaches
UNREACHABLE = 2.0


@dataclass
class LabelScores:
    #: (n,) bool: the frame is a likely label error
    is_issue: np.ndarray
    #: (n,) int: the most likely class other than the given label
    suggested: np.ndarray
    #: (n,) float in [-1, 1]: the given label's probability minus the best other's (after the
    #: blend); lower is more likely an error, so ascending order ranks the worst first
    score: np.ndarray
    #: (n, K) the probabilities confident learning ran on (the blend, or the model's)
    probs: np.ndarray


def round_rows(m: np.ndarray) -> np.ndarray:
    """Rounds each row to integers keeping its rounded total: after rounding to nearest (halves to
    even), the entries rounded down most go up, or the ones rounded up most go down (numpy's
    default sort orders equal errors as cleanlab's does)."""
    out = np.rint(m).astype(np.int64)
    for i, row in enumerate(m):
        short = round(float(row.sum())) - int(out[i].sum())
        order = np.argsort(row - out[i])
        if short > 0:
            out[i, order[::-1][:short]] += 1
        elif short < 0:
            out[i, order[:-short]] -= 1
    return out


def prune_counts(joint: np.ndarray, keep: int = 1) -> np.ndarray:
    """Per given class k (row) and true class j (column) of the calibrated joint: how many frames
    labeled k to flag as j, leaving at least ``keep`` frames in every class: a diagonal raised to
    ``keep`` takes the difference evenly from the other non-zero cells of its true-class column,
    whose shares are then cut down to whole frames (as cleanlab does: a share of a frame flags none)."""
    m = joint.T.astype(np.float64)  # rows: true class, columns: given class
    diag = np.diag(m).copy()
    raised = np.maximum(diag, keep)
    others = np.maximum(np.count_nonzero(m, axis=0) - 1.0, 1.0)
    m = np.maximum(m - (raised - diag) / others, 0)
    np.fill_diagonal(m, raised)
    return np.trunc(m).astype(np.int64).T  # rows: given class again


def neighbor_votes(
    neighbor_labels: np.ndarray, neighbor_distances: np.ndarray | None, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the share of its known neighbours' weight on each class (rows sum to 1) and whether
    it has any known neighbour. A neighbour weighs the inverse of its distance, the distance floored
    at a tenth of the frame's mean neighbour distance so that an exact duplicate does not outvote
    the rest; uniform without distances."""
    lab = np.asarray(neighbor_labels)
    known = lab >= 0
    if neighbor_distances is None:
        w = known.astype(np.float64)
    else:
        d = np.where(known, np.maximum(np.asarray(neighbor_distances, dtype=np.float64), 0.0), 0.0)
        mean = d.sum(axis=1, keepdims=True) / np.maximum(known.sum(axis=1, keepdims=True), 1)
        floor = np.maximum(DUPLICATE_FLOOR * mean, 1e-12)
        w = np.where(known, 1.0 / np.maximum(d, floor), 0.0)
    votes = np.zeros((lab.shape[0], n_classes))
    rows = np.repeat(np.arange(lab.shape[0]), lab.shape[1])
    np.add.at(votes, (rows[known.ravel()], lab.ravel()[known.ravel()]), w.ravel()[known.ravel()])
    total = votes.sum(axis=1, keepdims=True)
    has = total[:, 0] > 0
    return np.divide(votes, total, out=np.zeros_like(votes), where=total > 0), has


def confident_learning(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The frames plain confident learning flags (cleanlab's ``find_label_issues`` defaults:
    prune by noise rate, at least one frame left per class)."""
    labels = np.asarray(labels)
    n, k = probs.shape
    counts = np.bincount(labels, minlength=k)
    # 1. per-class thresholds
    thresholds = np.array([probs[labels == c, c].mean() if counts[c] else UNREACHABLE for c in range(k)])
    thresholds = np.maximum(thresholds, 2 * SLACK)  # a threshold of 0 would make every class confident
    # 2. the confident joint, calibrated to the class counts
    confident = probs >= thresholds - SLACK
    reached = confident.sum(axis=1)
    guess = np.where(reached > 1, probs.argmax(axis=1), confident.argmax(axis=1))
    # counted by (guess, label) and transposed: summing in cleanlab's memory order breaks the same
    # rounding ties the same way
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (guess[reached > 0], labels[reached > 0]), 1)
    joint = joint.T
    np.fill_diagonal(joint, np.maximum(np.diag(joint), 1))
    cal = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-6) * counts[:, None]
    cal = round_rows(cal / max(cal.sum(), 1e-12) * counts.sum())
    # 3. prune by noise rate: per (given k, true j), that many frames labeled k with the largest p_j - p_k,
    # leaving at least one frame in every class
    prune = prune_counts(cal).T  # rows: true class, columns: given class
    issue = np.zeros(n, dtype=bool)
    for g in range(k):
        idx = np.flatnonzero(labels == g)
        if len(idx) <= 1:
            continue
        for j in range(k):
            if j != g and prune[j, g] > 0:
                order = np.argsort(-(probs[idx, j] - probs[idx, g]))
                issue[idx[order[: prune[j, g]]]] = True
    # never a frame whose most probable class is its label (a tie counts for the label)
    own = probs.copy()
    own[np.arange(n), labels] += SLACK
    issue[own.argmax(axis=1) == labels] = False
    return issue


def score_labels(
    labels: np.ndarray,
    probs: np.ndarray,
    neighbor_labels: np.ndarray | None = None,
    neighbor_distances: np.ndarray | None = None,
    alpha: float = ALPHA,
) -> LabelScores:
    """Scores every frame's label. ``labels`` (n,) class indices, ``probs`` (n, K) the model's
    out-of-sample probabilities, ``neighbor_labels`` (n, k) the labels of each frame's nearest
    neighbours (-1 where unknown) and ``neighbor_distances`` (n, k) their distances. Without
    neighbours this is plain confident learning."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n, k = probs.shape
    q = probs
    if neighbor_labels is not None and alpha > 0:
        votes, has = neighbor_votes(neighbor_labels, neighbor_distances, k)
        q = np.where(has[:, None], (1 - alpha) * probs + alpha * votes, probs)
    rest = q.copy()
    rest[np.arange(n), labels] = -np.inf
    suggested = rest.argmax(axis=1)
    score = q[np.arange(n), labels] - rest[np.arange(n), suggested]
    return LabelScores(is_issue=confident_learning(labels, q), suggested=suggested, score=score, probs=q)
