"""The embedding map's points on chDB: the viewport reads them in priority order from a second table, and a map
stored before that table existed answers as before once the migration has copied it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shoal.analysis import embedding_map
from shoal.common.stores.metrics import EmbeddedMetricsStore


def _points(job_id: str, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "project": pa.array(["p"] * n), "job_id": pa.array([job_id] * n),
        "frame_id": pa.array([f"f{i:05d}" for i in range(n)]),
        "x": pa.array(rng.normal(0, 1, n).astype(np.float32)), "y": pa.array(rng.normal(0, 1, n).astype(np.float32)),
        "priority": pa.array(rng.random(n).astype(np.float32)), "label_class": pa.array(rng.integers(0, 3, n)),
        "split": pa.array(["train"] * n), "fitted": pa.array(np.zeros(n, np.uint8)),
    })  # fmt: skip


def _lowest(points: pa.Table, k: int, box: tuple[float, float, float, float] | None = None) -> list[str]:
    """The frame ids of the ``k`` lowest priorities (ties by frame id) inside ``box``, by brute force."""
    rows = points.to_pylist()
    if box is not None:
        rows = [r for r in rows if box[0] <= r["x"] <= box[2] and box[1] <= r["y"] <= box[3]]
    return [r["frame_id"] for r in sorted(rows, key=lambda r: (r["priority"], r["frame_id"]))[:k]]


def test_a_map_stored_before_the_priority_table_answers_its_viewports_after_the_migration(
    embedded_metrics: EmbeddedMetricsStore,
) -> None:
    before = [m for m in embedding_map.MIGRATIONS if m.version < 13]
    embedded_metrics.migrate(before)
    old = _points("old", 3_000, seed=1)
    embedded_metrics.insert_arrow("map_points", old)  # as the map job wrote its points before
    embedded_metrics.migrate(embedding_map.MIGRATIONS)
    embedded_metrics.migrate(embedding_map.MIGRATIONS)  # applied once: nothing more copied
    new = _points("new", 2_000, seed=2)
    embedding_map.store_points(embedded_metrics, new)
    embedding_map.store_points(embedded_metrics, new)  # a shard written again: the same rows, read once

    for job, points in (("old", old), ("new", new)):
        for box in (None, (-0.5, -0.5, 1.0, 1.0)):
            shown, total = embedding_map.viewport(embedded_metrics, "p", job, box=box, max_points=250)
            assert [p.frame_id for p in shown] == _lowest(points, 250, box)
            assert total == len(_lowest(points, len(points), box))
    rows = embedded_metrics.query(
        "SELECT job_id, count() FROM map_points_by_priority FINAL GROUP BY job_id ORDER BY job_id"
    ).rows
    assert [tuple(r) for r in rows] == [("new", 2_000), ("old", 3_000)]
