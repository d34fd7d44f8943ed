"""The admin API through a real ``fleetid serve --https``: operators authenticate with TLS client
certificates from the operator CA (``fleetid operator create``), as curl and the ``fleetid`` CLI
(``--ca-url``) present them; a missing, foreign or revoked certificate is refused precisely, and
a role that does not allow an action is refused with 403."""

from __future__ import annotations

import json

from tests.authority_server import fleetid
from tests.conformance.conftest import Authority


def _base(authority: Authority) -> str:
    return authority.est.removesuffix("/.well-known/est")


def _operator(authority: Authority, name: str, role: str) -> tuple[str, str, str]:
    """``fleetid operator create``: the certificate and key file names, and the serial."""
    made = authority.fleetid(
        "operator", "create", name, "--role", role, "--out", str(authority.work), "--json"
    )
    assert made.returncode == 0, made.stderr
    document = json.loads(made.stdout)
    return f"{name}.crt", f"{name}.key", document["serial"]


def _curl(authority: Authority, path: str, *extra: str) -> tuple[str, dict[str, object]]:
    """curl GETs ``/admin{path}``, verifying the server against the fleet root."""
    out = authority.ok(
        authority.curl, "-sS", "--cacert", "root.pem", "-o", "answer.json", "-w", "%{http_code}",
        *extra, f"{_base(authority)}/admin{path}",
    )  # fmt: skip
    return out, json.loads((authority.work / "answer.json").read_text())


def _remote(authority: Authority, cert: str, key: str, *args: str) -> tuple[int, str, str]:
    result = fleetid(
        *args,
        "--ca-url", _base(authority), "--root", str(authority.work / "root.pem"),
        "--operator-cert", str(authority.work / cert),
        "--operator-key", str(authority.work / key),
        env=authority.env,
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def test_an_operator_certificate_authenticates_over_tls(authority: Authority) -> None:
    cert, key, serial = _operator(authority, "olga", "operator")
    status, body = _curl(authority, "/whoami", "--cert", cert, "--key", key)
    assert status == "200"
    assert body == {"name": "olga", "role": "operator", "credential": serial}


def test_without_a_certificate_the_answer_is_401(authority: Authority) -> None:
    status, body = _curl(authority, "/certificates")
    assert status == "401"
    assert body["reason"] == "operator-certificate-missing"


def test_a_device_certificate_is_refused_as_foreign(authority: Authority) -> None:
    # The TLS handshake accepts it (the fleet CA is a client trust anchor, for re-enrolment);
    # the admin API does not.
    device = authority.enrol()
    status, body = _curl(authority, "/whoami", "--cert", device.certificate, "--key", device.key)
    assert status == "401"
    assert body["reason"] == "operator-certificate-foreign"


def test_a_certificate_of_another_ca_fails_the_handshake(authority: Authority) -> None:
    authority.ok(
        authority.openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "stranger.key", "-out", "stranger.crt", "-days", "1",
        "-subj", "/CN=fleetid operator CA",
    )  # fmt: skip
    result = authority.run(
        authority.curl, "-sS", "--cacert", "root.pem", "--cert", "stranger.crt",
        "--key", "stranger.key", f"{_base(authority)}/admin/whoami",
    )  # fmt: skip
    # TLS 1.3 verifies the client's certificate after the client's Finished (RFC 8446 §4.4.2.4):
    # curl sees an alert (35, 56) or the connection closed with no answer (52), never HTTP.
    assert result.returncode in (35, 52, 56), result.stderr
    assert result.stdout == ""


def test_the_cli_lists_and_revokes_through_the_api_by_role(authority: Authority) -> None:
    device = authority.enrol()
    viewer = _operator(authority, "vera", "viewer")
    operator = _operator(authority, "otto", "operator")
    status, out, err = _remote(authority, *viewer[:2], "cert", "list", "--json")
    assert status == 0, err
    assert device.serial in {c["serial"] for c in json.loads(out)}
    # The viewer may read but not revoke: one line, the role named, nothing revoked.
    status, out, err = _remote(
        authority, *viewer[:2], "revoke", device.serial, "--reason", "keyCompromise"
    )
    assert status == 1
    assert err.startswith("fleetid: PolicyError: operator vera (viewer) may not revoke")
    assert err.rstrip().endswith("(HTTP 403)") and err.count("\n") == 1
    status, out, _ = _remote(authority, *viewer[:2], "cert", "show", device.serial, "--json")
    assert json.loads(out)["status"] == "valid"
    # The operator may; the audit entry of the revocation names it.
    status, out, err = _remote(
        authority, *operator[:2], "revoke", device.serial, "--reason", "keyCompromise"
    )
    assert status == 0, err
    assert out.startswith(f"revoked {device.serial} keyCompromise seq ")
    status, out, _ = _remote(authority, *viewer[:2], "cert", "show", device.serial, "--json")
    shown = json.loads(out)
    assert shown["status"] == "revoked"
    (entry,) = [e for e in shown["audit"] if e["kind"] == "ca.revocation"]
    assert entry["body"]["operator"] == {
        "name": "otto",
        "role": "operator",
        "credential": operator[2],
    }
    # The same document as the local command's.
    local = authority.fleetid("cert", "show", device.serial, "--json")
    assert json.loads(local.stdout) == shown


def test_a_revoked_operator_credential_is_refused_at_once(authority: Authority) -> None:
    cert, key, serial = _operator(authority, "rita", "security-officer")
    assert _curl(authority, "/whoami", "--cert", cert, "--key", key)[0] == "200"
    revoked = authority.fleetid("operator", "revoke", serial)
    assert revoked.returncode == 0, revoked.stderr
    status, body = _curl(authority, "/whoami", "--cert", cert, "--key", key)
    assert status == "401"
    assert body["reason"] == "operator-certificate-revoked"
    code, _, err = _remote(authority, cert, key, "token", "list")
    assert code == 1
    assert err.startswith("fleetid: AuthenticationError: operator credential")
