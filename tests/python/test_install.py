"""`pip install ./clients/python` works and the installed package talks to a
real scheduler: installed offline (Debian's packages, no PyPI) into a fresh
venv from a copy of the checkout, then imported from outside any source or
build tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from conftest import SOURCE_DIR, Cluster


def checkout_copy(root: Path) -> Path:
    """clients/python and proto/ as they sit in a checkout (pip builds in
    place, so the real tree is left alone)."""
    shutil.copytree(SOURCE_DIR / "proto", root / "proto")
    shutil.copytree(
        SOURCE_DIR / "clients/python",
        root / "clients/python",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*_pb2*"),
    )
    return root / "clients/python"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv with tessera-client installed."""
    if shutil.which("protoc") is None or shutil.which("grpc_python_plugin") is None:
        pytest.fail("protoc and grpc_python_plugin are needed (scripts/install-deps.sh)")
    root = tmp_path_factory.mktemp("install")
    package = checkout_copy(root / "checkout")
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(root / "venv")
    python = root / "venv/bin/python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", str(package)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # Generated in the build, not in the sources.
    assert not list(package.glob("tessera/v1/*_pb2*")), list(package.glob("tessera/v1/*"))
    return python


def test_the_installed_package_has_its_stubs_and_type_information(installed: Path) -> None:
    code = (
        "import pathlib, tessera, tessera.v1.jobs_pb2_grpc as g\n"
        "p = pathlib.Path(tessera.__file__).parent\n"
        "print(p)\n"
        "print(sorted(f.name for f in (p / 'v1').iterdir() if f.suffix in ('.py', '.pyi')))\n"
        "print((p / 'py.typed').exists(), hasattr(g, 'JobServiceStub'))\n"
    )
    out = run(installed, code).splitlines()
    assert "site-packages" in out[0] and str(SOURCE_DIR) not in out[0], out
    assert out[1] == "['__init__.py', 'jobs_pb2.py', 'jobs_pb2.pyi', 'jobs_pb2_grpc.py']"
    assert out[2] == "True True"


def test_the_installed_package_runs_a_job(installed: Path, cluster: Cluster) -> None:
    code = (
        "import tessera\n"
        f"c = tessera.Client({cluster.address!r})\n"
        "print(c.submit_range('primes', 0, 100_000, shard_count=4).result(timeout=60)['primes'])\n"
    )
    assert run(installed, code) == "9592\n"


def test_pip_records_the_runtime_requirements(installed: Path) -> None:
    # Stubs from Debian's protoc 3.21 and grpc_python_plugin 1.51 (setup.py);
    # older setuptools write "grpcio (>=1.51)".
    code = "from importlib import metadata\nprint(sorted(metadata.requires('tessera-client')))\n"
    requires = run(installed, code).replace(" (", "").replace(")'", "'")
    assert requires == "['grpcio>=1.51', 'protobuf>=3.20']\n"


def run(python: Path, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


