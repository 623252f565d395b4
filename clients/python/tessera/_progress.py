"""A ready-made progress callback for ``Job.wait``."""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO

from tessera._types import JobStatus

__all__ = ["progress_bar"]


def progress_bar(
    stream: Optional[TextIO] = None, width: int = 20, every: float = 1.0
) -> Callable[[JobStatus], None]:
    """A callback for ``job.wait(progress=...)`` that shows a job's progress.

    On a terminal it redraws one line, ``[#######.............]  23/64 shards
    35%``, and ends it when the job finishes; elsewhere (a log, a pipe) it
    prints a plain line at most every ``every`` seconds and at the end.
    ``stream`` defaults to ``sys.stderr``.
    """
    out = stream if stream is not None else sys.stderr
    terminal = out.isatty()
    last = [float("-inf")]

    def show(status: JobStatus) -> None:
        done = status.shards.succeeded + status.shards.failed
        line = f"{done}/{status.shards.total} shards  {status.fraction_done:4.0%}"
        if status.shards.failed:
            line += f"  ({status.shards.failed} failed)"
        now = time.monotonic()
        if terminal:
            filled = int(status.fraction_done * width)
            bar = "#" * filled + "." * (width - filled)
            out.write(f"\r[{bar}]  {line}  {status.state.name}\x1b[K")
            if status.finished:
                out.write("\n")
        elif status.finished or now - last[0] >= every:
            out.write(f"job {status.id} {status.state.name}  {line}\n")
            last[0] = now
        out.flush()

    return show
