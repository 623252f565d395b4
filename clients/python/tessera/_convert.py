"""Python values -> the protobuf messages of a submission, checked on the way."""

from __future__ import annotations

import datetime
import math
from typing import Any, Iterable, Mapping, Optional

from google.protobuf import duration_pb2, struct_pb2

from tessera._types import JobOptions, Seconds
from tessera.v1 import jobs_pb2

# google.protobuf.Value holds numbers as doubles: integers beyond this would
# silently change on their way to the executors.
_MAX_EXACT_INT = 2**53


def to_value(obj: Any, path: str) -> struct_pb2.Value:
    """``obj`` (None, bool, int, float, str, list/tuple, dict with str keys) as a
    ``Value``. ``path`` names it in errors (``items[3].id``)."""
    v = struct_pb2.Value()
    if obj is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        v.bool_value = obj
    elif isinstance(obj, int):
        if abs(obj) > _MAX_EXACT_INT:
            raise ValueError(
                f"{path}: {obj} is beyond 2**53 and would not arrive exactly "
                "(JSON numbers travel as doubles); pass it as a string"
            )
        v.number_value = obj
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{path}: {obj} is not a JSON number")
        v.number_value = obj
    elif isinstance(obj, str):
        v.string_value = obj
    elif isinstance(obj, Mapping):
        v.struct_value.CopyFrom(to_struct(obj, path))
    elif isinstance(obj, (list, tuple)):
        v.list_value.values.extend(to_value(x, f"{path}[{i}]") for i, x in enumerate(obj))
    else:
        raise TypeError(f"{path}: {type(obj).__name__} is not a JSON value")
    return v


def to_struct(obj: Mapping[str, Any], path: str) -> struct_pb2.Struct:
    """A mapping with string keys as a ``Struct`` (see :func:`to_value`)."""
    s = struct_pb2.Struct()
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"{path}: key {key!r} is not a string")
        s.fields[key].CopyFrom(to_value(value, f"{path}.{key}"))
    return s


def to_duration(seconds: Seconds, path: str) -> duration_pb2.Duration:
    """Seconds (int, float) or a timedelta as a ``Duration``; must be > 0."""
    if isinstance(seconds, datetime.timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{path}: expected seconds or a timedelta, got {seconds!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{path}: must be a positive duration (got {seconds!r})")
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def build_spec(
    task: str, params: Optional[Mapping[str, Any]], options: JobOptions
) -> jobs_pb2.JobSpec:
    """A ``JobSpec`` with everything but its input. The scheduler validates the
    values (INVALID_ARGUMENT names the field); this only converts them."""
    o = options
    spec = jobs_pb2.JobSpec(
        name=o.name,
        task=task,
        max_parallel=o.max_parallel,
        idempotency_key=o.idempotency_key,
        concurrency_key=o.concurrency_key,
        concurrency_limit=o.concurrency_limit,
        queue=o.queue,
        priority=o.priority,
        rate_limit=o.rate_limit,
    )
    if params is not None:
        spec.params.CopyFrom(to_struct(params, "params"))
    spec.labels.update(o.labels)
    if o.aggregate or o.default_reducer:
        spec.aggregate.default_reducer = o.default_reducer
        spec.aggregate.fields.update(o.aggregate)
    if o.retry is not None:
        r = o.retry
        if r.max_attempts is not None:
            spec.retry.max_attempts = r.max_attempts
        if r.initial_backoff is not None:
            spec.retry.initial_backoff.CopyFrom(
                to_duration(r.initial_backoff, "retry.initial_backoff")
            )
        if r.max_backoff is not None:
            spec.retry.max_backoff.CopyFrom(to_duration(r.max_backoff, "retry.max_backoff"))
        if r.multiplier is not None:
            spec.retry.multiplier = r.multiplier
        if r.jitter is not None:
            spec.retry.jitter = r.jitter
        spec.retry.SetInParent()
    if o.shard_timeout is not None:
        spec.shard_timeout.CopyFrom(to_duration(o.shard_timeout, "shard_timeout"))
    if o.max_failed_shards:
        spec.failure_policy.max_failed_shards = o.max_failed_shards
    return spec


def items_input(items: Iterable[Any], batch_size: int) -> jobs_pb2.ItemsInput:
    """The ``ItemsInput`` of an items job (each item a JSON value)."""
    values = [to_value(item, f"items[{i}]") for i, item in enumerate(items)]
    return jobs_pb2.ItemsInput(items=values, batch_size=batch_size)
