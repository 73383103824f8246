"""The API conventions of protos/README.md, checked on every service."""

from __future__ import annotations

import importlib
import re

import pytest
from google.protobuf.descriptor import FieldDescriptor

from shoal.app import factories
from shoal.common.settings import ShoalSettings

API_MODULES = [
    "shoal.ingest.v1.ingest_pb2",
    "shoal.analysis.v1.analysis_pb2",
    "shoal.sampler.v1.sampler_pb2",
    "shoal.labeling_bridge.v1.labeling_bridge_pb2",
]


def _services():  # type: ignore[no-untyped-def]
    for name in API_MODULES:
        module = importlib.import_module(name)
        yield from module.DESCRIPTOR.services_by_name.values()


@pytest.mark.parametrize("module", API_MODULES)
def test_package_matches_the_directory(module: str) -> None:
    fd = importlib.import_module(module).DESCRIPTOR
    api = module.split(".")[1]
    assert fd.package == f"shoal.{api}.v1"
    assert fd.name == f"shoal/{api}/v1/{api}.proto"


def test_services_are_nouns_ending_in_service_and_every_rpc_has_its_own_messages() -> None:
    used: set[str] = set()
    for service in _services():
        assert service.name.endswith("Service")
        for method in service.methods:
            assert method.input_type.name == f"{method.name}Request", method.full_name
            assert method.output_type.name == f"{method.name}Response", method.full_name
            for t in (method.input_type.full_name, method.output_type.full_name):
                assert t not in used, f"{t} is used by two RPCs"
                used.add(t)


def test_no_ok_flags_in_responses() -> None:
    for service in _services():
        for method in service.methods:
            for f in method.output_type.fields:
                assert not (f.name in ("ok", "success") and f.type == FieldDescriptor.TYPE_BOOL), method.full_name


def test_every_rpc_is_project_scoped_or_declared(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The auth interceptor checks the request's `project` field; an RPC without one must be
    declared admin-only or unscoped by its service, or it would be refused."""
    # each service built on its own, as a pod would be (the labeling bridge then needs to be told where
    # analysis and the sampler are)
    settings = ShoalSettings(data_dir=tmp_path, analysis_target="analysis:50051", sampler_target="sampler:50051")

    class _Stores:
        metrics = vectors = events = None

    declared: set[str] = set()
    for factory in factories().values():
        spec = factory(settings, _Stores())  # type: ignore[arg-type]
        declared |= spec.policy.admin | spec.policy.unscoped
    for service in _services():
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            fields = method.input_type.fields_by_name
            has_project = "project" in fields and (
                fields["project"].type == FieldDescriptor.TYPE_STRING
                or "name" in fields["project"].message_type.fields_by_name
            )
            assert has_project or path in declared, f"{path} names no project and is not declared"


def test_enums_have_an_unspecified_zero() -> None:
    for name in [*API_MODULES, "shoal.common.v1.common_pb2"]:
        fd = importlib.import_module(name).DESCRIPTOR
        for enum in fd.enum_types_by_name.values():
            zero = enum.values_by_number[0].name
            prefix = re.sub(r"(?<!^)([A-Z])", r"_\1", enum.name).upper()
            assert zero == f"{prefix}_UNSPECIFIED", enum.full_name
