"""The real ``fleetid serve --metrics``, scraped over HTTP: every metric name is exposed (and every
one the Grafana dashboard reads), the counters move after real enrolments, refusals and OCSP
requests, one process and two workers alike; the access log is JSON with the request ID the
answer carried, and holds no token secret. The exposition is read with prometheus-client's own
parser."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families
from tests.authority_server import free_port, serving
from tests.grafana_dashboard import (
    dashboard_expressions,
    load_dashboard,
    metric_names,
    sample_names,
)

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import IssuedToken, create_token
from fleetid.clock import SystemClock
from fleetid.config import Settings

pytestmark = pytest.mark.slow

ENROL = "/.well-known/est/simpleenroll"
TOKEN_LABELS = {"provisioner": "token", "credential_type": "token-device"}


def _authority(data: Path, devices: int) -> list[IssuedToken]:
    settings = Settings.load(data, environ={"FLEETID_PUBLIC_URL": "http://pki.fleet.test"})
    ca = FleetCa.init(settings, clock=SystemClock(), name="Scrape Fleet")
    try:
        with ca.store.transaction() as tx:
            return [
                create_token(tx, device_id=f"gw-{i}", clock=ca.clock, ttl=timedelta(hours=1))
                for i in range(devices)
            ]
    finally:
        ca.close()


class Scrape:
    """One scrape: sample values by (name, labels), and every family and sample name."""

    def __init__(self, text: str) -> None:
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.names: set[str] = set()
        for family in text_string_to_metric_families(text):
            self.names.add(family.name)
            self.names.update(sample_names(family.name, family.type))
            for sample in family.samples:
                self.names.add(sample.name)
                self.values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, name: str, **labels: str) -> float:
        return self.values.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, have), v in self.values.items() if n == name and wanted <= have)


def _scrape(port: int) -> Scrape:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert response.status_code == 200
    return Scrape(response.text)


def _csr() -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw")]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))


def _enrol(base: str, token: IssuedToken, request_id: str) -> httpx.Response:
    # A connection of its own: under --workers, whichever worker accepts it answers.
    return httpx.post(
        base + ENROL,
        content=_csr(),
        headers={"Content-Type": "application/pkcs10", "X-Request-ID": request_id},
        auth=(token.username, token.password),
        timeout=60,
    )


def _certificates(response: httpx.Response) -> list[x509.Certificate]:
    assert response.status_code == 200, response.text
    der = base64.b64decode(b"".join(response.content.split()))
    return pkcs7.load_der_pkcs7_certificates(der)


def _ocsp(base: str, certificate: x509.Certificate, issuer: x509.Certificate) -> httpx.Response:
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 - RFC 5019 CertID
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    return httpx.post(
        base + "/ocsp",
        content=request,
        headers={"Content-Type": "application/ocsp-request"},
        timeout=60,
    )


def _json_lines(data: Path) -> list[dict[str, Any]]:
    text = (data / "serve.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _exercise(base: str, tokens: list[IssuedToken]) -> dict[str, Any]:
    """Enrol with every token (each on its own connection), replay one, ask OCSP; what was done."""
    ids = [f"enrol-{i}-{secrets.token_hex(3)}" for i in range(len(tokens))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(_enrol, [base] * len(tokens), tokens, ids))
    for request_id, answer in zip(ids, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Request-ID"] == request_id
    replay = _enrol(base, tokens[0], "replay-1")
    assert replay.status_code == 401
    assert replay.headers["X-Request-ID"] == "replay-1"
    (issued,) = _certificates(answers[0])
    cacerts = httpx.get(base + "/.well-known/est/cacerts", timeout=60)
    (issuer,) = [c for c in _certificates(cacerts) if c.subject == issued.issuer]
    ocsp_answers = [_ocsp(base, issued, issuer) for _ in range(4)]
    assert all(a.status_code == 200 for a in ocsp_answers)
    garbage = httpx.post(base + "/ocsp", content=b"\x30\x03abc", timeout=60)
    assert garbage.status_code == 200  # an OCSP error status in a 200 answer (RFC 6960 §2.3)
    return {"ids": ids, "enrolled": len(tokens), "ocsp": len(ocsp_answers) + 1}


def _assert_moved(before: Scrape, after: Scrape, done: dict[str, Any]) -> None:
    enrolled = done["enrolled"]
    assert after.get("fleetid_issuance_total", **TOKEN_LABELS) == (
        before.get("fleetid_issuance_total", **TOKEN_LABELS) + enrolled
    )
    assert after.get("fleetid_issuance_seconds_count", **TOKEN_LABELS) == (
        before.get("fleetid_issuance_seconds_count", **TOKEN_LABELS) + enrolled
    )
    assert after.get("fleetid_refusals_total", reason="unauthenticated") == (
        before.get("fleetid_refusals_total", reason="unauthenticated") + 1
    )
    ocsp_moved = after.total("fleetid_ocsp_responses_total") - before.total(
        "fleetid_ocsp_responses_total"
    )
    assert ocsp_moved == done["ocsp"]
    assert after.get("fleetid_ocsp_responses_total", cache="error") == (
        before.get("fleetid_ocsp_responses_total", cache="error") + 1
    )
    assert after.get("fleetid_ocsp_responses_total", cache="hit") > before.get(
        "fleetid_ocsp_responses_total", cache="hit"
    )
    assert (
        after.total("fleetid_hsm_sign_seconds_count")
        >= before.total("fleetid_hsm_sign_seconds_count") + enrolled
    )
    assert after.total("fleetid_group_commit_batch_size_sum") >= (
        before.total("fleetid_group_commit_batch_size_sum") + enrolled + 1
    )
    assert after.get(
        "fleetid_http_requests_total", method="POST", route=ENROL, status="200"
    ) == before.get("fleetid_http_requests_total", method="POST", route=ENROL, status="200") + (
        enrolled
    )


def _assert_access_log(data: Path, tokens: list[IssuedToken], done: dict[str, Any]) -> set[int]:
    """Each enrolment's access line names its provisioner and device; no token secret anywhere;
    returns the processes that answered the enrolments."""
    lines = _json_lines(data)
    access = {e["request_id"]: e for e in lines if e.get("logger") == "fleetid.access"}
    for request_id in done["ids"]:
        line = access[request_id]
        assert line["status"] == 200 and line["path"] == ENROL and line["method"] == "POST"
        assert line["provisioner"] == "token" and line["device"].startswith("gw-")
        assert line["latency_ms"] > 0
    assert access["replay-1"]["status"] == 401
    text = (data / "serve.log").read_text()
    for token in tokens:
        assert token.password not in text
    return {access[request_id]["pid"] for request_id in done["ids"]}


def test_one_process_exposes_every_metric_and_counts(tmp_path: Path) -> None:
    data = tmp_path / "authority"
    data.mkdir()
    tokens = _authority(data, 3)
    port, metrics_port = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--metrics", f"127.0.0.1:{metrics_port}"]
    args += ["--log-format", "json", "--log-level", "info"]
    with serving(data, [port, metrics_port], args):
        before = _scrape(metrics_port)
        done = _exercise(f"http://127.0.0.1:{port}", tokens)
        after = _scrape(metrics_port)
    _assert_moved(before, after, done)
    from fleetid import metrics

    for name in metrics.__all__:
        metric = getattr(metrics, name)
        if hasattr(metric, "_name"):
            assert metric._name in before.names, f"{metric._name} is not exposed"
    for expression in dashboard_expressions(load_dashboard()):
        assert metric_names(expression) <= after.names, expression
    _assert_access_log(data, tokens, done)


def _health_until_two_workers_answered(base: str, data: Path) -> tuple[int, set[int]]:
    """``GET /health`` on fresh connections until the access log shows two processes answered
    (a worker still starting accepts nothing); how many requests, and which processes."""
    deadline = time.monotonic() + 120
    sent, pids = 0, set()
    while len(pids) < 2 and time.monotonic() < deadline:
        assert httpx.get(base + "/health", timeout=60).status_code == 200
        sent += 1
        pids = {
            e["pid"]
            for e in _json_lines(data)
            if e.get("logger") == "fleetid.access" and e["path"] == "/health"
        }
    return sent, pids


def test_two_workers_are_summed(tmp_path: Path) -> None:
    data = tmp_path / "authority"
    data.mkdir()
    tokens = _authority(data, 8)
    port, metrics_port = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--workers", "2"]
    args += ["--metrics", f"127.0.0.1:{metrics_port}"]
    args += ["--log-format", "json", "--log-level", "info"]
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    base = f"http://127.0.0.1:{port}"
    with serving(data, [port, metrics_port], args, env=env) as server:
        sent, answered = _health_until_two_workers_answered(base, data)
        assert len(answered) == 2 and server.pid not in answered  # two workers, not the parent
        before = _scrape(metrics_port)
        # Both workers answered these: the sum is right only if the listener adds both up.
        health = {"method": "GET", "route": "/health", "status": "200"}
        assert before.get("fleetid_http_requests_total", **health) == sent
        done = _exercise(base, tokens)
        after = _scrape(metrics_port)
    _assert_moved(before, after, done)
    _assert_access_log(data, tokens, done)
