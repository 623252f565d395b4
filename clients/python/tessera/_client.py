"""The client: a channel to the scheduler's JobService, and the jobs it submits."""

from __future__ import annotations

import os
import time
from typing import (
    Any,
    Callable,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import grpc

from tessera import errors
from tessera._convert import build_spec, items_input
from tessera._types import (
    ExecutorInfo,
    JobOptions,
    JobResult,
    JobState,
    JobStatus,
    QueueStats,
)
from tessera.v1 import jobs_pb2, jobs_pb2_grpc

__all__ = ["Client", "Job", "DEFAULT_ADDRESS"]

#: Where the client connects without an address or $TESSERA_SCHEDULER (as the CLI).
DEFAULT_ADDRESS = "127.0.0.1:50051"
# The scheduler's default --max-message-bytes: results and item lists can be large.
_MAX_MESSAGE_BYTES = 64 << 20
# Between two watches of a job whose stream ended before the job did.
_REWATCH_PAUSE = 0.2

Progress = Callable[[JobStatus], None]
TlsCa = Union[str, "os.PathLike[str]", bytes, bool, None]
_R = TypeVar("_R")


class Client:
    """A connection to a Tessera scheduler.

    Args:
        addr: ``host:port`` of the scheduler; default ``$TESSERA_SCHEDULER``,
            else ``127.0.0.1:50051``.
        token: a bearer token, sent as ``authorization: Bearer <token>`` on
            every call (for schedulers that require one).
        tls_ca: use TLS, trusting this CA: a PEM file's path or its bytes;
            ``True`` trusts the system's roots. ``None`` (default): plaintext.
        timeout: seconds each unary call may take (``wait`` and ``watch``
            take their own).
        channel_options: extra ``grpc`` channel arguments.

    Thread-safe: one client may serve many threads. Use it as a context
    manager, or call :meth:`close`, to release the channel.
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        token: Optional[str] = None,
        tls_ca: TlsCa = None,
        *,
        timeout: float = 30.0,
        channel_options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        self.address: str = addr or os.environ.get("TESSERA_SCHEDULER") or DEFAULT_ADDRESS
        self.timeout = timeout
        self._metadata: Tuple[Tuple[str, str], ...] = ()
        if token is not None:
            if not token or token != token.strip() or "\n" in token:
                raise ValueError("token: must be non-empty, without spaces around or newlines")
            self._metadata = (("authorization", f"Bearer {token}"),)
        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            *channel_options,
        ]
        if tls_ca is None or tls_ca is False:
            self._channel = grpc.insecure_channel(self.address, options=options)
        else:
            creds = grpc.ssl_channel_credentials(root_certificates=_read_ca(tls_ca))
            self._channel = grpc.secure_channel(self.address, creds, options=options)
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"

    # -- submitting ----------------------------------------------------------

    def submit_range(
        self,
        task: str,
        start: int,
        end: int,
        *,
        shard_count: Optional[int] = None,
        shard_size: Optional[int] = None,
        params: Optional[Mapping[str, Any]] = None,
        **options: Any,
    ) -> "Job":
        """Submits a job over the integers ``[start, end)``.

        Exactly one of ``shard_count`` (shards differ in size by at most one)
        and ``shard_size`` (the last shard takes the remainder) cuts the range.
        ``params`` (a JSON object) goes to every shard's handler. ``options``
        are the fields of :class:`~tessera.JobOptions`: ``name``,
        ``aggregate``, ``default_reducer``, ``max_parallel``, ``rate_limit``,
        ``retry``, ``shard_timeout``, ``max_failed_shards``,
        ``idempotency_key``, ``concurrency_key``, ``concurrency_limit``,
        ``queue``, ``priority``, ``labels``.

        Returns the accepted :class:`Job` (usually QUEUED). Raises
        :class:`~tessera.errors.InvalidArgumentError` naming the field of a
        bad spec (nothing is created), ``AlreadyExistsError`` when the
        idempotency key belongs to a job with another spec.
        """
        spec = build_spec(task, params, JobOptions(**options))
        spec.range.start = start
        spec.range.end = end
        if shard_count is not None:
            spec.range.shard_count = shard_count
        if shard_size is not None:
            spec.range.shard_size = shard_size
        return self.submit(spec)

    def submit_items(
        self,
        task: str,
        items: Iterable[Any],
        *,
        batch_size: int,
        params: Optional[Mapping[str, Any]] = None,
        **options: Any,
    ) -> "Job":
        """Submits a job over a list of JSON values, ``batch_size`` per shard.

        Each shard's handler gets its batch (exec tasks read it as JSON lines
        on stdin). Integers beyond 2**53 raise ``ValueError`` here: JSON
        numbers travel as doubles, so pass such ids as strings. ``params`` and
        ``options`` are as for :meth:`submit_range`.
        """
        spec = build_spec(task, params, JobOptions(**options))
        spec.items.CopyFrom(items_input(items, batch_size))
        return self.submit(spec)

    def submit(self, spec: jobs_pb2.JobSpec) -> "Job":
        """Submits a ``tessera.v1.JobSpec`` as it is (every field of the API)."""
        job = self._call(self._stub.SubmitJob, jobs_pb2.SubmitJobRequest(spec=spec))
        return Job(self, JobStatus.from_proto(job))

    # -- reading -------------------------------------------------------------

    def get_job(self, job_id: str) -> "Job":
        """The job with this id (``NotFoundError`` if there is none)."""
        return Job(self, self._get(job_id))

    def list_jobs(
        self,
        *,
        state: Union[JobState, str, None] = None,
        queue: str = "",
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 100,
    ) -> Iterator["Job"]:
        """Jobs, newest first, fetched a page at a time as you iterate.

        Filters: ``state`` (e.g. ``"running"`` or ``JobState.RUNNING``),
        ``queue``, and ``labels`` (a job must carry all of them).
        """
        request = jobs_pb2.ListJobsRequest(page_size=page_size, queue=queue)
        if state is not None:
            request.state = JobState.parse(state).value
        request.labels.update(labels or {})
        while True:
            response = self._call(self._stub.ListJobs, request)
            for job in response.jobs:
                yield Job(self, JobStatus.from_proto(job))
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def watch(self, job_id: str, timeout: Optional[float] = None) -> Iterator[JobStatus]:
        """Progress events of a job (a few a second at most) until it finishes;
        the last one carries the end state. ``timeout`` bounds the whole
        stream (``DeadlineExceededError``)."""
        for event in self._watch_events(job_id, timeout):
            yield JobStatus.from_proto(event.job)

    def _watch_events(
        self, job_id: str, timeout: Optional[float] = None
    ) -> Iterator[jobs_pb2.JobEvent]:
        """WatchJob's raw events: the end event of a job with a result carries it."""
        call = self._stub.WatchJob(
            jobs_pb2.WatchJobRequest(job_id=job_id), timeout=timeout, metadata=self._metadata
        )
        try:
            yield from call
        except grpc.RpcError as e:
            raise errors.from_grpc(e, self.address) from e
        finally:
            call.cancel()

    def get_result(self, job_id: str) -> JobResult:
        """The persisted result (latest version) of a SUCCEEDED or PARTIAL job;
        ``FailedPreconditionError`` before that."""
        response = self._call(self._stub.GetResult, jobs_pb2.GetResultRequest(job_id=job_id))
        return JobResult.from_proto(response)

    def executors(self) -> List[ExecutorInfo]:
        """The connected executors, with their versions, tasks, queues and slots."""
        response = self._call(self._stub.ListExecutors, jobs_pb2.ListExecutorsRequest())
        return [ExecutorInfo.from_proto(e) for e in response.executors]

    def queue_stats(self) -> QueueStats:
        """Queued and running jobs, pending shards, executors and slots."""
        response = self._call(self._stub.GetQueueStats, jobs_pb2.GetQueueStatsRequest())
        return QueueStats.from_proto(response)

    # -- controlling ---------------------------------------------------------

    def cancel(self, job_id: str) -> JobStatus:
        """Cancels a queued or running job; a finished job comes back unchanged."""
        job = self._call(self._stub.CancelJob, jobs_pb2.CancelJobRequest(job_id=job_id))
        return JobStatus.from_proto(job)

    def retry_failed_shards(self, job_id: str) -> JobStatus:
        """Re-runs only the failed shards of a PARTIAL or FAILED job, keeping the
        others' results; the job persists a new result version when done."""
        job = self._call(
            self._stub.RetryFailedShards, jobs_pb2.RetryFailedShardsRequest(job_id=job_id)
        )
        return JobStatus.from_proto(job)

    def update_job(
        self,
        job_id: str,
        *,
        max_parallel: Optional[int] = None,
        rate_limit: Optional[float] = None,
    ) -> JobStatus:
        """Changes ``max_parallel`` and/or ``rate_limit`` of a queued or running job."""
        request = jobs_pb2.UpdateJobRequest(job_id=job_id)
        if max_parallel is not None:
            request.update.max_parallel = max_parallel
            request.update_mask.paths.append("max_parallel")
        if rate_limit is not None:
            request.update.rate_limit = rate_limit
            request.update_mask.paths.append("rate_limit")
        if not request.update_mask.paths:
            raise ValueError("update_job: give max_parallel and/or rate_limit")
        return JobStatus.from_proto(self._call(self._stub.UpdateJob, request))

    # -- plumbing ------------------------------------------------------------

    def _get(self, job_id: str) -> JobStatus:
        job = self._call(self._stub.GetJob, jobs_pb2.GetJobRequest(job_id=job_id))
        return JobStatus.from_proto(job)

    def _call(self, method: Callable[..., _R], request: Any) -> _R:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise errors.from_grpc(e, self.address) from e


class Job:
    """A submitted job: its id, its last known status, and what can be done with it.

    ``status`` is refreshed by :meth:`refresh`, :meth:`watch`, :meth:`wait` and
    the control methods. Iterating over a job watches it.
    """

    def __init__(self, client: Client, status: JobStatus) -> None:
        self.client = client
        self.id: str = status.id
        self.status: JobStatus = status
        # The result carried by the end event last watched (none when the
        # scheduler left it out: too large, or not readable).
        self._result: Optional[JobResult] = None

    def __repr__(self) -> str:
        return f"Job({self.id!r}, {self.status.state.name})"

    @property
    def state(self) -> JobState:
        """The state at the last refresh."""
        return self.status.state

    def refresh(self) -> JobStatus:
        """Fetches the job's current status (``GetJob``)."""
        self.status = self.client._get(self.id)
        return self.status

    def watch(self, timeout: Optional[float] = None) -> Iterator[JobStatus]:
        """Progress events until the job finishes (see :meth:`Client.watch`)."""
        for event in self.client._watch_events(self.id, timeout=timeout):
            self.status = JobStatus.from_proto(event.job)
            if event.HasField("result") and not event.result.content_omitted:
                self._result = JobResult.from_proto(event.result)
            yield self.status

    def __iter__(self) -> Iterator[JobStatus]:
        return self.watch()

    def wait(
        self, progress: Optional[Progress] = None, timeout: Optional[float] = None
    ) -> JobStatus:
        """Blocks until the job finishes and returns its final status.

        ``progress`` is called with each progress event (a :class:`JobStatus`),
        the last one included; :func:`tessera.progress_bar` draws a bar.
        ``timeout`` (seconds) raises ``DeadlineExceededError``; the job keeps
        running. Does not raise for FAILED or CANCELLED: look at ``state``,
        or call :meth:`result`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                for status in self.watch(timeout=remaining):
                    if progress is not None:
                        progress(status)
            except errors.DeadlineExceededError:
                if deadline is None:
                    raise
                raise errors.DeadlineExceededError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"job {self.id} did not finish within {timeout}s "
                    f"(state {self.status.state.name}); it keeps running",
                ) from None
            if self.status.finished:
                return self.status
            # The stream ended before the job did (the scheduler stopping): look
            # once, then watch again.
            if self.refresh().finished:
                if progress is not None:
                    progress(self.status)
                return self.status
            time.sleep(_REWATCH_PAUSE)

    def result(self, timeout: Optional[float] = None) -> dict:
        """Waits for the job, then returns its result as a dict, numbers exact.

        Raises :class:`~tessera.errors.JobFailedError` when the job ended
        FAILED or CANCELLED. A PARTIAL job's result folds the shards that
        succeeded (``status.failed_shards`` lists the others).
        """
        return self.result_info(timeout).value

    def result_info(self, timeout: Optional[float] = None) -> JobResult:
        """Like :meth:`result`, with the location, sha256 and version of the
        persisted file and its exact JSON text."""
        status = self.status if self.status.finished else self.wait(timeout=timeout)
        if not status.state.has_result:
            raise errors.JobFailedError(status)
        # The end event brought it: no GetResult call.
        if self._result is not None and self._result.version == status.result_version:
            return self._result
        return self.client.get_result(self.id)

    def cancel(self) -> JobStatus:
        """Cancels the job (if it has not finished)."""
        self.status = self.client.cancel(self.id)
        return self.status

    def retry_failed_shards(self) -> JobStatus:
        """Re-runs the failed shards; :meth:`wait` again for the new result version."""
        self.status = self.client.retry_failed_shards(self.id)
        return self.status

    def update(
        self, *, max_parallel: Optional[int] = None, rate_limit: Optional[float] = None
    ) -> JobStatus:
        """Changes the job's ``max_parallel`` and/or ``rate_limit`` while it runs."""
        self.status = self.client.update_job(
            self.id, max_parallel=max_parallel, rate_limit=rate_limit
        )
        return self.status


def _read_ca(tls_ca: Union[str, "os.PathLike[str]", bytes, bool]) -> Optional[bytes]:
    if tls_ca is True:
        return None  # gRPC's default roots
    if isinstance(tls_ca, bytes):
        return tls_ca
    with open(tls_ca, "rb") as f:
        return f.read()
