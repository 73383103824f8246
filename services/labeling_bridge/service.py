"""The labeling bridge: the round trip with labeling platforms, run as jobs."""

from __future__ import annotations

from typing import Any

from shoal.common.jobs import JobStore
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.labeling_bridge.v1 import labeling_bridge_pb2, labeling_bridge_pb2_grpc

NAME = "labeling_bridge"
FULL_NAME = labeling_bridge_pb2.DESCRIPTOR.services_by_name["LabelingBridgeService"].full_name


class LabelingBridgeServicer(JobRpcs, labeling_bridge_pb2_grpc.LabelingBridgeServiceServicer):
    GetJobResponse: Any = labeling_bridge_pb2.GetJobResponse
    ListJobsResponse: Any = labeling_bridge_pb2.ListJobsResponse
    CancelJobResponse: Any = labeling_bridge_pb2.CancelJobResponse

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    servicer = LabelingBridgeServicer(JobStore(stores.metrics, service=NAME))
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: labeling_bridge_pb2_grpc.add_LabelingBridgeServiceServicer_to_server(servicer, server),
        stores=("metrics", "events"),
    )
