"""Errors raised by the Tessera client.

Every failed call raises a subclass of :class:`TesseraError`. A call the
scheduler refused raises an :class:`RpcError` subclass named after the gRPC
status code, whose ``str()`` starts with that code, e.g.
``INVALID_ARGUMENT: spec.range.end must be greater than spec.range.start
(got start=5, end=5)``. Catch the specific class for what your program can
handle (``AlreadyExistsError`` for an idempotency key reused with another
spec, ``NotFoundError`` for an unknown job id) and ``TesseraError`` for the
rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Type

import grpc

if TYPE_CHECKING:  # pragma: no cover
    from tessera._types import JobStatus

__all__ = [
    "TesseraError",
    "RpcError",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "FailedPreconditionError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "UnavailableError",
    "DeadlineExceededError",
    "JobFailedError",
]


class TesseraError(Exception):
    """Base class of every error this package raises."""


class RpcError(TesseraError):
    """The scheduler answered a call with a gRPC error status.

    Attributes:
        code: the ``grpc.StatusCode``.
        code_name: its name, e.g. ``"INVALID_ARGUMENT"``.
        details: the scheduler's message, which names the field or job.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.code_name: str = code.name
        self.details = details
        super().__init__(f"{self.code_name}: {details}")


class InvalidArgumentError(RpcError, ValueError):
    """INVALID_ARGUMENT: the spec (or another argument) is invalid; the message
    names the field. Nothing was created."""


class NotFoundError(RpcError, LookupError):
    """NOT_FOUND: no such job."""


class AlreadyExistsError(RpcError):
    """ALREADY_EXISTS: the idempotency key belongs to a job with another spec."""


class FailedPreconditionError(RpcError):
    """FAILED_PRECONDITION: not possible in the job's state (e.g. the result of
    a running job, or retrying a job without failed shards)."""


class ResourceExhaustedError(RpcError):
    """RESOURCE_EXHAUSTED: a limit was hit (message size, the scheduler refusing
    new work while its store is failing)."""


class UnauthenticatedError(RpcError):
    """UNAUTHENTICATED: the scheduler wants a (valid) bearer token."""


class PermissionDeniedError(RpcError):
    """PERMISSION_DENIED: the token's role may not do this."""


class UnavailableError(RpcError, ConnectionError):
    """UNAVAILABLE: the scheduler cannot be reached (or is not serving). Safe
    to retry; submissions with an idempotency key never run twice."""


class DeadlineExceededError(RpcError, TimeoutError):
    """DEADLINE_EXCEEDED: the call (or a wait) took longer than its timeout."""


_BY_CODE: Dict[grpc.StatusCode, Type[RpcError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def from_grpc(error: grpc.RpcError, address: Optional[str] = None) -> RpcError:
    """The :class:`RpcError` subclass for a gRPC error (``RpcError`` itself for
    codes without a class of their own). For UNAVAILABLE the message ends
    with the scheduler's address."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    if code is grpc.StatusCode.UNAVAILABLE and address:
        details = f"{details} (scheduler at {address})"
    return _BY_CODE.get(code, RpcError)(code, details)


class JobFailedError(TesseraError):
    """The job ended FAILED or CANCELLED, so it has no result.

    Attributes:
        status: the job's final :class:`~tessera.JobStatus` (its ``message``,
            ``errors`` and ``failed_shards`` say why).
    """

    def __init__(self, status: "JobStatus") -> None:
        self.status = status
        why = f": {status.message}" if status.message else ""
        super().__init__(f"job {status.id} {status.state.name}{why}")
