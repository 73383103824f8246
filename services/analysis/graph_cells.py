"""A neighbour graph too large for exact search, built in overlapping cells that several processes share.

The frames are split into cells by k-means: each frame belongs to the :data:`OVERLAP` cells of its nearest
centroids, so two frames near a border between cells meet in one of them. Each cell's graph is built on its own
(exact search, or NN-descent for a large cell), and a frame's neighbours are the nearest of all it was given in
its cells. The partition is computed the same way by every process from the same vectors (a fixed sample, fixed
initial centroids, a fixed number of iterations, in float64), so the shards of a job agree on it without
talking; the cells are dealt to the shards by their cost, the largest first.

What one shard holds in memory is the vectors and its cells' graphs; the cells bound the search, so the work
spreads over the shards where NN-descent's one graph cannot be split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

#: each frame is in the cells of its this many nearest centroids
OVERLAP = 2
#: frames per cell on average (each frame counted once per cell it is in): the exact search of a cell this size
#: is quick, and a cell far larger (k-means cells are uneven) is searched by NN-descent
CELL_FRAMES = 20_000
#: k-means is trained on this many frames per cell (a fixed sample), for this many rounds
SAMPLE_PER_CELL = 64
ROUNDS = 10
#: rows whose nearest centroids are found at a time (bounds the float64 distance block)
BLOCK = 65_536


def cell_count(n: int, cell_frames: int = CELL_FRAMES) -> int:
    """How many cells ``n`` frames are split into: at least two, else about ``cell_frames`` frames each."""
    return max(2, -(-OVERLAP * n // cell_frames))


def _unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, in float64 (a zero row stays zero)."""
    rows = rows.astype(np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def _nearest(rows: np.ndarray, centroids: np.ndarray, m: int, unit: bool = False) -> np.ndarray:
    """For each row (scaled to length 1 first when ``unit``, a block at a time, so no copy of all the rows is
    made), its ``m`` nearest centroids (squared Euclidean, float64), nearest first; ties by the lower
    centroid."""
    c2 = np.einsum("cd,cd->c", centroids, centroids)
    out = np.empty((len(rows), m), dtype=np.int32)
    for s in range(0, len(rows), BLOCK):
        r = _unit(rows[s : s + BLOCK]) if unit else rows[s : s + BLOCK].astype(np.float64)
        d = c2[None, :] - 2.0 * (r @ centroids.T)  # the row's own norm does not change its order
        if m < d.shape[1]:
            part = np.argpartition(d, m - 1, axis=1)[:, :m]
        else:
            part = np.broadcast_to(np.arange(d.shape[1]), d.shape).copy()
        # nearest first, ties by the lower centroid: a stable sort of the candidates in centroid order
        part.sort(axis=1)
        order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
        out[s : s + len(r)] = np.take_along_axis(part, order, axis=1)[:, :m]
    return out


def partition(x: np.ndarray, metric: str, cells: int, overlap: int = OVERLAP) -> np.ndarray:
    """The cells of each row of ``x``: :func:`partition_of` on vectors held in memory."""
    return partition_of(lambda rows: x[rows], len(x), metric, cells, overlap)


def partition_of(
    vectors_of: Callable[[np.ndarray], np.ndarray], n: int, metric: str, cells: int, overlap: int = OVERLAP
) -> np.ndarray:
    """The cells of each of ``n`` rows, whose vectors ``vectors_of(rows)`` gives: (rows, ``min(overlap,
    cells)``) cell numbers, nearest centroid first; for cosine distance, the nearest centroid by angle (the rows
    scaled to length 1). The vectors are asked for the sample, then :data:`BLOCK` rows at a time, so no more
    than a block of them is held.

    Deterministic: k-means (Lloyd's rounds, float64) on a sample drawn with a fixed seed, started from
    sample rows drawn with that seed; a centroid left without rows keeps its place."""
    cells = max(1, min(cells, n))
    overlap = max(1, min(overlap, cells))
    unit = metric == "cosine"
    rng = np.random.default_rng(0)
    size = min(n, cells * SAMPLE_PER_CELL)
    picked = vectors_of(np.sort(rng.choice(n, size=size, replace=False)))
    sample = _unit(picked) if unit else picked.astype(np.float64)
    centroids = sample[np.sort(rng.choice(size, size=cells, replace=False))].copy()
    for _ in range(ROUNDS):
        nearest = _nearest(sample, centroids, 1)[:, 0]
        counts = np.bincount(nearest, minlength=cells)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, sample)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    out = np.empty((n, overlap), dtype=np.int32)
    for s in range(0, n, BLOCK):  # the blocks of _nearest itself: the same answer as on all rows at once
        out[s : s + BLOCK] = _nearest(vectors_of(np.arange(s, min(s + BLOCK, n))), centroids, overlap, unit=unit)
    return out


def members(assigned: np.ndarray, cells: int) -> list[np.ndarray]:
    """The rows of each cell, in row order, from :func:`partition`'s answer."""
    rows = np.repeat(np.arange(len(assigned), dtype=np.int64), assigned.shape[1])
    cell = assigned.reshape(-1)
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(cells + 1))
    return [rows[order[bounds[c] : bounds[c + 1]]] for c in range(cells)]


def cost(size: int, exact_limit: int) -> float:
    """A cell's search cost in comparisons: the square of its size when searched exactly, else
    NN-descent's (about size^1.14, scaled to meet the exact cost at the limit)."""
    if size <= exact_limit:
        return float(size) ** 2
    return float(exact_limit) ** 2 * (size / exact_limit) ** 1.14


def deal(sizes: list[int], shards: int, exact_limit: int) -> np.ndarray:
    """The shard of each cell: the costliest cell first, each to the shard with the least cost so far
    (ties: the lower cell, the lower shard); the same answer in every process."""
    load = np.zeros(shards)
    out = np.zeros(len(sizes), dtype=np.int32)
    for c in sorted(range(len(sizes)), key=lambda c: (-cost(sizes[c], exact_limit), c)):
        s = int(np.argmin(load))
        out[c] = s
        load[s] += cost(sizes[c], exact_limit)
    return out


def cell_graphs(
    x: np.ndarray,
    cells: list[np.ndarray],
    which: list[int],
    k: int,
    knn: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    progress: Callable[[float], None] | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """For each cell of ``which``: (cell, its rows, their neighbours as rows of ``x``, distances), from
    ``knn(vectors, k)`` on the cell's vectors; a cell of one row yields nothing."""
    total = max(sum(len(cells[c]) for c in which), 1)
    done = 0
    for c in which:
        rows = cells[c]
        if len(rows) >= 2:
            idx, dist = knn(x[rows], k)
            yield c, rows, rows[idx], dist
        done += len(rows)
        if progress is not None:
            progress(done / total)


def merge(
    n: int, k: int, frames: np.ndarray, neighbours: np.ndarray, distances: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest among the candidates given for it in every cell: ``frames[i]`` was given
    ``neighbours[i]`` at ``distances[i]`` (flat arrays; a neighbour of -1, or the row itself, is dropped).
    Returns (indices, distances, how many distinct candidates each row had); a row with fewer than ``k``
    repeats its furthest, and a row with none is all -1. Ties: the lower neighbour first.

    The candidates are laid out as one short row per frame (about ``OVERLAP`` x k of them), so the work is
    one sort of the frames and a few sorts of short rows, not sorts of every candidate."""
    frames = np.asarray(frames, dtype=np.int64)
    neighbours = np.asarray(neighbours, dtype=np.int64)
    distances = np.asarray(distances, dtype=np.float32)
    keep = (neighbours >= 0) & (neighbours != frames)
    frames, neighbours, distances = frames[keep], neighbours[keep], distances[keep]
    order = np.argsort(frames, kind="stable")
    frames, neighbours, distances = frames[order], neighbours[order], distances[order]
    given = np.bincount(frames, minlength=n)
    width = max(int(given.max()) if n else 0, 1)
    slot = np.arange(len(frames)) - np.searchsorted(frames, frames)
    near = np.full((n, width), n, dtype=np.int64)  # an empty slot: a neighbour past every row, infinitely far
    dist = np.full((n, width), np.inf, dtype=np.float32)
    near[frames, slot], dist[frames, slot] = neighbours, distances
    # each neighbour once, at its nearest: by distance, then (stable) by neighbour, the first of each run kept
    by = np.argsort(dist, axis=1, kind="stable")
    near, dist = np.take_along_axis(near, by, axis=1), np.take_along_axis(dist, by, axis=1)
    by = np.argsort(near, axis=1, kind="stable")
    near, dist = np.take_along_axis(near, by, axis=1), np.take_along_axis(dist, by, axis=1)
    again = np.zeros(near.shape, dtype=bool)
    again[:, 1:] = near[:, 1:] == near[:, :-1]
    near[again], dist[again] = n, np.inf
    have = ((near < n) & ~again).sum(axis=1)
    # nearest first; rows are in neighbour order, so a stable sort puts the lower neighbour first on a tie
    by = np.argsort(dist, axis=1, kind="stable")[:, :k]
    idx, out = np.take_along_axis(near, by, axis=1), np.take_along_axis(dist, by, axis=1)
    if idx.shape[1] < k:
        idx = np.concatenate([idx, np.full((n, k - idx.shape[1]), n, dtype=np.int64)], axis=1)
        out = np.concatenate([out, np.full((n, k - out.shape[1]), np.inf, dtype=np.float32)], axis=1)
    for row in np.flatnonzero((have > 0) & (have < k)):  # few: a row whose cells held fewer than k others
        m = have[row]
        idx[row, m:], out[row, m:] = idx[row, m - 1], out[row, m - 1]
    idx[have == 0] = -1
    return idx, out, have


def whole(
    x: np.ndarray,
    k: int,
    metric: str,
    knn: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    *,
    shards: int = 1,
    cell_frames: int = CELL_FRAMES,
    exact_limit: int = 20_000,
    progress: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole graph from every shard's cells in this process (what the shards of a job compute
    together): for tests and benchmarks."""
    cells = cell_count(len(x), cell_frames)
    rows_of = members(partition(x, metric, cells), cells)
    dealt = deal([len(r) for r in rows_of], shards, exact_limit)
    parts = [p for s in range(shards) for p in cell_graphs(x, rows_of, list(np.flatnonzero(dealt == s)), k, knn,
                                                              progress)]  # fmt: skip
    frames = np.concatenate([np.repeat(rows, idx.shape[1]) for _, rows, idx, _ in parts])
    near = np.concatenate([idx.reshape(-1) for _, _, idx, _ in parts])
    dist = np.concatenate([d.reshape(-1) for _, _, _, d in parts])
    idx, d, _ = merge(len(x), k, frames, near, dist)
    return idx, d
