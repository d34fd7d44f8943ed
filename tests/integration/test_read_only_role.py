"""The read-heavy paths served by a process whose PostgreSQL role may only read: a worker (the
writer) pre-computes the CRLs and the filter; ``fleetid serve`` under a role granted SELECT and
nothing else serves them, the CA certificates and signed OCSP answers, and the role's writes
(certificates, the audit log, CRLs, the job queue) are refused by PostgreSQL."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from tests.authority_server import fleetid, free_port, serving

from fleetid.store.engine import open_engine

pytest_plugins = ["tests.db_fixtures"]

_PUBLIC = {"FLEETID_PUBLIC_URL": "https://ca.example.net"}
_WRITES = (
    "DELETE FROM audit_log_entries",
    "DELETE FROM certificates",
    "DELETE FROM crl_publications",
    "INSERT INTO procrastinate_jobs (queue_name, task_name) VALUES ('default', 'x')",
)


def _publications(url: str) -> int:
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM crl_publications"))
            return int(count.scalar_one())
    finally:
        engine.dispose()


def test_a_read_only_role_serves_the_precomputed_artefacts_and_cannot_write(
    tmp_path: Path, database_url_for: Any
) -> None:
    url = database_url_for("postgresql")
    data = tmp_path / "authority"
    writer = {**os.environ, **_PUBLIC, "FLEETID_DATABASE_URL": url}
    assert fleetid("ca", "init", "--data-dir", str(data), env=writer).returncode == 0
    for step in (("defer", "publish-revocation"), ("run", "--once")):
        done = fleetid("worker", *step, "--data-dir", str(data), env=writer)
        assert done.returncode == 0, done.stderr
    published = _publications(url)
    assert published > 0

    role = f"fleetid_ro_{secrets.token_hex(4)}"
    schema = url.rsplit("search_path%3D", 1)[1]
    admin = open_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            connection.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
            connection.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'))
        reader_url = url.replace("://postgres@", f"://{role}@", 1)
        assert reader_url != url

        reader = open_engine(reader_url)
        try:
            for statement in _WRITES:
                with pytest.raises(ProgrammingError) as refused, reader.begin() as connection:
                    connection.execute(text(statement))
                assert getattr(refused.value.orig, "sqlstate", None) == "42501"  # no privilege
        finally:
            reader.dispose()

        env = {**os.environ, **_PUBLIC, "FLEETID_DATABASE_URL": reader_url}
        port = free_port()
        with (
            serving(data, [port], ["--http", f"127.0.0.1:{port}"], env=env),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        ):
            root = x509.load_der_x509_certificate(http.get("/ca/root-1.crt").content)
            issuing = x509.load_der_x509_certificate(http.get("/ca/issuing-1.crt").content)
            issuing.verify_directly_issued_by(root)
            root_crl = x509.load_der_x509_crl(http.get("/crl/root-1.crl").content)
            assert root_crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
            shard = x509.load_der_x509_crl(http.get("/crl/issuing-1/0.crl").content)
            assert shard.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
            full = http.get("/revocation/filter/full")
            assert full.status_code == 200
            assert full.content == (data / "revocation" / "filter" / "full.fidf").read_bytes()
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate_by_hash(
                    issuer_name_hash=_hash(issuing.subject.public_bytes()),
                    issuer_key_hash=_key_hash(issuing),
                    serial_number=x509.random_serial_number(),
                    algorithm=hashes.SHA256(),
                )
                .build()
            )
            answer = http.post(
                "/ocsp",
                content=request.public_bytes(serialization.Encoding.DER),
                headers={"Content-Type": "application/ocsp-request"},
            )
            assert answer.status_code == 200
            response = ocsp.load_der_ocsp_response(answer.content)
            assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN  # never issued
        assert _publications(url) == published  # the reader wrote nothing
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _hash(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _key_hash(certificate: x509.Certificate) -> bytes:
    key = certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _hash(key)
