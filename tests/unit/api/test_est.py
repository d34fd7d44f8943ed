"""EST over the ASGI app, on SQLite and PostgreSQL: the token provisioner, re-enrolment, errors.

Bodies are checked as RFC 7030 §4 writes them (base64 DER), decoded by pyca and, for
``csrattrs``, by pyasn1-alt-modules' RFC 7030 module as an independent decoder.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from pyasn1.codec.der import decoder as der_decoder
from pyasn1_alt_modules import rfc7030

from fleetid.api import create_app
from fleetid.api.peer_certificate import with_client_certificate
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import IssuedToken, create_token
from fleetid.authority.revoke import revoke_device, revoke_serial
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.errors import NotFoundError, PolicyError
from fleetid.store.schema import CertificateStatus, DeviceStatus

BASE = "http://fleet.test"
EST = "/.well-known/est"
PKCS10 = {"Content-Type": "application/pkcs10"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ca(tmp_path: Path, db_url: str, clock: ManualClock) -> Iterator[FleetCa]:
    settings = Settings.load(
        tmp_path, environ={"FLEETID_DATABASE_URL": db_url, "FLEETID_PUBLIC_URL": BASE}
    )
    authority = FleetCa.init(settings, clock=clock, name="Test Fleet")
    yield authority
    authority.close()


class AsgiClient:
    """A synchronous face on httpx's in-process ASGI transport (no sockets)."""

    def __init__(self, app: Any, client_certificate: x509.Certificate | None = None) -> None:
        if client_certificate is not None:  # as fleetid serve --https hands one to the app
            pem = client_certificate.public_bytes(serialization.Encoding.PEM).decode()
            app = with_client_certificate(app, pem)
        self._transport = httpx.ASGITransport(app=app)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=self._transport, base_url=BASE) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def client(ca: FleetCa, clock: ManualClock) -> AsgiClient:
    return AsgiClient(create_app(ca.settings, clock=clock, ca=ca))


def _token(
    ca: FleetCa, device_id: str = "gw-1", ttl: timedelta = timedelta(hours=1)
) -> IssuedToken:
    with ca.store.transaction() as tx:
        return create_token(tx, device_id=device_id, clock=ca.clock, ttl=ttl)


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatever")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def _body(der: bytes) -> bytes:
    return base64.encodebytes(der)  # 76-column lines, as MIME writes them


def _enrol(client: AsgiClient, token: IssuedToken, der: bytes) -> httpx.Response:
    return client.post(
        f"{EST}/simpleenroll",
        content=_body(der),
        headers={"Content-Type": "application/pkcs10"},
        auth=(token.username, token.password),
    )


def _certs(response: httpx.Response) -> list[x509.Certificate]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/pkcs7-mime")
    der = base64.b64decode(b"".join(response.content.split()), validate=True)
    return pkcs7.load_der_pkcs7_certificates(der)


def _problem(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:fleetid:problem:")
    assert detail in body["detail"], body


# --- cacerts, csrattrs, OpenAPI -----------------------------------------------------------------


def test_cacerts_is_base64_certs_only_with_the_chain(client: AsgiClient, ca: FleetCa) -> None:
    response = client.get(f"{EST}/cacerts")
    assert response.headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
    assert all(len(line) <= 64 for line in response.content.splitlines())
    # CMS ``certificates`` is a SET OF: DER orders it by encoding, not by chain position.
    assert set(_certs(response)) == set(ca.chain())
    issuing, root = ca.chain()
    issuing.verify_directly_issued_by(root)


def test_csrattrs_decodes_with_an_independent_rfc7030_module(client: AsgiClient) -> None:
    response = client.get(f"{EST}/csrattrs")
    assert response.headers["content-type"] == "application/csrattrs"
    decoded, rest = der_decoder.decode(
        base64.b64decode(response.content), asn1Spec=rfc7030.CsrAttrs()
    )
    assert rest == b""
    assert str(decoded[0]["oid"]) == "1.2.840.10045.4.3.2"
    assert str(decoded[1]["attribute"]["attrType"]) == "1.2.840.10045.2.1"


def test_openapi_lists_the_est_operations(client: AsgiClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for operation in ("cacerts", "simpleenroll", "simplereenroll", "csrattrs"):
        assert f"{EST}/{operation}" in paths
    body = paths[f"{EST}/simpleenroll"]["post"]["requestBody"]["content"]
    assert "application/pkcs10" in body


def test_openapi_documents_http_basic_on_simpleenroll_only(client: AsgiClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert paths[f"{EST}/simpleenroll"]["post"]["security"] == [{"HTTPBasic": []}]
    assert "security" not in paths[f"{EST}/simplereenroll"]["post"]
    assert "security" not in paths[f"{EST}/cacerts"]["get"]
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"HTTPBasic": {"type": "http", "scheme": "basic"}}


def test_unknown_route_is_problem_details(client: AsgiClient) -> None:
    _problem(client.get(f"{EST}/serverkeygen"), 404, "Not Found")


# --- simpleenroll with a one-time token --------------------------------------------------------


def test_token_enrolment_issues_a_profiled_certificate(client: AsgiClient, ca: FleetCa) -> None:
    token = _token(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    (certificate,) = _certs(_enrol(client, token, _csr(key)))
    certificate.verify_directly_issued_by(ca.issuing.certificate)
    assert certificate.public_key() == key.public_key()
    assert certificate.subject.rfc4514_string() == "CN=gw-1"  # the token's device, not the CSR's
    assert len(certificate.serial_number.to_bytes(20, "big")) == 20
    aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, f"{BASE}/ocsp")
    ]
    cdp = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    shard = certificate.serial_number % 16
    assert cdp[0].full_name[0].value == f"{BASE}/crl/issuing-1/{shard}.crl"
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certificate.not_valid_after_utc - ca.clock.now() == timedelta(days=7)
    with ca.store.transaction() as tx:
        record = tx.certificates.by_serial(f"{certificate.serial_number:x}")
        assert record.device_id == "gw-1"
        assert record.profile == "token-device"
        assert tx.devices.require("gw-1").status == DeviceStatus.ENROLLED
        assert tx.tokens.get(token.username).certificate_id == record.id  # type: ignore[union-attr]


def test_reused_token_is_refused(client: AsgiClient, ca: FleetCa) -> None:
    token = _token(ca)
    _certs(_enrol(client, token, _csr()))
    response = _enrol(client, token, _csr())
    _problem(response, 401, "used already")
    assert response.headers["www-authenticate"].startswith("Basic realm=")


def test_expired_token_is_refused(client: AsgiClient, ca: FleetCa, clock: ManualClock) -> None:
    token = _token(ca, ttl=timedelta(minutes=10))
    clock.advance(timedelta(minutes=10))
    _problem(_enrol(client, token, _csr()), 401, "expired")


def test_wrong_password_is_refused_and_does_not_spend_the_token(
    client: AsgiClient, ca: FleetCa
) -> None:
    token = _token(ca)
    wrong = IssuedToken(
        username=token.username,
        password=token.password[:-1] + ("A" if token.password[-1] != "A" else "B"),
        device_id=token.device_id,
        expires_at=token.expires_at,
    )
    _problem(_enrol(client, wrong, _csr()), 401, "wrong password")
    _certs(_enrol(client, token, _csr()))


def test_unknown_token_user_is_refused(client: AsgiClient, ca: FleetCa) -> None:
    ghost = IssuedToken(
        username="t-0000000000000000", password="x", device_id="x", expires_at=ca.clock.now()
    )
    _problem(_enrol(client, ghost, _csr()), 401, "unknown enrolment token")


def test_enrolment_without_credentials_is_401(client: AsgiClient) -> None:
    response = client.post(f"{EST}/simpleenroll", content=_body(_csr()), headers=PKCS10)
    _problem(response, 401, "needs a credential")
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!not-base64!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode("t-1:\u00e9".encode()).decode(),  # not ASCII
    ],
)
def test_malformed_basic_credentials_are_401_and_keep_the_token(
    client: AsgiClient, ca: FleetCa, authorization: str
) -> None:
    token = _token(ca)
    response = client.post(
        f"{EST}/simpleenroll",
        content=_body(_csr()),
        headers={**PKCS10, "Authorization": authorization},
    )
    _problem(response, 401, "Not authenticated")
    assert response.headers["www-authenticate"].startswith("Basic")
    assert _enrol(client, token, _csr()).status_code == 200


def test_another_authorization_scheme_is_no_credential(client: AsgiClient) -> None:
    response = client.post(
        f"{EST}/simpleenroll",
        content=_body(_csr()),
        headers={**PKCS10, "Authorization": "Bearer abc"},
    )
    _problem(response, 401, "needs a credential")


def test_body_that_is_not_base64_is_400_and_keeps_the_token(
    client: AsgiClient, ca: FleetCa
) -> None:
    token = _token(ca)
    response = client.post(
        f"{EST}/simpleenroll",
        content=b"%%% not base64 %%%",
        headers=PKCS10,
        auth=(token.username, token.password),
    )
    _problem(response, 400, "not base64")
    _certs(_enrol(client, token, _csr()))


def test_raw_der_body_is_400(client: AsgiClient, ca: FleetCa) -> None:
    # RFC 7030 §4.2.1 wants base64; a binary DER body is refused, not guessed at.
    token = _token(ca)
    response = client.post(
        f"{EST}/simpleenroll", content=_csr(), headers=PKCS10, auth=(token.username, token.password)
    )
    _problem(response, 400, "not base64")


def test_base64_of_garbage_is_400_not_a_csr(client: AsgiClient, ca: FleetCa) -> None:
    token = _token(ca)
    _problem(_enrol(client, token, b"\x30\x03\x02\x01\x00"), 400, "not a DER PKCS#10")


def test_empty_body_is_400(client: AsgiClient, ca: FleetCa) -> None:
    token = _token(ca)
    response = client.post(
        f"{EST}/simpleenroll", headers=PKCS10, auth=(token.username, token.password)
    )
    _problem(response, 400, "empty")


@pytest.mark.parametrize("operation", ["simpleenroll", "simplereenroll"])
@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/plain"])
def test_enrolment_body_of_another_media_type_is_415_and_keeps_the_token(
    client: AsgiClient, ca: FleetCa, operation: str, content_type: str | None
) -> None:
    token = _token(ca)
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post(
        f"{EST}/{operation}",
        content=_body(_csr()),
        headers=headers,
        auth=(token.username, token.password),
    )
    _problem(response, 415, "application/pkcs10 (RFC 7030 §4.2.1)")
    _certs(_enrol(client, token, _csr()))


def test_pkcs10_media_type_parameters_and_case_are_accepted(
    client: AsgiClient, ca: FleetCa
) -> None:
    token = _token(ca)
    response = client.post(
        f"{EST}/simpleenroll",
        content=_body(_csr()),
        headers={"Content-Type": "Application/PKCS10; charset=us-ascii"},
        auth=(token.username, token.password),
    )
    _certs(response)


def test_csr_with_a_bad_signature_is_400(client: AsgiClient, ca: FleetCa) -> None:
    token = _token(ca)
    der = bytearray(_csr())
    der[-1] ^= 0x01  # last octet of the ECDSA s value: still DER, no longer a valid signature
    response = _enrol(client, token, bytes(der))
    _problem(response, 400, "signature does not verify")
    assert response.json()["type"] == "urn:fleetid:problem:verification-failed"


def test_rsa_key_is_refused_by_policy(client: AsgiClient, ca: FleetCa) -> None:
    token = _token(ca)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _problem(_enrol(client, token, _csr(key)), 403, "only EC keys")


def test_token_for_a_revoked_device_cannot_be_created(ca: FleetCa, client: AsgiClient) -> None:
    _certs(_enrol(client, _token(ca), _csr()))
    revoke_device(ca.store, "gw-1", "cessationOfOperation", clock=ca.clock)
    with pytest.raises(PolicyError, match="revoked"):
        _token(ca)


# --- simplereenroll -----------------------------------------------------------------------------


def _reenrol(client: AsgiClient, der: bytes, **headers: str) -> httpx.Response:
    return client.post(f"{EST}/simplereenroll", content=_body(der), headers={**PKCS10, **headers})


def _renewal_csr(key: ec.EllipticCurvePrivateKey, current: x509.Certificate) -> bytes:
    """What a stock EST client re-enrols with: the current subject, the same key (§4.2.2)."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(current.subject)
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _mtls(ca: FleetCa, clock: ManualClock, certificate: x509.Certificate) -> AsgiClient:
    """A client whose TLS connection authenticated with ``certificate`` (RFC 7030 §3.3.2)."""
    return AsgiClient(create_app(ca.settings, clock=clock, ca=ca), certificate)


def _enrolled(
    client: AsgiClient, ca: FleetCa
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    (certificate,) = _certs(_enrol(client, _token(ca), _csr(key)))
    return key, certificate


def _records(ca: FleetCa, device_id: str = "gw-1") -> list[tuple[str, str, str | None]]:
    with ca.store.transaction() as tx:
        return sorted(
            (c.serial, c.status, c.revocation_reason) for c in tx.certificates.for_device(device_id)
        )


def test_reenrol_over_mtls_supersedes_the_current_certificate(
    client: AsgiClient, ca: FleetCa, clock: ManualClock
) -> None:
    key, first = _enrolled(client, ca)
    ca.clock.advance(timedelta(days=6))
    (second,) = _certs(_reenrol(_mtls(ca, clock, first), _renewal_csr(key, first)))
    assert second.serial_number != first.serial_number
    assert second.subject == first.subject
    with ca.store.transaction() as tx:
        old = tx.certificates.by_serial(f"{first.serial_number:x}")
        new = tx.certificates.by_serial(f"{second.serial_number:x}")
    # A refresh links the old credential to its successor and leaves it to expire, unrevoked.
    assert old.status == CertificateStatus.VALID
    assert old.revocation_reason is None
    assert old.superseded_by == new.id
    assert new.status == CertificateStatus.VALID


def test_reenrol_without_mtls_or_proof_is_401_and_changes_nothing(
    client: AsgiClient, ca: FleetCa
) -> None:
    # The replay of B1: an earlier CSR, signed by the live credential's key, posted by whoever
    # kept a copy. Its signature is no fresh proof of possession: nothing is issued or revoked.
    key, current = _enrolled(client, ca)
    before = _records(ca)
    response = _reenrol(client, _renewal_csr(key, current))
    _problem(response, 401, "TLS client authentication with the current certificate")
    assert "www-authenticate" in response.headers
    assert _records(ca) == before


@pytest.mark.parametrize("proof", ["", " ", "v1", "v1; serial=; nonce=; sig="])
def test_reenrol_with_an_empty_or_hollow_proof_header_changes_nothing(
    client: AsgiClient, ca: FleetCa, proof: str
) -> None:
    key, current = _enrolled(client, ca)
    before = _records(ca)
    response = client.post(
        f"{EST}/simplereenroll",
        content=_body(_renewal_csr(key, current)),
        headers={**PKCS10, "Fleetid-Proof": proof},
    )
    assert response.status_code in {400, 401}, response.text
    assert _records(ca) == before


def test_ten_concurrent_replays_mint_nothing(client: AsgiClient, ca: FleetCa) -> None:
    key, current = _enrolled(client, ca)
    before = _records(ca)
    csr = _body(_renewal_csr(key, current))
    app = create_app(ca.settings, clock=ca.clock, ca=ca)

    async def replays() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            answers = await asyncio.gather(
                *(
                    http.post(f"{EST}/simplereenroll", content=csr, headers=PKCS10)
                    for _ in range(10)
                )
            )
        return [a.status_code for a in answers]

    assert asyncio.run(replays()) == [401] * 10
    assert _records(ca) == before


def test_reenrol_over_mtls_with_an_expired_credential_is_refused(
    client: AsgiClient, ca: FleetCa, clock: ManualClock
) -> None:
    key, current = _enrolled(client, ca)
    ca.clock.advance(timedelta(days=7))
    _problem(_reenrol(_mtls(ca, clock, current), _renewal_csr(key, current)), 401, "expired")


def test_reenrol_over_mtls_with_a_revoked_credential_is_refused(
    client: AsgiClient, ca: FleetCa, clock: ManualClock
) -> None:
    key, current = _enrolled(client, ca)
    revoke_serial(ca.store, f"{current.serial_number:x}", "keyCompromise", clock=ca.clock)
    response = _reenrol(_mtls(ca, clock, current), _renewal_csr(key, current))
    _problem(response, 401, "revoked (keyCompromise)")


def test_superseded_credential_cannot_reenrol_again_over_mtls(
    client: AsgiClient, ca: FleetCa, clock: ManualClock
) -> None:
    key, first = _enrolled(client, ca)
    _certs(_reenrol(_mtls(ca, clock, first), _renewal_csr(key, first)))
    before = _records(ca)
    response = _reenrol(_mtls(ca, clock, first), _renewal_csr(key, first))
    _problem(response, 401, "superseded by a refresh")
    assert _records(ca) == before


def test_reenrol_over_mtls_with_another_subject_is_refused(
    client: AsgiClient, ca: FleetCa, clock: ManualClock
) -> None:
    key, current = _enrolled(client, ca)
    other = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-2")])
    )
    der = other.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    _problem(_reenrol(_mtls(ca, clock, current), der), 401, "RFC 7030 §4.2.2")


def test_reenrol_over_mtls_with_a_new_unattested_key_is_refused(
    client: AsgiClient, ca: FleetCa, clock: ManualClock
) -> None:
    # Re-key needs attestation evidence for the new key; this authority trusts no manufacturer.
    _, current = _enrolled(client, ca)
    before = _records(ca)
    response = _reenrol(
        _mtls(ca, clock, current), _renewal_csr(ec.generate_private_key(ec.SECP256R1()), current)
    )
    _problem(response, 503, "not configured")
    assert _records(ca) == before


def test_reenrol_over_mtls_with_a_foreign_certificate_of_a_known_serial_is_refused(
    client: AsgiClient, ca: FleetCa, clock: ManualClock
) -> None:
    # Same serial, other issuer and key: only the very certificate recorded here authenticates.
    key, current = _enrolled(client, ca)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(current.issuer)
        .public_key(key.public_key())
        .serial_number(current.serial_number)
        .not_valid_before(current.not_valid_before_utc)
        .not_valid_after(current.not_valid_after_utc)
        .sign(rogue_key, hashes.SHA256())
    )
    response = _reenrol(_mtls(ca, clock, forged), _renewal_csr(key, current))
    _problem(response, 401, "not one this authority issued")


def test_reenrol_over_mtls_with_a_server_credential_is_refused(
    ca: FleetCa, clock: ManualClock
) -> None:
    cert_file, _ = ca.tls_server_files(["127.0.0.1"])
    server, _issuing = x509.load_pem_x509_certificates(cert_file.read_bytes())
    csr = x509.CertificateSigningRequestBuilder().subject_name(server.subject)
    der = csr.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    response = _reenrol(_mtls(ca, clock, server), der.public_bytes(serialization.Encoding.DER))
    _problem(response, 403, "only device credentials")


# --- revoke -------------------------------------------------------------------------------------


def test_revoke_unknown_serial_raises(ca: FleetCa) -> None:
    with pytest.raises(NotFoundError, match="no certificate"):
        revoke_serial(ca.store, "7f" * 20, "keyCompromise", clock=ca.clock)


# --- concurrency --------------------------------------------------------------------------------


def test_one_token_raced_by_two_enrolments_issues_exactly_one_certificate(ca: FleetCa) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from fleetid.authority.enrolment import EnrolmentService
    from fleetid.authority.provisioners import BasicCredentials
    from fleetid.errors import AuthenticationError

    service = EnrolmentService(ca)
    token = _token(ca)
    credentials = BasicCredentials(username=token.username, password=token.password)
    csrs = [_csr(), _csr()]
    start = Barrier(2)

    def attempt(csr: bytes) -> str:
        start.wait()
        try:
            service.simple_enroll(credentials, csr)
        except AuthenticationError as exc:
            return f"refused: {exc}"
        return "issued"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(attempt, csrs))
    assert outcomes == ["issued", "refused: this enrolment token has been used already"]
    with ca.store.transaction() as tx:
        assert len(tx.certificates.for_device("gw-1")) == 1
