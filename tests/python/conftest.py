"""Fixtures for the Python client's tests: real tessera-scheduler and
tessera-executor processes on 127.0.0.1, started from the build tree.

ctest (tests/python/CMakeLists.txt) passes the binaries and the directories in
the environment; `tessera` is imported from the package the build assembled.
Only processes a test started are ever signalled, by PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

SCHEDULER_BIN = os.environ.get("TESSERA_SCHEDULER_BIN", "")
EXECUTOR_BIN = os.environ.get("TESSERA_EXECUTOR_BIN", "")
SOURCE_DIR = Path(os.environ.get("TESSERA_SOURCE_DIR", Path(__file__).resolve().parents[2]))

if not (SCHEDULER_BIN and EXECUTOR_BIN):
    sys.exit(
        "tests/python: set TESSERA_SCHEDULER_BIN and TESSERA_EXECUTOR_BIN "
        "(ctest does: ctest --preset debug -R python)"
    )

import tessera  # noqa: E402  (after the check above says how to run these)

# A flaky exec task for retry tests: shard i fails (permanently) while
# <dir>/broken-<i> exists.
FLAKY_TASK = """\
import json, os, sys
shard = os.environ["TESSERA_SHARD_INDEX"]
if os.path.exists(os.path.join(os.environ["FLAKY_DIR"], "broken-" + shard)):
    print(json.dumps({"error": "shard " + shard + " is broken", "retryable": False}), flush=True)
    sys.exit(1)
n = int(os.environ["TESSERA_RANGE_END"]) - int(os.environ["TESSERA_RANGE_START"])
print(json.dumps({"result": {"items": n}}), flush=True)
"""


class Process:
    """A started binary; its output goes to `log`."""

    def __init__(self, argv: List[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Cluster:
    """A scheduler and its executors, in a temp dir of their own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scheduler: Optional[Process] = None
        self.executors: List[Process] = []
        self.address = ""

    def start_scheduler(self, *extra: str) -> None:
        port_file = self.root / "port"
        self.scheduler = Process(
            [
                SCHEDULER_BIN,
                "--listen=127.0.0.1:0",
                f"--port-file={port_file}",
                "--metrics-listen=",
                f"--data-dir={self.root / 'data'}",
                "--heartbeat-interval=500ms",
                "--heartbeat-timeout=5s",
                *extra,
            ],
            self.root / "scheduler.log",
        )
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if self.scheduler.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not start:\n" + self.scheduler.output())
            time.sleep(0.02)
        self.address = f"127.0.0.1:{port_file.read_text().strip()}"

    def start_executor(self, name: str, *extra: str) -> Process:
        p = Process(
            [
                EXECUTOR_BIN,
                f"--scheduler={self.address}",
                f"--name={name}",
                "--slots=2",
                "--metrics-listen=",
                "--drain-timeout=5s",
                *extra,
            ],
            self.root / f"{name}.log",
        )
        self.executors.append(p)
        return p

    def wait_for_executors(self, count: int, task: str = "primes") -> None:
        """Until `count` executors advertising `task` are connected."""
        with tessera.Client(self.address) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if sum(task in e.tasks for e in client.executors()) >= count:
                    return
                time.sleep(0.05)
        raise RuntimeError(f"{count} executors with {task} did not connect:\n" + self.logs())

    def stop(self) -> None:
        for p in self.executors:
            p.stop()
        if self.scheduler is not None:
            self.scheduler.stop()

    def logs(self) -> str:
        parts = []
        for p in ([self.scheduler] if self.scheduler else []) + self.executors:
            parts.append(f"--- {p.log.name}\n{p.output()[-4000:]}")
        return "\n".join(parts)


def _cluster(tmp: Path) -> Iterator[Cluster]:
    c = Cluster(tmp)
    try:
        c.start_scheduler()
        flaky_dir = tmp / "flaky"
        flaky_dir.mkdir()
        (flaky_dir / "flaky.py").write_text(FLAKY_TASK)
        tasks = tmp / "tasks.json"
        tasks.write_text(
            '{"tasks": {"flaky": {"command": ["%s", "flaky.py"], "workdir": "%s",'
            ' "env": {"FLAKY_DIR": "%s"}}}}' % (sys.executable, flaky_dir, flaky_dir)
        )
        c.start_executor("py-executor-1", f"--tasks-file={tasks}")
        c.start_executor("py-executor-2", f"--tasks-file={tasks}")
        c.wait_for_executors(2)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """One scheduler and two executors (2 slots each, built-in tasks and `flaky`)
    for the whole session."""
    with tempfile.TemporaryDirectory(prefix="tessera-py-") as tmp:
        yield from _cluster(Path(tmp))


@pytest.fixture
def client(cluster: Cluster) -> Iterator[tessera.Client]:
    with tessera.Client(cluster.address, timeout=20) as c:
        yield c


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Appends the cluster's logs to a failing test's report."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "cluster" in request.fixturenames:
        c: Cluster = request.getfixturevalue("cluster")
        report.sections.append(("tessera logs", c.logs()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def version_tag_of(binary: str) -> str:
    """'0.1.0+abc1234' from `binary --version` ('tessera 0.1.0 (commit abc1234)')."""
    line = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    m = re.fullmatch(r"tessera (\S+) \(commit (\S+)\)\n", line.stdout)
    assert m, line.stdout
    return m.group(1) if m.group(2) == "unknown" else f"{m.group(1)}+{m.group(2)}"
