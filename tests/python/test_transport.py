"""What the client puts on the wire for a token and for TLS.

The token's header and the TLS handshake are checked against a recording gRPC
server in this process (it answers GetQueueStats only, and records what each
call carried), then against the real scheduler with TLS and tokens on
(certificates from tests/util/make-test-certs.sh, made at run time).
"""

from __future__ import annotations

import subprocess
from concurrent import futures
from pathlib import Path
from typing import Iterator, List, Tuple

import grpc
import pytest

import tessera
from conftest import Cluster
from tessera.v1 import jobs_pb2, jobs_pb2_grpc


class Recorder(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self) -> None:
        self.metadata: List[Tuple[Tuple[str, str], ...]] = []

    def GetQueueStats(self, request, context):  # noqa: N802 (gRPC's name)
        self.metadata.append(tuple(context.invocation_metadata()))
        return jobs_pb2.GetQueueStatsResponse(executors=3)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def tls_server(cert: Tuple[Path, Path]) -> Iterator[Tuple[str, Recorder]]:
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    jobs_pb2_grpc.add_JobServiceServicer_to_server(recorder, server)
    creds = grpc.ssl_server_credentials([(cert[1].read_bytes(), cert[0].read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    yield f"127.0.0.1:{port}", recorder
    server.stop(grace=None)


def test_a_token_travels_as_a_bearer_header_over_tls(
    tls_server: Tuple[str, Recorder], cert: Tuple[Path, Path]
) -> None:
    address, recorder = tls_server
    with tessera.Client(address, token="s3cret-token", tls_ca=str(cert[0])) as c:
        assert c.queue_stats().executors == 3
    assert ("authorization", "Bearer s3cret-token") in recorder.metadata[-1]
    # The CA as PEM bytes works the same; without a token no header is sent.
    with tessera.Client(address, tls_ca=cert[0].read_bytes()) as c:
        assert c.queue_stats().executors == 3
    assert all(k != "authorization" for k, _ in recorder.metadata[-1])


def test_tls_refuses_a_server_the_ca_does_not_vouch_for(
    tls_server: Tuple[str, Recorder], tmp_path: Path
) -> None:
    address, _ = tls_server
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=other", "-keyout", str(other / "k.pem"), "-out", str(other / "c.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    with tessera.Client(address, tls_ca=str(other / "c.pem"), timeout=5) as c:
        with pytest.raises(tessera.UnavailableError):
            c.queue_stats()
    # A plaintext client cannot talk to a TLS server either.
    with tessera.Client(address, timeout=5) as c:
        with pytest.raises(tessera.UnavailableError):
            c.queue_stats()


def test_a_token_is_sent_to_a_plaintext_scheduler_too(cluster: Cluster) -> None:
    with tessera.Client(cluster.address, token="t0ken") as c:
        assert c.queue_stats().executors >= 2


def test_a_malformed_token_is_refused_before_any_call() -> None:
    for token in ("", " padded ", "two\nlines"):
        with pytest.raises(ValueError, match="token"):
            tessera.Client("127.0.0.1:1", token=token)


def test_a_missing_ca_file_is_an_error_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tessera.Client("127.0.0.1:1", tls_ca=str(tmp_path / "missing.pem"))


def test_the_real_scheduler_with_tls_and_tokens(tmp_path: Path) -> None:
    """A reader may read and not submit, a submitter may submit and get the
    exact answer, and no token is UNAUTHENTICATED, each error naming its code."""
    import hashlib
    import json
    import secrets

    from conftest import Cluster

    certs = tmp_path / "certs"
    subprocess.run(
        ["bash", str(Path(__file__).resolve().parents[1] / "util" / "make-test-certs.sh"),
         str(certs)],
        check=True, capture_output=True,
    )  # fmt: skip
    reader, submitter, runner = (secrets.token_hex(16) for _ in range(3))

    def entry(name: str, token: str, role: str) -> dict:
        return {"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(),
                "role": role}

    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [
        entry("viewer", reader, "reader"), entry("ci", submitter, "submitter"),
        entry("runner", runner, "executor")]}))  # fmt: skip
    (tmp_path / "runner.token").write_text(runner)
    c = Cluster(tmp_path)
    try:
        c.start_scheduler(f"--tls-cert={certs / 'server.pem'}",
                          f"--tls-key={certs / 'server.key'}",
                          f"--auth-tokens-file={tokens}")  # fmt: skip
        c.start_executor("py-tls-executor", f"--tls-ca={certs / 'ca.pem'}",
                         f"--auth-token-file={tmp_path / 'runner.token'}")  # fmt: skip
        ca = str(certs / "ca.pem")
        with tessera.Client(c.address, tls_ca=ca, timeout=10) as anonymous:
            with pytest.raises(tessera.UnauthenticatedError, match="UNAUTHENTICATED"):
                anonymous.queue_stats()
        with tessera.Client(c.address, token=reader, tls_ca=ca, timeout=10) as r:
            r.queue_stats()
            with pytest.raises(tessera.PermissionDeniedError, match="PERMISSION_DENIED"):
                r.submit_range("primes", 0, 1000, shard_count=2)
        with tessera.Client(c.address, token=submitter, tls_ca=ca, timeout=30) as s:
            job = s.submit_range("primes", 0, 100_000, shard_count=4)
            assert job.wait(timeout=60).state.name == "SUCCEEDED"
            assert job.result()["primes"] == 9592
    finally:
        c.stop()
