"""A job's listings kept in page order on chDB: every page read from the ranked rows (label issues with
dismissals left out or shown, outliers with their neighbours, duplicate pairs) equals the page sorted from every
row of the job, including pages that cross the end of the ranked rows, ties in the sort, and NULLs that sort last."""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from shoal.analysis import detection_issues, dismissals, label_issues, neighbors, ranked
from shoal.analysis.detection_issues import MISLOCALIZED, MISSING, SPURIOUS, SWAP
from shoal.common.data.answers import AnswerCache
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.results import MIGRATIONS as RESULT_MIGRATIONS
from shoal.common.jobs import Job
from shoal.common.stores.metrics import EmbeddedMetricsStore

N = 180
LIMIT = 40  # rows ranked per listing: pages past it are read from the job's rows


def _job(job_id: str, kind: str) -> Job:
    return Job("p", "analysis", job_id, kind)


def _brute_window(offset: int, size: int, skipped: set[int], total: int) -> list[int]:
    kept = [r for r in range(total) if r not in skipped]
    return kept[offset : offset + size]


def test_a_window_leaves_out_the_skipped_ranks_as_a_sorted_list_would() -> None:
    rng = random.Random(3)
    for _ in range(3_000):
        total = rng.randint(0, 60)
        ranked_rows = rng.choice([total, min(total, rng.randint(0, 60))])
        skipped = set(rng.sample(range(total), rng.randint(0, total))) if total else set()
        offset, size = rng.randint(0, 70), rng.randint(1, 12)
        span = ranked.window(offset, size, sorted(r for r in skipped if r < ranked_rows), ranked_rows, total)
        want = _brute_window(offset, size, skipped, total)
        if span is None:  # only when the page needs a rank past the ranked ones
            assert ranked_rows < total and (not want or want[-1] >= ranked_rows or len(want) < size)
            continue
        start, stop = span
        assert [r for r in range(start, stop) if r not in skipped][:size] == want


LABEL_VERSION_COLUMNS = ["project", "dataset", "frame_id", "label_version", "version_time", "class_id", "num_objects",
                         "source", "author", "reason", "upload_id"]  # fmt: skip


def _label(store: EmbeddedMetricsStore, ids: list[str], version: str) -> None:
    day = "2026-01-01 00:00:00" if version == "v1" else "2026-02-01 00:00:00"
    store.insert("label_versions", [["p", "d", f, version, day, 0, 0, "upload", "", "", "u"] for f in ids],
                 LABEL_VERSION_COLUMNS)  # fmt: skip


def _dismiss(store: EmbeddedMetricsStore, items: list[tuple[str, str]]) -> None:
    """Dismisses the items on their frames' label versions, then relabels the first one's frame: its dismissal is no
    longer in force."""
    dismissals.record(store, "p", "d", items, dismissed=True, job_id="fast", reason="fine", dismissed_by="me")
    _label(store, [items[0][0]], "v2")


def _label_issue_rows(job_id: str, rng: np.random.Generator) -> pa.Table:
    return pa.table({
        "project": ["p"] * N, "job_id": [job_id] * N, "frame_id": [f"f{i:04d}" for i in range(N)],
        "given_label": rng.integers(0, 4, N).astype(np.int32), "suggested_label": rng.integers(0, 4, N).astype(np.int32),
        "is_issue": (rng.random(N) < 0.5).astype(np.uint8),
        # few distinct values: ties sorted by frame id
        "self_confidence": rng.integers(0, 8, N).astype(np.float32) / 8,
        "normalized_margin": rng.integers(-4, 4, N).astype(np.float32) / 4,
        "weighted_entropy": rng.integers(0, 5, N).astype(np.float32),
        "suggested_probability": rng.random(N).astype(np.float32),
    })  # fmt: skip


@pytest.fixture
def store(embedded_metrics: EmbeddedMetricsStore) -> EmbeddedMetricsStore:
    embedded_metrics.migrate((*FRAME_MIGRATIONS, *RESULT_MIGRATIONS, *ranked.MIGRATIONS, *label_issues.MIGRATIONS,
                              *dismissals.MIGRATIONS, *neighbors.MIGRATIONS))  # fmt: skip
    return embedded_metrics


@pytest.mark.parametrize("limit", [LIMIT, 1_000])
def test_label_issue_pages_from_the_ranked_rows_equal_those_sorted_from_every_frame(
    store: EmbeddedMetricsStore, limit: int
) -> None:
    """Ranked in part (pages past the ranked rows, dismissed frames past them counted from the job's rows) and
    whole."""
    rng = np.random.default_rng(7)
    rows = _label_issue_rows("plain", rng)
    store.insert_arrow("label_issue_frames", rows)
    store.insert_arrow("label_issue_frames", rows.set_column(1, "job_id", pa.array(["fast"] * N)))
    fast = _job("fast", label_issues.KIND)
    issues = int(np.asarray(rows["is_issue"]).sum())
    assert ranked.keep(store, fast, [(label_issues.listing(a, o), N if a else issues)
                                     for a in (False, True) for o in label_issues.ORDERS], above=0,
                       limit=limit) == 6  # fmt: skip
    # the ranks by frame as a store kept before they were (the migration writes them from the ranks)
    store.command("TRUNCATE TABLE rank_frames")
    for statement in ranked.backfill("label_issue_ranks", label_issues.RANKED_FRAMES):
        store.command(statement)
    # a quarter of the frames dismissed, on their label version; one dismissed on an older version is not in force
    ids = [f"f{i:04d}" for i in range(N)]
    _label(store, ids, "v1")
    gone = [(f, "") for f in ids if rng.random() < 0.25]
    _dismiss(store, gone)

    from_ranks, answers = 0, AnswerCache(store)
    for all_frames, order, include in itertools.product((False, True), label_issues.ORDERS, (False, True)):
        for offset, size in ((0, 10), (7, 13), (25, 10), (38, 10), (60, 20), (0, 500)):
            kw = {"dataset": "d", "all_frames": all_frames, "include_dismissed": include, "order": order,
                  "offset": offset, "size": size}  # fmt: skip
            want = label_issues.query_issues(store, "p", "plain", **kw)  # type: ignore[arg-type]
            got = label_issues.query_issues(store, "p", "fast", **kw)  # type: ignore[arg-type]
            assert got == want, (all_frames, order, include, offset, size)
            assert label_issues.query_issues(store, "p", "fast", answers=answers, **kw) == want  # type: ignore[arg-type]
            from_ranks += label_issues._ranked_page(store, "p", "fast", **kw) is not None  # type: ignore[arg-type]
    # the pages within the ranked rows: two or three of the six asked in each listing, or all but the last
    assert from_ranks >= (24 if limit < N else 60)


def test_outlier_and_duplicate_pages_from_the_ranked_rows_equal_those_sorted_from_every_row(
    store: EmbeddedMetricsStore,
) -> None:
    rng = np.random.default_rng(11)
    ids = [f"f{i:04d}" for i in range(N)]
    for job_id in ("plain", "fast"):
        labelled = rng.random(N) < 0.7
        store.insert_arrow("neighbor_scores", pa.table({
            "project": ["p"] * N, "job_id": [job_id] * N, "frame_id": ids,
            "split": pa.array(rng.choice(["train", "val", ""], N).tolist()),
            "label_class": pa.array(rng.integers(0, 3, N).astype(np.int32), mask=~labelled),
            "outlier_score": rng.integers(0, 9, N).astype(np.float32),
            "nearest_distance": rng.random(N).astype(np.float32),
            "neighbor_label": pa.array(rng.integers(0, 3, N).astype(np.int32), mask=~labelled),
            "label_disagreement": pa.array(rng.integers(0, 4, N).astype(np.float32) / 4, mask=~labelled),
            "duplicates": rng.integers(0, 3, N).astype(np.uint32),
            "class_outlier_score": pa.array(rng.random(N).astype(np.float32), mask=rng.random(N) < 0.3),
        }))  # fmt: skip
        store.insert_arrow("knn_graph", pa.table({
            "project": ["p"] * N, "job_id": [job_id] * N, "frame_id": ids,
            "neighbors": [[ids[(i + j) % N] for j in (1, 2, 3)] for i in range(N)],
            "distances": [rng.random(3).astype(np.float32).tolist() for _ in range(N)],
        }))  # fmt: skip
        a, b = rng.integers(0, N, 150), rng.integers(0, N, 150)
        store.insert_arrow("duplicate_pairs", pa.table({
            "project": ["p"] * 150, "job_id": [job_id] * 150, "frame_a": [ids[i] for i in a],
            "frame_b": [ids[i] for i in b], "distance": rng.integers(0, 6, 150).astype(np.float32) / 6,
            "split_a": rng.choice(["train", "val", ""], 150).tolist(), "split_b": rng.choice(["train", "val"], 150).tolist(),
            "exact": rng.integers(0, 2, 150).astype(np.uint8),
        }))  # fmt: skip
        rng = np.random.default_rng(11)  # the same rows for both jobs
    fast = _job("fast", neighbors.KIND)
    listings = [*((neighbors.outlier_listing(o), N) for o in neighbors.OUTLIER_ORDERS),
                (neighbors.duplicate_listing(False), 150), (neighbors.duplicate_listing(True), 150)]  # fmt: skip
    assert ranked.keep(store, fast, listings, above=0, limit=LIMIT) == 5
    for offset, size in ((0, 10), (7, 13), (35, 5), (38, 10), (60, 20), (0, 500)):
        for order in neighbors.OUTLIER_ORDERS:
            want = neighbors.query_outliers(store, "p", "plain", order=order, offset=offset, size=size)
            assert neighbors.query_outliers(store, "p", "fast", order=order, offset=offset, size=size) == want
            hit = ranked.page(store, "p", "fast", neighbors.outlier_listing(order), offset=offset, size=size)
            assert (hit is not None) == (offset + size <= LIMIT)
            assert hit is None or hit == (want[0], want[1])
        for cross in (False, True):
            want = neighbors.query_duplicates(store, "p", "plain", cross_split_only=cross, offset=offset, size=size)
            got = neighbors.query_duplicates(store, "p", "fast", cross_split_only=cross, offset=offset, size=size)
            assert got == want, (cross, offset, size)


def test_a_rerun_too_short_to_rank_reads_its_pages_from_the_job_again(store: EmbeddedMetricsStore) -> None:
    rows = _label_issue_rows("job", np.random.default_rng(5))
    store.insert_arrow("label_issue_frames", rows)
    job = _job("job", label_issues.KIND)
    lst = label_issues.listing(True, 0)
    assert ranked.keep(store, job, [(lst, N)], above=0, limit=LIMIT) == 1
    assert ranked.length(store, "p", "job", lst) == (N, LIMIT)
    # the rerun's frames: fewer, now under the bound
    store.command("DELETE FROM label_issue_frames WHERE frame_id >= 'f0050'")
    assert ranked.keep(store, job, [(lst, 50)], above=100, limit=LIMIT) == 0
    assert ranked.page(store, "p", "job", lst, offset=0, size=10) is None
    page, total, _ = label_issues.query_issues(store, "p", "job", dataset="d", all_frames=True,
                                               include_dismissed=False, order=0, offset=0, size=100)  # fmt: skip
    assert total == 50 and len(page) == 50


def _detection_rows(job_id: str, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """A job's (object, issue type) rows, two to four objects a frame, and its frames' rows."""
    frames, objects, predicted, types = [], [], [], []
    for i in range(N):
        for j in range(int(rng.integers(2, 5))):
            is_predicted = j % 2
            for t in [MISSING] if is_predicted else [SPURIOUS, MISLOCALIZED, SWAP]:
                frames.append(f"f{i:04d}")
                objects.append(str(j))
                predicted.append(is_predicted)
                types.append(t)
    n = len(frames)
    score = rng.integers(0, 10, n).astype(np.float32) / 10  # ties, sorted by frame, object and type
    objects_table = pa.table({
        "project": ["p"] * n, "job_id": [job_id] * n, "frame_id": frames, "object_id": objects,
        "predicted": np.array(predicted, np.uint8), "issue_type": np.array(types, np.uint8), "score": score,
        "is_issue": (score < 0.5).astype(np.uint8), "given_class": rng.integers(0, 3, n).astype(np.int32),
        "suggested_class": rng.integers(0, 3, n).astype(np.int32), "partner_object_id": [""] * n,
        "iou": rng.random(n).astype(np.float32), "confidence": rng.random(n).astype(np.float32),
    })  # fmt: skip
    frame_score = rng.integers(0, 10, N).astype(np.float32) / 10
    frames_table = pa.table({
        "project": ["p"] * N, "job_id": [job_id] * N, "frame_id": [f"f{i:04d}" for i in range(N)],
        "score": frame_score, "is_issue": (frame_score < 0.5).astype(np.uint8),
        "worst_type": rng.integers(0, 5, N).astype(np.uint8), "objects": rng.integers(0, 5, N).astype(np.uint32),
        **{c: rng.integers(0, 3, N).astype(np.uint32) for c in ("missing", "spurious", "mislocalized", "swapped")},
    })  # fmt: skip
    return objects_table, frames_table


def _two_detection_jobs(store: EmbeddedMetricsStore, seed: int) -> tuple[pa.Table, pa.Table]:
    """The same detection rows written for the jobs "plain" and "fast"."""
    store.migrate(detection_issues.MIGRATIONS + detection_issues.RANK_MIGRATIONS)
    objects, frames = _detection_rows("plain", np.random.default_rng(seed))
    for job_id in ("plain", "fast"):
        store.insert_arrow(
            "detection_issue_objects", objects.set_column(1, "job_id", pa.array([job_id] * len(objects)))
        )
        store.insert_arrow("detection_issue_frames", frames.set_column(1, "job_id", pa.array([job_id] * N)))
    return objects, frames


@pytest.mark.parametrize("limit", [LIMIT, 10_000])
def test_detection_issue_pages_from_the_ranked_rows_equal_those_sorted_from_every_row(
    store: EmbeddedMetricsStore, limit: int
) -> None:
    """Flagged objects and frames, with frames and single objects dismissed (one no longer in force): every page
    of every order, dismissed rows left out or shown, equals the page sorted from the job's rows."""
    objects, frames = _two_detection_jobs(store, 5)
    flagged = int(np.asarray(objects["is_issue"]).sum())
    summary = detection_issues.Summary(frames=N, labeled_objects=0, predicted_objects=0,
                                       flagged_frames=int(np.asarray(frames["is_issue"]).sum()),
                                       issues={"missing_label": flagged, "spurious_label": 0, "mislocalized": 0,
                                               "class_swap": 0}, thresholds={}, match_iou=0.5,
                                       localization_min_iou=0.1)  # fmt: skip
    ranked_now = detection_issues.rank(store, _job("fast", detection_issues.KIND), summary, above=0) if limit > N \
        else ranked.keep(store, _job("fast", detection_issues.KIND),
                         [*((detection_issues.object_listing(o), flagged) for o in detection_issues.OBJECT_ORDERS),
                          *((detection_issues.frame_listing(o), summary.flagged_frames)
                            for o in detection_issues.FRAME_ORDERS)], above=0, limit=limit)  # fmt: skip
    assert ranked_now == 4
    ids = [f"f{i:04d}" for i in range(N)]
    _label(store, ids, "v1")
    rng = random.Random(9)
    gone = [(f, "") for f in rng.sample(ids, 30)] + [(f, str(rng.randint(0, 3))) for f in rng.sample(ids, 40)]
    _dismiss(store, gone)

    from_ranks, answers = 0, AnswerCache(store)
    for query, listing, orders in ((detection_issues.query_objects, detection_issues.object_listing,
                                    detection_issues.OBJECT_ORDERS),
                                   (detection_issues.query_frames, detection_issues.frame_listing,
                                    detection_issues.FRAME_ORDERS)):  # fmt: skip
        for order, include in itertools.product(orders, (False, True)):
            for offset, size in ((0, 10), (7, 13), (25, 10), (38, 10), (60, 20), (0, 1000)):
                kw = {"dataset": "d", "types": [], "include_unflagged": False, "include_dismissed": include,
                      "order": order, "offset": offset, "size": size}  # fmt: skip
                want = query(store, "p", "plain", **kw)  # type: ignore[operator]
                got = query(store, "p", "fast", **kw)  # type: ignore[operator]
                assert got == want, (query.__name__, order, include, offset, size)
                assert query(store, "p", "fast", answers=answers, **kw) == want  # type: ignore[operator]
                assert want[2] > 0  # some of the rows are dismissed
                from_ranks += detection_issues._ranked_page(
                    store, "p", "fast", listing(order), dataset="d", include_dismissed=include, offset=offset,
                    size=size) is not None  # fmt: skip
            # a page of some types, or of every row, is read from the job's rows
            for extra in ({"types": [MISSING]}, {"include_unflagged": True}):
                kw = {"dataset": "d", "types": [], "include_unflagged": False, "include_dismissed": include,
                      "order": order, "offset": 5, "size": 20, **extra}  # fmt: skip
                if query is detection_issues.query_frames and extra.get("include_unflagged"):
                    continue
                assert query(store, "p", "fast", **kw) == query(store, "p", "plain", **kw)  # type: ignore[operator]
    # the pages within the ranked rows: the first two asked in each listing, or all
    assert from_ranks >= (16 if limit < N else 48)
    # one more frame dismissed: the count kept before is not answered again
    kw = {"dataset": "d", "types": [], "include_unflagged": False, "include_dismissed": False, "order": 0,
          "offset": 0, "size": 10}  # fmt: skip
    before = detection_issues.query_objects(store, "p", "fast", answers=answers, **kw)
    more = next(f for f in ids if f not in {g for g, _ in gone})
    dismissals.record(store, "p", "d", [(more, "")], dismissed=True, job_id="fast", reason="", dismissed_by="me")
    after = detection_issues.query_objects(store, "p", "fast", answers=answers, **kw)
    assert after == detection_issues.query_objects(store, "p", "plain", **kw)
    flagged_rows = sum(1 for f, i in zip(objects["frame_id"].to_pylist(), objects["is_issue"].to_pylist(), strict=True)
                       if f == more and i)  # fmt: skip
    assert after[2] == before[2] + flagged_rows
    # and reopened: its rows are shown again (the ranks kept by frame still hold them)
    dismissals.record(store, "p", "d", [(more, "")], dismissed=False, job_id="fast", reason="", dismissed_by="me")
    assert detection_issues.query_objects(store, "p", "fast", answers=answers, **kw) == before


def test_the_rest_of_a_listing_ranked_later_gives_every_page_from_the_ranks(store: EmbeddedMetricsStore) -> None:
    """A job's end ranks the first rows; the rest, ranked after (as the preparer does), makes every page of every
    order come from the ranked rows, equal to the page sorted from the job's rows; a listing ranked again by a
    rerun meanwhile is left ranked in part, and a rerun's ranks replace the earlier run's whole."""
    rng = np.random.default_rng(13)
    rows = _label_issue_rows("plain", rng)
    store.insert_arrow("label_issue_frames", rows)
    store.insert_arrow("label_issue_frames", rows.set_column(1, "job_id", pa.array(["fast"] * N)))
    ids = [f"f{i:04d}" for i in range(N)]
    for job_id in ("plain", "fast"):  # outliers with their neighbours: the rest is joined to the graph as well
        store.insert_arrow("neighbor_scores", pa.table({
            "project": ["p"] * N, "job_id": [job_id] * N, "frame_id": ids, "split": ["train"] * N,
            "label_class": pa.array(np.arange(N, dtype=np.int32) % 3), "outlier_score": (np.arange(N) % 7).astype(np.float32),
            "nearest_distance": np.ones(N, np.float32), "neighbor_label": pa.array(np.zeros(N, np.int32)),
            "label_disagreement": pa.array((np.arange(N) % 5).astype(np.float32), mask=np.arange(N) % 4 == 0),
            "duplicates": np.zeros(N, np.uint32), "class_outlier_score": pa.array(np.ones(N, np.float32)),
        }))  # fmt: skip
        store.insert_arrow("knn_graph", pa.table({
            "project": ["p"] * N, "job_id": [job_id] * N, "frame_id": ids,
            "neighbors": [[ids[(i + j) % N] for j in (1, 2)] for i in range(N)],
            "distances": [[0.5, float(i)] for i in range(N)],
        }))  # fmt: skip
    fast = _job("fast", label_issues.KIND)
    issues = int(np.asarray(rows["is_issue"]).sum())
    listings = [(lst, N if lst.name.startswith("frames") else issues) for lst in label_issues.LISTINGS]
    listings += [(neighbors.outlier_listing(o), N) for o in neighbors.OUTLIER_ORDERS]
    assert ranked.keep(store, fast, listings, above=0, limit=LIMIT) == len(listings)
    _label(store, ids, "v1")
    _dismiss(store, [(f, "") for f in ids[::5]])

    every = {lst.key: lst for lst in (*label_issues.LISTINGS, *neighbors.LISTINGS)}
    left = ranked.partial(store)
    assert sorted(p.key for p in left) == sorted(lst.key for lst, _ in listings)
    # a job running again is left for later; the rest of the others ranked in one pass
    assert ranked.complete(store, every, current=lambda p, j: False, deadline=float("inf"), failed=set()) == (0, True)
    assert ranked.complete(store, every, current=lambda p, j: True, deadline=float("inf"), failed=set()) == (
        len(listings), True)  # fmt: skip
    assert ranked.partial(store) == []
    for lst, n in listings:
        assert ranked.length(store, "p", "fast", lst) == (n, n)

    def label_page(job: str, all_frames: bool, order: int, include: bool, offset: int, size: int) -> Any:
        return label_issues.query_issues(store, "p", job, dataset="d", all_frames=all_frames, include_dismissed=include,
                                         order=order, offset=offset, size=size)  # fmt: skip

    for all_frames, order, include in itertools.product((False, True), label_issues.ORDERS, (False, True)):
        for offset, size in ((0, 10), (35, 10), (60, 20), (150, 40), (0, 500)):
            want = label_page("plain", all_frames, order, include, offset, size)
            assert label_page("fast", all_frames, order, include, offset, size) == want
            assert label_issues._ranked_page(store, "p", "fast", dataset="d", all_frames=all_frames,
                                             include_dismissed=include, order=order, offset=offset,
                                             size=size) is not None  # fmt: skip
    for order in neighbors.OUTLIER_ORDERS:
        for offset, size in ((30, 20), (120, 60), (0, 500)):
            want = neighbors.query_outliers(store, "p", "plain", order=order, offset=offset, size=size)
            hit = ranked.page(store, "p", "fast", neighbors.outlier_listing(order), offset=offset, size=size)
            assert hit == (want[0], want[1]) and all(len(r[8]) == 2 for r in hit[0])

    # a rerun with fewer frames ranks its first rows again: the earlier run's ranks past them go, and a ranking of
    # the earlier run's rest finished after the rerun began does not mark the listing whole
    lst = label_issues.listing(True, 0)
    store.command("DELETE FROM label_issue_frames WHERE job_id = 'fast' AND frame_id >= 'f0150'")
    before = next(p for p in left if p.key == lst.key)
    again = [(x, 150) for x in label_issues.LISTINGS if x.name.startswith("frames")]
    assert ranked.keep(store, fast, again, above=0, limit=LIMIT) == 3
    assert int(store.query("SELECT max(rank) FROM label_issue_ranks WHERE job_id = 'fast' AND listing = 'frames.0'"
                           ).scalar()) == LIMIT - 1  # fmt: skip
    ranked.rank_rest(store, before, lst)
    assert ranked.length(store, "p", "fast", lst) == (150, LIMIT)
    assert ranked.complete(store, every, current=lambda p, j: True, deadline=float("inf"), failed=set()) == (3, True)
    store.command("DELETE FROM label_issue_frames WHERE job_id = 'plain' AND frame_id >= 'f0150'")
    assert label_page("fast", True, 0, False, 100, 100) == label_page("plain", True, 0, False, 100, 100)
    assert label_issues._ranked_page(store, "p", "fast", dataset="d", all_frames=True, include_dismissed=False,
                                     order=0, offset=100, size=100) is not None  # fmt: skip


def test_a_detection_jobs_lists_ranked_whole_later_give_every_page_from_the_ranks(store: EmbeddedMetricsStore) -> None:
    """The rest of a detection job's flagged objects and frames ranked after its end: every page, dismissed frames
    and single objects left out by their ranks, equals the page sorted from the job's rows."""
    objects, frames = _two_detection_jobs(store, 8)
    flagged, flagged_frames = int(np.asarray(objects["is_issue"]).sum()), int(np.asarray(frames["is_issue"]).sum())
    listings = [(lst, flagged if lst.name.startswith("objects") else flagged_frames)
                for lst in detection_issues.LISTINGS]  # fmt: skip
    assert ranked.keep(store, _job("fast", detection_issues.KIND), listings, above=0, limit=LIMIT) == 4
    every = {lst.key: lst for lst in detection_issues.LISTINGS}
    assert ranked.complete(store, every, current=lambda p, j: True, deadline=float("inf"), failed=set()) == (4, True)
    ids = [f"f{i:04d}" for i in range(N)]
    _label(store, ids, "v1")
    rng = random.Random(4)
    _dismiss(store, [(f, "") for f in rng.sample(ids, 30)] + [(f, str(rng.randint(0, 3))) for f in rng.sample(ids, 40)])
    answers = AnswerCache(store)
    for query, listing, orders in ((detection_issues.query_objects, detection_issues.object_listing,
                                    detection_issues.OBJECT_ORDERS),
                                   (detection_issues.query_frames, detection_issues.frame_listing,
                                    detection_issues.FRAME_ORDERS)):  # fmt: skip
        for order, include in itertools.product(orders, (False, True)):
            for offset, size in ((0, 10), (45, 13), (150, 40), (0, 1000)):
                kw = {"dataset": "d", "types": [], "include_unflagged": False, "include_dismissed": include,
                      "order": order, "offset": offset, "size": size}  # fmt: skip
                want = query(store, "p", "plain", **kw)  # type: ignore[operator]
                assert query(store, "p", "fast", answers=answers, **kw) == want  # type: ignore[operator]
                assert detection_issues._ranked_page(store, "p", "fast", listing(order), dataset="d",
                                                     include_dismissed=include, offset=offset,
                                                     size=size) is not None  # fmt: skip
