"""The rows analyses read (shoal.common.data.evaluations) as the ingest consumer refreshes them, and the
classification report over them, on the metrics store: the rank of the labeled class kept at ingest gives
scikit-learn's top-k accuracy, and rows written before that rank was kept give the same report."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import top_k_accuracy_score

from shoal.analysis.classification import classification_report
from shoal.common.data import datasets, evaluations, frames
from shoal.common.data import projects as catalog
from shoal.common.data.evaluations import EvaluationRefresher, has_true_rank
from shoal.common.data.query import View
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2

ONTOLOGY = (7, 2, 11, 5)  # class ids in the order of the probability vectors
N = 400


def _write(metrics: MetricsStore, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    metrics.migrate([*catalog.MIGRATIONS, *datasets.MIGRATIONS, *frames.MIGRATIONS, *evaluations.MIGRATIONS])
    projects = catalog.ProjectCatalog(metrics)
    projects.create(
        catalog.Project("p", "CLASSIFICATION", classes=tuple(catalog.ClassDef(c, f"c{c}") for c in ONTOLOGY))
    )
    sets = datasets.DatasetCatalog(metrics, projects)
    sets.create(datasets.Dataset("p", "d", "LABELED", ("train",)))
    sets.create_inference_set(datasets.InferenceSet("p", "m", "d", "model", "1"))
    ids = [f"f{i:04d}" for i in range(N)]
    labels = np.array(ONTOLOGY)[rng.integers(0, len(ONTOLOGY), N)].astype(np.int32)
    probs = rng.dirichlet(np.ones(len(ONTOLOGY)) * 0.7, N).astype(np.float32)
    k = len(ONTOLOGY)
    metrics.insert_arrow("frames", pa.table({
        "project": ["p"] * N, "dataset": ["d"] * N, "frame_id": ids, "split": ["train"] * N,
        "version": pa.array(np.ones(N, np.uint64))}))  # fmt: skip
    metrics.insert_arrow("label_versions", pa.table({
        "project": ["p"] * N, "dataset": ["d"] * N, "frame_id": ids, "label_version": ["v"] * N,
        "class_id": pa.array(labels)}))  # fmt: skip
    metrics.insert_arrow("inferences", pa.table({
        "project": ["p"] * N, "inference_set": ["m"] * N, "dataset": ["d"] * N, "frame_id": ids,
        "pred_class": pa.array(np.array(ONTOLOGY)[probs.argmax(1)].astype(np.int32)),
        "confidence": pa.array(probs.max(1)),
        "probs": pa.ListArray.from_arrays(pa.array(np.arange(0, (N + 1) * k, k, dtype=np.int32)),
                                          pa.array(probs.ravel())),
        "version": pa.array(np.ones(N, np.uint64))}))  # fmt: skip
    EvaluationRefresher(metrics).refresh("p", "d", ids, list(ONTOLOGY))
    return labels, probs


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_top_k_accuracy_from_the_kept_rank_and_without_it(metrics_store: MetricsStore, top_k: int) -> None:
    labels, probs = _write(metrics_store, np.random.default_rng(top_k))
    view = View("p", "d", "m", ONTOLOGY)
    want = top_k_accuracy_score(labels, probs[:, np.argsort(ONTOLOGY)], k=top_k, labels=np.sort(ONTOLOGY))
    assert has_true_rank(metrics_store, "p", "m", "d", ONTOLOGY)
    kept = classification_report(metrics_store, view, common_pb2.Filter(), top_k=top_k)
    assert kept.top_k_accuracy == pytest.approx(want, abs=1e-12)

    # rows written before the rank was kept: read from the probabilities, the same report
    metrics_store.command("ALTER TABLE evaluations UPDATE true_rank = NULL WHERE 1 SETTINGS mutations_sync = 2")
    assert not has_true_rank(metrics_store, "p", "m", "d", ONTOLOGY)
    read = classification_report(metrics_store, view, common_pb2.Filter(), top_k=top_k)
    assert read.top_k_accuracy == kept.top_k_accuracy and read.frames == kept.frames == N
    np.testing.assert_array_equal(read.confusion, kept.confusion)
