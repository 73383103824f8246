"""The tables of what clients upload: ``frames`` (with their metadata), ``label_versions`` and
``label_objects`` (every label version of a frame and its objects: boxes, masks, keypoints), ``inferences`` and
``predicted_objects`` (an inference set's predictions), and ``metadata_keys`` (the type of each
metadata key of a dataset).

The ingest consumer writes them (:mod:`shoal.ingest.writer`); every service reads them. Writes are
idempotent: every row's key derives from the upload event, and reads use ``FINAL`` or ``argMax``.

The migrations keep the component and versions they were first recorded under (``ingest`` 3 and
6), so a deployment that applied them applies nothing again. Upload progress (``upload_chunks``),
which only the ingest service reads, was created by the same first migration; it is now declared by
the ingest service (``ingest`` 7, ``CREATE TABLE IF NOT EXISTS``: a no-op where it exists).
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.common.stores.metrics import Migration

MIGRATIONS = (
    Migration(
        component="ingest",
        version=3,
        name="frames, labels, inferences, uploads",
        statements=(
            "CREATE TABLE IF NOT EXISTS frames ("
            " project LowCardinality(String), dataset LowCardinality(String), frame_id String,"
            " split LowCardinality(String), media_uri String, media_type LowCardinality(String),"
            " width UInt32, height UInt32,"
            " meta_str Map(LowCardinality(String), String), meta_num Map(LowCardinality(String), Float64),"
            " meta_bool Map(LowCardinality(String), UInt8),"
            " meta_time Map(LowCardinality(String), DateTime64(3, 'UTC')),"
            " capture_time Nullable(DateTime64(3, 'UTC')), upload_id String, version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, dataset, frame_id)",
            # one row per label version of a frame; the latest version_time wins in analyses
            "CREATE TABLE IF NOT EXISTS label_versions ("
            " project LowCardinality(String), dataset LowCardinality(String), frame_id String,"
            " label_version String, version_time DateTime64(6, 'UTC'), class_id Nullable(Int32),"
            " num_objects UInt32, source LowCardinality(String), author String, reason String, upload_id String)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, dataset, frame_id, label_version)",
            "CREATE TABLE IF NOT EXISTS label_objects ("
            " project LowCardinality(String), dataset LowCardinality(String), frame_id String,"
            " label_version String, object_id String, class_id Int32,"
            " x Float32, y Float32, w Float32, h Float32, is_crowd UInt8, annotation_uri String,"
            " attr_str Map(LowCardinality(String), String), attr_num Map(LowCardinality(String), Float64))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, dataset, frame_id, label_version, object_id)",
            "CREATE TABLE IF NOT EXISTS inferences ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " frame_id String, pred_class Int32, confidence Float32, probs Array(Float32), num_objects UInt32,"
            " upload_id String, version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, inference_set, frame_id)",
            "CREATE TABLE IF NOT EXISTS predicted_objects ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " frame_id String, object_id String, class_id Int32, score Float32,"
            " x Float32, y Float32, w Float32, h Float32, probs Array(Float32), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, inference_set, frame_id, object_id)",
        ),
    ),
    Migration(
        component="ingest",
        version=6,
        name="one type per metadata key and dataset",
        statements=(
            # the type each metadata key of a dataset was first written with (the smallest version
            # wins; written by the consumers, read by validation)
            "CREATE TABLE IF NOT EXISTS metadata_keys ("
            " project LowCardinality(String), dataset LowCardinality(String), key String,"
            " kind LowCardinality(String), version UInt64)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, dataset, key, kind)",
            # keys stored before: the type most of a key's frames hold it as
            "INSERT INTO metadata_keys (project, dataset, key, kind, version)"
            " SELECT project, dataset, key, argMax(kind, n), 0 FROM ("
            "  SELECT project, dataset, k AS key, 'string' AS kind, count() AS n FROM frames FINAL"
            "   ARRAY JOIN mapKeys(meta_str) AS k GROUP BY project, dataset, key"
            "  UNION ALL SELECT project, dataset, k AS key, 'number' AS kind, count() AS n FROM frames FINAL"
            "   ARRAY JOIN mapKeys(meta_num) AS k GROUP BY project, dataset, key"
            "  UNION ALL SELECT project, dataset, k AS key, 'bool' AS kind, count() AS n FROM frames FINAL"
            "   ARRAY JOIN mapKeys(meta_bool) AS k GROUP BY project, dataset, key"
            "  UNION ALL SELECT project, dataset, k AS key, 'timestamp' AS kind, count() AS n FROM frames FINAL"
            "   ARRAY JOIN mapKeys(meta_time) AS k GROUP BY project, dataset, key"
            " ) GROUP BY project, dataset, key",
        ),
    ),
    Migration(
        component="ingest",
        version=11,
        name="masks, polygons and keypoints of objects",
        statements=(
            *(
                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"
                for table in ("label_objects", "predicted_objects")
                for column in (
                    # COCO's compact run-length string over the frame ('' without a mask) and its pixels
                    "mask String CODEC(ZSTD(1))",
                    "mask_area UInt32",
                    # as given (x0, y0, x1, y1, ...); their union is the mask
                    "polygons Array(Array(Float64))",
                    # one per keypoint of the object's class: x, y and COCO's visibility (predictions: 1)
                    "kp_x Array(Float64)",
                    "kp_y Array(Float64)",
                    "kp_v Array(UInt8)",
                )
            ),
            "ALTER TABLE predicted_objects ADD COLUMN IF NOT EXISTS kp_score Array(Float32)",
        ),
    ),
    Migration(
        component="ingest",
        version=12,
        name="the classes of a multi-label frame",
        statements=("ALTER TABLE label_versions ADD COLUMN IF NOT EXISTS class_ids Array(Int32)",),
    ),
    Migration(
        component="ingest",
        version=14,
        name="the class maps of segmentation labels and predictions",
        statements=(
            # class runs (shoal.common.classmaps): a class id per run (65535: no class) and its length
            *(
                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"
                for table in ("label_versions", "inferences")
                for column in ("seg_classes Array(UInt16) CODEC(ZSTD(1))", "seg_runs Array(UInt32) CODEC(ZSTD(1))")
            ),
            "ALTER TABLE inferences ADD COLUMN IF NOT EXISTS probs_uri String",
        ),
    ),
    Migration(
        component="ingest",
        version=16,
        name="point clouds with cuboids, and audio clips with sound events",
        statements=(
            # the frame's coordinate frame ('' unset), its ego pose (x, y, z, qw, qx, qy, qz; empty without) and
            # cameras; an audio clip's duration and sample rate
            "ALTER TABLE frames ADD COLUMN IF NOT EXISTS coordinate_frame LowCardinality(String)",
            "ALTER TABLE frames ADD COLUMN IF NOT EXISTS ego_pose Array(Float64)",
            "ALTER TABLE frames ADD COLUMN IF NOT EXISTS cameras Array(Tuple(name String, uri String))",
            "ALTER TABLE frames ADD COLUMN IF NOT EXISTS duration_seconds Float64",
            "ALTER TABLE frames ADD COLUMN IF NOT EXISTS sample_rate UInt32",
            # a cuboid as x, y, z, w, l, h, yaw (empty without), its velocity (vx, vy; empty unknown), one attribute
            *(
                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"
                for table in ("label_objects", "predicted_objects")
                for column in ("cuboid Array(Float64)", "velocity Array(Float64)", "attribute LowCardinality(String)")
            ),
            # a clip's sound events, as parallel arrays (scores: predictions only)
            *(
                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"
                for table in ("label_versions", "inferences")
                for column in ("ev_onsets Array(Float64)", "ev_offsets Array(Float64)", "ev_classes Array(Int32)")
            ),
            "ALTER TABLE inferences ADD COLUMN IF NOT EXISTS ev_scores Array(Float32)",
        ),
    ),
    Migration(
        component="ingest",
        version=17,
        name="the points inside labeled cuboids",
        statements=(
            # the points of the frame's cloud inside a labeled cuboid (nuScenes' num_lidar_pts); -1: not known
            "ALTER TABLE label_objects ADD COLUMN IF NOT EXISTS num_points Int32 DEFAULT -1",
        ),
    ),
)

#: the shape columns of label_objects and predicted_objects, in the writer's order
SHAPE_COLUMNS = ("mask", "mask_area", "polygons", "kp_x", "kp_y", "kp_v", "cuboid", "velocity", "attribute")


def latest_labels_sql(scope: str, columns: Sequence[str] = ()) -> str:
    """SQL of the regular and crowd objects of each frame's latest label version (their boxes,
    and ``columns`` of ``label_objects`` besides), for frames in ``scope`` (a condition on
    ``frame_id``; ``{project:String}`` and ``{dataset:String}`` bound)."""
    where = f" AND {scope}" if scope else ""
    mine = f"project = {{project:String}} AND dataset = {{dataset:String}}{where}"
    extra = "".join(f", {c}" for c in columns)
    shown = "".join(f", o.{c} AS {c}" for c in columns)
    return (
        "SELECT o.frame_id AS frame_id, o.object_id AS object_id, o.class_id AS class_id, o.x AS x, o.y AS y,"
        f" o.w AS w, o.h AS h, o.is_crowd AS crowd{shown}"
        f" FROM (SELECT frame_id, label_version, object_id, class_id, x, y, w, h, is_crowd{extra}"
        f" FROM label_objects FINAL WHERE {mine}) AS o"
        " INNER JOIN (SELECT frame_id, argMax(label_version, (version_time, label_version)) AS latest"
        f" FROM label_versions WHERE {mine} GROUP BY frame_id) AS l"
        " ON l.frame_id = o.frame_id AND l.latest = o.label_version"
    )
