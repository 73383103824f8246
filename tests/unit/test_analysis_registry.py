"""The analysis registry: every RPC of AnalysisService is answered by exactly one analysis module,
with the request and response types the descriptor names, and every job kind an analysis core
defines is run by exactly one runner."""

from __future__ import annotations

import collections.abc
import importlib
import pkgutil
import typing
from collections import Counter

import pytest

import shoal.analysis
from shoal.analysis import registry
from shoal.analysis.rpc.context import Analysis
from shoal.analysis.service import AnalysisServicer
from shoal.analysis.v1 import analysis_pb2, analysis_pb2_grpc

SERVICE = analysis_pb2.DESCRIPTOR.services_by_name["AnalysisService"]


def _core_job_kinds() -> set[str]:
    """The ``KIND`` of every analysis core module (``shoal.analysis.<name>``)."""
    kinds = set()
    for info in pkgutil.iter_modules(shoal.analysis.__path__):
        if info.ispkg or info.name in ("service", "registry"):
            continue
        kind = getattr(importlib.import_module(f"shoal.analysis.{info.name}"), "KIND", None)
        if kind is not None:
            kinds.add(kind)
    return kinds


def test_every_rpc_has_exactly_one_handler() -> None:
    claimed = Counter(rpc for a in registry.ANALYSES for rpc in a.rpcs)
    rpcs = {m.name for m in SERVICE.methods}
    assert sorted(rpc for rpc in rpcs if claimed[rpc] == 0) == [], "RPCs without a handler"
    assert sorted(rpc for rpc, n in claimed.items() if n > 1) == [], "RPCs with several handlers"
    assert sorted(set(claimed) - rpcs) == [], "handlers of RPCs that AnalysisService does not have"


def test_each_handler_takes_and_returns_its_rpcs_messages() -> None:
    handlers = registry.handlers()
    for method in SERVICE.methods:
        hints = typing.get_type_hints(handlers[method.name])
        assert hints["request"].DESCRIPTOR.full_name == method.input_type.full_name, method.name
        answer = hints["return"]
        if method.server_streaming:  # a generator of the response messages
            assert typing.get_origin(answer) is collections.abc.Iterator, method.name
            (answer,) = typing.get_args(answer)
        assert answer.DESCRIPTOR.full_name == method.output_type.full_name, method.name


def test_every_job_kind_has_exactly_one_runner() -> None:
    claimed = Counter(kind for a in registry.ANALYSES for kind in a.jobs)
    kinds = _core_job_kinds()
    assert kinds, "no analysis core defines a job KIND"
    assert {k: claimed[k] for k in kinds} == dict.fromkeys(kinds, 1)
    assert sorted(set(claimed) - kinds) == [], "runners of job kinds no core defines"


def test_the_servicer_answers_every_rpc_through_the_registry() -> None:
    base = analysis_pb2_grpc.AnalysisServiceServicer
    for method in SERVICE.methods:
        answer = getattr(AnalysisServicer, method.name)
        assert answer is not getattr(base, method.name), f"{method.name} is left UNIMPLEMENTED"
        assert answer.__name__ == method.name


def test_two_analyses_claiming_one_rpc_or_job_kind_is_refused() -> None:
    first = registry.ANALYSES[0]
    rpc = next(iter(first.rpcs))
    with pytest.raises(ValueError, match=rpc):
        registry.handlers((first, Analysis("copy", rpcs={rpc: first.rpcs[rpc]})))
    owner = next(a for a in registry.ANALYSES if a.jobs)
    kind = next(iter(owner.jobs))
    with pytest.raises(ValueError, match=kind):
        registry.runners((owner, Analysis("copy", rpcs={}, jobs={kind: owner.jobs[kind]})))
