"""Pages of a finished job's results at N frames on chDB: a page of label issues (with dismissals left out),
of outliers (with each frame's neighbours) and of duplicate pairs, read from the rows kept in page order
(``shoal.analysis.ranked``: the first 100,000 of each list at the job's end, the rest ranked after it as the
preparer does) beside the same page sorted from every row of the job, as every page was read before, in the
same run, at depths from the first page to the last; and what keeping the order costs, at the job's end and
after it.

The job's rows are written by SQL from ``numbers(N)`` as the label-issue and neighbour jobs store them (a sixth
of the frames flagged, 10 neighbours each, a pair per 20 frames); 500 frames are dismissed.

    python -m bench.console.bench_job_pages --frames 1000000 10000000

With ``--detection``, the pages of a detection label-issue job instead (per frame a labeled object scored for
three issue types and a predicted one, half of those rows flagged; 500 whole frames and 500 single objects
dismissed), as the console's Issues page asks for them: flagged objects, most likely issues first; then frames
dismissed one at a time, the first page asked after each (each frame's ranks kept, beside every dismissed frame's
ranks read again, as before). ``--dismissals-only`` measures that alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.console.bench_job_pages"
#: pages asked: the console's Issues page shows 48, the Findings page 24; then the middle of the list and its last
#: page (beyond the rows ranked at the job's end)
OFFSETS = (0, 48, 5_000, 50_000, 99_952)
SIZE = 48


def _offsets(length: int) -> list[int]:
    return sorted({*(o for o in OFFSETS if o < length), length // 2, max(0, length - SIZE)})


def _rest(m: Any, job: Any, listings: Any) -> dict[str, float]:  # type: ignore[type-arg]
    """Ranks the rest of the job's lists as the preparer does after the job's end; seconds per list."""
    from shoal.analysis import ranked

    by_key = {lst.key: lst for lst in listings}
    spent: dict[str, float] = {}
    for part in ranked.partial(m):
        if part.job_id == job.job_id and part.key in by_key:
            t = time.perf_counter()
            ranked.rank_rest(m, part, by_key[part.key])
            spent[part.key] = round(time.perf_counter() - t, 2)
    assert not [p for p in ranked.partial(m) if p.job_id == job.job_id and p.key in by_key]
    return spent


def _ms(times: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(times) * 1e3, 1), "min_ms": round(min(times) * 1e3, 1),
            "max_ms": round(max(times) * 1e3, 1)}  # fmt: skip


def load_detection(m: Any, n: int) -> dict[str, Any]:  # type: ignore[type-arg]
    """Writes two detection jobs' rows ("plain" and "fast", the same): per frame a labeled object scored for three
    issue types and a predicted one for a missing label, about half of them flagged; and dismisses 500 whole frames
    and 500 single objects among the flagged ones."""
    from shoal.analysis import dismissals

    out: dict[str, Any] = {}
    t = time.perf_counter()
    fid = "concat('f', leftPad(toString(intDiv(number, 4)), 9, '0'))"
    for job in ("plain", "fast"):
        # row r of frame r // 4: the labeled object 0 for types 2 to 4, then the predicted object 1 for type 1
        m.command(
            "INSERT INTO detection_issue_objects (project, job_id, frame_id, object_id, predicted, issue_type, score,"
            " is_issue, given_class, suggested_class, partner_object_id, iou, confidence) SELECT 'p', {job:String}, "
            + fid
            + ","
            " if(number % 4 = 3, '1', '0'), toUInt8(number % 4 = 3), toUInt8(if(number % 4 = 3, 1, number % 4 + 2)),"
            " (cityHash64(number, 11) % 10000) / 1e4 AS s, toUInt8(s < 0.5), toInt32(number % 10),"
            " toInt32((number * 3) % 10), '', (cityHash64(number, 12) % 1000) / 1e3,"
            " (cityHash64(number, 13) % 1000) / 1e3 FROM numbers({rows:UInt64})",
            {"job": job, "rows": 4 * n},
        )
        m.command(
            "INSERT INTO detection_issue_frames (project, job_id, frame_id, score, is_issue, worst_type, objects,"
            " missing, spurious, mislocalized, swapped) SELECT 'p', {job:String},"
            " concat('f', leftPad(toString(number), 9, '0')),"
            " (cityHash64(number, 14) % 10000) / 1e4 AS s, toUInt8(s < 0.35), toUInt8(number % 5), 2,"
            " toUInt32(number % 2), toUInt32(number % 3 = 0), 0, toUInt32(number % 7 = 0) FROM numbers({n:UInt64})",
            {"job": job, "n": n},
        )
    out["load_s"] = round(time.perf_counter() - t, 1)
    out["flagged_objects"] = int(m.query("SELECT countIf(is_issue) FROM detection_issue_objects WHERE job_id = 'fast'"
                                         ).scalar())  # fmt: skip
    out["flagged_frames"] = int(m.query("SELECT countIf(is_issue) FROM detection_issue_frames WHERE job_id = 'fast'"
                                        ).scalar())  # fmt: skip
    frames = [str(r[0]) for r in m.query(
        "SELECT frame_id FROM detection_issue_frames WHERE job_id = 'fast' AND is_issue ORDER BY score"
        " LIMIT 500 OFFSET 10").rows]  # fmt: skip
    objects = [(str(f), str(o)) for f, o in m.query(
        "SELECT frame_id, object_id FROM detection_issue_objects WHERE job_id = 'fast' AND is_issue ORDER BY score"
        " LIMIT 500 OFFSET 2000").rows]  # fmt: skip
    ids = sorted({*frames, *(f for f, _ in objects)})
    m.insert("label_versions", [["p", "d", f, "v1", "2026-01-01 00:00:00", 0, 0, "upload", "", "", "u"] for f in ids],
             ["project", "dataset", "frame_id", "label_version", "version_time", "class_id", "num_objects",
              "source", "author", "reason", "upload_id"])  # fmt: skip
    dismissals.record(m, "p", "d", [*((f, "") for f in frames), *objects], dismissed=True, job_id="fast", reason="",
                      dismissed_by="")  # fmt: skip
    return out


def load(m: Any, n: int) -> dict[str, Any]:  # type: ignore[type-arg]
    """Writes the two jobs' rows ("plain" and "fast", the same) and the dismissals; returns their counts."""
    from shoal.analysis import dismissals

    out: dict[str, Any] = {}
    t = time.perf_counter()
    fid = "concat('f', leftPad(toString(number), 9, '0'))"
    for job in ("plain", "fast"):
        m.command(
            "INSERT INTO label_issue_frames SELECT 'p', {job:String}, " + fid + ", toInt32(number % 10),"
            " toInt32((number * 7) % 10), toUInt8(cityHash64(number) % 6 = 0), (cityHash64(number, 1) % 10000) / 1e4,"
            " (cityHash64(number, 2) % 20000) / 1e4 - 1, (cityHash64(number, 3) % 10000) / 1e3,"
            " (cityHash64(number, 4) % 10000) / 1e4 FROM numbers({n:UInt64})",
            {"job": job, "n": n},
        )
        m.command(
            "INSERT INTO neighbor_scores SELECT 'p', {job:String}, " + fid + ", ['train', 'val'][number % 2 + 1],"
            " toInt32(number % 10), (cityHash64(number, 5) % 100000) / 1e4, (cityHash64(number, 6) % 1000) / 1e3,"
            " toInt32((number + 1) % 10), (cityHash64(number, 7) % 11) / 10, toUInt32(number % 3),"
            " (cityHash64(number, 8) % 1000) / 1e3 FROM numbers({n:UInt64})",
            {"job": job, "n": n},
        )
        m.command(
            "INSERT INTO knn_graph SELECT 'p', {job:String}, " + fid + ","
            " arrayMap(j -> concat('f', leftPad(toString((number + j) % {n:UInt64}), 9, '0')), range(1, 11)),"
            " arrayMap(j -> toFloat32(j / 10), range(1, 11)) FROM numbers({n:UInt64})",
            {"job": job, "n": n},
        )
        m.command(
            "INSERT INTO duplicate_pairs SELECT 'p', {job:String}, " + fid + ","
            " concat('f', leftPad(toString((number * 20 + 1) % {n:UInt64}), 9, '0')), (cityHash64(number, 9) % 1000) / 1e4,"
            " ['train', 'val'][number % 2 + 1], ['train', 'val'][intDiv(number, 2) % 2 + 1], toUInt8(number % 5 = 0)"
            " FROM numbers({d:UInt64})",
            {"job": job, "n": n, "d": n // 20},
        )
    out["load_s"] = round(time.perf_counter() - t, 1)
    issues = int(m.query("SELECT countIf(is_issue) FROM label_issue_frames WHERE job_id = 'fast'").scalar())
    cross = int(m.query("SELECT countIf(split_a != split_b) FROM duplicate_pairs WHERE job_id = 'fast'").scalar())
    out["issues"], out["pairs"], out["cross_split_pairs"] = issues, n // 20, cross
    # dismissed frames: 500 issues, on their label versions
    ids = [str(r[0]) for r in m.query(
        "SELECT frame_id FROM label_issue_frames WHERE job_id = 'fast' AND is_issue ORDER BY self_confidence"
        " LIMIT 500 OFFSET 10").rows]  # fmt: skip
    m.insert("label_versions", [["p", "d", f, "v1", "2026-01-01 00:00:00", 0, 0, "upload", "", "", "u"] for f in ids],
             ["project", "dataset", "frame_id", "label_version", "version_time", "class_id", "num_objects",
              "source", "author", "reason", "upload_id"])  # fmt: skip
    dismissals.record(m, "p", "d", [(f, "") for f in ids], dismissed=True, job_id="fast", reason="", dismissed_by="")

    return out


def measure(n: int, repeats: int, detection: bool = False, pages: bool = True) -> dict[str, Any]:  # type: ignore[type-arg]
    """Pages of the label-issue and neighbour jobs, or with ``detection`` of a detection label-issue job (without
    ``pages``: only the pages after one more dismissal)."""
    if detection:
        return measure_detection(n, repeats, pages)
    from shoal.analysis import dismissals, label_issues, neighbors, ranked
    from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
    from shoal.common.data.results import MIGRATIONS as RESULT_MIGRATIONS
    from shoal.common.jobs import Job
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    out: dict[str, Any] = {"frames": n}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as work:  # chDB may still be merging
        m = EmbeddedMetricsStore(path=Path(work) / "ch", database="bench")
        m.migrate((*FRAME_MIGRATIONS, *RESULT_MIGRATIONS, *ranked.MIGRATIONS, *label_issues.MIGRATIONS,
                   *dismissals.MIGRATIONS, *neighbors.MIGRATIONS))  # fmt: skip
        out.update(load(m, n))
        issues, cross = out["issues"], out["cross_split_pairs"]
        keep: dict[str, float] = {}
        t = time.perf_counter()
        summary = label_issues.Summary(frames=n, issues=issues, class_ids=[], thresholds=[], confident_joint=[],
                                       joint=[], noise_matrix=[], issues_per_class=[])  # fmt: skip
        fast_issues = Job("p", "analysis", "fast", label_issues.KIND)
        label_issues.rank(m, fast_issues, summary, above=ranked.RANKED_ABOVE)
        keep["label_issues_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        nsum = neighbors.Summary(frames=n, k=10, metric="cosine", duplicate_distance=0.1, median_nearest_distance=0.1,
                                 exact_duplicate_pairs=0, near_duplicate_pairs=n // 20, cross_split_pairs=cross,
                                 exact_search=False)  # fmt: skip
        fast_neighbors = Job("p", "analysis", "fast", neighbors.KIND)
        neighbors.rank(m, fast_neighbors, nsum, above=ranked.RANKED_ABOVE)
        keep["neighbors_s"] = round(time.perf_counter() - t, 2)
        out["keeping_the_order"] = keep
        rss_before = peak_rss_mib()
        out["ranking_the_rest_s"] = {**_rest(m, fast_issues, label_issues.LISTINGS),
                                     **_rest(m, fast_neighbors, neighbors.LISTINGS)}  # fmt: skip
        out["peak_rss_mib_before_the_rest"] = round(rss_before, 0)
        out["peak_rss_mib_after_the_rest"] = round(peak_rss_mib(), 0)

        def issue_page(job: str, offset: int, order: int) -> Any:
            return label_issues.query_issues(m, "p", job, dataset="d", all_frames=False, include_dismissed=False,
                                             order=order, offset=offset, size=SIZE)  # fmt: skip

        asks = {
            "label issues by self-confidence": lambda job, off: issue_page(job, off, 0),
            "label issues by entropy": lambda job, off: issue_page(job, off, 2),
            "outliers by score": lambda job, off: neighbors.query_outliers(m, "p", job, order=0, offset=off, size=24),
            "duplicate pairs": lambda job, off: neighbors.query_duplicates(m, "p", job, cross_split_only=False,
                                                                          offset=off, size=24),
            "pairs across splits": lambda job, off: neighbors.query_duplicates(m, "p", job, cross_split_only=True,
                                                                              offset=off, size=24),
        }  # fmt: skip
        out["pages"] = _pages(asks, repeats)
        out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    return out


def _pages(asks: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Each page asked of both jobs, ``repeats`` times, from the first to the last; their first rows must agree."""
    pages: dict[str, Any] = {}
    for what, ask in asks.items():
        length = int(ask("plain", 0)[1])  # the list's rows as a page counts them (dismissed ones left out)
        for offset in _offsets(length):
            row: dict[str, Any] = {}
            for job, name in (("plain", "sorted_from_every_row"), ("fast", "ranked")):
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    got = ask(job, offset)
                    times.append(time.perf_counter() - t)
                row[name] = _ms(times)
                row[f"{name}_first_rows"] = [list(r[:2]) for r in got[0][:3]]
            assert row["ranked_first_rows"] == row["sorted_from_every_row_first_rows"], (what, offset)
            assert got[1:] == ask("plain", offset)[1:], (what, offset)  # the same counts
            pages[f"{what} @ {offset}"] = row
    return pages


def measure_detection(n: int, repeats: int, pages: bool = True) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import detection_issues, dismissals, ranked
    from shoal.common.data.answers import AnswerCache
    from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
    from shoal.common.data.results import MIGRATIONS as RESULT_MIGRATIONS
    from shoal.common.jobs import Job
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    out: dict[str, Any] = {"frames": n}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as work:  # chDB may still be merging
        m = EmbeddedMetricsStore(path=Path(work) / "ch", database="bench")
        m.migrate((*FRAME_MIGRATIONS, *RESULT_MIGRATIONS, *ranked.MIGRATIONS, *detection_issues.MIGRATIONS,
                   *detection_issues.RANK_MIGRATIONS, *dismissals.MIGRATIONS))  # fmt: skip
        out.update(load_detection(m, n))
        summary = detection_issues.Summary(frames=n, labeled_objects=n, predicted_objects=n,
                                           flagged_frames=out["flagged_frames"],
                                           issues={"missing_label": out["flagged_objects"]}, thresholds={},
                                           match_iou=0.5, localization_min_iou=0.1)  # fmt: skip
        t = time.perf_counter()
        fast = Job("p", "analysis", "fast", detection_issues.KIND)
        detection_issues.rank(m, fast, summary, above=ranked.RANKED_ABOVE)
        out["keeping_the_order_s"] = round(time.perf_counter() - t, 2)
        rss_before = peak_rss_mib()
        out["ranking_the_rest_s"] = _rest(m, fast, detection_issues.LISTINGS)
        out["peak_rss_mib_before_the_rest"] = round(rss_before, 0)
        out["peak_rss_mib_after_the_rest"] = round(peak_rss_mib(), 0)

        # as the server answers: the count of the dismissed rows is kept until a dismissal or a relabel (the first
        # page asked of the fast job counts them, the largest of its times)
        answers = AnswerCache(m)

        def page(query: Any, job: str, offset: int, order: int, size: int) -> Any:
            return query(m, "p", job, dataset="d", types=[], include_unflagged=False, include_dismissed=False,
                         order=order, offset=offset, size=size, answers=answers)  # fmt: skip

        asks = {
            # as the console's Issues page asks: objects, most likely issues first
            "flagged objects by score": lambda job, off: page(detection_issues.query_objects, job, off, 0, SIZE),
            "flagged objects by frame": lambda job, off: page(detection_issues.query_objects, job, off, 1, SIZE),
            "flagged frames by score": lambda job, off: page(detection_issues.query_frames, job, off, 0, SIZE),
        }
        if pages:
            out["pages"] = _pages(asks, repeats)

        # one more dismissal at a time: each frame's ranks kept (as the server keeps them), and, before, every
        # dismissed frame's ranks read again after each dismissal
        def first(a: Any) -> Any:  # type: ignore[misc]
            return lambda off: detection_issues.query_objects(
                m, "p", "fast", dataset="d", types=[], include_unflagged=False, include_dismissed=False, order=0,
                offset=off, size=SIZE, answers=a)  # fmt: skip

        out["after_one_more_dismissal"] = _one_more_dismissal(m, first(answers), repeats)
        out["after_one_more_dismissal_before"] = _one_more_dismissal(m, first(_every_frame(m)), repeats, 2000)
        out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    return out


def _every_frame(m: Any) -> Any:  # type: ignore[misc]
    """Kept answers as they were before a frame's ranks were kept: every dismissed frame's ranks read again by each
    call that computes the dismissed rows anew."""
    from shoal.common.data.answers import AnswerCache

    class EveryFrame(AnswerCache):
        def lookups(self, tables: Any, key: Any, find: Any, wanted: Any, weight: Any = None) -> Any:  # type: ignore[override]
            return dict(find(list(dict.fromkeys(wanted))))

    return EveryFrame(m)


def _one_more_dismissal(m: Any, ask: Any, repeats: int, start: int = 1000) -> dict[str, Any]:  # type: ignore[type-arg]
    """The first page asked right after one more frame is dismissed (another frame each time), and the page after
    it, as a person dismissing issues one by one asks them; each dismissal must leave its frame's rows out."""
    from shoal.analysis import dismissals

    # as on a store that has settled since the job (the rows just written are being merged in the background)
    bound = time.monotonic() + 600
    while int(m.query("SELECT count() FROM system.merges").scalar()) and time.monotonic() < bound:
        time.sleep(1)
    ask(0)  # the lists read once before, as on a page already open
    # frames with flagged objects, none dismissed yet (in frame order: the same frames on every run)
    frames = [str(r[0]) for r in m.query(
        "SELECT DISTINCT frame_id FROM detection_issue_objects WHERE job_id = 'fast' AND is_issue AND frame_id NOT IN"
        " (SELECT frame_id FROM label_issue_dismissals) ORDER BY frame_id LIMIT {n:UInt32} OFFSET {start:UInt32}",
        {"n": repeats, "start": start}).rows]  # fmt: skip
    first, second = [], []
    for frame in frames:
        before = ask(0)[2]
        m.insert("label_versions", [["p", "d", frame, "v1", "2026-01-01 00:00:00", 0, 0, "upload", "", "", "u"]],
                 ["project", "dataset", "frame_id", "label_version", "version_time", "class_id", "num_objects",
                  "source", "author", "reason", "upload_id"])  # fmt: skip
        dismissals.record(m, "p", "d", [(frame, "")], dismissed=True, job_id="fast", reason="", dismissed_by="")
        t = time.perf_counter()
        got = ask(0)
        first.append(time.perf_counter() - t)
        t = time.perf_counter()
        ask(SIZE)
        second.append(time.perf_counter() - t)
        assert got[2] > before, frame  # the frame's flagged rows counted as dismissed
    return {"dismissed_frames": len(frames), "first_page": _ms(first), "next_page": _ms(second)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detection", action="store_true", help="the pages of a detection label-issue job instead")
    ap.add_argument(
        "--dismissals-only",
        action="store_true",
        help="with --detection: only the pages asked after one more dismissal, not every depth",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results_job_pages.json"))
    args = ap.parse_args()
    results = results_header()
    for n in args.frames:
        results["runs"][str(n)] = run_child(
            MODULE, "measure", n, args.repeats, args.detection, not args.dismissals_only
        )
    write_results(args.out, results)


if __name__ == "__main__":
    main()
