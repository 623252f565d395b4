"""Tessera's Python client: submit batch jobs to a Tessera scheduler, follow
their progress and read their results.

    import tessera

    with tessera.Client("127.0.0.1:50051") as client:
        job = client.submit_range("primes", 0, 10_000_000, shard_count=64)
        job.wait(progress=tessera.progress_bar())
        print(job.result()["primes"])   # 664579

See the README next to this package for the whole API and examples.
"""

from tessera._client import DEFAULT_ADDRESS, Client, Job
from tessera._progress import progress_bar
from tessera._types import (
    ExecutorInfo,
    FailedShard,
    JobOptions,
    JobResult,
    JobState,
    JobStatus,
    QueueStats,
    Retry,
    ShardCounts,
    ShardError,
)
from tessera.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RpcError,
    TesseraError,
    UnauthenticatedError,
    UnavailableError,
)

#: The client's version; the same as the services' (``tessera-scheduler --version``).
__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ADDRESS",
    "Client",
    "Job",
    "progress_bar",
    "ExecutorInfo",
    "FailedShard",
    "JobOptions",
    "JobResult",
    "JobState",
    "JobStatus",
    "QueueStats",
    "Retry",
    "ShardCounts",
    "ShardError",
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "JobFailedError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RpcError",
    "TesseraError",
    "UnauthenticatedError",
    "UnavailableError",
]
