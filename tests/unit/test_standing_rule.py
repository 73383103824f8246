"""The rule standing campaigns keep frames by (shoal.sampler.standing_rule), with fixed seeds: the same
verdicts whether frames come in one call or many, dot products of rounded vectors exact in float64 up to
32,768 dimensions (so any BLAS agrees), the plain float64 reading of the rule matched, and the budget,
the filter and the diversity rule honoured."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.sampler.standing_rule import Judge, Rule, bits_for, quantize


def _data(seed: int, n: int = 3000, d: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seeds = rng.normal(size=(5, d)).astype(np.float32)
    x = rng.normal(size=(n, d)).astype(np.float32)
    near = rng.choice(n, n // 5, replace=False)
    x[near] = seeds[rng.integers(0, 5, len(near))] + rng.normal(0, 0.5, (len(near), d)).astype(np.float32)
    x[near[:50]] = x[near[50:100]] + rng.normal(0, 1e-3, (50, d)).astype(np.float32)  # near-copies
    return seeds, x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_verdicts_do_not_depend_on_how_the_frames_are_split(seed: int) -> None:
    seeds, x = _data(seed)
    rule = Rule(threshold=0.6, min_distance=0.1, budget=250)
    whole = Judge(rule, seeds).judge(x)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(x)), 40, replace=False))
    judge, kept, judged = Judge(rule, seeds), [], 0
    for part in np.split(np.arange(len(x)), cuts):
        v = judge.judge(x[part])
        kept += part[v.kept_indices].tolist()
        judged += v.judged
        if v.judged < len(part):
            break
    assert kept == whole.kept_indices.tolist() and judged == whole.judged
    # and a state rebuilt from the kept vectors (a restart) carries on alike
    half = whole.judged // 2
    first = Judge(rule, seeds).judge(x[:half])
    again = Judge(rule, seeds, kept=x[:half][first.kept]).judge(x[half:])
    assert first.kept_indices.tolist() + (again.kept_indices + half).tolist() == whole.kept_indices.tolist()


@pytest.mark.parametrize("d", [3, 128, 1000, 32768])
def test_dot_products_of_rounded_vectors_are_exact_in_float64(d: int) -> None:
    rng = np.random.default_rng(d)
    x = rng.normal(size=(6, d)).astype(np.float32)
    x[0] = np.abs(x[0])  # the worst case: every product of the same sign
    x[1] = x[0]
    q, n = quantize(x)
    ints = q.astype(np.int64)
    assert np.array_equal(ints, q) and np.abs(ints).max() == 2 ** bits_for(d)
    exact = [[sum(int(a) * int(b) for a, b in zip(ints[i], ints[j], strict=True)) for j in range(6)] for i in range(6)]
    assert (q @ q.T).tolist() == exact
    assert n.tolist() == [exact[i][i] for i in range(6)]
    assert max(map(max, exact)) <= 2**52


def test_the_plain_reading_of_the_rule_is_matched() -> None:
    seeds, x = _data(5)
    rule = Rule(threshold=0.6, min_distance=0.1, budget=10_000)
    rng = np.random.default_rng(5)
    passes = rng.random(len(x)) < 0.7
    v = Judge(rule, seeds).judge(x, passes)
    unit = x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    s = seeds / np.linalg.norm(seeds.astype(np.float64), axis=1, keepdims=True)
    kept: list[int] = []
    for i in range(len(x)):
        if passes[i] and (unit[i] @ s.T).max() >= 0.6 and (not kept or 1 - (unit[kept] @ unit[i]).max() >= 0.1):
            kept.append(i)
    assert v.kept_indices.tolist() == kept and v.judged == len(x)
    reasons = np.asarray(v.reason)
    assert set(reasons[~passes]) == {"filtered"}
    assert (v.similarity[reasons == "below_threshold"] < 0.6).all()
    assert (v.kept_distance[reasons == "near_kept"] < 0.1).all() and (reasons == "near_kept").sum() >= 50


def test_the_budget_ends_the_judging_at_the_last_kept_frame() -> None:
    seeds, x = _data(7)
    rule = Rule(threshold=0.6, min_distance=-1, budget=30)
    judge = Judge(rule, seeds)
    v = judge.judge(x)
    assert v.kept.sum() == 30 and v.kept[-1] and v.judged == v.kept_indices[-1] + 1 and judge.full
    assert judge.judge(x).judged == 0
    with pytest.raises(ValueError, match="threshold"):
        Rule(threshold=0, min_distance=0, budget=1)
    with pytest.raises(ValueError, match="finite"):
        quantize(np.asarray([[np.nan, 1.0]], dtype=np.float32))
    zero = Judge(Rule(threshold=0.5, min_distance=0, budget=5), seeds).judge(np.zeros((2, seeds.shape[1])))
    assert zero.reason == ["below_threshold"] * 2 and (zero.similarity == 0).all()
