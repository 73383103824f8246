"""The label-issue job's counting steps against cleanlab's own, on joints where a class has no frame
its model agrees with (the keep-one adjustment leaves shares of frames)."""

from __future__ import annotations

import numpy as np
from cleanlab.filter import _keep_at_least_n_per_class

from shoal.analysis.label_scoring import prune_counts


def test_prune_counts_equal_cleanlabs_when_a_class_keeps_one_frame_by_force() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(500):
        k = int(rng.integers(2, 7))
        joint = rng.integers(0, 6, size=(k, k))
        zero = rng.integers(0, k, size=int(rng.integers(1, k)))
        joint[zero, zero] = 0  # classes whose frames the model never confirms
        ours = prune_counts(joint)
        theirs = _keep_at_least_n_per_class(joint.T, n=1).T
        np.fill_diagonal(theirs, 0)
        np.fill_diagonal(ours, 0)
        assert np.array_equal(ours, theirs), (joint, ours, theirs)
        checked += 1
    assert checked == 500
