"""``fleetid serve --workers N``: N uvicorn worker processes on one TLS listener share the CA and
the database; tokens enrol through whichever worker answers, each token exactly once. Refusals:
two listeners with workers, and a worker count below one. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.authority_server import est_csr, fleetid, free_port, serving

from fleetid.store.engine import open_engine
from fleetid.store.repositories import Store

pytestmark = pytest.mark.slow


def test_two_workers_serve_one_tls_listener(tmp_path: Path, db_url: str) -> None:
    data = tmp_path / "authority"
    env = {**os.environ, "FLEETID_DATABASE_URL": db_url}
    assert fleetid("ca", "init", "--data-dir", str(data), env=env).returncode == 0
    root = x509.load_pem_x509_certificates(
        fleetid("ca", "certs", "--data-dir", str(data), env=env).stdout.encode()
    )[-1]
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    tokens = []
    for i in range(8):
        made = fleetid(
            "token", "create", "--data-dir", str(data), "--device-id", f"gw-{i}", env=env
        )
        assert made.returncode == 0, made.stderr
        tokens.append(tuple(made.stdout.strip().partition(":")[::2]))

    port = free_port()
    args = ["--https", f"127.0.0.1:{port}", "--workers", "2"]
    with serving(data, [port], args, env=env) as server:
        trust = ssl.create_default_context(cafile=str(tmp_path / "root.pem"))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=60) as http:

            def enrol(i: int) -> int:
                user, password = tokens[i % len(tokens)]
                return http.post(
                    "/.well-known/est/simpleenroll",
                    content=est_csr(f"gw-{i}"),
                    headers={"Content-Type": "application/pkcs10"},
                    auth=(user, password),
                ).status_code

            # Each token twice, concurrently: exactly one of each pair is issued.
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = sorted(pool.map(enrol, range(16)))
        assert statuses == [200] * 8 + [401] * 8
        workers = [
            p
            for p in Path("/proc").glob("[0-9]*")
            if (p / "stat").exists()
            and (p / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(server.pid)
            and "spawn_main" in (p / "cmdline").read_text(errors="replace")
        ]
        assert len(workers) == 2
    store = Store(open_engine(db_url))
    try:
        with store.transaction() as tx:
            issued = [c for i in range(8) for c in tx.certificates.for_device(f"gw-{i}")]
    finally:
        store.dispose()
    assert len(issued) == 8


def test_workers_with_two_listeners_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data)).returncode == 0
    args = ["--http", "127.0.0.1:1", "--https", "127.0.0.1:2", "--workers", "2"]
    refused = fleetid("serve", "--data-dir", str(data), *args)
    assert refused.returncode == 1
    assert "one listener" in refused.stderr


def test_zero_workers_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data)).returncode == 0
    refused = fleetid("serve", "--data-dir", str(data), "--http", "127.0.0.1:1", "--workers", "0")
    assert refused.returncode == 1
    assert "at least 1" in refused.stderr
