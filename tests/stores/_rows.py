"""A classification set's rows as the ingest service writes them into the metrics store, for the store tests: the
inference set's record, label versions of frames, and a set's predictions (project ``p``, dataset ``d``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shoal.common.stores.metrics import MetricsStore

LABEL_COLUMNS = ["project", "dataset", "frame_id", "label_version", "version_time", "class_id", "num_objects",
                 "source", "author", "reason", "upload_id"]  # fmt: skip
INFERENCE_COLUMNS = ["project", "inference_set", "dataset", "frame_id", "pred_class", "confidence", "probs",
                     "num_objects", "upload_id", "version"]  # fmt: skip


def create_sets(m: MetricsStore, names: Sequence[str]) -> None:
    m.insert("inference_sets", [["p", s, "d", "m", "1", "", "2026-01-01 00:00:00", 1] for s in names],
             ["project", "name", "dataset", "model_name", "model_version", "description", "create_time", "version"])  # fmt: skip


def write_labels(m: MetricsStore, frame_ids: Sequence[str], classes: Sequence[int], version: int = 1) -> None:
    """Label version ``v{version}`` of the frames, written on day ``version`` (a later version is newer)."""
    rows = [["p", "d", f, f"v{version}", f"2026-01-0{version} 00:00:00", int(c), 0, "up", "", "", "u"]
            for f, c in zip(frame_ids, classes, strict=True)]  # fmt: skip
    m.insert("label_versions", rows, LABEL_COLUMNS)


def write_predictions(
    m: MetricsStore, name: str, frame_ids: Sequence[str], probs: np.ndarray, version: int = 1
) -> None:
    """Set ``name``'s class probabilities of the frames (the most likely class its prediction)."""
    rows = [["p", name, "d", f, int(q.argmax()), float(q.max()), q.tolist(), 0, "u", version]
            for f, q in zip(frame_ids, probs, strict=True)]  # fmt: skip
    m.insert("inferences", rows, INFERENCE_COLUMNS)
