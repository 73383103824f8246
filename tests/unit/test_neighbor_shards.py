"""The neighbour graph in shards: the shards of any number together are the exact graph, and how many
shards a graph of a given size is split into."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.analysis import graph_cells, neighbors


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_the_shards_of_a_graph_together_are_the_exact_graph(shards: int, metric: str) -> None:
    rng = np.random.default_rng(shards)
    x = rng.normal(size=(503, 12)).astype(np.float32)
    x[10] = x[400]  # an exact duplicate across shards
    whole_idx, whole_dist = neighbors.knn(x, 8, metric)
    parts = [neighbors.knn_shard(x, neighbors.shard_rows(len(x), s, shards), 8, metric) for s in range(shards)]
    idx = np.concatenate([i for i, _ in parts])
    dist = np.concatenate([d for _, d in parts])
    assert idx.shape == (503, 8)
    np.testing.assert_allclose(dist, whole_dist, atol=1e-5)
    assert (idx != np.arange(503)[:, None]).all()  # no frame is its own neighbour
    assert idx[10, 0] == 400 and idx[400, 0] == 10 and dist[10, 0] <= neighbors.EXACT
    assert (np.sort(idx, axis=1) == np.sort(whole_idx, axis=1)).mean() > 0.99  # the same, but for ties


def test_shard_rows_cover_every_row_once() -> None:
    for n in (0, 1, 5, 1000):
        for shards in (1, 2, 3, 8):
            rows = [r for s in range(shards) for r in neighbors.shard_rows(n, s, shards)]
            assert rows == list(range(n))


def test_how_many_shards_a_graph_is_split_into() -> None:
    assert neighbors.shards_for(neighbors.EXACT_LIMIT, 8) == 1  # exact in one process is quick
    assert neighbors.shards_for(neighbors.EXACT_LIMIT + 1, 8) == 2
    assert neighbors.shards_for(100_000, 8) == 5
    assert neighbors.shards_for(100_000, 4) == 4
    assert neighbors.shards_for(100_000, 1) == 1
    # beyond the exact shards' limit: cells, a shard per PARTITIONED_SHARD_FRAMES
    assert neighbors.shards_for(neighbors.SHARDED_EXACT_LIMIT + 1, 8) == 1  # NN-descent in one process
    assert neighbors.shards_for(1_000_000, 8) == 4
    assert neighbors.shards_for(1_000_000, 2) == 2
    assert neighbors.shards_for(4_000_000, 64) == 16
    assert neighbors.shards_for(4_000_000, 1) == 1


def _clusters(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (40, 16))
    return (centres[rng.integers(0, 40, n)] + rng.normal(0, 0.4, (n, 16))).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_the_partition_puts_every_frame_in_two_cells_the_same_way_every_time(metric: str) -> None:
    x = _clusters(3_000)
    a = graph_cells.partition(x, metric, 12)
    assert a.shape == (3_000, 2)
    assert (a[:, 0] != a[:, 1]).all() and a.min() >= 0 and a.max() < 12
    assert (graph_cells.partition(x.copy(), metric, 12) == a).all()  # another shard computes the same cells
    cells = graph_cells.members(a, 12)
    assert sorted(np.concatenate(cells).tolist()) == sorted(list(range(3_000)) * 2)
    assert all((np.diff(c) > 0).all() for c in cells)


def test_cells_are_dealt_to_shards_by_cost_the_same_way_every_time() -> None:
    sizes = [90_000, 10, 5_000, 5_000, 20_000, 20_000, 300, 40_000]
    dealt = graph_cells.deal(sizes, 3, 20_000)
    assert (graph_cells.deal(sizes, 3, 20_000) == dealt).all()
    assert sorted(set(dealt.tolist())) == [0, 1, 2]
    load = [sum(graph_cells.cost(sz, 20_000) for sz, s in zip(sizes, dealt, strict=True) if s == shard)
            for shard in range(3)]  # fmt: skip
    biggest = max(graph_cells.cost(sz, 20_000) for sz in sizes)
    assert max(load) - min(load) <= biggest  # no shard holds more than the others by more than one cell
    assert (graph_cells.deal(sizes, 1, 20_000) == 0).all()


def test_merging_keeps_each_frames_nearest_distinct_neighbours() -> None:
    frames = np.array([0, 0, 0, 0, 1, 1, 2, 3, 3])
    near = np.array([1, 2, 1, 3, 0, -1, 2, 2, 0])
    dist = np.array([0.5, 0.2, 0.4, 0.9, 0.4, 0.1, 0.0, 0.3, 0.3], dtype=np.float32)
    idx, d, have = graph_cells.merge(5, 2, frames, near, dist)
    assert idx[0].tolist() == [2, 1] and d[0].tolist() == pytest.approx([0.2, 0.4])  # 1 twice: its nearer copy
    assert idx[1].tolist() == [0, 0] and d[1].tolist() == pytest.approx([0.4, 0.4])  # one neighbour: repeated
    assert have[2] == 0 and (idx[2] == -1).all()  # itself only: nothing
    assert idx[3].tolist() == [0, 2]  # a tie: the lower frame first
    assert have.tolist() == [3, 1, 0, 2, 0]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_cells_that_each_hold_every_frame_give_the_exact_graph(metric: str) -> None:
    x = _clusters(1_500, seed=1)
    exact_idx, exact_dist = neighbors.knn(x, 8, metric)
    idx, dist = graph_cells.whole(x, 8, metric, lambda v, k: neighbors.knn(v, k, metric), cell_frames=10**9)
    np.testing.assert_allclose(dist, exact_dist, atol=1e-5)  # two cells, every frame in both
    assert (np.sort(idx, axis=1) == np.sort(exact_idx, axis=1)).mean() > 0.99


@pytest.mark.parametrize("shards", [1, 3])
def test_small_cells_shared_by_shards_give_nearly_the_exact_graph(shards: int) -> None:
    x = _clusters(6_000, seed=2)
    x[100] = x[5_000]  # an exact copy, likely in other cells than most
    exact, _ = neighbors.knn(x, 10, "cosine")
    idx, dist = graph_cells.whole(x, 10, "cosine", lambda v, k: neighbors.knn(v, k, "cosine"), shards=shards,
                                  cell_frames=1_000)  # fmt: skip
    assert idx.shape == (6_000, 10) and (idx >= 0).all() and (idx != np.arange(6_000)[:, None]).all()
    assert (np.diff(dist, axis=1) >= 0).all()
    recall = np.mean([len(set(idx[r]) & set(exact[r])) / 10 for r in range(6_000)])
    assert recall > 0.95
    assert idx[100, 0] == 5_000 and dist[100, 0] <= neighbors.EXACT


def test_the_classes_are_dealt_to_the_shards_each_once() -> None:
    labels = np.array([-1] * 5 + [0] * 50 + [3] * 10 + [7] * 200 + [9] * 1)
    dealt = [neighbors.shard_classes(labels, s, 3) for s in range(3)]
    assert sorted(np.concatenate(dealt).tolist()) == [0, 3, 7, 9]
    assert 7 in dealt[0]  # the largest first, to the first shard
    scores = [neighbors.class_outlier_scores(np.random.default_rng(0).normal(size=(266, 4)).astype(np.float32),
                                             labels, 5, "euclidean", classes=c) for c in dealt]  # fmt: skip
    assert all(np.isnan(s[labels == 9]).all() for s in scores)  # a class of one frame has no score
    assert [int((~np.isnan(s)).sum()) for s in scores] == [int(np.isin(labels, c).sum() - (9 in c)) for c in dealt]


def test_a_shard_holds_a_block_of_vectors_then_its_own_cells_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact shards' limit a shard asks for the k-means sample, then the vectors a block at a time to
    find every frame's cells, then the vectors of its own cells only; the shards' parts together give the graph
    that the cells give with every vector in memory."""
    monkeypatch.setattr(neighbors, "SHARDED_EXACT_LIMIT", 500)
    monkeypatch.setattr(neighbors, "PARTITIONED_CELL_FRAMES", 400)
    monkeypatch.setattr(graph_cells, "BLOCK", 256)
    x = _clusters(3_000, seed=3)
    asked: list[np.ndarray] = []

    def vectors_of(rows: np.ndarray) -> np.ndarray:
        asked.append(np.asarray(rows))
        return x[rows]

    cells = graph_cells.cell_count(len(x), 400)
    parts = []
    for shard in range(3):
        asked.clear()
        mine = list(neighbors.shard_graph(vectors_of, len(x), shard, 3, 10, "cosine"))
        parts += mine
        sample, *blocks, held = asked
        assert len(sample) == cells * graph_cells.SAMPLE_PER_CELL
        assert np.concatenate(blocks).tolist() == list(range(len(x))) and max(map(len, blocks)) == 256
        own = np.unique(np.concatenate([rows for _, rows, _, _ in mine]))
        assert held.tolist() == own.tolist() and len(held) < 0.8 * len(x)  # its cells' frames, not all of them
    frames = np.concatenate([np.repeat(rows, idx.shape[1]) for _, rows, idx, _ in parts])
    near = np.concatenate([idx.reshape(-1) for _, _, idx, _ in parts])
    dist = np.concatenate([d.reshape(-1) for _, _, _, d in parts])
    idx, d, _ = graph_cells.merge(len(x), 10, frames, near, dist)
    whole_idx, whole_d = graph_cells.whole(x, 10, "cosine", lambda v, k: neighbors.knn(v, k, "cosine"), shards=3,
                                           cell_frames=400)  # fmt: skip
    assert (idx == whole_idx).all()
    np.testing.assert_array_equal(d, whole_d)
