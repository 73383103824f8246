"""Sound events: the metrics of an inference set over any filter of clips, the events behind a cell of
the event confusion matrix, and the result of the label-issues job of a sound-event project."""

from __future__ import annotations

import math
from typing import Any

from shoal.analysis import sound_event_analysis as sea
from shoal.analysis import sound_event_label_issues as issues
from shoal.analysis.rpc.context import Analysis, Context, Runner, check_threshold, confusion_cell, frame_filter
from shoal.analysis.sound_events import Figures
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import page_of, page_response
from shoal.common.data.datasets import frame_media
from shoal.common.data.query import VIEW_TABLES, Sort, decode_cursor, encode_cursor
from shoal.common.errors import InvalidArgument
from shoal.common.jobs import JobContext
from shoal.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shoal.common.v1 import common_pb2
from shoal.ingest.v1 import ingest_pb2

TASK = ("SOUND_EVENTS",)
#: what a metric or a cell's count reads
TABLES = (*sea.TABLES, *VIEW_TABLES)
#: the order of a cell's rows, as its page token keeps it: clip, onset, a labeled event's row first, position
_SORTS = [Sort("frame_id", "string", False, False), Sort("onset", "number", False, False),
          Sort("row", "number", False, False), Sort("position", "number", False, False)]  # fmt: skip


def _seconds(value: float, default: float, field: str, *, least: float = 0.0) -> float:
    """A length in seconds (``default`` when 0): finite, positive and at least ``least``."""
    if value == 0:
        return default
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument(f"must be a positive number of seconds, got {value}", field=field)
    if value < least:
        raise InvalidArgument(f"must be at least {least} s, got {value}", field=field)
    return float(value)


def matching_of(request: Any) -> sea.Matching:
    """The event-based matching a request asks for (t_collar, percentage_of_length, onset_only,
    offset_only), checked."""
    collar = _seconds(request.t_collar, sea.DEFAULT_T_COLLAR, "t_collar")
    share = request.percentage_of_length or sea.DEFAULT_PERCENTAGE_OF_LENGTH
    if not (math.isfinite(share) and 0 < share <= 1):
        raise InvalidArgument(f"must lie in (0, 1] (a share of the labeled event's length), got {share}",
                              field="percentage_of_length")  # fmt: skip
    if request.onset_only and request.offset_only:
        raise InvalidArgument("onset_only and offset_only exclude each other: set one, or neither for both ends",
                              field="offset_only")  # fmt: skip
    return sea.Matching(collar, float(share), evaluate_onset=not request.offset_only,
                        evaluate_offset=not request.onset_only)  # fmt: skip


def _number(x: float | None) -> float:
    return 0.0 if x is None else float(x)


def _figures(f: Figures) -> pb.SoundEventFigures:
    return pb.SoundEventFigures(
        f1=f.f1, precision=f.precision, recall=f.recall, error_rate=f.error_rate, deletion_rate=f.deletion_rate,
        insertion_rate=f.insertion_rate, substitution_rate=_number(f.substitution_rate),
        sensitivity=_number(f.sensitivity), specificity=_number(f.specificity),
        balanced_accuracy=_number(f.balanced_accuracy), accuracy=_number(f.accuracy), reference=f.nref or 0,
        estimated=f.nsys or 0,
    )  # fmt: skip


def reader_of(ctx: Context, project: Any, view: Any, flt: common_pb2.Filter, where: str, threshold: float,
              sets: list[str] | None = None) -> sea.ClipReader:  # fmt: skip
    """The clips of a request: the view's set (or ``sets``) on the frames ``flt`` keeps."""
    frames_sql, frames_params = frame_filter(view, flt, where)
    return sea.ClipReader(ctx.metrics, project.name, view.dataset, sets or [view.inference_set],
                          [c.id for c in project.classes], frames_sql=frames_sql, frames_params=frames_params,
                          confidence_threshold=threshold)  # fmt: skip


def get_sound_event_metrics(ctx: Context, request: pb.GetSoundEventMetricsRequest) -> pb.GetSoundEventMetricsResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    resolution = _seconds(request.time_resolution, sea.DEFAULT_TIME_RESOLUTION, "time_resolution",
                          least=sea.MIN_TIME_RESOLUTION)  # fmt: skip
    matching = matching_of(request)
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    project = ctx.project(request.project, TASK)
    view = ctx.view(project, "", request.inference_set, 0.0)
    reader = reader_of(ctx, project, view, request.frame_filter, "frame_filter", threshold)
    key = ("sound_events.metrics", project.name, view.inference_set, tuple(view.ontology), resolution, matching,
           threshold, request.frame_filter.SerializeToString(deterministic=True))  # fmt: skip
    m = ctx.answers.get(TABLES, key, lambda: sea.measure(reader, time_resolution=resolution, matching=matching))
    out = pb.SoundEventMetrics(
        inference_set=view.inference_set, dataset=view.dataset, clips=m.clips,
        reference_events=m.event.counts["Nref"], estimated_events=m.event.counts["Nsys"],
        time_resolution=resolution, t_collar=matching.t_collar, percentage_of_length=matching.percentage_of_length,
        segment_based=_figures(m.segment.overall), event_based=_figures(m.event.overall),
        segment_based_class_average=_figures(m.segment.class_wise_average),
        event_based_class_average=_figures(m.event.class_wise_average),
        class_ids=[c.id for c in project.classes], confusion=m.confusion.ravel().tolist(),
    )  # fmt: skip
    for c, seg, ev in zip(project.classes, m.segment.class_wise, m.event.class_wise, strict=False):
        out.per_class.add(class_id=c.id, class_name=c.name, segment_based=_figures(seg), event_based=_figures(ev))
    return pb.GetSoundEventMetricsResponse(metrics=out)


def _event(on: float, off: float, cls: int, score: float | None = None) -> ingest_pb2.SoundEvent:
    e = ingest_pb2.SoundEvent(onset=on, offset=off, class_id=cls)
    if score is not None:
        e.score = score
    return e


def query_sound_events(ctx: Context, request: pb.QuerySoundEventsRequest) -> pb.QuerySoundEventsResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    matching = matching_of(request)
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    label, predicted = confusion_cell(request)
    if request.page.page_size < 0:
        raise InvalidArgument(f"must be >= 0, got {request.page.page_size}", field="page.page_size")
    project = ctx.project(request.project, TASK)
    position = {c.id: i for i, c in enumerate(project.classes)}
    cell = []
    for name, value in (("label_class", label), ("predicted_class", predicted)):
        if request.HasField(name) and value is not None and value not in position:
            raise InvalidArgument(f"unknown class id {value}", field=name)
        cell.append(value if value in (None, -1) else position[value])
    view = ctx.view(project, "", request.inference_set, 0.0)
    reader = reader_of(ctx, project, view, request.frame_filter, "frame_filter", threshold)
    ontology = [c.id for c in project.classes]
    scope = (f"sound-events|{project.name}|{view.inference_set}|{label}|{predicted}|{matching}|{threshold}|"
             f"{request.frame_filter.SerializeToString(deterministic=True).hex()}")  # fmt: skip
    last = decode_cursor(request.page.page_token, _SORTS, scope)
    after = None if last is None else (str(last[0]), (float(last[1]), int(last[2]), int(last[3])))
    size = min(request.page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    rows, more = sea.page_cell(reader, ontology, matching, cell[0], cell[1], after, size)
    key = ("sound_events.cell", project.name, view.inference_set, tuple(ontology), matching, threshold, label,
           predicted, request.frame_filter.SerializeToString(deterministic=True))  # fmt: skip
    total = ctx.answers.get(TABLES, key, lambda: sea.count_cell(reader, matching, cell[0], cell[1]))
    token = encode_cursor([rows[-1].frame_id, *rows[-1].key], scope) if more else ""
    out = pb.QuerySoundEventsResponse(page=common_pb2.PageResponse(next_page_token=token, total_count=total))
    media = frame_media(ctx.metrics, project.name, view.dataset, sorted({r.frame_id for r in rows}))
    for r in rows:
        uri, split = media.get(r.frame_id, ("", ""))
        m = out.matches.add(frame_id=r.frame_id, media_uri=uri, split=split, iou=r.iou,
                            duration_seconds=0.0 if math.isnan(r.duration) else r.duration)  # fmt: skip
        if r.label is not None:
            m.label_event.CopyFrom(_event(*r.label))
        if r.predicted is not None:
            m.predicted_event.CopyFrom(_event(*r.predicted))
    return out


def run_sound_event_issues(ctx: Context, run: JobContext) -> None:
    job = run.job
    project = ctx.project(job.project, TASK)
    view = ctx.view(project, "", job.params["inference_set"], 0.0)
    flt = common_pb2.Filter.FromString(bytes.fromhex(job.params.get("filter", "")))
    frames_sql, frames_params = frame_filter(view, flt, "filter")
    issues.run(run, ctx.metrics, job, dataset=view.dataset, inference_set=view.inference_set,
               ontology=[c.id for c in project.classes], frames_sql=frames_sql,
               frames_params=frames_params)  # fmt: skip


_LEVELS = (pb.SOUND_EVENT_ISSUE_LEVEL_UNSPECIFIED, pb.SOUND_EVENT_ISSUE_LEVEL_INTERVAL, pb.SOUND_EVENT_ISSUE_LEVEL_CLIP)


def query_sound_event_issues(
    ctx: Context, request: pb.QuerySoundEventIssuesRequest
) -> pb.QuerySoundEventIssuesResponse:
    job = ctx.finished_job(request.project, request.job_id, issues.KIND)
    if request.level not in _LEVELS:
        raise InvalidArgument(f"unknown level {request.level}", field="level")
    for i, t in enumerate(request.issue_types):
        if t not in issues.TYPES:
            raise InvalidArgument(f"unknown issue type {t}", field=f"issue_types[{i}]")
    types = sorted(set(request.issue_types))
    clips = request.level == pb.SOUND_EVENT_ISSUE_LEVEL_CLIP
    s = ctx.stored_summary(issues, job)
    scope = (f"sound-event-issues|{request.project}|{job.job_id}|{clips}|{types}|{request.include_unflagged}"
             f"|{request.include_dismissed}")  # fmt: skip
    page = page_of(request.page, scope=scope)
    dataset = ctx.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset
    query = issues.query_clips if clips else issues.query_intervals
    rows, total, dismissed = query(ctx.metrics, request.project, job.job_id, dataset=dataset, types=types,
                                   include_unflagged=request.include_unflagged,
                                   include_dismissed=request.include_dismissed, offset=page.offset,
                                   size=page.size)  # fmt: skip
    media = frame_media(ctx.metrics, request.project, dataset, sorted({str(r[0]) for r in rows}))
    out = pb.QuerySoundEventIssuesResponse(
        summary=pb.SoundEventIssuesSummary(
            clips=s.clips, labeled_events=s.labeled_events, predicted_events=s.predicted_events,
            flagged_clips=s.flagged_clips, missing=s.missing, spurious=s.spurious, badly_bounded=s.badly_bounded,
            wrong_class=s.wrong_class, confident=s.confident, min_iou=s.min_iou, min_overlap=s.min_overlap,
        ),
        page=page_response(page, len(rows), total, scope=scope),
        dismissed_count=dismissed,
    )  # fmt: skip
    if clips:
        for frame, score, is_issue, worst, missing, spurious, bounded, wrong, gone in rows:
            out.clips.add(frame_id=str(frame), media_uri=media.get(str(frame), ("", ""))[0], score=float(score),
                          is_issue=bool(is_issue), worst_type=int(worst), missing=int(missing), spurious=int(spurious),
                          badly_bounded=int(bounded), wrong_class=int(wrong), dismissed=bool(gone))  # fmt: skip
        return out
    for row in rows:
        frame, item, kind, score, is_issue, l_on, l_off, l_cls, p_on, p_off, p_cls, p_score, suggested, iou, gone = row
        x = out.intervals.add(frame_id=str(frame), media_uri=media.get(str(frame), ("", ""))[0], issue_type=int(kind),
                              score=float(score), is_issue=bool(is_issue), iou=float(iou), dismissed=bool(gone),
                              event_index=-1 if int(l_cls) < 0 else int(item))  # fmt: skip
        if int(l_cls) >= 0:
            x.label_event.CopyFrom(_event(float(l_on), float(l_off), int(l_cls)))
        if int(p_cls) >= 0:
            x.predicted_event.CopyFrom(_event(float(p_on), float(p_off), int(p_cls), float(p_score)))
        if int(suggested) >= 0:
            x.suggested_class = int(suggested)
    return out


ANALYSIS = Analysis(
    "sound_events",
    rpcs={
        "GetSoundEventMetrics": get_sound_event_metrics,
        "QuerySoundEvents": query_sound_events,
        "QuerySoundEventIssues": query_sound_event_issues,
    },
    jobs={issues.KIND: Runner(run=run_sound_event_issues, discard=issues.discard)},
    migrations=issues.MIGRATIONS,
)
