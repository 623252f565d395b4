"""Builds tessera-client, generating its gRPC stubs from Tessera's proto/.

The stubs (tessera/v1/jobs_pb2.py, jobs_pb2_grpc.py, jobs_pb2.pyi) are never
committed: they are made here, when the package is built, from
proto/tessera/v1/jobs.proto (found at ../../proto in a Tessera checkout), with

  1. protoc and grpc_python_plugin, when both are on PATH (Debian:
     protobuf-compiler, protobuf-compiler-grpc), or $TESSERA_PROTOC and
     $TESSERA_GRPC_PYTHON_PLUGIN;
  2. otherwise grpcio-tools (a build requirement in pyproject.toml, so pip
     installs it when it may reach PyPI).

The package then requires grpcio and protobuf runtimes at least as new as
the tools that generated its stubs.
"""

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import List, Optional, Tuple

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO = "tessera/v1/jobs.proto"


def proto_root() -> Path:
    for root in (HERE / "proto", HERE.parent.parent / "proto"):
        if (root / PROTO).is_file():
            return root
    sys.exit(
        f"tessera-client: {PROTO} is not in {HERE / 'proto'} or {HERE.parent.parent / 'proto'}; "
        "install from a Tessera checkout: pip install ./clients/python"
    )


def system_tools() -> Optional[Tuple[str, str]]:
    protoc = os.environ.get("TESSERA_PROTOC") or shutil.which("protoc")
    plugin = os.environ.get("TESSERA_GRPC_PYTHON_PLUGIN") or shutil.which("grpc_python_plugin")
    return (protoc, plugin) if protoc and plugin else None


def runtime_requirements() -> List[str]:
    """grpcio and protobuf as new as what generates the stubs."""
    if system_tools() is not None:
        # protoc >= 3.20 writes builder-style code (protobuf >= 3.20 reads it);
        # grpcio 1.51 is the oldest the client is tested with (Debian 12's).
        return ["grpcio>=1.51", "protobuf>=3.20"]
    try:
        return [
            f"grpcio>={metadata.version('grpcio-tools')}",
            f"protobuf>={metadata.version('protobuf')}",
        ]
    except metadata.PackageNotFoundError:
        return ["grpcio>=1.51", "protobuf>=3.20"]  # generate_stubs says what is missing


def generate_stubs(out_dir: Path) -> None:
    root = proto_root()
    args = [
        f"--proto_path={root}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(root / PROTO),
    ]
    tools = system_tools()
    if tools is not None:
        protoc, plugin = tools
        status = subprocess.call([protoc, f"--plugin=protoc-gen-grpc_python={plugin}", *args])
    else:
        try:
            from grpc_tools import protoc as grpc_tools_protoc
        except ImportError:
            sys.exit(
                "tessera-client: generating the gRPC stubs needs protoc and grpc_python_plugin "
                "on PATH (Debian: apt-get install protobuf-compiler protobuf-compiler-grpc) "
                "or grpcio-tools (pip install grpcio-tools)"
            )
        well_known = Path(grpc_tools_protoc.__file__).parent / "_proto"
        status = grpc_tools_protoc.main(["protoc", f"--proto_path={well_known}", *args])
    if status != 0:
        sys.exit(f"tessera-client: generating the stubs from {root / PROTO} failed ({status})")


class BuildPyWithStubs(build_py):
    """build_py, plus the stubs: into the build tree, or next to the sources
    for an editable install."""

    def run(self) -> None:
        super().run()
        editable = getattr(self, "editable_mode", False)
        generate_stubs(HERE if editable else Path(self.build_lib))


setup(install_requires=runtime_requirements(), cmdclass={"build_py": BuildPyWithStubs})
