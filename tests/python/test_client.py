"""The Python client against a real scheduler and executors (conftest.py)."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path
from typing import List

import pytest

import tessera
from conftest import Cluster, version_tag_of, EXECUTOR_BIN
from tessera import JobState

# Primes below 10^6, as a single process counts them.
PRIMES_BELOW_10_6 = 78498


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_range_job_waits_with_progress_and_returns_the_persisted_result(
    client: tessera.Client,
) -> None:
    job = client.submit_range("primes", 0, 1_000_000, shard_count=16, name="py-primes")
    assert job.id and job.state in (JobState.QUEUED, JobState.RUNNING)
    seen: List[tessera.JobStatus] = []
    final = job.wait(progress=seen.append, timeout=60)
    assert final.state is JobState.SUCCEEDED
    assert seen and seen[-1].finished and seen[-1].shards.succeeded == 16
    assert [s.fraction_done for s in seen] == sorted(s.fraction_done for s in seen)

    assert job.result() == {"primes": PRIMES_BELOW_10_6, "_metadata": job.result()["_metadata"]}
    info = job.result_info()
    assert info.value["primes"] == PRIMES_BELOW_10_6
    assert info.metadata["job_id"] == job.id and info.metadata["name"] == "py-primes"
    assert info.version == 1
    # The persisted file holds exactly the bytes the client parsed.
    data = Path(info.location).read_bytes()
    assert data.decode() == info.json
    assert hashlib.sha256(data).hexdigest() == info.sha256 == final.result_sha256


def test_the_result_comes_with_the_end_event_without_a_get_result_call(
    client: tessera.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = client.submit_range("noop", 0, 10, shard_count=2)

    def no_get_result(job_id: str) -> tessera.JobResult:
        raise AssertionError("GetResult was called: the end event carries the result")

    monkeypatch.setattr(client, "get_result", no_get_result)
    info = job.result_info(timeout=60)
    assert info.value["items"] == 10 and info.metadata["job_id"] == job.id
    assert hashlib.sha256(info.json.encode()).hexdigest() == info.sha256
    assert info.version == job.status.result_version == 1


def test_results_keep_integers_beyond_2_53_exact(client: tessera.Client) -> None:
    # noop returns {"items": shard size}; the sum is 2**53 + 1, which a double
    # (the Struct in GetResult.result) would round to 2**53.
    end = 2**53 + 1
    job = client.submit_range("noop", 0, end, shard_count=2)
    result = job.result(timeout=60)
    assert result["items"] == end
    assert isinstance(result["items"], int)
    assert float(end) != end  # what the Struct would have said instead


def test_iterating_a_job_yields_progress_events_until_it_finishes(
    client: tessera.Client,
) -> None:
    job = client.submit_range("sleep", 0, 40, shard_size=5, params={"ms": 25})
    events = list(job)
    assert len(events) >= 2, events
    assert events[-1].state is JobState.SUCCEEDED and events[-1].items_done == 40
    assert all(not e.finished for e in events[:-1])
    assert job.status is events[-1]


def test_items_job_runs_in_batches_and_concatenates_in_order(client: tessera.Client) -> None:
    items = list(range(1, 11))
    job = client.submit_items(
        "square", items, batch_size=3, aggregate={"squares": "concat"}, name="py-items"
    )
    result = job.result(timeout=60)
    assert result["squares"] == [i * i for i in items]
    assert job.status.shards.total == 4  # 3 + 3 + 3 + 1
    assert job.status.proto.spec.items.item_count == 10


def test_items_beyond_2_53_are_refused_before_anything_is_sent(
    client: tessera.Client,
) -> None:
    label = unique("big")
    with pytest.raises(ValueError, match=r"items\[1\]\.id: 9007199254740993 is beyond 2\*\*53"):
        client.submit_items(
            "square", [{"id": 1}, {"id": 2**53 + 1}], batch_size=1, labels={"run": label}
        )
    with pytest.raises(TypeError, match=r"params\.when: datetime is not a JSON value"):
        import datetime

        client.submit_range("noop", 0, 1, shard_count=1, params={"when": datetime.datetime.now()})
    assert list(client.list_jobs(labels={"run": label})) == []


def test_an_idempotency_key_returns_the_same_job_and_refuses_another_spec(
    client: tessera.Client,
) -> None:
    key = unique("import")
    first = client.submit_items("square", [1, 2, 3], batch_size=2, idempotency_key=key)
    again = client.submit_items("square", [1, 2, 3], batch_size=2, idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(tessera.AlreadyExistsError) as refused:
        client.submit_items("square", [1, 2, 3, 4], batch_size=2, idempotency_key=key)
    assert refused.value.code_name == "ALREADY_EXISTS"
    assert str(refused.value).startswith("ALREADY_EXISTS: ")
    assert first.id in str(refused.value)
    first.wait(timeout=60)


def test_a_concurrency_key_runs_one_job_at_a_time(client: tessera.Client) -> None:
    key = unique("imports")
    first = client.submit_range(
        "sleep", 0, 8, shard_count=2, params={"ms": 150}, concurrency_key=key
    )
    second = client.submit_range(
        "sleep", 0, 2, shard_count=1, params={"ms": 1}, concurrency_key=key
    )
    waiting = second.refresh()
    assert waiting.state is JobState.QUEUED
    assert first.id in waiting.message and key in waiting.message
    assert first.wait(timeout=60).state is JobState.SUCCEEDED
    done = second.wait(timeout=60)
    assert done.state is JobState.SUCCEEDED
    assert done.start_time >= first.status.end_time


def test_queues_priorities_and_labels(cluster: Cluster, client: tessera.Client) -> None:
    label = unique("growth")
    job = client.submit_range(
        "noop", 0, 10, shard_count=2, queue="py-batch", priority=7, labels={"team": label}
    )
    assert job.status.queue == "py-batch" and job.status.priority == 7
    assert job.status.labels == {"team": label}
    # No executor serves py-batch yet: the job waits, and says for what.
    time.sleep(0.3)
    assert job.refresh().state is JobState.QUEUED
    found = list(client.list_jobs(queue="py-batch", labels={"team": label}))
    assert [j.id for j in found] == [job.id]
    assert [j.id for j in client.list_jobs(state="queued", labels={"team": label})] == [job.id]

    cluster.start_executor(unique("batch-executor"), "--queues=py-batch")
    assert job.wait(timeout=60).state is JobState.SUCCEEDED
    assert list(client.list_jobs(state=JobState.QUEUED, labels={"team": label})) == []

    with pytest.raises(tessera.InvalidArgumentError, match="spec.priority"):
        client.submit_range("noop", 0, 10, shard_count=1, priority=5000)


def test_cancel_stops_a_running_job_and_it_has_no_result(client: tessera.Client) -> None:
    job = client.submit_range("sleep", 0, 200, shard_count=20, params={"ms": 100})
    while job.refresh().state is JobState.QUEUED:
        time.sleep(0.02)
    assert job.cancel().state is JobState.CANCELLED
    assert job.wait(timeout=30).state is JobState.CANCELLED
    with pytest.raises(tessera.JobFailedError, match=f"job {job.id} CANCELLED") as failed:
        job.result()
    assert failed.value.status.state is JobState.CANCELLED
    # Cancelling a finished job changes nothing.
    assert client.cancel(job.id).state is JobState.CANCELLED


def test_a_partial_job_keeps_its_failed_shards_and_reruns_only_those(
    cluster: Cluster, client: tessera.Client
) -> None:
    flaky_dir = cluster.root / "flaky"
    for shard in (1, 3):
        (flaky_dir / f"broken-{shard}").write_text("")
    job = client.submit_range(
        "flaky",
        0,
        40,
        shard_count=4,
        max_failed_shards=2,
        retry=tessera.Retry(max_attempts=1),
    )
    partial = job.wait(timeout=60)
    assert partial.state is JobState.PARTIAL
    assert [(f.shard, f.start, f.end) for f in partial.failed_shards] == [(1, 10, 20), (3, 30, 40)]
    assert "shard 1 is broken" in partial.failed_shards[0].last_error
    assert job.result() == {"items": 20, "_metadata": job.result()["_metadata"]}

    for shard in (1, 3):
        (flaky_dir / f"broken-{shard}").unlink()
    assert job.retry_failed_shards().state in (JobState.QUEUED, JobState.RUNNING)
    assert job.wait(timeout=60).state is JobState.SUCCEEDED
    info = job.result_info()
    assert info.value["items"] == 40 and info.version == 2


def test_a_failed_job_raises_job_failed_with_its_reason(client: tessera.Client) -> None:
    # primes refuses ends beyond 10^14: the shard fails, and with it the job.
    bad = client.submit_range(
        "primes", 0, 2 * 10**14, shard_count=1, retry=tessera.Retry(max_attempts=1)
    )
    with pytest.raises(tessera.JobFailedError) as failed:
        bad.result(timeout=60)
    assert failed.value.status.state is JobState.FAILED
    assert "end must be <=" in failed.value.status.errors[0].message


def test_errors_name_their_status_code(client: tessera.Client) -> None:
    with pytest.raises(tessera.NotFoundError) as missing:
        client.get_job("no-such-job")
    assert missing.value.code_name == "NOT_FOUND" and str(missing.value).startswith("NOT_FOUND: ")
    assert isinstance(missing.value, tessera.RpcError) and isinstance(missing.value, LookupError)

    with pytest.raises(tessera.InvalidArgumentError) as invalid:
        client.submit_range("primes", 5, 5, shard_count=1)
    assert str(invalid.value) == (
        "INVALID_ARGUMENT: spec.range.end must be greater than spec.range.start "
        "(got start=5, end=5)"
    )

    running = client.submit_range("sleep", 0, 10, shard_count=1, params={"ms": 200})
    with pytest.raises(tessera.FailedPreconditionError, match="FAILED_PRECONDITION: "):
        client.get_result(running.id)
    with pytest.raises(tessera.FailedPreconditionError):
        running.retry_failed_shards()
    running.cancel()


def test_an_unreachable_scheduler_raises_unavailable_naming_it() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tessera.Client(f"127.0.0.1:{port}", timeout=2) as c:
        with pytest.raises(tessera.UnavailableError) as down:
            c.queue_stats()
    assert down.value.code_name == "UNAVAILABLE"
    assert f"(scheduler at 127.0.0.1:{port})" in str(down.value)
    assert isinstance(down.value, ConnectionError)


def test_wait_with_a_timeout_raises_and_the_job_keeps_running(client: tessera.Client) -> None:
    job = client.submit_range("sleep", 0, 40, shard_count=4, params={"ms": 100})
    with pytest.raises(tessera.DeadlineExceededError, match="did not finish within 0.3s"):
        job.wait(timeout=0.3)
    assert not job.refresh().finished
    assert job.wait(timeout=60).state is JobState.SUCCEEDED


def test_update_changes_max_parallel_of_a_running_job(client: tessera.Client) -> None:
    job = client.submit_range("sleep", 0, 30, shard_count=6, params={"ms": 50}, max_parallel=1)
    assert job.update(max_parallel=3).proto.spec.max_parallel == 3
    assert job.update(rate_limit=50).proto.spec.rate_limit == 50
    with pytest.raises(ValueError, match="max_parallel and/or rate_limit"):
        job.update()
    assert job.wait(timeout=60).state is JobState.SUCCEEDED


def test_list_jobs_pages_through_newest_first(client: tessera.Client) -> None:
    label = unique("page")
    ids = [
        client.submit_range("noop", 0, 1, shard_count=1, labels={"run": label}).id
        for _ in range(5)
    ]
    listed = [j.id for j in client.list_jobs(labels={"run": label}, page_size=2)]
    assert listed == list(reversed(ids))
    with pytest.raises(ValueError, match="unknown job state 'done'"):
        next(client.list_jobs(state="done"))


def test_executors_and_queue_stats_report_versions_and_slots(
    cluster: Cluster, client: tessera.Client
) -> None:
    executors = {e.name: e for e in client.executors()}
    assert {"py-executor-1", "py-executor-2"} <= set(executors)
    e = executors["py-executor-1"]
    assert e.version == version_tag_of(EXECUTOR_BIN)
    assert e.slots == 2 and "flaky" in e.tasks and e.queues == ("default",)
    stats = client.queue_stats()
    assert stats.executors >= 2 and stats.slots_total >= 4


def test_unknown_options_are_a_type_error(client: tessera.Client) -> None:
    with pytest.raises(TypeError, match="idempotency"):
        client.submit_range("noop", 0, 1, shard_count=1, idempotency="x")


def test_the_package_version_is_the_projects() -> None:
    import os
    import re

    from conftest import SOURCE_DIR

    cmake = (SOURCE_DIR / "CMakeLists.txt").read_text()
    project = re.search(r"project\(tessera VERSION (\S+)", cmake).group(1)
    pyproject = (SOURCE_DIR / "clients/python/pyproject.toml").read_text()
    assert tessera.__version__ == project == os.environ.get("TESSERA_VERSION", project)
    assert f'version = "{project}"' in pyproject
