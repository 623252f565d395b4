"""Every ```python block of clients/python/README.md runs, as a user would run
it, against a real cluster: a scheduler and executors with the built-in tasks,
examples/promo and examples/market. (```py blocks are fragments and are not
run.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import List

import pytest

from conftest import SOURCE_DIR, Cluster

README = SOURCE_DIR / "clients/python/README.md"


def python_blocks() -> List[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.S | re.M)


@pytest.fixture(scope="module")
def story_cluster(cluster: Cluster) -> Cluster:
    for example in ("promo", "market"):
        tasks = SOURCE_DIR / "examples" / example / "tasks.json"
        cluster.start_executor(f"{example}-executor", f"--tasks-file={tasks}")
    cluster.wait_for_executors(1, task="promo")
    cluster.wait_for_executors(1, task="market-import")
    return cluster


def run_block(cluster: Cluster, code: str) -> str:
    env = {**os.environ, "TESSERA_SCHEDULER": cluster.address}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=SOURCE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_readme_has_the_examples_it_promises() -> None:
    blocks = python_blocks()
    assert len(blocks) == 3, blocks
    assert '"promo"' in blocks[1] and '"market-import"' in blocks[2]


def test_the_first_job_prints_what_the_readme_shows(story_cluster: Cluster) -> None:
    out = run_block(story_cluster, python_blocks()[0])
    assert re.fullmatch(
        r"submitted [0-9a-f]{16}\n"
        r"SUCCEEDED in \d+:\d\d:\d\d\.\d+\n"
        r"primes below 10\^7: 664579\n"
        r"written to /\S+/results/[0-9a-f]{16}\.json\n",
        out,
    ), out
    shown = re.search(r"^```text\n(.*?)^```$", README.read_text(), re.S | re.M).group(1)
    # The README's sample, but for the bar (stderr), ids, times and paths.
    assert [line.split()[0] for line in out.splitlines()] == [
        line.split()[0] for line in shown.splitlines() if not line.startswith("[")
    ]


def test_the_promo_story_runs_and_a_second_launch_gets_the_same_job(
    story_cluster: Cluster,
) -> None:
    first = run_block(story_cluster, python_blocks()[1])
    assert first.startswith("1000 amounts; amount 100: ['"), first
    again = run_block(story_cluster, python_blocks()[1])
    assert again == first  # the idempotency key: the same job, the same file


def test_the_batch_import_story_keeps_the_failed_batch(story_cluster: Cluster) -> None:
    out = run_block(story_cluster, python_blocks()[2])
    lines = out.splitlines()
    # 49 of 50 batches imported; batch 12 (items 1200..1299) holds sku-1234.
    assert lines[0].startswith("PARTIAL 4900 items imported, worth "), out
    assert lines[1] == (
        "batch 12 (items 1200..1299): task market-import failed: "
        "item sku-1234 refused by the API (exited with status 1)"
    ), out
    assert lines[2] == "100 items kept for later", out
