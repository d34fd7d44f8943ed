"""The database under faults: the server's PostgreSQL backend terminated mid-enrolment
(``pg_terminate_backend``) gives a clean 503 problem with Retry-After and no half-issued
credential (no certificate recorded, the token still unused); the next request reconnects by
itself and the audit log verifies."""

from __future__ import annotations

import base64
import os
import secrets
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import text
from tests.authority_server import est_csr, fleetid, free_port, serving

from fleetid.store.engine import open_engine
from fleetid.store.repositories import Store

pytest_plugins = ["tests.db_fixtures"]


def _issued(url: str, device: str) -> int:
    store = Store(open_engine(url))
    try:
        with store.transaction() as tx:
            return len(tx.certificates.for_device(device))
    finally:
        store.dispose()


def test_a_backend_terminated_mid_enrolment_is_a_503_and_the_retry_succeeds(
    tmp_path: Path, database_url_for: Any
) -> None:
    url = database_url_for("postgresql")
    name = f"fleetid_fault_{secrets.token_hex(4)}"  # how the server's sessions are found
    env = {**os.environ, "FLEETID_DATABASE_URL": f"{url}&application_name={name}"}
    data = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data), env=env).returncode == 0
    root = x509.load_pem_x509_certificates(
        fleetid("ca", "certs", "--data-dir", str(data), env=env).stdout.encode()
    )[-1]
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    tokens: dict[str, tuple[str, str]] = {}
    for device in ("gw-a", "gw-b"):
        made = fleetid("token", "create", "--data-dir", str(data), "--device-id", device, env=env)
        assert made.returncode == 0, made.stderr
        user, _, password = made.stdout.strip().partition(":")
        tokens[device] = (user, password)
    admin = open_engine(url)
    port = free_port()
    try:
        with serving(data, [port], ["--https", f"127.0.0.1:{port}"], env=env):
            trust = ssl.create_default_context(cafile=str(tmp_path / "root.pem"))
            base = f"https://127.0.0.1:{port}"
            with httpx.Client(base_url=base, verify=trust, timeout=60) as http:

                def enrol(device: str) -> httpx.Response:
                    return http.post(
                        "/.well-known/est/simpleenroll",
                        content=est_csr(device),
                        headers={"Content-Type": "application/pkcs10"},
                        auth=tokens[device],
                    )

                assert enrol("gw-a").status_code == 200  # the pool holds a live connection
                with admin.connect() as locker, ThreadPoolExecutor(1) as pool:
                    locker.execute(text("LOCK TABLE certificates IN ACCESS EXCLUSIVE MODE"))
                    pending = pool.submit(enrol, "gw-b")
                    deadline = time.monotonic() + 30
                    while True:  # the enrolment waits on the lock, inside its transaction
                        assert time.monotonic() < deadline, "the enrolment never reached the lock"
                        assert not pending.done(), pending.result().text
                        ended = locker.execute(
                            text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE application_name = :name AND wait_event_type = 'Lock'"
                            ),
                            {"name": name},
                        ).all()
                        if ended:
                            break
                        time.sleep(0.05)
                    locker.rollback()
                    answer = pending.result(timeout=60)
                assert answer.status_code == 503, answer.text
                assert answer.headers["Content-Type"] == "application/problem+json"
                assert answer.headers["Retry-After"] == "1"
                problem = answer.json()
                assert problem["type"] == "urn:fleetid:problem:database-unavailable"
                assert "Traceback" not in answer.text
                assert _issued(url, "gw-b") == 0  # nothing half-issued
                again = enrol("gw-b")  # the same token: it was never used
                assert again.status_code == 200, again.text
                (issued,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(again.content))
                assert issued.subject.rfc4514_string() == "CN=gw-b"
        assert _issued(url, "gw-b") == 1
        verify = ["audit", "verify", "--data-dir", str(data), "--database-url", url]
        verified = fleetid(*verify, env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        admin.dispose()
