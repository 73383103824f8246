"""Which module answers each RPC of ``AnalysisService`` and runs each job kind.

Every analysis has one module under ``shoal.analysis.rpc`` holding its RPC handlers (protobuf in,
a call to its transport-free core in ``shoal.analysis.<name>``, protobuf out), its job kinds'
runners and the tables it owns, listed in one ``ANALYSIS = Analysis(...)``. The servicer
(``shoal.analysis.service``) builds the shared :class:`~shoal.analysis.rpc.context.Context` once
and sends each RPC to the handler named here.

How to add an analysis
----------------------
1. Add its RPCs to ``protos/shoal/analysis/v1/analysis.proto`` and regenerate the stubs.
2. Write its core in ``services/analysis/<name>.py``: queries and numerics, no gRPC. A job kind
   there has a ``KIND`` name, a ``MIGRATIONS`` tuple for its tables and a ``discard(metrics, job)``.
3. Write ``services/analysis/rpc/<name>.py``: one function per RPC, ``handler(ctx, request) ->
   response``, a runner ``run(ctx, run: JobContext)`` per job kind, and
   ``ANALYSIS = Analysis("<name>", rpcs={"<Rpc>": handler, ...},
   jobs={KIND: Runner(run=..., discard=...)}, migrations=<core>.MIGRATIONS)``.
4. Add one line to ``ANALYSES`` below.

``tests/unit/test_analysis_registry.py`` fails when an RPC has no handler or two, or a job kind no
runner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from shoal.analysis.rpc import (
    automations,
    classification,
    compare,
    cuboids,
    datapoints,
    detection,
    detection_issues,
    dismissals,
    drift,
    embedding_map,
    export,
    failure_clusters,
    gates,
    jobs,
    label_issues,
    multilabel,
    neighbors,
    segmentation,
    segments,
    slices,
    sound_events,
)
from shoal.analysis.rpc.context import Analysis, Handler, Runner
from shoal.common.stores.metrics import Migration

#: every analysis, in the order their tables are created
ANALYSES: tuple[Analysis, ...] = (
    classification.ANALYSIS,
    datapoints.ANALYSIS,
    detection.ANALYSIS,
    cuboids.ANALYSIS,
    multilabel.ANALYSIS,
    segmentation.ANALYSIS,
    sound_events.ANALYSIS,
    label_issues.ANALYSIS,
    dismissals.ANALYSIS,
    detection_issues.ANALYSIS,
    neighbors.ANALYSIS,
    embedding_map.ANALYSIS,
    drift.ANALYSIS,
    failure_clusters.ANALYSIS,
    slices.ANALYSIS,
    compare.ANALYSIS,
    segments.ANALYSIS,
    gates.ANALYSIS,
    jobs.ANALYSIS,
    export.ANALYSIS,
    automations.ANALYSIS,
)


T = TypeVar("T")


def _unique(pairs: Iterable[tuple[str, str, T]], what: str) -> dict[str, T]:
    """``name -> value`` from ``(owner, name, value)``; a name two analyses claim is an error."""
    out: dict[str, T] = {}
    owners: dict[str, str] = {}
    for owner, name, value in pairs:
        if name in out:
            raise ValueError(f"{what} {name!r} is claimed by analyses {owners[name]!r} and {owner!r}")
        out[name], owners[name] = value, owner
    return out


def handlers(analyses: tuple[Analysis, ...] = ANALYSES) -> Mapping[str, Handler]:
    """RPC name -> its handler, over every analysis."""
    return _unique(((a.name, rpc, h) for a in analyses for rpc, h in a.rpcs.items()), "RPC")


def runners(analyses: tuple[Analysis, ...] = ANALYSES) -> Mapping[str, Runner]:
    """Job kind -> its runner, over every analysis."""
    return _unique(((a.name, kind, r) for a in analyses for kind, r in a.jobs.items()), "job kind")


def migrations(analyses: tuple[Analysis, ...] = ANALYSES) -> tuple[Migration, ...]:
    """The schema of every table the analyses own, in registry order."""
    return tuple(m for a in analyses for m in a.migrations)
