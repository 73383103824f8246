"""The campaign's greedy selection: the lazy, shortlisted selection picks exactly what the plain
one-pick-at-a-time greedy picks, for MMR and k-center, with balance and near-duplicate removal."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.sampler import campaign
from shoal.sampler.campaign import select, unit_rows


def _naive(
    x: np.ndarray,
    score: np.ndarray,
    budget: int,
    *,
    diversity: float,
    method: str,
    classes: np.ndarray,
    balance: float,
    dup: float | None,
) -> list[int]:
    """The reference: recompute every gain after every pick."""
    known = np.unique(classes[classes >= 0])
    quota = budget / max(len(known), 1)
    counts = {int(c): 0 for c in known}
    maxsim = np.full(len(x), -1.0)
    alive = np.ones(len(x), dtype=bool)
    out: list[int] = []
    while len(out) < budget and alive.any():
        if diversity <= 0:
            g = score.copy()
        elif method == "mmr":
            g = score - diversity * np.maximum(maxsim, 0)
        else:
            g = diversity * (1 - maxsim) + campaign.TIE_BREAK * score
        if balance > 0:
            g = g - balance * np.array([counts.get(int(c), 0) for c in classes]) / quota
        g = np.where(alive, g, -np.inf)
        j = int(np.argmax(g))
        alive[j] = False
        if dup is not None and maxsim[j] >= dup:
            continue
        out.append(j)
        if classes[j] >= 0:
            counts[int(classes[j])] += 1
        maxsim = np.maximum(maxsim, x @ x[j])
    return out


@pytest.mark.parametrize("method", ["mmr", "k_center"])
@pytest.mark.parametrize("seed", [0, 1])
def test_lazy_selection_equals_the_plain_greedy(method: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campaign, "SHORTLIST", 16)  # many shortlists in a small problem
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (20, 8))
    x = unit_rows((centres[rng.integers(0, 20, 600)] + rng.normal(0, 0.3, (600, 8))).astype(np.float32))
    score = rng.random(600)
    classes = rng.integers(-1, 4, 600)
    for diversity, balance, dup in ((0.7, 0.0, None), (0.4, 0.5, 0.9), (0.0, 1.0, 0.95)):
        got = select(x=x, score=score, budget=120, diversity=diversity, method=method, classes=classes,
                     balance=balance, duplicate_similarity=dup).order.tolist()  # fmt: skip
        want = _naive(x.astype(np.float64), score, 120, diversity=diversity, method=method, classes=classes,
                      balance=balance, dup=dup)  # fmt: skip
        assert got == want, (diversity, balance, dup)


def test_near_duplicates_of_picks_and_of_the_labeled_set_are_skipped() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(rng.normal(0, 1, (30, 16)), 4, axis=0) + rng.normal(0, 0.003, (120, 16))
    x = unit_rows(groups.astype(np.float32))
    labeled = x[:4] + 0.001  # the first group is already labeled
    s = select(x=x, score=np.ones(120), budget=40, duplicate_similarity=0.99,
               labeled_similarity=campaign.max_similarity_to(unit_rows(labeled.copy())))  # fmt: skip
    picked_groups = (s.order // 4).tolist()
    assert len(picked_groups) == len(set(picked_groups)) == 29 and 0 not in picked_groups
    assert s.skipped_labeled == 4 and s.skipped_picked == 29 * 3
    assert s.distance[0] == pytest.approx(2.0)
