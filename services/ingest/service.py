"""The ingest service: owns every write (projects for now; datasets and uploads next)."""

from __future__ import annotations

from shoal.common.interceptors import MethodPolicy
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.ingest import catalog
from shoal.ingest.servicer import IngestServicer
from shoal.ingest.v1 import ingest_pb2, ingest_pb2_grpc

NAME = "ingest"
FULL_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


def _method(rpc: str) -> str:
    return f"/{FULL_NAME}/{rpc}"


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    servicer = IngestServicer(catalog.ProjectCatalog(stores.metrics))
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors", "events"),
        policy=MethodPolicy(admin=frozenset({_method("CreateProject")}), unscoped=frozenset({_method("ListProjects")})),
        migrations=catalog.MIGRATIONS,
    )
