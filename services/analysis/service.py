"""The analysis service: metrics, drill-down and data-quality analyses, long ones run as jobs.

The servicer is thin: it builds the shared context once and hands each RPC to the analysis module
that owns it (:mod:`shoal.analysis.registry`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from shoal.analysis import grid_orders, ranked, registry, warmup
from shoal.analysis.prepared import Preparer
from shoal.analysis.rpc import automations
from shoal.analysis.rpc.context import Context, Handler
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.analysis.v1 import analysis_pb2_grpc
from shoal.common import kubernetes_jobs, media, secretbox
from shoal.common.data import segments as seg_store
from shoal.common.data.answers import AnswerRefresher
from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.evaluations import MIGRATIONS as EVALUATION_MIGRATIONS
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.outcomes import MIGRATIONS as OUTCOME_MIGRATIONS
from shoal.common.data.projects import MIGRATIONS as PROJECT_MIGRATIONS
from shoal.common.data.results import MIGRATIONS as RESULT_MIGRATIONS
from shoal.common.jit import Warmup, count_compilations
from shoal.common.jobs import JobKind, JobRunner, JobStore
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores

NAME = "analysis"
FULL_NAME = pb.DESCRIPTOR.services_by_name["AnalysisService"].full_name
#: the kernels' warm-up compiles those numba cannot cache once the service has held no job for this long since it
#: started or since its last job, so that it does not slow the jobs of a service that has just started: a client
#: that runs its jobs one after another leaves gaps of a second or two between them
WARM_UP_AFTER_IDLE_SECONDS = 10.0

T = TypeVar("T")


def _dispatch(name: str, handler: Handler) -> Callable[[Any, Any, Any], Any]:
    """The servicer method of RPC ``name``: the handler, given the servicer's shared context."""

    def method(self: AnalysisServicer, request: Any, context: Any) -> Any:
        with grid_orders.looked_up():  # a request reads each build's records once
            return handler(self.ctx, request)

    method.__name__ = name
    method.__doc__ = handler.__doc__
    return method


def _answering_every_rpc(cls: type[T]) -> type[T]:
    """``cls`` with one method per RPC of the registry, each calling its analysis's handler."""
    for name, handler in registry.handlers().items():
        method = _dispatch(name, handler)
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)
    return cls


@_answering_every_rpc
class AnalysisServicer(analysis_pb2_grpc.AnalysisServiceServicer):
    """Every RPC of ``AnalysisService``, each sent to the handler of the analysis that owns it
    (:func:`shoal.analysis.registry.handlers`)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    ctx = Context(JobStore(stores.metrics, service=NAME), stores.metrics, stores.vectors)
    ctx.ranked_above = settings.ranked_pages_above
    ctx.sorted_above = settings.sorted_pages_above
    ctx.media = media.reader(settings)
    ctx.secret_box = secretbox.box_for(settings)
    ctx.runner = JobRunner(
        ctx.jobs,
        {
            kind: JobKind(
                run=partial(r.run, ctx),
                discard=partial(r.discard, stores.metrics),
                shard=partial(r.shard, ctx) if r.shard is not None else None,
                shards=partial(r.shards, ctx) if r.shards is not None else None,
            )
            for kind, r in registry.runners().items()
        },
        heartbeat_seconds=settings.job_heartbeat_seconds,
        stale_seconds=settings.job_stale_seconds,
        kubernetes=kubernetes_jobs.from_settings(settings, NAME),
    )
    servicer = AnalysisServicer(ctx)
    count_compilations()
    # the automations run on the ingested topic what they set off here: metrics, gates and jobs
    workers: list[Any] = [ctx.runner, automations.consumer(ctx, settings, stores.events)]
    if settings.warm_kernels:
        runner = ctx.runner
        workers.append(Warmup(warmup.KERNELS, quiet=lambda: runner.idle_seconds() >= WARM_UP_AFTER_IDLE_SECONDS,
                              patient=warmup.EVERY_PROCESS))  # fmt: skip
    if settings.answers_refresh_seconds > 0:
        prepare = Preparer(ctx, settings.answers_prepare_sets).round if settings.answers_prepare_sets else None
        refresh = (settings.answers_refresh_seconds, settings.answers_refresh_window_seconds)
        workers.append(AnswerRefresher(ctx.answers, *refresh, prepare=prepare))
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors"),
        # the automations' consumer of the ingested topic: a Kafka outage delays rules, not the metrics read path
        also_uses=("events",),
        migrations=(
            *PROJECT_MIGRATIONS,
            *DATASET_MIGRATIONS,
            *FRAME_MIGRATIONS,
            *EVALUATION_MIGRATIONS,
            *OUTCOME_MIGRATIONS,
            *seg_store.MIGRATIONS,
            *RESULT_MIGRATIONS,
            *ranked.MIGRATIONS,
            *grid_orders.MIGRATIONS,
            *registry.migrations(),
        ),
        workers=workers,
    )
