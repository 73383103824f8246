"""The ingest service: owns every write (projects for now; datasets and uploads next)."""

from __future__ import annotations

from shoal.common import media
from shoal.common.data import datasets, evaluations, frames, outcomes, segmentation
from shoal.common.data import projects as catalog
from shoal.common.interceptors import MethodPolicy
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.common.topics import Topics
from shoal.ingest import writer
from shoal.ingest.pipeline import ContextLoader, IngestConsumer, UploadProcessor, UploadPublisher
from shoal.ingest.servicer import IngestServicer
from shoal.ingest.v1 import ingest_pb2, ingest_pb2_grpc

NAME = "ingest"
FULL_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


def _method(rpc: str) -> str:
    return f"/{FULL_NAME}/{rpc}"


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    projects = catalog.ProjectCatalog(stores.metrics)
    sets = datasets.DatasetCatalog(stores.metrics, projects)
    reader = media.reader(settings)
    contexts = ContextLoader(stores.metrics, projects, sets, media=reader)
    topics = Topics(settings.topic_prefix)
    limit = settings.ingest_max_chunk_items
    publisher = UploadPublisher(stores.events, topics, contexts, stores.metrics, limit)
    processor = UploadProcessor(
        stores.events,
        topics,
        contexts,
        writer.IngestWriter(stores.metrics, stores.vectors, reader if settings.ingest_count_cuboid_points else None),
        limit,
    )
    workers = [
        IngestConsumer(
            stores.events, topics, processor, group_id=settings.ingest_consumer_group, name=f"ingest-consumer-{i}"
        )
        for i in range(settings.ingest_consumers)
    ]
    servicer = IngestServicer(
        projects,
        sets,
        publisher,
        stores.vectors,
        evaluations.EvaluationRefresher(stores.metrics),
        outcomes.OutcomeRefresher(stores.metrics),
    )
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors", "events"),
        policy=MethodPolicy(admin=frozenset({_method("CreateProject")}), unscoped=frozenset({_method("ListProjects")})),
        migrations=(
            *catalog.MIGRATIONS,
            *datasets.MIGRATIONS,
            *frames.MIGRATIONS,
            *evaluations.MIGRATIONS,
            *outcomes.MIGRATIONS,
            *segmentation.MIGRATIONS,
            *writer.MIGRATIONS,
        ),
        workers=list(workers),
    )
