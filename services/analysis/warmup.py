"""The compiled kernels of the analysis jobs, each run once on a small input of the jobs' own
types, so that a fresh service has them loaded before its first job (:class:`shoal.common.jit.Warmup`).
``tests/integration/test_cold_start.py`` checks that a neighbour job and a map run after these
compile nothing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shoal.analysis import embedding_map, neighbors


def _clusters(per_cluster: int, dim: int, clusters: int = 2) -> np.ndarray:
    """Tight clusters far apart, each on an axis of its own (so UMAP's graph has as many components, as real
    data often does)."""
    rng = np.random.default_rng(0)
    centres = np.zeros((clusters, dim), dtype=np.float32)
    centres[np.arange(clusters), np.arange(clusters)] = 10.0
    return (np.repeat(centres, per_cluster, axis=0) + rng.normal(scale=0.1, size=(clusters * per_cluster, dim))).astype(
        np.float32
    )


def neighbour_graph() -> None:
    x = _clusters(32, 8)
    labels = np.repeat(np.arange(2, dtype=np.int64), 32)
    labels[0] = -1
    for metric in ("cosine", "euclidean"):
        idx, _ = neighbors.knn(x, neighbors.DEFAULT_K, metric)
        neighbors._neighbor_labels(idx, labels)


def map_layout() -> None:
    """Both ways UMAP gets its graph: its own below UMAP_OWN_GRAPH fitted frames, ours from there on (a
    kernel not loaded here would be loaded by the first such map, waiting for numba's lock while this
    thread compiles NN-descent)."""
    x = _clusters(40, 8, clusters=6)  # more components than twice the map's dimensions: UMAP lays them out apart
    for metric in ("cosine", "euclidean"):
        embedding_map.fit(x, metric)
        embedding_map.fit(x, metric, hand_graph=True)


def nn_descent() -> None:
    """NN-descent: the graph above EXACT_LIMIT frames, and the map's above EXACT_LIMIT fitted frames."""
    x = _clusters(32, 8)
    for metric in ("cosine", "euclidean"):
        neighbors.nn_descent(x, neighbors.DEFAULT_K + 1, metric)


#: loaded in this order: NN-descent last, because two of its kernels compile at every start (numba cannot
#: cache them) and numba compiles one kernel at a time in a process: a small neighbour job or map started
#: meanwhile then finds its own kernels loaded instead of queuing behind that compilation
KERNELS: tuple[Callable[[], None], ...] = (neighbour_graph, map_layout, nn_descent)
#: those that compile in every process: the service's warm-up runs them once it has run no job for a moment
EVERY_PROCESS: tuple[Callable[[], None], ...] = (nn_descent,)

#: the same, for a build step that compiles them in several processes at once (``shoal warm-up``): the longest
#: first (NN-descent: 52 s of one core from an empty cache, against 25 s for the map and 5 s for the graph),
#: so that the others compile beside it rather than after it
BUILD_ORDER: tuple[Callable[[], None], ...] = (nn_descent, map_layout, neighbour_graph)
