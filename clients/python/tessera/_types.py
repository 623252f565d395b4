"""Plain Python views of the scheduler's messages (no protobuf needed to read them)."""

from __future__ import annotations

import datetime
import enum
import json
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar, Union

from google.protobuf import timestamp_pb2

from tessera.v1 import jobs_pb2

__all__ = [
    "JobState",
    "ShardCounts",
    "ShardError",
    "FailedShard",
    "JobStatus",
    "JobResult",
    "Retry",
    "JobOptions",
    "ExecutorInfo",
    "QueueStats",
]

Seconds = Union[float, int, datetime.timedelta]


class JobState(enum.Enum):
    """A job's state. QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED | PARTIAL."""

    UNSPECIFIED = jobs_pb2.JOB_STATE_UNSPECIFIED
    #: Accepted; no shard dispatched yet (``JobStatus.message`` says what it waits for).
    QUEUED = jobs_pb2.JOB_STATE_QUEUED
    #: At least one shard dispatched; the result is not persisted yet.
    RUNNING = jobs_pb2.JOB_STATE_RUNNING
    #: Every shard succeeded and the folded result is persisted.
    SUCCEEDED = jobs_pb2.JOB_STATE_SUCCEEDED
    #: A shard failed (fail-fast), or the results could not be folded or persisted.
    FAILED = jobs_pb2.JOB_STATE_FAILED
    #: Cancelled before it finished.
    CANCELLED = jobs_pb2.JOB_STATE_CANCELLED
    #: Finished with failed shards under ``max_failed_shards``; the result folds the others.
    PARTIAL = jobs_pb2.JOB_STATE_PARTIAL

    @property
    def finished(self) -> bool:
        """True for the end states (nothing will change any more, bar a retry)."""
        return self in _FINISHED

    @property
    def has_result(self) -> bool:
        """True when a result is persisted: SUCCEEDED and PARTIAL."""
        return self in (JobState.SUCCEEDED, JobState.PARTIAL)

    @classmethod
    def parse(cls, value: Union["JobState", str, int]) -> "JobState":
        """A state from itself, its name (``"running"``, ``"JOB_STATE_RUNNING"``) or number."""
        if isinstance(value, JobState):
            return value
        if isinstance(value, str):
            name = value.upper()
            if name.startswith("JOB_STATE_"):
                name = name[len("JOB_STATE_"):]
            try:
                return cls[name]
            except KeyError:
                names = ", ".join(state_names())
                raise ValueError(f"unknown job state {value!r} (one of {names})") from None
        return cls(value)


_FINISHED = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PARTIAL}
)


_T = TypeVar("_T")


def _same_names(cls: Type[_T], message: Any) -> _T:
    """A dataclass whose fields are scalar fields of `message` with the same names."""
    return cls(**{f.name: getattr(message, f.name) for f in fields(cls)})


def _time(ts: timestamp_pb2.Timestamp) -> Optional[datetime.datetime]:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class ShardCounts:
    """How many shards a job has, by what they are doing."""

    total: int = 0
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass(frozen=True)
class ShardError:
    """One of the first few shard errors of a job."""

    shard: int
    start: int
    end: int
    executor: str
    message: str


@dataclass(frozen=True)
class FailedShard:
    """A shard out of attempts (a PARTIAL or FAILED job lists them)."""

    shard: int
    start: int
    end: int
    attempts: int
    last_error: str


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job: what ``GetJob`` returns and each ``WatchJob`` event carries.

    ``proto`` is the ``tessera.v1.Job`` message itself, for fields not copied here
    (the whole spec).
    """

    id: str
    name: str
    task: str
    queue: str
    priority: int
    labels: Dict[str, str]
    state: JobState
    shards: ShardCounts
    items_done: int
    items_total: int
    message: str
    errors: Tuple[ShardError, ...]
    failed_shards: Tuple[FailedShard, ...]
    result_location: str
    result_sha256: str
    result_version: int
    create_time: Optional[datetime.datetime]
    start_time: Optional[datetime.datetime]
    end_time: Optional[datetime.datetime]
    proto: jobs_pb2.Job = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the job is SUCCEEDED, FAILED, CANCELLED or PARTIAL."""
        return self.state.finished

    @property
    def fraction_done(self) -> float:
        """Progress in [0, 1]: items done over items in all (shards when items are unknown)."""
        if self.items_total > 0:
            return min(1.0, self.items_done / self.items_total)
        if self.shards.total > 0:
            return (self.shards.succeeded + self.shards.failed) / self.shards.total
        return 1.0 if self.finished else 0.0

    @classmethod
    def from_proto(cls, job: jobs_pb2.Job) -> "JobStatus":
        return cls(
            id=job.id,
            name=job.spec.name,
            task=job.spec.task,
            queue=job.spec.queue or "default",
            priority=job.spec.priority,
            labels=dict(job.spec.labels),
            state=JobState(job.state),
            shards=_same_names(ShardCounts, job.shards),
            items_done=job.items_done,
            items_total=job.items_total,
            message=job.message,
            errors=tuple(_same_names(ShardError, e) for e in job.errors),
            failed_shards=tuple(_same_names(FailedShard, f) for f in job.failed_shards),
            result_location=job.result_location,
            result_sha256=job.result_sha256,
            result_version=job.result_version,
            create_time=_time(job.create_time),
            start_time=_time(job.start_time),
            end_time=_time(job.end_time),
            proto=job,
        )


@dataclass(frozen=True)
class JobResult:
    """A job's persisted result.

    ``value`` is ``json`` parsed with :func:`json.loads`, so integers are exact
    at any size (the ``Struct`` the API also returns holds doubles, which lose
    integers above 2**53). ``json`` is the exact persisted bytes as text; parse
    it yourself for other number types, e.g. ``json.loads(r.json,
    parse_float=decimal.Decimal)``.
    """

    job_id: str
    value: Dict[str, Any]
    json: str
    location: str
    sha256: str
    version: int

    @property
    def metadata(self) -> Dict[str, Any]:
        """The ``_metadata`` the scheduler adds: job id, shard counts, times, executors."""
        return self.value.get("_metadata", {})

    @classmethod
    def from_proto(cls, r: jobs_pb2.GetResultResponse) -> "JobResult":
        return cls(
            job_id=r.job_id,
            value=json.loads(r.result_json),
            json=r.result_json,
            location=r.location,
            sha256=r.sha256,
            version=r.version,
        )


@dataclass(frozen=True)
class Retry:
    """How a failed shard is retried; ``None`` keeps the scheduler's default.

    Attempt n + 1 waits ``initial_backoff * multiplier**(n - 1)`` (at most
    ``max_backoff``), scaled by a random factor in ``[1 - jitter, 1 + jitter]``.
    Durations are seconds or :class:`datetime.timedelta`.
    """

    #: Attempts per shard, the first included (default 3, at most 100).
    max_attempts: Optional[int] = None
    #: Wait before the second attempt (default 1 s).
    initial_backoff: Optional[Seconds] = None
    #: Never wait longer (default 60 s).
    max_backoff: Optional[Seconds] = None
    #: Growth of the wait per attempt (default 2).
    multiplier: Optional[float] = None
    #: Randomness of each wait (default 0.2).
    jitter: Optional[float] = None


@dataclass(frozen=True)
class JobOptions:
    """What a job may say besides its task, params and input.

    ``Client.submit_range`` and ``Client.submit_items`` take these as keyword
    arguments (``idempotency_key="import-42"``); an unknown keyword is a
    ``TypeError``. Zero and empty values keep the scheduler's defaults.
    """

    #: A name for people (at most 200 bytes).
    name: str = ""
    #: Per-field reducers: ``{"codes": "merge", "stats.count": "sum"}``
    #: (auto, sum, merge, concat, min, max, first).
    aggregate: Mapping[str, str] = field(default_factory=dict)
    #: Reducer for the other fields (default ``auto``).
    default_reducer: str = ""
    #: At most this many shards in flight across the cluster (0: no cap).
    max_parallel: int = 0
    #: At most this many shards started per second across the cluster (0: no limit).
    rate_limit: float = 0.0
    #: Retries of failed shards.
    retry: Optional[Retry] = None
    #: A shard running longer is cancelled and counts as a failed (retryable) attempt.
    shard_timeout: Optional[Seconds] = None
    #: 0 (default): the first shard out of attempts fails the job. N > 0: continue
    #: while at most N shards have failed; the job ends PARTIAL.
    max_failed_shards: int = 0
    #: Submitting again with the same key and spec returns the same job, never a
    #: second one; with another spec it raises AlreadyExistsError.
    idempotency_key: str = ""
    #: At most ``concurrency_limit`` (default 1) jobs with this key run at once;
    #: later ones wait QUEUED, in submission order.
    concurrency_key: str = ""
    concurrency_limit: int = 0
    #: The queue (default ``default``); only executors serving it run the job.
    queue: str = ""
    #: Within a queue, higher priorities dispatch first (-1000..1000).
    priority: int = 0
    #: Labels to filter ``list_jobs`` by.
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutorInfo:
    """A connected executor, as ``ListExecutors`` reports it."""

    id: str
    name: str
    version: str
    tasks: Tuple[str, ...]
    queues: Tuple[str, ...]
    slots: int
    assigned: int
    draining: bool
    shards_completed: int
    connect_time: Optional[datetime.datetime]
    last_seen_time: Optional[datetime.datetime]

    @classmethod
    def from_proto(cls, e: jobs_pb2.Executor) -> "ExecutorInfo":
        return cls(
            id=e.id,
            name=e.name,
            version=e.version,
            tasks=tuple(e.tasks),
            queues=tuple(e.queues),
            slots=e.slots,
            assigned=e.assigned,
            draining=e.draining,
            shards_completed=e.shards_completed,
            connect_time=_time(e.connect_time),
            last_seen_time=_time(e.last_seen_time),
        )


@dataclass(frozen=True)
class QueueStats:
    """Cluster-wide queue depth and capacity (``GetQueueStats``)."""

    jobs_queued: int
    jobs_running: int
    shards_pending: int
    shards_running: int
    executors: int
    slots_total: int
    slots_busy: int

    @classmethod
    def from_proto(cls, r: jobs_pb2.GetQueueStatsResponse) -> "QueueStats":
        return _same_names(cls, r)


def state_names() -> List[str]:
    """The lower-case names of the states a filter may name."""
    return [s.name.lower() for s in JobState if s is not JobState.UNSPECIFIED]
