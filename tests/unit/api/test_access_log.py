"""The access log, the request ID and the HTTP-side metrics, over the ASGI app (no sockets): one
JSON line per request with its ID, method, path, status, latency, provisioner and device; the
ID echoed; implausible IDs replaced; refusals counted by reason; no credential in any line."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from tests.asgi_app import asgi_request, enrol_with_token
from tests.log_capture import Captured, capture_json_logs

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import IssuedToken, create_token

ENROL = "/.well-known/est/simpleenroll"


@pytest.fixture
def logs() -> Iterator[Captured]:
    with capture_json_logs() as captured:
        yield captured


def _token(ca: FleetCa, device_id: str) -> IssuedToken:
    with ca.store.transaction() as tx:
        return create_token(tx, device_id=device_id, clock=ca.clock, ttl=timedelta(hours=1))


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_each_request_gets_one_access_line_with_its_id(app: Any, logs: Captured) -> None:
    response = asgi_request(app, "GET", "/health", headers={"X-Request-ID": "probe-42.a:b"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "probe-42.a:b"
    line = logs.access("probe-42.a:b")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/health", 200)
    assert line["latency_ms"] >= 0
    assert line["level"] == "info"
    assert "provisioner" not in line  # nothing named one
    second = asgi_request(app, "GET", "/no/such/route?secret=s3cr3t")
    generated = second.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    assert logs.access(generated)["status"] == 404
    assert "s3cr3t" not in logs.text()  # the query string is never logged


@pytest.mark.parametrize("offered", ["x" * 65, "bad id", 'inject"quote', "new\tline", ""])
def test_an_implausible_request_id_is_replaced(app: Any, offered: str) -> None:
    response = asgi_request(app, "GET", "/health", headers={"X-Request-ID": offered})
    assert response.headers["X-Request-ID"] != offered
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["X-Request-ID"])


def test_enrolment_names_provisioner_and_device_and_counts(
    app: Any, ca: FleetCa, logs: Captured
) -> None:
    labels = {"provisioner": "token", "credential_type": "token-device"}
    issued_before = _sample("fleetid_issuance_total", **labels)
    timed_before = _sample("fleetid_issuance_seconds_count", **labels)
    route_before = _sample("fleetid_http_requests_total", method="POST", route=ENROL, status="200")
    batches_before = _sample("fleetid_group_commit_batch_size_count", outcome="committed")
    token = _token(ca, "gw-log-1")
    assert enrol_with_token(app, token, **{"X-Request-ID": "enrol-1"}).status_code == 200
    assert _sample("fleetid_issuance_total", **labels) == issued_before + 1
    assert _sample("fleetid_issuance_seconds_count", **labels) == timed_before + 1
    assert (
        _sample("fleetid_http_requests_total", method="POST", route=ENROL, status="200")
        == route_before + 1
    )
    assert _sample("fleetid_group_commit_batch_size_count", outcome="committed") > batches_before
    issued = [e for e in logs.entries() if e["logger"] == "fleetid.authority.issuance"]
    assert [e["request_id"] for e in issued] == ["enrol-1"]  # logged on the writer thread
    line = logs.access("enrol-1")
    assert (line["provisioner"], line["device"], line["status"]) == ("token", "gw-log-1", 200)


def test_a_refusal_is_counted_by_reason_and_logged_without_the_credential(
    app: Any, ca: FleetCa, logs: Captured
) -> None:
    token = _token(ca, "gw-log-2")
    assert enrol_with_token(app, token).status_code == 200
    refused = _sample("fleetid_refusals_total", reason="unauthenticated")
    again = enrol_with_token(app, token, **{"X-Request-ID": "replay-1"})
    assert again.status_code == 401
    assert _sample("fleetid_refusals_total", reason="unauthenticated") == refused + 1
    assert logs.access("replay-1")["status"] == 401
    refusals = [e for e in logs.entries() if e["message"] == "refused"]
    assert [(e["request_id"], e["reason"]) for e in refusals] == [("replay-1", "unauthenticated")]
    text = logs.text()
    assert token.password not in text
    basic = base64.b64encode(f"{token.username}:{token.password}".encode()).decode()
    assert basic not in text


def test_the_route_label_is_the_template_not_the_path(app: Any) -> None:
    label = "/ocsp/{encoded:path}"
    before = _sample("fleetid_http_request_seconds_count", route=label)
    asgi_request(app, "GET", "/ocsp/MAo=")
    assert _sample("fleetid_http_request_seconds_count", route=label) == before + 1
    assert _sample("fleetid_http_request_seconds_count", route="/ocsp/MAo=") == 0
