"""The bulk export of a job's per-frame table (shoal.analysis.export) on the metrics store: every
job kind's table reads back as one Arrow IPC stream, empty or not, scoped to its project and job."""

from __future__ import annotations

import pyarrow as pa
import pytest

from shoal.analysis import export, registry
from shoal.analysis.rpc.export import EXPORTS
from shoal.common.stores.metrics import MetricsStore


def _read(metrics: MetricsStore, spec: export.FrameTable, project: str, job_id: str, rows: int = 2) -> pa.Table:
    stream = b"".join(export.ipc_chunks(export.record_batches(metrics, spec, project, job_id, rows)))
    return pa.ipc.open_stream(stream).read_all()


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_a_job_that_wrote_no_rows_exports_its_columns_and_no_rows(metrics_store: MetricsStore, kind: str) -> None:
    metrics_store.migrate(registry.migrations())
    spec = EXPORTS[kind]
    table = _read(metrics_store, spec, "p", f"{kind}-none")
    assert table.num_rows == 0
    assert table.column_names == [c.split(" AS ")[-1].strip() for c in spec.columns.split(",")]
    assert export.count(metrics_store, spec, "p", f"{kind}-none") == 0


def test_export_keeps_nulls_order_and_scope(metrics_store: MetricsStore) -> None:
    metrics_store.migrate(registry.migrations())
    spec = EXPORTS["neighbors"]
    columns = ["project", "job_id", "frame_id", "split", "label_class", "outlier_score", "nearest_distance",
               "neighbor_label", "label_disagreement", "duplicates"]  # fmt: skip
    rows = [["p", "j", f"f{i}", "train", None if i % 2 else i, 0.5, 1.0, None, None, 0] for i in (4, 0, 3, 1, 2)]
    rows += [
        ["other", "j", "leak", "train", 1, 0.9, 1.0, 1, 0.0, 0],
        ["p", "j2", "leak", "train", 1, 0.9, 1.0, 1, 0.0, 0],
    ]
    metrics_store.insert(spec.table, rows, columns)
    table = _read(metrics_store, spec, "p", "j", rows=2)
    assert table.column("frame_id").to_pylist() == ["f0", "f1", "f2", "f3", "f4"]
    assert table.column("label_class").to_pylist() == [0, None, 2, None, 4]
    assert table.column("neighbor_label").null_count == 5
    assert export.count(metrics_store, spec, "p", "j") == 5
