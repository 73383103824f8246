"""Typed errors raised by Shoal cores, mapped to gRPC status codes in exactly one place
(:class:`shoal.common.interceptors.ErrorInterceptor`).

A core raises ``InvalidArgument("must be positive", field="frames[3].width", datapoint=...)``;
the caller gets ``INVALID_ARGUMENT`` with the message ``frames[3].width: must be positive
(dataset 'train', frame 'f-17')`` and a :class:`shoal.common.v1.common_pb2.ErrorDetail` in the
trailing metadata key ``shoal-error-bin``.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

#: the most characters of a caller's value that an error message quotes
SHOWN_CHARACTERS = 100


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters with how long it was:
    a message never echoes unbounded input back to the caller (or into the log)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes, list, tuple)) else len(text)
    return f"{text[:limit]}… ({size} long)"


@dataclass(frozen=True)
class Datapoint:
    """The datapoint an error is about."""

    dataset: str = ""
    frame_id: str = ""
    object_id: str = ""

    def describe(self) -> str:
        parts = []
        if self.dataset:
            parts.append(f"dataset {shown(self.dataset)}")
        if self.frame_id:
            parts.append(f"frame {shown(self.frame_id)}")
        if self.object_id:
            parts.append(f"object {shown(self.object_id)}")
        return ", ".join(parts)


class ShoalError(Exception):
    """Base of every error a client should see with a precise status code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, field: str = "", datapoint: Datapoint | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.datapoint = datapoint

    def describe(self) -> str:
        """The status message: field, explanation and datapoint, in words."""
        text = f"{self.field}: {self.message}" if self.field else self.message
        if self.datapoint is not None and self.datapoint.describe():
            text = f"{text} ({self.datapoint.describe()})"
        return text

    def __str__(self) -> str:
        return self.describe()


class InvalidArgument(ShoalError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class NotFound(ShoalError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(ShoalError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(ShoalError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unauthenticated(ShoalError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(ShoalError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class ResourceExhausted(ShoalError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class Unavailable(ShoalError):
    """A store or broker cannot be reached; the client may retry."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class Aborted(ShoalError):
    """A concurrent change won; the client may retry the whole operation."""

    code = grpc.StatusCode.ABORTED
    reason = "ABORTED"


class DeadlineExceeded(ShoalError):
    """The caller's deadline passed (or the server's own bound on a query) before the work ended;
    the work was stopped."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class Cancelled(ShoalError):
    """The caller cancelled the RPC; the work was stopped."""

    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class ConfigurationError(Exception):
    """Settings that cannot work, raised at start with a message that says what to set."""


class InternalError(ShoalError):
    """A bug or an unexpected failure; the client sees a generic message with a request id."""

    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"
