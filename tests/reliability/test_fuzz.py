"""A generated fuzz run over every RPC: random requests built from each method's request
descriptor (a fixed seed, a few thousand messages, extreme numbers, odd strings, unknown enums,
nested messages), sent with a key scoped to a project that holds real data. No answer may be
INTERNAL or UNKNOWN (each error is the caller's, with its proper status), and the server stays
SERVING."""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from shoal.analysis.v1 import analysis_pb2
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge.v1 import labeling_bridge_pb2
from shoal.sampler.v1 import sampler_pb2
from shoal.sdk import UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import Running, finish_job, start_server, wait_for

#: the fixed seed of make test; SHOAL_FUZZ_SEED and SHOAL_FUZZ_MESSAGES explore further by hand
SEED = int(os.environ.get("SHOAL_FUZZ_SEED", "20261202"))
MESSAGES_PER_METHOD = int(os.environ.get("SHOAL_FUZZ_MESSAGES", "50"))
PROJECT = "fuzz"
#: seconds a call may take
TIMEOUT = float(os.environ.get("SHOAL_FUZZ_TIMEOUT", "60"))
NAMES = ["d", "pool", "m", "e", "seg", "train", "f1", "f2", "missing"]
FRAMES = [f"f{i}" for i in range(30)] + [f"p{i}" for i in range(10)]
FIELD_NAMES = ["label_class", "predicted_class", "confidence", "capture_time", "frame_id", "split", "segment",
               "metadata.camera", "metadata.n", "correct", "loss", "change", "nope"]  # fmt: skip
STRINGS = ["", "x", "é🙂", "\x00a", "' OR 1=1 --", "{p0:String}", "a" * 300, "../../etc/passwd", "%s%n", " "]
INTS = [0, 1, -1, 2, 3, 7, 100, 1000, 2**31 - 1, -(2**31), 2**53, 2**63 - 1, -(2**63)]
FLOATS = [0.0, 0.5, 1.0, -1.0, 2.5, 1e-9, 1e308, -1e308, math.nan, math.inf, -math.inf]
TIMES = [0, 1_700_000_000, -2_208_988_801, 10_413_792_000, 253_402_300_799, -62_135_596_800, 10**12, -(10**12)]
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


class Generator:
    """Random messages of a descriptor, reproducible from the seed."""

    def __init__(self, seed: int, job_ids: list[str] | None = None) -> None:
        self.rng = random.Random(seed)
        #: names that exist on the server, by the field that names them, so requests get past lookups
        self.known = {
            "project": [PROJECT], "dataset": ["d", "pool"], "pool_dataset": ["pool", "d"], "labeled_dataset": ["d"],
            "inference_set": ["m"], "baseline_inference_set": ["m"], "candidate_inference_set": ["m"],
            "preannotation_inference_set": ["m"], "uncertainty_inference_set": ["m"],
            "embedding_space": ["e"], "seed_embedding_space": ["e"], "space": ["e"],
            "segment": ["seg"], "seed_segment": ["seg"], "exclude_segments": ["seg"], "object_segment": ["seg"],
            "frame_id": FRAMES, "frame_ids": FRAMES, "accepted": FRAMES, "rejected": FRAMES,
            "add_frame_ids": FRAMES, "remove_frame_ids": FRAMES,
            "job_id": job_ids or [], "campaign_job_id": job_ids or [], "neighbor_job_id": job_ids or [],
            "field": FIELD_NAMES, "group_by": FIELD_NAMES, "metric": ["accuracy", "recall", "f1", "precision"],
            "time_bucket": ["hour", "day", "week", "month", "year"], "platform": ["label_studio"],
            "change": ["improved", "regressed", "unchanged"],
        }  # fmt: skip

    #: half of the messages are plausible (names that exist, small numbers, known enum values), so that
    #: requests get past the first check and reach the deeper code; the other half are hostile
    mild = False

    def string(self, field: FieldDescriptor) -> str:
        known = self.known.get(field.name)
        if known and (self.mild or self.rng.random() < 0.75):
            return self.rng.choice(known)
        if self.mild or self.rng.random() < 0.5:
            return self.rng.choice(NAMES)
        return self.rng.choice(STRINGS)

    def scalar(self, field: FieldDescriptor) -> Any:
        t = field.type
        if t == FieldDescriptor.TYPE_STRING:
            return self.string(field)
        if t == FieldDescriptor.TYPE_BYTES:
            return self.rng.randbytes(self.rng.choice([0, 3, 4, 16, 64]))
        if t == FieldDescriptor.TYPE_BOOL:
            return self.rng.random() < 0.5
        if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return self.rng.choice([0.0, 0.25, 0.5, 0.9, 1.0] if self.mild else FLOATS)
        if t == FieldDescriptor.TYPE_ENUM:
            values = [v.number for v in field.enum_type.values]
            return self.rng.choice(values[1:] or values if self.mild else [*values, *values, 99, -1])
        lo, hi = _RANGES[t]
        return min(hi, max(lo, self.rng.choice([0, 1, 2, 3, 5, 10, 50] if self.mild else INTS)))

    def fill(self, message: Message, depth: int = 0) -> Message:
        descriptor: Descriptor = message.DESCRIPTOR
        if depth == 0:
            self.mild = self.rng.random() < 0.5
        if descriptor.full_name == "google.protobuf.Timestamp":
            message.seconds = self.rng.choice(TIMES[:2] if self.mild else TIMES)  # type: ignore[attr-defined]
            message.nanos = self.rng.choice([0, 500_000_000, 999_999_999])  # type: ignore[attr-defined]
            return message
        for field in descriptor.fields:
            if self.rng.random() < (0.35 if depth else 0.2):
                continue  # left unset
            if field.containing_oneof is not None and message.WhichOneof(field.containing_oneof.name):
                continue
            self._set(message, field, depth)
        return message

    def _set(self, message: Message, field: FieldDescriptor, depth: int) -> None:
        container = getattr(message, field.name)
        if field.is_repeated:
            n = self.rng.choice([0, 1, 1, 2, 3])
            if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
                for _ in range(n):
                    key = self.scalar(field.message_type.fields_by_name["key"])
                    value_field = field.message_type.fields_by_name["value"]
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                        self.fill(container[key], depth + 1)
                    else:
                        container[key] = self.scalar(value_field)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < 4:
                    for _ in range(n):
                        self.fill(container.add(), depth + 1)
            else:
                container.extend(self.scalar(field) for _ in range(n))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < 4:
                self.fill(container, depth + 1)
        else:
            setattr(message, field.name, self.scalar(field))


def _methods() -> list[tuple[str, MethodDescriptor]]:
    out = []
    for module in (pb, analysis_pb2, sampler_pb2, labeling_bridge_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            out.extend((f"/{service.full_name}/{m.name}", m) for m in service.methods)
    return out


def _message_class(descriptor: Descriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Running]:

    settings = server_settings(tmp_path_factory.mktemp("fuzz"), chdb_path, "t_fuzz")
    running = start_server(settings)
    with running.client(running.admin_key) as c:
        space = pb.EmbeddingSpace(name="e", dimension=4, metric=pb.DISTANCE_METRIC_L2,
                                  level=pb.EMBEDDING_LEVEL_FRAME, model_name="m", model_version="1")  # fmt: skip
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=PROJECT, task_type=pb.TASK_TYPE_CLASSIFICATION, embedding_spaces=[space],
            classes=[pb.ClassDef(id=i, name=f"c{i}") for i in range(3)])))  # fmt: skip
        for name, kind in (("d", pb.DATASET_KIND_LABELED), ("pool", pb.DATASET_KIND_UNLABELED_POOL)):
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
                name=name, kind=kind, splits=["train"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name="m", dataset="d", model_name="m", model_version="1")))  # fmt: skip
        rng = np.random.default_rng(0)
        n = 30
        result = c.upload(PROJECT, "d", UploadColumns(
            frame_ids=[f"f{i}" for i in range(n)], splits=["train"] * n,
            metadata=[{"camera": "front" if i % 2 else "back", "n": float(i)} for i in range(n)],
            class_ids=rng.integers(0, 3, n).tolist(), inference_set="m",
            probabilities=rng.dirichlet(np.ones(3), n).astype(np.float32)), progress=False)  # fmt: skip
        c.wait_for_upload(PROJECT, result.upload_id)
        from shoal.analysis.v1 import analysis_pb2 as apb

        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=PROJECT, segment=apb.Segment(
            name="seg", dataset="d", kind=apb.SEGMENT_KIND_ISSUE), frame_ids=["f1", "f2"]))  # fmt: skip
        result = c.upload(PROJECT, "pool", UploadColumns(frame_ids=[f"p{i}" for i in range(10)],
                                                         splits=["train"] * 10), progress=False)  # fmt: skip
        c.wait_for_upload(PROJECT, result.upload_id)
        issues = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=PROJECT, inference_set="m")).job
        finish_job(c, PROJECT, issues)
        # a job that fails (the space holds no vectors): its id reaches the paths of unfinished jobs
        failed = c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
            project=PROJECT, dataset="d", embedding_space="e")).job  # fmt: skip
        running.job_ids = [issues.job_id, failed.job_id]  # type: ignore[attr-defined]
    yield running
    running.server.stop(grace=1)


def test_no_generated_request_gets_internal_or_unknown(server: Running) -> None:
    gen = Generator(SEED, server.job_ids)  # type: ignore[attr-defined]
    seen: Counter[str] = Counter()
    failures: list[str] = []
    slow: list[str] = []
    channel = grpc.insecure_channel(server.target)
    metadata = (("authorization", f"Bearer {server.admin_key}"),)
    sent = 0
    for method, descriptor in _methods():
        request_class = _message_class(descriptor.input_type)
        response_class = _message_class(descriptor.output_type)
        if descriptor.client_streaming:
            call = channel.stream_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_class.FromString)  # fmt: skip
        elif descriptor.server_streaming:
            streamed = channel.unary_stream(method, request_serializer=lambda m: m.SerializeToString(),
                                            response_deserializer=response_class.FromString)  # fmt: skip

            def call(argument: Any, streamed: Any = streamed, **kwargs: Any) -> list[Any]:
                return list(streamed(argument, **kwargs))
        else:
            call = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=response_class.FromString)  # fmt: skip
        for i in range(MESSAGES_PER_METHOD):
            request = gen.fill(request_class())
            argument: Any = (
                iter([request, gen.fill(request_class())][: 1 + i % 2]) if descriptor.client_streaming else request
            )
            sent += 1
            try:
                call(argument, metadata=metadata, timeout=TIMEOUT)
                seen["OK"] += 1
            except grpc.RpcError as err:
                seen[err.code().name] += 1
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    slow.append(f"{method} #{i}")
                if err.code() in BAD_CODES:
                    failures.append(f"{method} #{i}: {err.code().name} {err.details()} <- {request}")
    channel.close()
    print("fuzz statuses:", dict(seen), "deadline exceeded:", slow)
    assert sent >= 63 * MESSAGES_PER_METHOD
    assert not failures, f"{len(failures)} of {sent} requests failed with INTERNAL/UNKNOWN:\n" + "\n".join(
        failures[:20]
    )
    assert seen["INVALID_ARGUMENT"] > 0 and seen["OK"] > 0, seen
    with server.client() as c:
        wait_for(lambda: c.health_status() == "SERVING", what="the server to stay SERVING")
