"""The neighbour graph in shards: the shards of any number together are the exact graph, and how many
shards a graph of a given size is split into."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.analysis import neighbors


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
    assert neighbors.shards_for(100_001, 8) == 1  # beyond the sharded exact limit: NN-descent
    assert neighbors.shards_for(100_000, 1) == 1
    assert neighbors.shards_for(neighbors.SHARDED_EXACT_LIMIT + 1, 8) == 1  # NN-descent in one process
