"""The compiled kernels of the analysis jobs, each run once on a small input of the jobs' own
types, so that a fresh service has them loaded before its first job or metrics of objects
(:class:`shoal.common.jit.Warmup`).
``tests/integration/test_cold_start.py`` checks that a neighbour job and a map run after these
compile nothing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shoal.analysis import (
    coco,
    detection_issues,
    embedding_map,
    neighbors,
    nuscenes,
    segmentation_issues,
    sound_event_analysis,
    sound_event_issues,
    sound_events,
)
from shoal.common import classmaps, masks, similarity
from shoal.common.data import outcomes


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


def object_metrics() -> None:
    """COCO's evaluation and the label issues of objects, for boxes, masks and keypoints: two frames
    with a labeled and a predicted object each."""
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:6, 2:6] = True
    runs, offsets = masks.pack([masks.encode(mask)] * 2)
    points = np.array([[3.0, 3.0, 2.0], [4.0, 4.0, 2.0]] * 2)
    point_offsets = np.array([0, 2, 4])
    frames = np.array([0, 1])
    box = np.tile([2.0, 2.0, 4.0, 4.0], (2, 1))
    classes = np.array([1, 1])
    for params in coco.PARAMS.values():
        gt = coco.Boxes(frames, classes, box, crowd=np.array([False, True]), masks=runs, mask_offsets=offsets,
                        keypoints=points, keypoint_offsets=point_offsets)  # fmt: skip
        dt = coco.Boxes(frames, classes, box, score=np.array([0.9, 0.8]), masks=runs, mask_offsets=offsets,
                        keypoints=points, keypoint_offsets=point_offsets)  # fmt: skip
        sigmas = {1: np.array([0.05, 0.05])}
        coco.evaluate(gt, dt, frames, [1], params, sigmas)
        objects = similarity.ObjectArrays(classes, box, None, gt.area, runs, offsets, points, point_offsets)
        detection_issues.score_objects(
            n_frames=2, g_frame=frames, g_box=box, g_cls=classes, g_crowd=np.zeros(2, bool), d_frame=frames,
            d_box=box, d_cls=classes, d_conf=np.array([0.9, 0.8]), shapes=similarity.Shapes(params.iou_type, sigmas),
            labels=objects, predictions=objects,
        )  # fmt: skip


def cuboid_metrics() -> None:
    """The kernels of cuboids on request paths: nuScenes' matching by centre distance, the AP over BEV and 3-D
    IoU, the BEV IoU and global matching of the object pipeline (confusion, matches) and the label issues' scoring
    of cuboids, on two frames with a labeled and a predicted cuboid each."""
    frames = np.array([0, 1])
    classes = np.array([0, 0])
    box = np.tile([1.0, 2.0, 0.5, 1.9, 4.5, 1.6, 0.3], (2, 1))
    gt = nuscenes.Cuboids(frame=frames, category=classes, box=box)
    dt = nuscenes.Cuboids(frame=frames, category=classes, box=box, score=np.array([0.9, 0.8]))
    nuscenes.evaluate(gt=gt, dt=dt, frames=frames, classes=[0], params=nuscenes.nuscenes_params({0: "barrier"}))
    for kind in ("bev_iou", "iou_3d"):
        nuscenes.iou_ap(gt=gt, dt=dt, frames=frames, classes=[0], params=nuscenes.IouParams(kind=kind))
    ids = np.array(["a", "b"], dtype=object)
    columns = {"frame_id": ids, "object_id": ids, "class_id": classes, "x": np.zeros(2), "y": np.zeros(2),
               "w": np.zeros(2), "h": np.zeros(2), "cuboid": list(box)}  # fmt: skip
    outcomes.match_frames(ids, {**columns, "crowd": np.zeros(2, dtype=bool)}, {**columns, "score": dt.score}, 0.5,
                          similarity.Shapes("cuboid"))  # fmt: skip
    objects = similarity.from_columns(columns, "cuboid", predicted=False)
    detection_issues.score_objects(
        n_frames=2, g_frame=frames, g_box=np.zeros((2, 4)), g_cls=classes, g_crowd=np.zeros(2, bool), d_frame=frames,
        d_box=np.zeros((2, 4)), d_cls=classes, d_conf=dt.score, shapes=similarity.Shapes("cuboid"), labels=objects,
        predictions=objects,
    )  # fmt: skip


def segmentation_maps() -> None:
    """The pixel confusion of class maps, and the label issues of segmentation in float16 and float32
    (two small images of two classes, one pixel unlabeled)."""
    labels = np.array([[0, 0, 1], [1, 1, classmaps.UNLABELED]], dtype=np.uint16)
    runs = classmaps.encode(labels)
    classmaps.confusion([runs], [classmaps.encode(np.where(labels == classmaps.UNLABELED, 0, labels))])
    probs = np.stack([np.where(labels == 0, 0.8, 0.3), np.where(labels == 0, 0.2, 0.7)]).astype(np.float32)
    for p in (probs, probs.astype(np.float16)):
        segmentation_issues.find(lambda p=p: [(labels, p), (labels[::-1].copy(), p[:, ::-1].copy())], classes=2,
                                 tolerance=1)  # fmt: skip


def sound_event_metrics() -> None:
    """sed_eval's segment- and event-based metrics (both matchings), the event confusion's matching and the
    interval label issues, on two clips of two classes (one without events)."""
    labeled = sound_events.Intervals(onset=[0.5, 2.0], offset=[1.5, 3.0], cls=[0, 1], classes=2, bounds=[0, 2, 2])
    predicted = sound_events.Intervals(onset=[0.6, 2.1], offset=[1.4, 2.9], cls=[0, 0], score=[0.9, 0.6], classes=2,
                                       bounds=[0, 2, 2])  # fmt: skip
    durations = np.array([4.0, np.nan])
    sound_events.SegmentMetrics(classes=2).add(reference=labeled, estimated=predicted, durations=durations)
    for matching in sound_events.MATCHINGS:
        sound_events.EventMetrics(classes=2, matching=matching).add(reference=labeled, estimated=predicted)
    sound_event_analysis.match(labeled, predicted, sound_event_analysis.Matching())
    sound_event_issues.find(labeled=labeled, predicted=predicted)


def nn_descent() -> None:
    """NN-descent: the graph above EXACT_LIMIT frames, and the map's above EXACT_LIMIT fitted frames."""
    x = _clusters(32, 8)
    for metric in ("cosine", "euclidean"):
        neighbors.nn_descent(x, neighbors.DEFAULT_K + 1, metric)


#: loaded in this order: NN-descent last, because two of its kernels compile at every start (numba cannot
#: cache them) and numba compiles one kernel at a time in a process: a small neighbour job or map started
#: meanwhile then finds its own kernels loaded instead of queuing behind that compilation
KERNELS: tuple[Callable[[], None], ...] = (
    object_metrics,
    cuboid_metrics,
    segmentation_maps,
    sound_event_metrics,
    neighbour_graph,
    map_layout,
    nn_descent,
)
#: those that compile in every process: the service's warm-up runs them once it has run no job for a moment
EVERY_PROCESS: tuple[Callable[[], None], ...] = (nn_descent,)

#: the same, for a build step that compiles them in several processes at once (``shoal warm-up``): the longest
#: first (NN-descent: 52 s of one core from an empty cache, against 25 s for the map and 5 s for the graph),
#: so that the others compile beside it rather than after it
BUILD_ORDER: tuple[Callable[[], None], ...] = (
    nn_descent,
    map_layout,
    neighbour_graph,
    object_metrics,
    cuboid_metrics,
    segmentation_maps,
    sound_event_metrics,
)
