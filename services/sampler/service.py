"""The sampler service: similarity search and collection campaigns, run as jobs."""

from __future__ import annotations

from typing import Any

from shoal.common.jobs import JobStore
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.sampler.v1 import sampler_pb2, sampler_pb2_grpc

NAME = "sampler"
FULL_NAME = sampler_pb2.DESCRIPTOR.services_by_name["SamplerService"].full_name


class SamplerServicer(JobRpcs, sampler_pb2_grpc.SamplerServiceServicer):
    GetJobResponse: Any = sampler_pb2.GetJobResponse
    ListJobsResponse: Any = sampler_pb2.ListJobsResponse
    CancelJobResponse: Any = sampler_pb2.CancelJobResponse

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    servicer = SamplerServicer(JobStore(stores.metrics, service=NAME))
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: sampler_pb2_grpc.add_SamplerServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors", "events"),
    )
