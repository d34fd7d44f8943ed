"""The admin API over the ASGI app: every role against every action, the refusals of a request
without an operator certificate, with one from another CA, expired, revoked or unknown, and the
audit log naming the operator of every write. (``tests/conformance/test_admin_tls.py`` does the
same through ``fleetid serve --https`` and the CLI.)"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from tests.asgi_app import asgi_request
from tests.log_capture import capture_json_logs
from tests.operator_fixtures import Authority, authority

from fleetid.api import create_app
from fleetid.api.admin.authentication import operator_ca
from fleetid.api.peer_certificate import with_client_certificate
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_ca import OperatorCa, Role
from fleetid.clock import ManualClock, SystemClock
from fleetid.config import Settings
from fleetid.factory.auditlog import AuditLogReader, load_verifier_key
from fleetid.store.auditlog_table import audit_entries
from fleetid.store.operator_credentials import record_credential

__all__ = ["authority"]  # the fixture, imported for pytest

_LOCAL = {"via": "test"}


@dataclass
class Admin:
    ca: FleetCa
    app: Any
    history: Authority
    pems: dict[str, str]  # role -> certificate PEM
    serials: dict[str, str]  # role -> credential serial

    def request(self, pem: str | None, method: str, url: str, **kwargs: Any) -> httpx.Response:
        app = self.app if pem is None else with_client_certificate(self.app, pem)
        return asgi_request(app, method, url, **kwargs)

    def as_role(self, role: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.request(self.pems[role], method, url, **kwargs)


def _issue(operators: OperatorCa, ca: FleetCa, name: str, role: Role) -> tuple[str, str]:
    issued = operators.issue(name, role, timedelta(days=30))
    with ca.store.transaction() as tx:
        record_credential(tx, issued.record, by=_LOCAL)
    return issued.certificate_pem.decode(), issued.record.serial


@pytest.fixture
def admin(authority: Authority) -> Iterator[Admin]:
    settings = Settings.load(authority.data_dir)
    ca = FleetCa.open(settings, clock=SystemClock())
    try:
        operators = operator_ca(ca)
        pems, serials = {}, {}
        for role in Role:
            pems[str(role)], serials[str(role)] = _issue(operators, ca, f"{role}-1", role)
        app = create_app(settings, clock=ca.clock, ca=ca)
        yield Admin(ca=ca, app=app, history=authority, pems=pems, serials=serials)
    finally:
        ca.close()


def _problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["reason"] == reason, body
    return body


def _root_pem(common_name: str = "Maker Root") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


# Every action, as (least role, method, url, keyword arguments); {x} filled from the history.
ACTIONS: dict[str, tuple[Role, str, str, dict[str, Any]]] = {
    "whoami": (Role.VIEWER, "GET", "/admin/whoami", {}),
    "cert list": (Role.VIEWER, "GET", "/admin/certificates", {}),
    "cert show": (Role.VIEWER, "GET", "/admin/certificates/{enrolled}", {}),
    "cert pem": (Role.VIEWER, "GET", "/admin/certificates/{enrolled}/pem", {}),
    "device list": (Role.VIEWER, "GET", "/admin/devices", {}),
    "device show": (Role.VIEWER, "GET", "/admin/devices/gw-1", {}),
    "token list": (Role.VIEWER, "GET", "/admin/tokens", {}),
    "manufacturer list": (Role.VIEWER, "GET", "/admin/manufacturers", {}),
    "operator list": (Role.VIEWER, "GET", "/admin/operators", {}),
    "revoke cert": (
        Role.OPERATOR,
        "POST",
        "/admin/certificates/{enrolled}/revocation",
        {"json": {"reason": "keyCompromise"}},
    ),
    "revoke device": (
        Role.OPERATOR,
        "POST",
        "/admin/devices/gw-2/revocation",
        {"json": {"reason": "cessationOfOperation"}},
    ),
    "token create": (Role.OPERATOR, "POST", "/admin/tokens", {"json": {"device_id": "gw-7"}}),
    "publish": (Role.OPERATOR, "POST", "/admin/crls", {}),
    "trust manufacturer": (
        Role.SECURITY_OFFICER,
        "POST",
        "/admin/manufacturers",
        {"headers": {"Content-Type": "application/pem-certificate-chain"}},
    ),
    "revoke operator": (
        Role.SECURITY_OFFICER,
        "POST",
        "/admin/operators/{viewer}/revocation",
        {},
    ),
}


def _call(admin: Admin, role: str, action: str) -> httpx.Response:
    _least, method, url, kwargs = ACTIONS[action]
    url = url.format(enrolled=admin.history.enrolled.serial, viewer=admin.serials["viewer"])
    if action == "trust manufacturer":
        kwargs = {**kwargs, "content": _root_pem()}
    return admin.as_role(role, method, url, **kwargs)


def test_every_role_against_every_action(admin: Admin) -> None:
    # In ACTIONS' order: the last revokes the viewer's credential, which every other needs.
    for action, (least, method, _url, _kwargs) in ACTIONS.items():
        for role in Role:
            if action == "revoke operator" and role is Role.VIEWER:
                continue  # its own credential is the target; refused for any viewer below
            response = _call(admin, str(role), action)
            if role.rank >= least.rank:
                assert response.is_success, (role, action, response.text)
                # The least role allowed did it; a second write would meet its new state.
                if method != "GET":
                    break
            else:
                body = _problem(response, 403, "operator-role")
                assert f"needs the role {least}" in body["detail"], (role, action)
                assert body["type"] == "urn:fleetid:problem:policy-refused"
    # Nor may an operator revoke operator credentials: that is the security officer's.
    target = admin.serials["operator"]
    refused = admin.as_role("operator", "POST", f"/admin/operators/{target}/revocation")
    _problem(refused, 403, "operator-role")


def test_a_viewer_is_refused_revocation_and_nothing_is_revoked(admin: Admin) -> None:
    serial = admin.history.enrolled.serial
    _problem(_call(admin, "viewer", "revoke cert"), 403, "operator-role")
    shown = admin.as_role("viewer", "GET", f"/admin/certificates/{serial}").json()
    assert shown["status"] == "valid"


def test_without_a_certificate_the_answer_is_401_missing(admin: Admin) -> None:
    for action in ("cert list", "revoke cert", "publish"):
        _least, method, url, kwargs = ACTIONS[action]
        url = url.format(enrolled=admin.history.enrolled.serial)
        response = admin.request(None, method, url, **kwargs)
        body = _problem(response, 401, "operator-certificate-missing")
        assert "TLS client certificate" in body["detail"]
        assert "tls-client-certificate" in response.headers["www-authenticate"]
        assert "Basic" not in response.headers["www-authenticate"]


def test_a_device_certificate_of_the_fleet_ca_is_foreign(admin: Admin) -> None:
    device = x509.load_der_x509_certificate(admin.history.enrolled.der)
    pem = device.public_bytes(serialization.Encoding.PEM).decode()
    _problem(admin.request(pem, "GET", "/admin/whoami"), 401, "operator-certificate-foreign")


def test_a_certificate_from_another_ca_with_the_same_name_is_foreign(admin: Admin) -> None:
    # Another CA that calls itself "fleetid operator CA": the name is not the key.
    key = ec.generate_private_key(ec.SECP256R1())
    operators = operator_ca(admin.ca)
    now = datetime.now(UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")]))
        .issuer_name(operators.certificate.subject)
        .public_key(key.public_key())
        .serial_number(int(admin.serials["security-officer"], 16))  # a recorded serial, even
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = forged.public_bytes(serialization.Encoding.PEM).decode()
    _problem(admin.request(pem, "GET", "/admin/whoami"), 401, "operator-certificate-foreign")


def test_an_expired_certificate_is_refused(admin: Admin) -> None:
    past = ManualClock(datetime.now(UTC) - timedelta(days=10))
    stale = OperatorCa.ensure(admin.ca.settings.data_dir, admin.ca.hsm, admin.ca.store, past)
    pem, _ = _issue(stale, admin.ca, "old-op", Role.SECURITY_OFFICER)
    # Issued ten days ago for one day:
    issued = stale.issue("older-op", Role.SECURITY_OFFICER, timedelta(days=1))
    with admin.ca.store.transaction() as tx:
        record_credential(tx, issued.record, by=_LOCAL)
    body = _problem(
        admin.request(issued.certificate_pem.decode(), "GET", "/admin/whoami"),
        401,
        "operator-certificate-expired",
    )
    assert "not valid now" in body["detail"]
    assert admin.request(pem, "GET", "/admin/whoami").status_code == 200  # 30 days: still valid


def test_a_revoked_credential_is_refused_from_its_next_request(admin: Admin) -> None:
    pem = admin.pems["operator"]
    assert admin.request(pem, "GET", "/admin/whoami").json()["role"] == "operator"
    serial = admin.serials["operator"]
    done = admin.as_role("security-officer", "POST", f"/admin/operators/{serial}/revocation")
    assert done.status_code == 200, done.text
    body = _problem(admin.request(pem, "GET", "/admin/whoami"), 401, "operator-certificate-revoked")
    assert serial in body["detail"]
    again = admin.as_role("security-officer", "POST", f"/admin/operators/{serial}/revocation")
    assert again.status_code == 403  # revoked already


def test_a_certificate_the_operator_ca_signed_but_never_recorded_is_unknown(
    admin: Admin,
) -> None:
    unrecorded = operator_ca(admin.ca).issue("ghost", Role.SECURITY_OFFICER, timedelta(days=1))
    response = admin.request(unrecorded.certificate_pem.decode(), "GET", "/admin/whoami")
    _problem(response, 401, "operator-certificate-unknown")


def _audit(ca: FleetCa) -> list[Any]:
    with ca.store.engine.connect() as connection:
        return list(connection.execute(select(audit_entries).order_by(audit_entries.c.seq)))


def test_every_write_names_the_operator_in_the_audit_log(admin: Admin) -> None:
    import json

    before = len(_audit(admin.ca))
    for action in ("revoke cert", "token create", "publish"):
        assert _call(admin, "operator", action).is_success
    assert _call(admin, "security-officer", "trust manufacturer").status_code == 201
    entries = _audit(admin.ca)[before:]
    kinds = [e.kind for e in entries]
    assert kinds == ["ca.revocation", "ca.token", "ca.publication", "ca.manufacturer"]
    who = [json.loads(e.body)["operator"] for e in entries]
    assert (
        who[:3]
        == [{"name": "operator-1", "role": "operator", "credential": admin.serials["operator"]}] * 3
    )
    assert who[3]["name"] == "security-officer-1"
    assert entries[0].serial == admin.history.enrolled.serial
    # The entries are part of the signed log: the whole log verifies, these included.
    origin, key = load_verifier_key(admin.ca.settings.data_dir)
    report = AuditLogReader(admin.ca.settings.data_dir, origin).verify_all(key)
    assert report.entries == before + 4


def test_lists_are_paginated_with_a_next_link(admin: Admin) -> None:
    first = admin.as_role("viewer", "GET", "/admin/certificates", params={"limit": 3})
    page = first.json()
    assert len(page["items"]) == 3
    assert page["next"] == "/admin/certificates?limit=3&offset=3"
    assert first.headers["link"] == "<" + page["next"] + '>; rel="next"'
    rest = admin.as_role("viewer", "GET", page["next"]).json()
    assert rest["next"] is None
    serials = [c["serial"] for c in page["items"] + rest["items"]]
    assert len(serials) == len(set(serials)) == 4
    refused = admin.as_role("viewer", "GET", "/admin/certificates", params={"limit": 0})
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("query.limit")


def test_the_api_answers_the_cli_documents(admin: Admin) -> None:
    device = admin.as_role("viewer", "GET", "/admin/devices/gw-1").json()
    events = [e["event"] for e in device["timeline"]]
    assert events == ["enrolled", "refresh", "re-key", "revoked"]
    missing = admin.as_role("viewer", "GET", "/admin/devices/gw-9")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "this authority knows no device 'gw-9'"
    tokens = admin.as_role(
        "operator", "POST", "/admin/tokens", json={"device_prefix": "lot-", "count": 3}
    )
    assert tokens.status_code == 201
    assert [t["device_id"] for t in tokens.json()] == ["lot-0001", "lot-0002", "lot-0003"]
    listed = admin.as_role("viewer", "GET", "/admin/tokens", params={"state": "unused"}).json()
    assert {t["device_id"] for t in listed["items"]} == {"lot-0001", "lot-0002", "lot-0003"}
    assert all("password" not in t for t in listed["items"])


def test_bad_input_is_a_precise_problem(admin: Admin) -> None:
    bad_reason = admin.as_role(
        "operator",
        "POST",
        f"/admin/certificates/{admin.history.enrolled.serial}/revocation",
        json={"reason": "whim"},
    )
    assert bad_reason.status_code == 400
    assert bad_reason.json()["detail"].startswith("body.reason: Value error, not an RFC 5280")
    not_pem = admin.as_role(
        "security-officer",
        "POST",
        "/admin/manufacturers",
        content=b"not a certificate",
        headers={"Content-Type": "application/pem-certificate-chain"},
    )
    assert not_pem.status_code == 400
    assert not_pem.json()["detail"] == "the body is not one PEM certificate"
    wrong_type = admin.as_role(
        "security-officer", "POST", "/admin/manufacturers", json={"pem": "x"}
    )
    assert wrong_type.status_code == 415
    both = admin.as_role(
        "operator", "POST", "/admin/tokens", json={"device_id": "a", "device_prefix": "b"}
    )
    assert both.status_code == 400
    assert both.json()["detail"] == "give device_id or device_prefix, not both"


def test_the_openapi_document_lists_the_admin_routes_and_no_swagger_page(admin: Admin) -> None:
    document = asgi_request(admin.app, "GET", "/openapi.json").json()
    paths = document["paths"]
    assert {"/admin/certificates", "/admin/tokens", "/admin/crls"} <= set(paths)
    assert "401" in paths["/admin/certificates"]["get"]["responses"]
    assert "403" in paths["/admin/crls"]["post"]["responses"]
    assert asgi_request(admin.app, "GET", "/docs").status_code == 404
    assert asgi_request(admin.app, "GET", "/redoc").status_code == 404


def test_the_access_log_names_the_operator_and_never_a_password(admin: Admin) -> None:
    with capture_json_logs() as logs:
        made = admin.as_role(
            "operator", "POST", "/admin/tokens", json={"device_id": "gw-8"},
            headers={"X-Request-ID": "admin-1"},
        )  # fmt: skip
        refused = admin.as_role(
            "viewer", "POST", "/admin/crls", headers={"X-Request-ID": "admin-2"}
        )
    assert made.status_code == 201 and refused.status_code == 403
    line = logs.access("admin-1")
    assert (line["operator"], line["operator_role"], line["status"]) == (
        "operator-1",
        "operator",
        201,
    )
    assert logs.access("admin-2")["operator"] == "viewer-1"
    assert made.json()[0]["password"] not in logs.text()
