"""The embedding map's points on chDB: the viewport reads them in priority order from a second table, and a map
stored before that table existed answers as before once the migration has copied it."""

from __future__ import annotations

import dataclasses

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


def test_a_box_counts_its_points_from_the_cells_it_covers_exactly(embedded_metrics: EmbeddedMetricsStore) -> None:
    """The count of a box read from ``map_points_by_cell`` equals the count of every point in it, for boxes
    inside, across and outside the map, boxes whose edges lie on points, and a map all on one vertical line,
    and so do its points and the points of a lasso; a run that indexes its cells again keeps one copy."""
    from shoal.common.jobs import Job

    embedded_metrics.migrate(embedding_map.MIGRATIONS)
    rng = np.random.default_rng(3)
    paths: set[bool] = set()
    for job_id, points in (("spread", _points("spread", 5_000, seed=4)), ("line", _points("line", 500, seed=5))):
        if job_id == "line":
            points = points.set_column(points.schema.get_field_index("x"), "x", pa.array(np.full(500, 2.5, np.float32)))
        embedding_map.store_points(embedded_metrics, points)
        x, y = points["x"].to_numpy().astype(np.float64), points["y"].to_numpy().astype(np.float64)
        job = Job("p", "analysis", job_id, embedding_map.KIND, "RUNNING", "", 0.0, "", {}, None, None, None)  # type: ignore[arg-type]
        summary = embedding_map.Summary(
            len(x), 0, "cosine", float(x.min()), float(x.max()), float(y.min()), float(y.max())
        )
        embedding_map.index_cells(embedded_metrics, job, summary)
        summary = embedding_map.index_cells(embedded_metrics, job, summary)  # a run's last step again
        assert summary.grid == embedding_map.GRID
        stored = embedded_metrics.query(
            "SELECT count() FROM map_points_by_cell WHERE job_id = {j:String}", {"j": job_id}
        )
        assert stored.scalar() == len(x)
        i, j = rng.integers(0, len(x), 2)
        boxes = [
            (-0.3, -0.4, 0.7, 0.2), (-9.0, -9.0, 9.0, 9.0), (5.0, 5.0, 6.0, 6.0), (-9.0, -0.1, 0.0, 0.1),
            (float(min(x[i], x[j])), float(min(y[i], y[j])), float(max(x[i], x[j])), float(max(y[i], y[j]))),
            (float(x[i]), float(y[i]), float(x[i]), float(y[i])), (2.5, -9.0, 2.5, 9.0),
        ]  # fmt: skip
        for _ in range(30):
            (x0, x1), (y0, y1) = np.sort(rng.normal(0, 1.5, 2)), np.sort(rng.normal(0, 1.5, 2))
            boxes.append((float(x0), float(y0), float(x1), float(y1)))
        for box in boxes:
            want = int(((x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])).sum())
            cells = embedding_map.box_cells(box, summary)
            assert cells is not None
            assert embedding_map.box_count(embedded_metrics, "p", job_id, box, cells) == want, box
            assert embedding_map.box_count(embedded_metrics, "p", job_id, box, None) == want, box
            assert embedding_map.box_cells(box, dataclasses.replace(summary, grid=0)) is None
            # its points, read by cell for a small box and in priority order for a large one
            shown, total = embedding_map.viewport(embedded_metrics, "p", job_id, box=box, max_points=250,
                                                  summary=summary)  # fmt: skip
            assert total == want and [p.frame_id for p in shown] == _lowest(points, 250, box), box
            paths.add(want * want < 250 * len(x))
        # a lasso reads the cells of its bounding box only, and finds what reading every point finds
        for _ in range(5):
            cx_, cy_ = rng.normal(0, 1, 2)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
            radius = rng.uniform(0.2, 1.5, 5)
            polygon = [
                (float(cx_ + r * np.cos(a)), float(cy_ + r * np.sin(a))) for a, r in zip(angles, radius, strict=True)
            ]
            pages = []
            for given in (summary, None):
                ids, total = embedding_map.region(
                    embedded_metrics, "p", job_id, polygon, after=None, size=50, summary=given
                )
                more, _ = embedding_map.region(embedded_metrics, "p", job_id, polygon, after=ids[-1] if ids else "",
                                               size=50, summary=given)  # fmt: skip
                pages.append((ids, more, total))
            assert pages[0] == pages[1], polygon
    assert paths == {True, False}  # both ways of reading a box's points were taken
