"""The map's fit from 4,096 frames (where UMAP is handed a graph) up to 20,000: the exact graph, so that a fresh
process compiles nothing for it and the Pods of a split map fit the same layout whatever their nodes' cores; and
the warm-up loads every kernel such a fit calls, so that a map started as a service starts does not wait for the
warm-up's compilation of NN-descent."""

from __future__ import annotations

import subprocess
import sys

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


#: run in a fresh process: the warm-up's kernels but NN-descent's, then a map handed its graph, counting the
#: kernels that map still had to load or compile (each waits for numba's lock, which the warm-up thread holds
#: while it compiles NN-descent as a service starts)
_AFTER_WARM_UP = """
import numpy as np
from numba.core import dispatcher
from shoal.analysis import embedding_map, warmup

for kernel in warmup.KERNELS:
    if kernel not in warmup.EVERY_PROCESS:
        kernel()
loaded, compile = [], dispatcher.Dispatcher.compile

def counted(self, sig):
    before = len(self.overloads)
    out = compile(self, sig)
    if len(self.overloads) > before:
        loaded.append(f"{self.py_func.__module__}.{self.py_func.__qualname__}{sig}")
    return out

dispatcher.Dispatcher.compile = counted
rng = np.random.default_rng(1)
centres = rng.normal(0, 1, (12, 32)).astype(np.float32) * 10
x = centres[np.arange(embedding_map.UMAP_OWN_GRAPH + 200) % 12] + rng.normal(0, 0.1, (embedding_map.UMAP_OWN_GRAPH + 200, 32))
for metric in ("cosine", "euclidean"):
    embedding_map.fit(x.astype(np.float32), metric)
print("LOADED", loaded)
"""


def test_after_the_warm_up_a_map_handed_its_graph_loads_no_kernel() -> None:
    out = subprocess.run([sys.executable, "-c", _AFTER_WARM_UP], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out, out
