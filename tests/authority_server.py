"""Run the real ``fleetid`` CLI and server for integration tests (subprocesses on loopback)."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.optional import require_tool

__all__ = ["est_csr", "fleetid", "free_port", "require_tool", "serving"]

_CLI = "import sys; from fleetid.cli import main; sys.exit(main())"


def est_csr(name: str) -> bytes:
    """A P-256 PKCS#10 request for CN=``name``, base64 as an EST simpleenroll body."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))


def fleetid(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``fleetid ARGS`` in a subprocess (the installed CLI entry point's code)."""
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def serving(
    data_dir: Path,
    ports: Sequence[int],
    args: Sequence[str],
    env: dict[str, str] | None = None,
    *,
    allow_loopback_urls: bool = True,
) -> Iterator[subprocess.Popen[str]]:
    """``fleetid serve --data-dir DATA_DIR ARGS`` until every port in ``ports`` accepts; on
    loopback, so certificates name loopback URLs (``--allow-loopback-urls``) unless told not."""
    log = (data_dir / "serve.log").open("w")
    loopback = ["--allow-loopback-urls"] if allow_loopback_urls else []
    process = subprocess.Popen(
        [sys.executable, "-c", _CLI, "serve", "--data-dir", str(data_dir), *args, *loopback],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not all(_accepts(port) for port in ports):
            if process.poll() is not None:
                raise AssertionError(f"server exited: {(data_dir / 'serve.log').read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError("server did not start listening within 60 s")
            time.sleep(0.05)  # poll the condition (is it listening?) again
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
