"""The analysis service: metrics, drill-down and data-quality analyses, run as jobs."""

from __future__ import annotations

from typing import Any

from shoal.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from shoal.common.jobs import JobStore
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores

NAME = "analysis"
FULL_NAME = analysis_pb2.DESCRIPTOR.services_by_name["AnalysisService"].full_name


class AnalysisServicer(JobRpcs, analysis_pb2_grpc.AnalysisServiceServicer):
    GetJobResponse: Any = analysis_pb2.GetJobResponse
    ListJobsResponse: Any = analysis_pb2.ListJobsResponse
    CancelJobResponse: Any = analysis_pb2.CancelJobResponse

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    servicer = AnalysisServicer(JobStore(stores.metrics, service=NAME))
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors"),
    )
