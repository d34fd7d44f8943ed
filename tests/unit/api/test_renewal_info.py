"""Renewal information (RFC 9773): the certificate identifier against the RFC's own example,
the deterministic spread of windows, and ``GET /renewal-info/{cert_id}``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from tests.asgi_app import asgi_request, enrol_with_token

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import create_token
from fleetid.authority.revoke import revoke_serial
from fleetid.errors import EncodingError
from fleetid.formats.renewal_info import cert_id, parse_cert_id, window_from_json, window_json
from fleetid.policy import DEFAULT_POLICY, CredentialType
from fleetid.policy.renewal_window import SLICE, SPREAD, suggested_window

# RFC 9773 §4.1's example: keyIdentifier 69:88:5B:...:D4 and serial 00:87:65:43:21.
_RFC_AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
_RFC_SERIAL = 0x87654321
_RFC_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def _certificate(aki: bytes | None, serial: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2026, 2, 1, tzinfo=UTC))
    )
    if aki is not None:
        identifier = x509.AuthorityKeyIdentifier(aki, None, None)
        builder = builder.add_extension(identifier, critical=False)
    return builder.sign(key, hashes.SHA256())


def test_the_identifier_is_the_rfc_example() -> None:
    assert cert_id(_certificate(_RFC_AKI, _RFC_SERIAL)) == _RFC_ID
    assert parse_cert_id(_RFC_ID) == (_RFC_AKI, _RFC_SERIAL)


def test_a_serial_without_the_high_bit_has_no_leading_zero() -> None:
    text = cert_id(_certificate(_RFC_AKI, 0x7F01))
    assert text.endswith(".fwE")
    assert parse_cert_id(text)[1] == 0x7F01


def test_a_certificate_without_authority_key_identifier_has_no_identifier() -> None:
    with pytest.raises(EncodingError, match="authority key identifier"):
        cert_id(_certificate(None, 5))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ",  # one part
        "a.b.c",
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ=.AIdlQyE",  # padded
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.gA",  # 0x80: a negative INTEGER
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AAE",  # 00 01: not the shortest form
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.A",  # not base64
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.",
        "x" * 300 + ".AQ",
    ],
)
def test_malformed_identifiers_are_encoding_errors(text: str) -> None:
    with pytest.raises(EncodingError):
        parse_cert_id(text)


def test_the_window_json_round_trips_and_bad_answers_are_refused() -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    window = window_from_json(window_json(suggested_window_for(start)))
    assert window.end > window.start
    assert window_json(window)["suggestedWindow"] == {
        "start": window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": window.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for bad in (
        [],
        {},
        {"suggestedWindow": {"start": "2026-03-01T00:00:00Z"}},
        {"suggestedWindow": {"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}},
        {"suggestedWindow": {"start": "2026-03-01T00:00:00", "end": "2026-03-02T00:00:00"}},
        {"suggestedWindow": {"start": "soon", "end": "later"}},
    ):
        with pytest.raises(EncodingError):
            window_from_json(bad)


def suggested_window_for(not_after: datetime, serial: int = 1) -> Any:
    cadence = DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence
    return suggested_window(cadence, not_after, serial)


def test_windows_are_deterministic_and_spread_over_the_first_half_of_the_renewal_window() -> None:
    cadence = DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence
    not_after = datetime(2026, 6, 1, tzinfo=UTC)
    opens = cadence.renew_from(not_after)
    windows = [suggested_window(cadence, not_after, serial) for serial in range(1, 4001)]
    assert windows[7] == suggested_window(cadence, not_after, 8)  # the same answer each time
    for window in windows:
        assert opens <= window.start
        assert window.end <= opens + cadence.renewal_window * SPREAD
        assert window.end - window.start == cadence.renewal_window * SLICE
    # Uniform: each tenth of the spread holds about a tenth of the starts (4000 serials).
    spread = cadence.renewal_window * SPREAD - cadence.renewal_window * SLICE
    counts = [0] * 10
    for window in windows:
        counts[min(9, int((window.start - opens) / spread * 10))] += 1
    assert all(300 < count < 500 for count in counts), counts


# --- the route ---------------------------------------------------------------------------------


def _enrolled(app: Any, ca: FleetCa, device_id: str) -> x509.Certificate:
    with ca.store.transaction() as tx:
        token = create_token(tx, device_id=device_id, clock=ca.clock, ttl=timedelta(hours=1))
    response = enrol_with_token(app, token)
    assert response.status_code == 200, response.text
    der = base64.b64decode(response.content)
    (certificate,) = pkcs7.load_der_pkcs7_certificates(der)
    return certificate


def test_the_route_answers_the_window_of_an_issued_certificate(app: Any, ca: FleetCa) -> None:
    certificate = _enrolled(app, ca, "gw-ari")
    response = asgi_request(app, "GET", f"/renewal-info/{cert_id(certificate)}")
    assert response.status_code == 200, response.text
    assert int(response.headers["Retry-After"]) > 0
    window = window_from_json(response.json())
    cadence = ca.settings.policy.profile(CredentialType.TOKEN_DEVICE).cadence
    expected = suggested_window(cadence, certificate.not_valid_after_utc, certificate.serial_number)
    assert window_json(window) == window_json(expected)
    assert window.start >= cadence.renew_from(certificate.not_valid_after_utc)


def test_a_revoked_certificate_is_asked_to_renew_now(app: Any, ca: FleetCa) -> None:
    certificate = _enrolled(app, ca, "gw-ari-revoked")
    revoke_serial(ca.store, f"{certificate.serial_number:x}", "keyCompromise", clock=ca.clock)
    response = asgi_request(app, "GET", f"/renewal-info/{cert_id(certificate)}")
    window = window_from_json(response.json())
    assert window.end <= ca.clock.now()


def test_unknown_and_foreign_certificates_are_404_and_garbage_is_400(app: Any, ca: FleetCa) -> None:
    issuing_ski = ca.issuing.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    )
    unknown = cert_id(_certificate(issuing_ski.value.digest, 0x1234567))
    foreign = cert_id(_certificate(_RFC_AKI, _RFC_SERIAL))
    for text, status in ((unknown, 404), (foreign, 404), ("not-an-id", 400), ("AA.gA", 400)):
        response = asgi_request(app, "GET", f"/renewal-info/{text}")
        assert response.status_code == status, (text, response.text)
        assert response.headers["content-type"] == "application/problem+json"
