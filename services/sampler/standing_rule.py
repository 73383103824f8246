"""The rule a standing campaign keeps frames by, judged one frame at a time in arrival order.

Vocabulary: N frames judged, in order; S seeds; K frames kept before them; D dimensions.

A frame is **kept** when, in this order:

1. it passes the campaign's filter (``passes``; the filter itself is evaluated by the caller),
2. its cosine similarity to its nearest seed is at least ``threshold``,
3. its cosine distance to every frame kept before it, earlier frames of the same call included, is
   at least ``min_distance`` (when the rule is on),

and the budget is not spent. Once the K-th kept frame reaches the budget, the frames after it
are not judged at all.

**Exact on every machine.** The server, the offline twin and the SDK on a customer's machine must
make the same choice from the same vectors, whatever their BLAS or batch sizes. Every vector is
rounded to integers (:func:`quantize`: its largest component becomes ``2 ** bits``, with ``bits``
small enough that every partial sum of a dot product of two rounded vectors is an integer below
``2 ** 52``), so each dot product is computed exactly in float64 by any BLAS in any order; the
cosine is then one correctly rounded division. Judging frames in one call or split over several
calls gives the same verdicts (:meth:`Judge.judge` keeps only the rounded kept rows between
calls).

This module needs numpy only: the SDK imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["REASONS", "Judge", "Rule", "Verdicts", "cosine", "quantize"]

#: why a judged frame was kept or dropped
KEPT = "kept"
FILTERED = "filtered"
BELOW_THRESHOLD = "below_threshold"
NEAR_KEPT = "near_kept"
REASONS = (KEPT, FILTERED, BELOW_THRESHOLD, NEAR_KEPT)
#: distance reported when no frame was kept before (cosine distances lie in [0, 2])
NO_KEPT = 2.0
#: rows of the frames compared with the kept ones per matrix product
BLOCK = 8192


@dataclass(frozen=True)
class Rule:
    """What a standing campaign keeps.

    Parameters
    ----------
    threshold : float in (0, 1]
        Least cosine similarity to the nearest seed.
    min_distance : float
        Least cosine distance to every frame kept before; 0 or negative: no diversity rule.
    budget : int
        Frames to keep in all.
    """

    threshold: float
    min_distance: float
    budget: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and 0 < self.threshold <= 1):
            raise ValueError(f"threshold must lie in (0, 1], got {self.threshold}")
        if not (math.isfinite(self.min_distance) and self.min_distance < 2):
            raise ValueError(f"min_distance must be a finite number below 2, got {self.min_distance}")
        if self.budget < 1:
            raise ValueError(f"budget must be at least 1, got {self.budget}")

    @property
    def diverse(self) -> bool:
        return self.min_distance > 0


def bits_for(dimension: int) -> int:
    """The bits of the largest component of a rounded vector of ``dimension`` components, such that
    ``dimension * 4 ** bits <= 2 ** 52``."""
    if dimension < 1:
        raise ValueError(f"dimension must be at least 1, got {dimension}")
    return (52 - math.ceil(math.log2(dimension))) // 2


def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (N, D), as stored (float32), rounded to integers held in float64, and their
    squared norms (N,), both exact.

    Each row is scaled so that its largest absolute component is ``2 ** bits_for(D)`` and rounded
    half to even; a zero row stays zero. Cosine similarities of the rounded rows differ from those of
    the raw rows by about ``sqrt(D) * 2 ** -bits`` (1e-6 at D = 128)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected (N, D) vectors, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("vectors must be finite (no NaN or infinity)")
    xd = x.astype(np.float64)
    top = np.abs(xd).max(axis=1, keepdims=True) if x.shape[1] else np.zeros((len(x), 1))
    scale = float(2 ** bits_for(max(x.shape[1], 1)))
    q = np.rint(np.divide(xd, top, out=np.zeros_like(xd), where=top > 0) * scale)
    return q, np.einsum("ij,ij->i", q, q)


def cosine(dots: np.ndarray, norms_a: np.ndarray, norms_b: np.ndarray) -> np.ndarray:
    """Cosine similarities from exact dot products (A, B) and squared norms (A,) and (B,); 0
    where either vector is zero."""
    den = np.sqrt(norms_a[:, None] * norms_b[None, :])
    return np.divide(dots, den, out=np.zeros(dots.shape, dtype=np.float64), where=den > 0)


@dataclass
class Verdicts:
    """The verdicts of one call, over the first ``judged`` of its N frames (the rest came after the
    budget was spent and were not judged).

    ``kept`` and ``reason`` say what became of each frame; ``similarity`` is its cosine similarity
    to its nearest seed (index ``seed``); ``kept_distance`` is its cosine distance to the nearest
    frame kept before it (:data:`NO_KEPT` when none was, or the diversity rule is off or was not
    reached)."""

    judged: int
    kept: np.ndarray
    reason: list[str]
    similarity: np.ndarray
    seed: np.ndarray
    kept_distance: np.ndarray

    @property
    def kept_indices(self) -> np.ndarray:
        return np.flatnonzero(self.kept)


class Judge:
    """A standing campaign's state: its seeds, its rule, and the frames it kept so far.

    Parameters
    ----------
    rule : Rule
    seeds : (S, D) float32
        The seeds' vectors as stored.
    kept : (K, D) float32, optional
        The vectors of the frames kept before, in the order they were kept.
    """

    def __init__(self, rule: Rule, seeds: np.ndarray, kept: np.ndarray | None = None) -> None:
        seeds = np.asarray(seeds, dtype=np.float32)
        if seeds.ndim != 2 or len(seeds) == 0 or seeds.shape[1] == 0:
            raise ValueError(f"expected (S, D) seed vectors with S >= 1, got shape {seeds.shape}")
        self.rule = rule
        self.dimension = int(seeds.shape[1])
        self._seed_q, self._seed_n = quantize(seeds)
        self._kept_q = np.zeros((0, self.dimension), dtype=np.float64)
        self._kept_n = np.zeros(0, dtype=np.float64)
        self._count = 0
        if kept is not None and len(kept):
            q, n = quantize(np.asarray(kept, dtype=np.float32).reshape(-1, self.dimension))
            self._append(q, n)

    def _append(self, q: np.ndarray, n: np.ndarray) -> None:
        """Adds rounded rows to the kept ones (the buffer doubles when full)."""
        need = self._count + len(q)
        if need > len(self._kept_q):
            cap = max(need, 2 * len(self._kept_q), 64)
            grown_q = np.zeros((cap, self.dimension), dtype=np.float64)
            grown_n = np.zeros(cap, dtype=np.float64)
            grown_q[: self._count], grown_n[: self._count] = self._kept_q[: self._count], self._kept_n[: self._count]
            self._kept_q, self._kept_n = grown_q, grown_n
        self._kept_q[self._count : need], self._kept_n[self._count : need] = q, n
        self._count = need

    @property
    def kept_count(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        return self._count >= self.rule.budget

    def judge(self, x: np.ndarray, passes: np.ndarray | None = None) -> Verdicts:
        """Judges N frames in order and remembers those kept.

        Parameters
        ----------
        x : (N, D) float32
            The frames' vectors as stored, in the order they arrived.
        passes : (N,) bool, optional
            Whether each frame passes the campaign's filter; all do when omitted.
        """
        x = np.asarray(x, dtype=np.float32).reshape(-1, self.dimension)
        n = len(x)
        ok = np.ones(n, dtype=bool) if passes is None else np.asarray(passes, dtype=bool)
        if ok.shape != (n,):
            raise ValueError(f"passes must have shape ({n},), got {ok.shape}")
        if self.full or n == 0:
            return Verdicts(0, np.zeros(0, dtype=bool), [], np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0))
        q, qn = quantize(x)
        sims = cosine(q @ self._seed_q.T, qn, self._seed_n)
        seed = sims.argmax(axis=1)
        best = sims[np.arange(n), seed]
        above = best >= self.rule.threshold
        reason = np.where(~ok, FILTERED, np.where(above, KEPT, BELOW_THRESHOLD)).tolist()
        candidates = np.flatnonzero(ok & above)
        dist = np.full(n, NO_KEPT, dtype=np.float64)
        before = self._count
        if self.rule.diverse and len(candidates) and before:
            kq, kn = self._kept_q[:before], self._kept_n[:before]
            for start in range(0, len(candidates), BLOCK):
                part = candidates[start : start + BLOCK]
                dist[part] = 1.0 - cosine(q[part] @ kq.T, qn[part], kn).max(axis=1)
        kept = np.zeros(n, dtype=bool)
        judged = n
        for i in candidates.tolist():
            if self.rule.diverse and self._count > before:
                new_q, new_n = self._kept_q[before : self._count], self._kept_n[before : self._count]
                near = 1.0 - cosine(q[i : i + 1] @ new_q.T, qn[i : i + 1], new_n).max()
                dist[i] = min(dist[i], near)
            if self.rule.diverse and dist[i] < self.rule.min_distance:
                reason[i] = NEAR_KEPT
                continue
            kept[i] = True
            self._append(q[i : i + 1], qn[i : i + 1])
            if self.full:
                judged = i + 1
                break
        return Verdicts(
            judged=judged,
            kept=kept[:judged],
            reason=reason[:judged],
            similarity=best[:judged],
            seed=seed[:judged].astype(np.int64),
            kept_distance=dist[:judged],
        )
