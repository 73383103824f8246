"""The ``shoal`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import grpc
from pydantic import ValidationError

from shoal.common import logs
from shoal.common.errors import ConfigurationError, ShoalError
from shoal.common.jit import seed_cache
from shoal.common.settings import SERVICE_NAMES, ShoalSettings, settings_markdown, unknown_env_settings

log = logging.getLogger("shoal")


def _settings(overrides: dict[str, object]) -> ShoalSettings:
    try:
        return ShoalSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            where = f"SHOAL_{name.upper()}" if name else "settings"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigurationError("invalid settings:\n" + "\n".join(lines)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from shoal.app import build_server, check_external_stores

    settings = _settings(
        {
            "port": args.port,
            "host": args.host,
            "data_dir": Path(args.data_dir) if args.data_dir else None,
            "insecure_dev_mode": True if args.insecure_dev_mode else None,
            "console_port": args.console_port,
            "console_enabled": False if args.no_console else None,
        }
    )
    logs.configure(settings.log_level, settings.log_format)
    for name in unknown_env_settings():
        log.warning("ignoring %s: no such setting (see `shoal settings`)", name)
    if args.service == "console":
        from shoal.console.server import serve_console

        serve_console(settings)
        return 0
    services = SERVICE_NAMES
    if args.service:
        check_external_stores(settings, args.service)
        services = (args.service,)
    else:
        log.info("all-in-one mode with data under %s", settings.data_dir.resolve())
    server = build_server(settings, services, console=not args.service and settings.console_enabled)
    server.serve()
    return 0


def _keystore(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from shoal.common import auth, jobs
    from shoal.common.auth import KeyStore
    from shoal.common.stores import metrics_store
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    settings = _settings({"data_dir": Path(args.data_dir) if args.data_dir else None})
    logs.configure("WARNING", settings.log_format)
    metrics = metrics_store(settings)
    if isinstance(metrics, EmbeddedMetricsStore) and metrics.in_use_elsewhere():
        # chDB opens a data directory from one process at a time
        raise ConfigurationError(
            f"the embedded data under {metrics.path} is in use by a running server: stop the server first, "
            "or set SHOAL_ADMIN_API_KEY on the server to get an administrator key without the CLI"
        )
    metrics.migrate([*auth.MIGRATIONS, *jobs.MIGRATIONS])
    return KeyStore(metrics, cache_seconds=0)


def cmd_keys(args: argparse.Namespace) -> int:
    keys = _keystore(args)
    try:
        if args.keys_command == "create":
            key_id, key = keys.create(args.project, description=args.description)
            print(key)
            print(f"key {key_id} for {', '.join(sorted(set(args.project)))}: shown once, store it now", file=sys.stderr)
        elif args.keys_command == "list":
            for row in keys.list():
                state = "revoked" if row["revoked"] else "active"
                print(f"{row['key_id']}  {state:8s}  {','.join(row['projects'])}  {row['description']}")
        elif args.keys_command == "revoke":
            keys.revoke(args.key_id)
    finally:
        keys.metrics.close()
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from shoal.client import Client

    with Client(args.target, tls=args.tls, ca_file=Path(args.ca_file) if args.ca_file else None) as client:
        status = client.health_status(args.service, timeout=args.timeout)
    print(status)
    return 0 if status == "SERVING" else 1


def _client(args: argparse.Namespace) -> Any:
    """A client of the server named by the connection arguments (see :func:`_connection_args`)."""
    from shoal.client import Client

    key = args.api_key or os.environ.get("SHOAL_API_KEY")
    if not key:
        raise ConfigurationError("pass --api-key or set SHOAL_API_KEY")
    return Client(args.target, api_key=key, tls=args.tls, ca_file=Path(args.ca_file) if args.ca_file else None)


def _connection_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--target", default=os.environ.get("SHOAL_TARGET", "localhost:50051"))
    sub.add_argument("--api-key", help="API key (default: SHOAL_API_KEY)")
    sub.add_argument("--tls", action="store_true")
    sub.add_argument("--ca-file")


def cmd_import(args: argparse.Namespace) -> int:
    import grpc

    from shoal.common.classmaps import parse_color
    from shoal.importers import load_coco, load_mask_folder, load_table
    from shoal.ingest.v1 import ingest_pb2 as pb

    logs.configure("INFO")
    with _client(args) as c:
        try:
            project = c.ingest.GetProject(pb.GetProjectRequest(project=args.project)).project
        except grpc.RpcError as err:
            creates = args.kind in ("coco", "nuscenes", "events") and args.create
            if err.code() != grpc.StatusCode.NOT_FOUND or not creates:
                raise ConfigurationError(f"project {args.project!r}: {err.details()}") from None
            project = None
        if args.kind == "coco":
            data = load_coco(
                Path(args.annotations),
                results=Path(args.results) if args.results else None,
                inference_set=args.inference_set or "",
                media_root=args.media_root,
                split=args.split,
                task=args.task,
            )
            if project is None:
                classes = [
                    pb.ClassDef(
                        id=k.id,
                        name=k.name,
                        keypoints=k.keypoints,
                        skeleton=[pb.KeypointEdge(a=a, b=b) for a, b in k.skeleton],
                        keypoint_sigmas=k.sigmas,
                    )
                    for k in data.classes
                ]
                task_type = pb.TaskType.Value(f"TASK_TYPE_{data.task_type}")
                project = c.ingest.CreateProject(
                    pb.CreateProjectRequest(project=pb.Project(name=args.project, task_type=task_type, classes=classes))
                ).project
            columns = data.columns
            log.info("COCO: %d images, %d annotations, %d detections", data.images, data.annotations, data.detections)
        elif args.kind in ("nuscenes", "events"):
            columns = _import_scenes(c, args, project)
        elif args.kind == "masks":
            if project.task_type != pb.TASK_TYPE_SEGMENTATION:
                raise ConfigurationError(f"project {args.project!r} is not a SEGMENTATION project")
            if not args.masks:
                raise ConfigurationError("masks: pass --masks, the folder of PNG label images")
            columns = load_mask_folder(
                Path(args.masks),
                images=Path(args.images) if args.images else None,
                predictions=Path(args.predictions) if args.predictions else None,
                inference_set=args.inference_set or "",
                colors={parse_color(cl.color): cl.id for cl in project.classes if cl.color},
                split=args.split,
            )
            log.info("masks: %d label images", len(columns.frame_ids))
        else:
            classes_by_name = {cl.name: cl.id for cl in project.classes}
            columns = load_table(
                Path(args.table),
                classes=classes_by_name,
                embeddings=Path(args.embeddings) if args.embeddings else None,
                space=args.space or "",
                inference_set=args.inference_set or "",
            )
        if args.create:
            splits = [args.split] if args.kind != "table" and args.split else []
            dataset = pb.Dataset(name=args.dataset, kind=pb.DATASET_KIND_LABELED, splits=splits)
            _ensure(c, pb.CreateDatasetRequest(project=args.project, dataset=dataset))
            if columns.inference_set:
                inference_set = pb.InferenceSet(
                    name=columns.inference_set,
                    dataset=args.dataset,
                    model_name=args.model_name or columns.inference_set,
                    model_version=args.model_version,
                )
                _ensure(c, pb.CreateInferenceSetRequest(project=args.project, inference_set=inference_set))
        result = c.upload(args.project, args.dataset, columns, chunk_size=args.chunk_size)
        print(f"upload {result.upload_id}: {result.chunks} chunks accepted {result.accepted}")
        if args.wait:
            st = c.wait_for_upload(args.project, result.upload_id)
            print(f"{pb.UploadState.Name(st.state)}: written {st.written}".replace("\n", " "))
            for e in st.errors[:10]:
                frame = e.detail.datapoint.frame_id
                print(f"  chunk {e.chunk_index}: {e.detail.field}: {e.detail.message} (frame {frame})")
            return 0 if st.state == pb.UPLOAD_STATE_COMPLETED else 1
    return 0


def _import_scenes(c: Any, args: argparse.Namespace, project: Any) -> Any:
    """Reads a nuScenes detection file or a DCASE event table; creates its project when missing
    (``--create``); returns the columns to upload."""
    from shoal.importers import load_events, load_nuscenes
    from shoal.ingest.v1 import ingest_pb2 as pb

    if not args.labels:
        what = "the ground-truth JSON" if args.kind == "nuscenes" else "the table of labeled events"
        raise ConfigurationError(f"{args.kind}: pass --labels, {what}")
    known = {cl.name: cl.id for cl in project.classes} if project is not None else None
    if args.kind == "nuscenes":
        data = load_nuscenes(
            Path(args.labels),
            results=Path(args.results) if args.results else None,
            inference_set=args.inference_set or "",
            classes=known,
            ego_poses=Path(args.ego_poses) if args.ego_poses else None,
            coordinate_frame=args.coordinate_frame,
            split=args.split,
        )
    else:
        data = load_events(
            Path(args.labels),
            predictions=Path(args.predictions) if args.predictions else None,
            inference_set=args.inference_set or "",
            classes=known,
            audio=Path(args.audio) if args.audio else None,
            durations=Path(args.durations) if args.durations else None,
            split=args.split,
        )
    task_type = pb.TaskType.Value(f"TASK_TYPE_{data.task_type}")
    if project is None:
        classes = [pb.ClassDef(id=i, name=n) for i, n in sorted(data.classes.items())]
        c.ingest.CreateProject(
            pb.CreateProjectRequest(project=pb.Project(name=args.project, task_type=task_type, classes=classes))
        )
    elif project.task_type != task_type:
        raise ConfigurationError(f"project {args.project!r} is not a {data.task_type} project")
    what = "objects" if args.kind == "nuscenes" else "events"
    log.info(
        "%s: %d frames, %d labeled and %d predicted %s", args.kind, data.frames, data.labels, data.predictions, what
    )
    return data.columns


def _ensure(client, request) -> None:  # type: ignore[no-untyped-def]
    import grpc

    method = client.ingest.CreateDataset if hasattr(request, "dataset") else client.ingest.CreateInferenceSet
    try:
        method(request)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


def cmd_check(args: argparse.Namespace) -> int:
    """Evaluates an inference set against every regression gate: exit 0 when all pass, 1 when any
    fails, so a CI pipeline can gate a model release on it."""
    from shoal.analysis.v1 import analysis_pb2 as apb

    with _client(args) as c:
        resp = c.analysis.EvaluateGates(
            apb.EvaluateGatesRequest(
                project=args.project,
                inference_set=args.inference_set,
                confidence_threshold=args.confidence_threshold,
                iou_threshold=args.iou_threshold,
            )
        )
    if not resp.results:
        print(f"no regression gates apply to inference set {args.inference_set!r}: nothing to check")
        return 0
    for r in resp.results:
        what = r.gate.metric + (f"[class {r.gate.class_id}]" if r.gate.HasField("class_id") else "")
        verdict = "PASS" if r.passed else "FAIL"
        print(f"{verdict}  {r.segment}: {what} = {r.value:.4f} (minimum {r.gate.minimum:g}, {r.frames} frames)")
    print(f"{len(resp.results) - len(resp.failed)} of {len(resp.results)} gates passed")
    return 1 if resp.failed else 0


def cmd_campaign(args: argparse.Namespace) -> int:
    """Runs a collection campaign and prints its summary and ranked sample (or JSON lines)."""
    from google.protobuf.json_format import MessageToDict

    with _client(args) as c:
        campaign = c.run_campaign(
            args.project,
            args.name,
            pool_dataset=args.pool,
            embedding_space=args.space,
            budget=args.budget,
            seed_segment=args.seed_segment,
            similarity=args.similarity,
            uncertainty=args.uncertainty,
            diversity=args.diversity,
            balance=args.balance,
            diversity_method=args.diversity_method,
            uncertainty_inference_set=args.uncertainty_set,
            uncertainty_measure=args.measure,
            exclude_labeled=args.exclude_labeled,
            exclude_sent_for_labeling=args.exclude_sent,
            rerun=args.rerun,
            progress=not args.json,
        )
    if args.json:
        print(json.dumps({"job_id": campaign.job_id, "summary": MessageToDict(campaign.summary)}))
        for item in campaign.items:
            print(json.dumps(MessageToDict(item)))
        return 0
    s = campaign.summary
    print(f"campaign {campaign.job_id}: {s.selected} of budget {s.budget} chosen from {s.candidates} candidates,"
          f" saved as segment {s.segment!r} ({s.strategy})")  # fmt: skip
    for item in campaign.items:
        print(f"{item.rank:>6}  {item.ref.frame_id}  {item.score:.4f}  {item.reason}")
    return 0


def cmd_standing(args: argparse.Namespace) -> int:
    """Starts, lists, shows and stops standing campaigns, and scores local embeddings against one."""
    from google.protobuf.json_format import MessageToDict, Parse, ParseError

    from shoal.common.pagination import pages
    from shoal.common.v1 import common_pb2
    from shoal.sampler.v1 import sampler_pb2 as spb

    command = args.standing_command
    with _client(args) as c:
        if command == "start":
            seed_frames = []
            for ref in args.seed_frame or []:
                dataset, sep, frame = ref.partition("/")
                if not sep or not dataset or not frame:
                    raise ValueError(f"--seed-frame {ref!r}: give DATASET/FRAME_ID")
                seed_frames.append((dataset, frame))
            request: dict[str, Any] = {"seed_embedding_space": args.seed_space}
            if args.filter:
                try:
                    request["filter"] = Parse(args.filter, common_pb2.Filter())
                except ParseError as exc:
                    raise ValueError(f"--filter is not a Filter in JSON ({exc})") from None
            made = c.start_standing_campaign(
                args.project, args.name, pool_dataset=args.pool, embedding_space=args.space,
                similarity_threshold=args.threshold, budget=args.budget, seed_segment=args.seed_segment,
                seed_frames=seed_frames, min_distance=args.min_distance, retention_seconds=args.retention_seconds,
                **request,
            )  # fmt: skip
            print(_standing_line(made))
        elif command == "list":
            for page in pages(lambda p: c.sampler.ListStandingCampaigns(
                    spb.ListStandingCampaignsRequest(project=args.project, page=p))):  # fmt: skip
                for found in page.campaigns:
                    print(json.dumps(MessageToDict(found, preserving_proto_field_name=True)) if args.json
                          else _standing_line(found))  # fmt: skip
        elif command == "show":
            s = c.standing_campaign(args.project, args.name)
            if args.json:
                print(json.dumps(MessageToDict(s.campaign, preserving_proto_field_name=True)))
                for item in s.items:
                    print(json.dumps(MessageToDict(item, preserving_proto_field_name=True)))
                return 0
            print(_standing_line(s.campaign))
            for item in s.items:
                seed = f"{item.nearest_seed.dataset}/{item.nearest_seed.frame_id}"
                print(f"{item.rank:>6}  {item.ref.frame_id}  similarity {item.similarity:.4f} to {seed}"
                      f"  (upload {item.upload_id}, chunk {item.chunk_index})")  # fmt: skip
        elif command == "stop":
            stop = spb.StopStandingCampaignRequest(project=args.project, name=args.name)
            stopped = c.sampler.StopStandingCampaign(stop).campaign
            print(_standing_line(stopped))
        else:
            import numpy as np

            x = np.load(args.embeddings, allow_pickle=False)
            ids = [line.strip() for line in Path(args.frame_ids).read_text().splitlines() if line.strip()]
            score = c.score_for_campaign(args.project, args.name, ids, x, chunk_size=args.chunk_size or None)
            if args.json:
                for f in score.order[: score.judged]:
                    print(json.dumps({"frame_id": f, "reason": score.reasons[f], "similarity": score.similarity[f]}))
                return 0
            for f in score.kept:
                print(f"{f}  similarity {score.similarity[f]:.4f}")
            counts: dict[str, int] = {}
            for r in score.reasons.values():
                counts[r] = counts.get(r, 0) + 1
            parts = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(counts.items()))
            state = spb.StandingCampaignState.Name(score.campaign.state).removeprefix("STANDING_CAMPAIGN_STATE_")
            print(f"{len(score.kept)} of {len(ids)} frames would be kept ({score.judged} judged: {parts or 'none'};"
                  f" the campaign is {state.lower()})", file=sys.stderr)  # fmt: skip
    return 0


def _standing_line(s: Any) -> str:
    from shoal.sampler.v1 import sampler_pb2 as spb

    state = spb.StandingCampaignState.Name(s.state).removeprefix("STANDING_CAMPAIGN_STATE_").lower()
    rule = f"similarity >= {s.similarity_threshold:g}"
    if s.min_distance > 0:
        rule += f", distance >= {s.min_distance:g}"
    kept = f"{s.kept} of {s.budget} kept, {s.judged} judged"
    if s.vectors_deleted:
        kept += f", {s.vectors_deleted} vectors deleted"
    return f"{s.name:24s} {state:8s} {s.pool_dataset}/{s.embedding_space}  {rule}: {kept}"


def cmd_request_labeling(args: argparse.Namespace) -> int:
    """Hands a segment or a finished campaign over to the labeling bridge."""
    from shoal.sampler.v1 import sampler_pb2 as spb

    source = {"segment": args.segment} if args.segment else {"campaign_job_id": args.campaign}
    with _client(args) as c:
        resp = c.sampler.RequestLabeling(
            spb.RequestLabelingRequest(
                project=args.project,
                reason=args.reason,
                platform=args.platform,
                preannotation_inference_set=args.preannotations,
                request_id=args.request_id,
                requested_by=args.requested_by,
                **source,
            )
        )
    again = " (sent before: published again, recorded once)" if resp.repeated_request else ""
    print(f"labeling request {resp.request_id}: {resp.frames} frames of {resp.dataset} in {resp.events} events"
          f" on {resp.topic}{again}")  # fmt: skip
    return 0


def cmd_send_for_labeling(args: argparse.Namespace) -> int:
    """Sends a segment, a campaign, a label-issues job's issues or listed frames to the labeling platform."""
    from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb

    if args.segment:
        source: dict[str, Any] = {"segment": args.segment}
    elif args.campaign:
        source = {"campaign_job_id": args.campaign}
    elif args.label_issues:
        source = {"label_issues": lpb.LabelIssuesSource(job_id=args.label_issues, max_frames=args.max_frames)}
    else:
        source = {"frames": lpb.FrameList(dataset=args.dataset or "", frame_ids=args.frame)}
    with _client(args) as c:
        resp = c.labeling_bridge.SendForLabeling(
            lpb.SendForLabelingRequest(
                project=args.project,
                reason=args.reason,
                preannotation_inference_set=args.preannotations,
                requested_by=args.requested_by,
                request_id=args.request_id,
                **source,
            )
        )
    r = resp.request
    again = " (sent before: recorded once)" if resp.repeated_request else ""
    print(f"labeling request {r.request_id}: {r.frames} frames of {r.dataset}{again}; follow it with"
          f" `shoal labeling-status --project {r.project} --request {r.request_id}`")  # fmt: skip
    return 0


def cmd_labeling_status(args: argparse.Namespace) -> int:
    """A labeling request's state, its frames by state, and the frames in trouble."""
    from shoal.common.v1 import common_pb2
    from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb

    with _client(args) as c:
        r = c.labeling_bridge.GetLabelingRequest(
            lpb.GetLabelingRequestRequest(project=args.project, request_id=args.request)
        ).request
        trouble = c.labeling_bridge.ListLabelingItems(
            lpb.ListLabelingItemsRequest(
                project=args.project,
                request_id=args.request,
                states=[lpb.ITEM_STATE_CONFLICT, lpb.ITEM_STATE_FAILED],
                page=common_pb2.PageRequest(page_size=20),
            )
        )
    state = lpb.LabelingRequestState.Name(r.state).removeprefix("LABELING_REQUEST_STATE_")
    n = r.counts
    print(f"{r.request_id} ({r.source}, {r.frames} frames of {r.dataset}): {state}")
    print(f"  pending {n.pending}, sent {n.sent}, annotated {n.annotated}, synced {n.synced},"
          f" conflict {n.conflict}, failed {n.failed}")  # fmt: skip
    if r.last_error:
        print(f"  last error (attempt {r.attempts}): {r.last_error}")
    if r.platform_project_url:
        print(f"  {r.platform_project_url}")
    for i in trouble.items:
        print(
            f"  {lpb.ItemState.Name(i.state).removeprefix('ITEM_STATE_')} {i.ref.dataset}/{i.ref.frame_id}: {i.error}"
        )
    return 1 if r.state == lpb.LABELING_REQUEST_STATE_FAILED else 0


def _automation_action(text: str, args: argparse.Namespace) -> Any:
    """An ``--action`` of ``shoal automations create``: metrics, gates or label-issues, each with
    ``=INFERENCE_SET`` to read another set than the triggering one, neighbors=EMBEDDING_SPACE, or
    send-to-labeling; ``--confidence-threshold`` and ``--iou-threshold`` go to metrics and gates,
    ``--changed-frames`` to metrics, ``--max-frames``, ``--daily-budget``, ``--min-issues``,
    ``--min-issue-share`` and ``--platform`` to send-to-labeling."""
    from shoal.analysis.v1 import analysis_pb2 as apb

    kind, _, value = text.partition("=")
    name = kind.strip().lower().replace("_", "-")
    if name == "metrics":
        return apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS, inference_set=value,
                                    confidence_threshold=args.confidence_threshold,
                                    changed_frames=args.changed_frames)  # fmt: skip
    if name == "gates":
        return apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_GATES, inference_set=value,
                                    confidence_threshold=args.confidence_threshold,
                                    iou_threshold=args.iou_threshold)  # fmt: skip
    if name == "label-issues":
        return apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_LABEL_ISSUES, inference_set=value)
    if name == "neighbors":
        return apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_NEIGHBORS, embedding_space=value)
    if name == "send-to-labeling" and not value:
        return apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_SEND_TO_LABELING, max_frames=args.max_frames,
                                    daily_budget=args.daily_budget, min_issues=args.min_issues,
                                    min_issue_share=args.min_issue_share, platform=args.platform)  # fmt: skip
    raise ValueError(f"--action {text!r}: metrics, gates or label-issues (=INFERENCE_SET), neighbors=SPACE, or "
                     "send-to-labeling")  # fmt: skip


def _webhook_secret(path: str) -> str:
    """The secret of ``--webhook-secret-file`` (``-``: standard input), its trailing newline dropped."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return text.rstrip("\r\n")


def _automation_line(a: Any) -> str:
    from shoal.analysis.v1 import analysis_pb2 as apb

    t = a.trigger
    trigger = apb.AutomationTriggerKind.Name(t.kind).removeprefix("AUTOMATION_TRIGGER_KIND_").lower()
    if t.dataset:
        trigger += f" of {t.dataset}"
    if t.inference_set_prefix:
        trigger += f" ({t.inference_set_prefix}*)"
    if t.min_labeled_frames:
        trigger += f" (>= {t.min_labeled_frames} frames)"
    if t.campaign:
        trigger += f" (campaign {t.campaign})"
    actions = ", ".join(apb.AutomationActionKind.Name(x.kind).removeprefix("AUTOMATION_ACTION_KIND_").lower()
                        for x in a.actions)  # fmt: skip
    hook = ""
    if a.HasField("webhook"):
        hook = f" -> {a.webhook.url}" + (" (always)" if a.webhook.always else " (on failure)")
    return f"{a.name:24s} {'paused' if a.paused else 'active':6s}  on {trigger}: {actions}{hook}"


def _run_line(r: Any) -> str:
    from shoal.analysis.v1 import analysis_pb2 as apb

    state = apb.AutomationRunState.Name(r.state).removeprefix("AUTOMATION_RUN_STATE_")
    t = r.trigger
    what = f"{t.inference_set} (upload {t.upload_id})" if t.inference_set else f"{t.dataset}: {t.frames} frames"
    if t.campaign:
        what = f"campaign {t.campaign} of {t.dataset}: {t.frames} frames kept"
    when = r.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if r.HasField("create_time") else ""
    return f"{r.run_id}  {when}  {r.automation:20s} {state:9s} {what}: {r.message}"


def cmd_automations(args: argparse.Namespace) -> int:
    """Creates, lists, pauses, resumes and deletes a project's automations, and shows their runs."""
    from google.protobuf.json_format import MessageToDict

    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.pagination import pages
    from shoal.common.v1 import common_pb2

    command = args.automations_command
    if command == "create":
        kind = {"inference-set-complete": apb.AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE,
                "labels-changed": apb.AUTOMATION_TRIGGER_KIND_LABELS_CHANGED,
                "standing-campaign-full": apb.AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL}[args.on]  # fmt: skip
        trigger = apb.AutomationTrigger(kind=kind, dataset=args.dataset, inference_set_prefix=args.inference_set_prefix,
                                        min_labeled_frames=args.min_labeled_frames, campaign=args.campaign)  # fmt: skip
        actions = [_automation_action(a, args) for a in args.action]
        rule = apb.Automation(name=args.name, description=args.description, trigger=trigger, actions=actions,
                              paused=args.paused)  # fmt: skip
        if args.webhook_url:
            secret = _webhook_secret(args.webhook_secret_file) if args.webhook_secret_file else ""
            rule.webhook.CopyFrom(apb.AutomationWebhook(url=args.webhook_url, secret=secret, always=args.notify_always))
    with _client(args) as c:
        a = c.analysis
        if command == "create":
            made = a.CreateAutomation(apb.CreateAutomationRequest(project=args.project, automation=rule)).automation
            print(_automation_line(made))
        elif command == "list":
            for page in pages(lambda p: a.ListAutomations(apb.ListAutomationsRequest(project=args.project, page=p))):
                for found in page.automations:
                    print(_automation_line(found))
        elif command in ("pause", "resume"):
            changed = a.UpdateAutomation(apb.UpdateAutomationRequest(project=args.project, name=args.name,
                                                                     paused=command == "pause")).automation  # fmt: skip
            print(_automation_line(changed))
        elif command == "delete":
            a.DeleteAutomation(apb.DeleteAutomationRequest(project=args.project, name=args.name))
            print(f"deleted automation {args.name}; its runs stay readable (`shoal automations runs`)")
        elif args.run:
            run = a.GetAutomationRun(apb.GetAutomationRunRequest(project=args.project, run_id=args.run)).run
            if args.json:
                print(json.dumps(MessageToDict(run, preserving_proto_field_name=True)))
            else:
                print(_run_line(run))
                for step in run.steps:
                    name = apb.AutomationActionKind.Name(step.action).removeprefix("AUTOMATION_ACTION_KIND_")
                    name = "WEBHOOK" if name == "UNSPECIFIED" else name
                    state = apb.AutomationRunState.Name(step.state).removeprefix("AUTOMATION_RUN_STATE_")
                    print(f"  {name:12s} {state:9s} {step.message}")
                    for key, value in sorted(step.metrics.items()):
                        print(f"    {key} = {value:.4f}")
                    for g in step.gates:
                        what = g.gate.metric + (f"[class {g.gate.class_id}]" if g.gate.HasField("class_id") else "")
                        print(f"    {'PASS' if g.passed else 'FAIL'}  {g.segment}: {what} = {g.value:.4f} "
                              f"(minimum {g.gate.minimum:g}, {g.frames} frames)")  # fmt: skip
                    if step.job_id:
                        print(f"    job {step.job_id}")
                    if step.HasField("labeling"):
                        sent = step.labeling
                        request = f" (request {sent.request_id})" if sent.request_id else ""
                        if sent.segment:
                            print(f"    segment {sent.segment}: {sent.examined} frames; {len(sent.frames)} "
                                  f"sent{request}")  # fmt: skip
                        else:
                            print(f"    label issues of job {sent.job_id}: {sent.flagged} of {sent.examined} frames "
                                  f"flagged; {len(sent.frames)} sent{request}")  # fmt: skip
                        for f in sent.frames:
                            print(f"    sent {sent.dataset}/{f.frame_id}: {f.reason}")
                        if sent.skipped_frame_ids:
                            print(f"    over the day's budget ({sent.day}): {', '.join(sent.skipped_frame_ids)}")
                for d in run.deliveries:
                    print(f"  delivery {d.delivery_id} attempt {d.attempt}: {d.status_code or 'no answer'} {d.error}")
        else:
            states = [apb.AutomationRunState.Value(f"AUTOMATION_RUN_STATE_{s.upper()}") for s in args.state or []]
            found = a.ListAutomationRuns(apb.ListAutomationRunsRequest(
                project=args.project, automation=args.automation, inference_set=args.inference_set, states=states,
                page=common_pb2.PageRequest(page_size=args.limit))).runs  # fmt: skip
            for run in found:
                print(json.dumps(MessageToDict(run, preserving_proto_field_name=True)) if args.json else _run_line(run))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_markdown())
    else:
        settings = _settings({})
        print(json.dumps(json.loads(settings.model_dump_json()), indent=2))
    return 0


def cmd_warm_up(args: argparse.Namespace) -> int:
    from shoal.analysis import warmup
    from shoal.common.jit import Warmup, warm_in_processes

    logs.configure("INFO")
    processes = args.processes or min(len(warmup.KERNELS), os.cpu_count() or 1)
    if processes > 1:
        seconds, failed = warm_in_processes(warmup.BUILD_ORDER, processes)
    else:
        worker = Warmup(warmup.KERNELS)
        worker.run()
        seconds, failed = worker.seconds or 0.0, 0
    ready = len(warmup.KERNELS) - failed
    print(f"shoal: {ready} kernel groups ready in {seconds:.1f}s" + (f" ({failed} failed)" if failed else ""))
    return 0


#: exit codes of `shoal job run`: the job ended SUCCEEDED (or was not this process's to run: finished, or
#: run by another runner), FAILED, or was cancelled or interrupted (queued again)
JOB_EXIT = {"SUCCEEDED": 0, "FAILED": 1, "CANCELLED": 3, "PENDING": 3}


def cmd_job_run(args: argparse.Namespace) -> int:
    """Runs one queued job of a service in this process and exits: what a Kubernetes Job's Pod runs."""
    import signal

    from shoal.app import factories
    from shoal.common import auth, jobs
    from shoal.common.stores import open_stores

    settings = _settings({"data_dir": Path(args.data_dir) if args.data_dir else None})
    logs.configure(settings.log_level, settings.log_format)
    stores = open_stores(settings)
    try:
        spec = factories()[args.service](settings, stores)
        runner = next((w for w in spec.workers if isinstance(w, jobs.JobRunner)), None)
        if runner is None:
            raise ConfigurationError(f"the {args.service} service runs no jobs")
        stores.metrics.migrate([*auth.MIGRATIONS, *jobs.MIGRATIONS, *spec.migrations])
        # a Pod is stopped with SIGTERM: the job stops at its next check and goes back to the queue
        signal.signal(signal.SIGTERM, lambda *_: runner.stopping.set())
        if args.shards:
            shard = args.shard if args.shard is not None else os.environ.get("JOB_COMPLETION_INDEX")
            if shard is None:
                raise ConfigurationError("--shards needs --shard or JOB_COMPLETION_INDEX (an Indexed Job's Pod)")
            ran = runner.run_shard(args.project, args.job_id, args.revision, int(shard), args.shards)
            print(f"shoal: job {args.job_id}: shard {int(shard) + 1} of {args.shards} "
                  + ("written" if ran else "not this Pod's to run (the job was queued again, cancelled or taken)"),
                  file=sys.stderr)  # fmt: skip
            return 0
        before = runner.store.get(args.project, args.job_id)
        job = runner.run_one(args.project, args.job_id, expect=args.revision, shards=args.after_shards or 0)
        if job.state == before.state and job.update_time == before.update_time:
            print(f"shoal: job {job.job_id} is {job.state}: nothing to run here", file=sys.stderr)
            return 0
        print(f"shoal: job {job.job_id} ({job.kind}) ended {job.state}"
              + (f": {job.message}" if job.message else ""), file=sys.stderr)  # fmt: skip
        return JOB_EXIT.get(job.state, 1)
    finally:
        stores.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from shoal.demo import run_demo

    logs.configure("INFO")
    return run_demo(Path(args.out))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shoal", description="Find and fix problems in machine-learning datasets.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the services (all four, embedded stores) or one of them")
    serve.add_argument(
        "--service",
        choices=(*SERVICE_NAMES, "console"),
        help="run only this service, against external servers (console: only the web console, calling the services "
        "named by SHOAL_CONSOLE_GRPC_TARGET / SHOAL_CONSOLE_SERVICE_TARGETS)",
    )
    serve.add_argument(
        "--console-port", type=int, help="HTTP port of the web console (SHOAL_CONSOLE_PORT, default 8080; 0: any)"
    )
    serve.add_argument("--no-console", action="store_true", help="run the services without the web console")
    serve.add_argument("--port", type=int, help="gRPC port (SHOAL_PORT, default 50051)")
    serve.add_argument("--host", help="bind address (SHOAL_HOST, default 127.0.0.1)")
    serve.add_argument("--data-dir", help="where embedded stores keep data (SHOAL_DATA_DIR, default ./shoal-data)")
    serve.add_argument("--insecure-dev-mode", action="store_true", help="accept calls without API keys (laptop only)")
    serve.set_defaults(fn=cmd_serve)

    keys = sub.add_parser("keys", help="manage API keys (talks to the metrics store directly)")
    keys.add_argument("--data-dir", help="data dir of an embedded deployment (SHOAL_DATA_DIR)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key and print it once")
    create.add_argument("--project", action="append", required=True, help="project the key may use; '*' for admin")
    create.add_argument("--description", default="", help="what the key is for")
    ksub.add_parser("list", help="list keys (ids and scopes, never the keys)")
    revoke = ksub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    keys.set_defaults(fn=cmd_keys)

    health = sub.add_parser("health", help="check a server's health (exit 0 when SERVING)")
    health.add_argument("--target", default="localhost:50051")
    health.add_argument("--service", default="", help="full service name; empty for the whole server")
    health.add_argument("--tls", action="store_true")
    health.add_argument("--ca-file")
    health.add_argument("--timeout", type=float, default=5.0)
    health.set_defaults(fn=cmd_health)

    imp = sub.add_parser(
        "import",
        help="upload a COCO file, a table (CSV/Parquet + .npy), a folder of PNG label images, nuScenes detection"
        " JSON (3-D cuboids) or DCASE event tables (sound events)",
    )
    imp.add_argument("kind", choices=["coco", "table", "masks", "nuscenes", "events"])
    _connection_args(imp)
    imp.add_argument("--project", required=True)
    imp.add_argument("--dataset", required=True)
    imp.add_argument(
        "--create",
        action="store_true",
        help="create the dataset (and a coco, nuscenes or events project, its classes the file's) when missing",
    )
    imp.add_argument("--annotations", help="coco: the instances JSON (ground truth)")
    imp.add_argument("--results", help="coco, nuscenes: a results JSON of detections")
    imp.add_argument(
        "--labels",
        help="nuscenes: the ground truth, {sample_token: [boxes]}; events: a table of labeled events (tab- or"
        " comma-separated filename, onset, offset, event_label)",
    )
    imp.add_argument(
        "--coordinate-frame",
        default="world",
        choices=["world", "ego"],
        help="nuscenes: the frame the boxes are in (nuScenes' own are global: world)",
    )
    imp.add_argument(
        "--ego-poses", help='nuscenes: JSON {sample_token: {"translation": [x, y, z], "rotation": [w, x, y, z]}}'
    )
    imp.add_argument(
        "--audio",
        help="events: the folder of the clips' WAV files (durations, sample rates, URIs; default: --labels' folder)",
    )
    imp.add_argument("--durations", help="events: a table of filename, duration (seconds) rows")
    imp.add_argument(
        "--media-root", default="", help="coco: prefix of the images' file names, e.g. s3://bucket/val2017"
    )
    imp.add_argument("--split", default="", help="coco, masks, nuscenes, events: split of every frame")
    imp.add_argument("--masks", help="masks: the folder of PNG label images, <frame id>.png")
    imp.add_argument("--images", help="masks: the folder of the images, named as their label images")
    imp.add_argument(
        "--predictions",
        help="masks: a folder of predicted label images, named the same; events: a table of predicted events (a"
        " score column after the label)",
    )
    imp.add_argument(
        "--task",
        default="auto",
        choices=["auto", "detection", "segmentation", "keypoints"],
        help="coco: what the objects are (boxes, instance masks or keypoints); auto: keypoints when the categories"
        " declare them, else masks when the annotations have them, else boxes",
    )
    imp.add_argument("--table", help="table: a .csv or .parquet file")
    imp.add_argument("--embeddings", help="table: a .npy of (rows, D) vectors")
    imp.add_argument("--space", help="table: the embedding space of --embeddings")
    imp.add_argument("--inference-set", help="the inference set of the predictions")
    imp.add_argument("--model-name", default="", help="with --create: model of the inference set")
    imp.add_argument("--model-version", default="1", help="with --create: model version of the inference set")
    imp.add_argument("--chunk-size", type=int, default=None, help="frames per chunk (default: about 4 MiB per chunk)")
    imp.add_argument("--wait", action="store_true", help="wait until written; exit 1 if anything was rejected")
    imp.set_defaults(fn=cmd_import)

    check = sub.add_parser("check", help="evaluate an inference set against the regression gates (exit 1 on failure)")
    _connection_args(check)
    check.add_argument("--project", required=True)
    check.add_argument("--inference-set", required=True)
    check.add_argument("--confidence-threshold", type=float, default=0.0)
    check.add_argument("--iou-threshold", type=float, default=0.5, help="detection projects: the matching IoU")
    check.set_defaults(fn=cmd_check)

    camp = sub.add_parser("campaign", help="choose pool frames for labeling within a budget (a collection campaign)")
    _connection_args(camp)
    camp.add_argument("--project", required=True)
    camp.add_argument("--name", required=True, help="the segment the sample is saved as (must not exist)")
    camp.add_argument("--pool", required=True, help="the pool dataset")
    camp.add_argument("--space", required=True, help="the embedding space frames are compared in")
    camp.add_argument("--budget", type=int, required=True)
    camp.add_argument("--seed-segment", default="", help="frames like these are wanted; none: active learning")
    camp.add_argument("--similarity", type=float, help="weight (default 1 with seeds)")
    camp.add_argument("--uncertainty", type=float, help="weight (default 1 with --uncertainty-set)")
    camp.add_argument("--diversity", type=float, help="weight (default 0.5)")
    camp.add_argument("--balance", type=float, help="weight over predicted classes (default 0)")
    camp.add_argument("--diversity-method", default="mmr", choices=["mmr", "k_center"])
    camp.add_argument("--uncertainty-set", default="", help="inference set of the pool for uncertainty and balance")
    camp.add_argument("--measure", default="entropy", choices=["entropy", "margin", "least_confidence"])
    camp.add_argument("--exclude-labeled", action="store_true", help="leave out labeled pool frames")
    camp.add_argument("--exclude-sent", action="store_true", help="leave out frames already sent for labeling")
    camp.add_argument("--rerun", action="store_true", help="run again, replacing an earlier identical campaign")
    camp.add_argument("--json", action="store_true", help="JSON lines: the summary, then each item")
    camp.set_defaults(fn=cmd_campaign)

    stand = sub.add_parser("standing", help="standing campaigns: keep the pool frames like the seeds as they arrive")
    ssub = stand.add_subparsers(dest="standing_command", required=True)
    sstart = ssub.add_parser("start", help="start a standing campaign on a pool (its kept frames become a segment)")
    sstart.add_argument("--name", required=True, help="the campaign and its segment (must not exist)")
    sstart.add_argument("--pool", required=True, help="the pool dataset watched (kind unlabeled pool)")
    sstart.add_argument("--space", required=True, help="the cosine space of frame vectors frames are compared in")
    sstart.add_argument("--threshold", type=float, required=True, help="least cosine similarity to the nearest seed")
    sstart.add_argument("--budget", type=int, required=True, help="frames to keep; the campaign is then full")
    sstart.add_argument("--seed-segment", default="", help="the seeds: a segment's frames")
    sstart.add_argument("--seed-frame", action="append", help="or a seed DATASET/FRAME_ID (repeat the option)")
    sstart.add_argument("--seed-space", default="", help="the seeds' space when it is another (same model)")
    sstart.add_argument("--min-distance", type=float, default=0.0,
                        help="least cosine distance to a kept frame (default 0.02; negative: off)")  # fmt: skip
    sstart.add_argument("--retention-seconds", type=float, default=None,
                        help="delete a dropped frame's vector this long after (default: keep it)")  # fmt: skip
    sstart.add_argument("--filter", default="", help='a Filter in JSON, e.g. {"all": [{"field": "split", '
                        '"equals": {"stringValue": "night"}}]}')  # fmt: skip
    slist = ssub.add_parser("list", help="the project's standing campaigns")
    slist.add_argument("--json", action="store_true", help="JSON lines")
    sshow = ssub.add_parser("show", help="a campaign's counts and every frame it kept, in the order kept")
    sshow.add_argument("name")
    sshow.add_argument("--json", action="store_true", help="JSON lines: the campaign, then each kept frame")
    sstop = ssub.add_parser("stop", help="stop a filling campaign (it keeps what it kept)")
    sstop.add_argument("name")
    sscore = ssub.add_parser("score", help="choose, on this machine, the local frames a campaign would keep")
    sscore.add_argument("name")
    sscore.add_argument("--embeddings", required=True, help="an .npy file of (N, D) vectors")
    sscore.add_argument("--frame-ids", required=True, help="a text file of the N frame ids, one a line")
    sscore.add_argument("--chunk-size", type=int, default=0, help="the upload's chunk size (default: one chunk)")
    sscore.add_argument("--json", action="store_true", help="JSON lines: every judged frame with its reason")
    for p_ in (sstart, slist, sshow, sstop, sscore):
        _connection_args(p_)
        p_.add_argument("--project", required=True)
        p_.set_defaults(fn=cmd_standing)

    req = sub.add_parser("request-labeling", help="send a segment or a campaign's sample to the labeling bridge")
    _connection_args(req)
    req.add_argument("--project", required=True)
    what = req.add_mutually_exclusive_group(required=True)
    what.add_argument("--segment")
    what.add_argument("--campaign", help="a finished campaign's job id")
    req.add_argument("--reason", default="", help="shown to annotators (default: the segment's reason)")
    req.add_argument("--platform", default="", help="labeling platform (default: the bridge's)")
    req.add_argument("--preannotations", default="", help="inference set whose predictions pre-annotate")
    req.add_argument("--request-id", default="", help="idempotency key (default: derived from the frames)")
    req.add_argument("--requested-by", default=os.environ.get("USER", ""))
    req.set_defaults(fn=cmd_request_labeling)

    lab = sub.add_parser("send-for-labeling", help="send frames to the labeling platform (the labeling bridge)")
    _connection_args(lab)
    lab.add_argument("--project", required=True)
    what = lab.add_mutually_exclusive_group(required=True)
    what.add_argument("--segment")
    what.add_argument("--campaign", help="a finished campaign's job id")
    what.add_argument("--label-issues", help="a finished label-issues job's id: its flagged frames, worst first")
    what.add_argument("--frame", action="append", help="a frame id of --dataset (repeat the option)")
    lab.add_argument("--dataset", help="with --frame: the frames' dataset")
    lab.add_argument("--max-frames", type=int, default=0, help="with --label-issues: at most this many")
    lab.add_argument("--reason", default="", help="shown to annotators (default: the source's own)")
    lab.add_argument("--preannotations", default="", help="inference set whose predictions pre-annotate")
    lab.add_argument("--request-id", default="", help="idempotency key (default: derived from the frames)")
    lab.add_argument("--requested-by", default=os.environ.get("USER", ""))
    lab.set_defaults(fn=cmd_send_for_labeling)

    ls = sub.add_parser("labeling-status", help="a labeling request's state and its frames in trouble")
    _connection_args(ls)
    ls.add_argument("--project", required=True)
    ls.add_argument("--request", required=True, help="the request id SendForLabeling answered")
    ls.set_defaults(fn=cmd_labeling_status)

    auto = sub.add_parser("automations", help="a project's automations: rules that run metrics, gates and jobs")
    asub = auto.add_subparsers(dest="automations_command", required=True)
    acreate = asub.add_parser("create", help="create a rule: a trigger, actions and an optional signed webhook")
    acreate.add_argument("--name", required=True, help="[a-z0-9][a-z0-9_.-]{0,62}, unique in the project")
    acreate.add_argument("--on", required=True,
                         choices=("inference-set-complete", "labels-changed", "standing-campaign-full"),
                         help="the trigger: an inference set's upload completes; labels change; a standing "
                         "campaign's sample is full")  # fmt: skip
    acreate.add_argument("--dataset", default="", help="only this dataset's events (required with labels-changed "
                         "and --action label-issues)")  # fmt: skip
    acreate.add_argument("--inference-set-prefix", default="", help="inference-set-complete: only sets named so")
    acreate.add_argument("--min-labeled-frames", type=int, default=0, help="labels-changed: frames that fire it")
    acreate.add_argument("--campaign", default="",
                         help="standing-campaign-full: only this standing campaign (default: any)")  # fmt: skip
    acreate.add_argument("--action", action="append", required=True,
                         help="metrics, gates, label-issues (each =INFERENCE_SET to read another set than the "
                         "triggering one; required with labels-changed and standing-campaign-full), "
                         "neighbors=EMBEDDING_SPACE or send-to-labeling (after label-issues; with "
                         "standing-campaign-full, alone: the kept frames), in order (repeat the option)")  # fmt: skip
    acreate.add_argument("--confidence-threshold", type=float, default=0.0, help="of the metrics and gates actions")
    acreate.add_argument("--iou-threshold", type=float, default=0.0, help="of the gates action (object projects)")
    acreate.add_argument("--changed-frames", action="store_true",
                         help="labels-changed: metrics measure only the frames whose labels changed")  # fmt: skip
    acreate.add_argument("--max-frames", type=int, default=0,
                         help="send-to-labeling: the most frames one run sends (flagged: worst first)")  # fmt: skip
    acreate.add_argument("--daily-budget", type=int, default=0,
                         help="send-to-labeling: the most frames the rule sends per UTC day")  # fmt: skip
    acreate.add_argument("--min-issues", type=int, default=0,
                         help="send-to-labeling: send only when the job flags at least this many frames")  # fmt: skip
    acreate.add_argument("--min-issue-share", type=float, default=0.0,
                         help="send-to-labeling: send only when the job flags this share of its frames")  # fmt: skip
    acreate.add_argument("--platform", default="", help="send-to-labeling: the labeling platform")
    acreate.add_argument("--webhook-url", default="", help="http(s) URL each notification is POSTed to")
    acreate.add_argument("--webhook-secret-file", default="",
                         help="a file holding the secret that signs the notifications (-: standard input)")  # fmt: skip
    acreate.add_argument("--notify-always", action="store_true", help="notify after every run, not only failures")
    acreate.add_argument("--description", default="")
    acreate.add_argument("--paused", action="store_true", help="create it paused")
    alist = asub.add_parser("list", help="the project's rules")
    apause = asub.add_parser("pause", help="pause a rule: it does nothing until resumed")
    aresume = asub.add_parser("resume", help="resume a paused rule (what it missed is not replayed)")
    adelete = asub.add_parser("delete", help="delete a rule (its runs stay readable)")
    for named in (apause, aresume, adelete):
        named.add_argument("name")
    aruns = asub.add_parser("runs", help="the runs of the project's rules, newest first, or one run in full")
    aruns.add_argument("--automation", default="", help="only this rule's runs")
    aruns.add_argument("--inference-set", default="", help="only runs triggered by this inference set")
    aruns.add_argument("--state", action="append", choices=("running", "succeeded", "failed"))
    aruns.add_argument("--run", default="", help="one run with its steps and deliveries")
    aruns.add_argument("--limit", type=int, default=50)
    aruns.add_argument("--json", action="store_true", help="JSON lines")
    for p_ in (acreate, alist, apause, aresume, adelete, aruns):
        _connection_args(p_)
        p_.add_argument("--project", required=True)
        p_.set_defaults(fn=cmd_automations)

    st = sub.add_parser("settings", help="print the effective settings (secrets hidden)")
    st.add_argument("--markdown", action="store_true", help="the settings reference as a Markdown table")
    st.set_defaults(fn=cmd_settings)

    warm = sub.add_parser(
        "warm-up", help="compile the jobs' kernels into numba's disk cache now (an image's build step), and exit"
    )
    warm.add_argument(
        "--processes",
        type=int,
        default=0,
        help="compile in this many processes at once (default: one per CPU, at most one per kernel group)",
    )
    warm.set_defaults(fn=cmd_warm_up)

    job = sub.add_parser("job", help="run jobs outside a server")
    jsub = job.add_subparsers(dest="job_command", required=True)
    run = jsub.add_parser(
        "run",
        help="run one queued job of a service in this process and exit (0 succeeded or nothing to do, "
        "1 failed, 3 cancelled or interrupted): what the Pod of a Kubernetes Job runs",
    )
    run.add_argument("--service", choices=("analysis", "sampler"), required=True)
    run.add_argument("--project", required=True)
    run.add_argument("--job-id", required=True)
    run.add_argument(
        "--revision",
        help="run it only if the job is still queued as this revision (the one a Kubernetes Job was made for)",
    )
    run.add_argument(
        "--shards",
        type=int,
        help="run one shard of the job, of this many (the Pod of an Indexed Job): it writes its part and leaves the "
        "job queued",
    )
    run.add_argument("--shard", type=int, help="which shard, from 0 (default: JOB_COMPLETION_INDEX, set by Kubernetes)")
    run.add_argument(
        "--after-shards", type=int, help="finish the job from the parts its shards wrote (this many of them)"
    )
    run.add_argument("--data-dir", help="the embedded stores' folder (default: SHOAL_DATA_DIR)")
    run.set_defaults(fn=cmd_job_run)

    demo = sub.add_parser("demo", help="run the demo job on the embedded defaults")
    demo.add_argument("--out", default="demo-out")
    demo.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    seed_cache()  # before any kernel is loaded
    try:
        return int(args.fn(args))
    except (ConfigurationError, ValueError, FileNotFoundError) as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    except ShoalError as exc:
        print(f"shoal: {exc.describe()}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:  # the server's answer: status and message, no traceback
        print(f"shoal: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
