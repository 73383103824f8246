"""The map's fit from 4,096 frames (where UMAP is handed a graph) up to 20,000: the exact graph, so that a fresh
process compiles nothing for it and the Pods of a split map fit the same layout whatever their nodes' cores."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from shoal.analysis import embedding_map, neighbors


def _clusters(n: int) -> np.ndarray:
    rng = np.random.default_rng(4)
    centres = rng.normal(0, 1, (20, 16)).astype(np.float32)
    return centres[rng.integers(0, 20, n)] + rng.normal(0, 0.3, (n, 16)).astype(np.float32)


def test_a_map_of_up_to_20k_frames_is_the_same_on_any_number_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("NN-descent's kernels compile in every process: not for a fit this small")

    monkeypatch.setattr(neighbors, "nn_descent", never)
    x = _clusters(embedding_map.UMAP_OWN_GRAPH + 500)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = embedding_map.fit(x, "cosine")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        every = embedding_map.fit(x, "cosine")
    finally:
        numba.set_num_threads(before)
    assert one.shape == (len(x), 2) and np.isfinite(one).all()
    assert np.array_equal(one, every)
