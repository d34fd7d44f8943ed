"""The OCSP responder (RFC 6960, RFC 5019/9919 profile) on SQLite and PostgreSQL, and the relying
party's check of a response, with their refusals.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.revocation_fixtures import AsgiClient, issue, open_fleet

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.errors import (
    CertificateRevokedError,
    EncodingError,
    ReplayError,
    StaleError,
    VerificationError,
)
from fleetid.revocation.check.ocsp import check_ocsp_response
from fleetid.revocation.ocsp import OcspPolicy, OcspResponder, responder_for
from fleetid.revocation.registry import RevocationRegistry


@pytest.fixture
def stranger(
    tmp_path: Path, backend: str, database_url_for: Callable[[str], str]
) -> Iterator[FleetCa]:
    (tmp_path / "stranger").mkdir()
    authority = open_fleet(tmp_path / "stranger", database_url_for(backend), ManualClock())
    yield authority
    authority.close()


@pytest.fixture
def responder(ca: FleetCa) -> OcspResponder:
    return responder_for(ca)


def _request(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        certificate,
        issuer,
        algorithm or hashes.SHA1(),  # noqa: S303 - the RFC 5019 CertID hash
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _revoke(ca: FleetCa, certificate: x509.Certificate, reason: str = "keyCompromise") -> None:
    RevocationRegistry(ca.store).revoke(
        f"{certificate.serial_number:x}", reason, now=ca.clock.now()
    )


def _single(der: bytes) -> ocsp.OCSPSingleResponse:
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return next(iter(response.responses))


def test_good_revoked_and_unknown(ca: FleetCa, responder: OcspResponder) -> None:
    good, bad = issue(ca, 2)
    _revoke(ca, bad, "cessationOfOperation")
    responder.sync()
    issuer = ca.issuing.certificate
    now = ca.clock.now()
    for algorithm in (hashes.SHA1(), hashes.SHA256()):  # noqa: S303 - RFC 5019 §2.1.1
        answer = responder.respond(_request(good, issuer, algorithm))
        result = check_ocsp_response(
            answer.der, issuer=issuer, serial_number=good.serial_number, now=now
        )
        assert result.status is ocsp.OCSPCertStatus.GOOD
        assert result.next_update == result.this_update + responder.policy.validity
        revoked = responder.respond(_request(bad, issuer, algorithm))
        single = _single(revoked.der)
        assert single.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert single.revocation_reason is x509.ReasonFlags.cessation_of_operation
        with pytest.raises(CertificateRevokedError):
            check_ocsp_response(
                revoked.der, issuer=issuer, serial_number=bad.serial_number, now=now
            )
    # A serial this issuer never issued: unknown (RFC 6960 §2.2), not good.
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        _single(responder.respond(_request(good, issuer)).der).issuer_name_hash,
        _single(responder.respond(_request(good, issuer)).der).issuer_key_hash,
        good.serial_number ^ 0xFFFF,
        hashes.SHA1(),  # noqa: S303 - the RFC 5019 CertID hash
    )
    stranger_request = builder.build().public_bytes(serialization.Encoding.DER)
    unknown = responder.respond(stranger_request)
    assert _single(unknown.der).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    # Unknown serials are signed per request, never kept: strangers cannot fill the cache.
    before = responder.signatures
    responder.respond(stranger_request)
    assert responder.signatures == before + 1


def test_delegated_responder_certificate(ca: FleetCa, responder: OcspResponder) -> None:
    (good,) = issue(ca, 1)
    response = ocsp.load_der_ocsp_response(
        responder.respond(_request(good, ca.issuing.certificate)).der
    )
    (signer,) = response.certificates
    assert signer.issuer == ca.issuing.certificate.subject
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    signer.extensions.get_extension_for_class(x509.OCSPNoCheck)  # RFC 6960 §4.2.2.2.1
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (
        response.responder_key_hash
        == signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )
    signer.verify_directly_issued_by(ca.issuing.certificate)
    # The same responder is reused by the next process; renewed once 2/3 of its life is gone.
    assert responder_for(ca).respond(_request(good, ca.issuing.certificate)).der  # loads
    again = ocsp.load_der_ocsp_response(
        responder_for(ca).respond(_request(good, ca.issuing.certificate)).der
    )
    assert again.certificates[0] == signer
    ca.clock.advance(timedelta(days=21))  # type: ignore[attr-defined]
    renewed = ocsp.load_der_ocsp_response(
        responder_for(ca).respond(_request(good, ca.issuing.certificate)).der
    )
    assert renewed.certificates[0].serial_number != signer.serial_number


def test_responses_are_presigned_and_refreshed(
    ca: FleetCa, responder: OcspResponder, clock: ManualClock
) -> None:
    certificates = issue(ca, 3)
    assert responder.presign() == 3
    signed = responder.signatures
    assert signed == 6  # SHA-1 and SHA-256 CertIDs
    request = _request(certificates[0], ca.issuing.certificate)
    first = responder.respond(request)
    assert responder.respond(request).der == first.der
    assert responder.signatures == signed  # served from the pre-signed set
    clock.advance(responder.policy.refresh_after)
    assert responder.refresh() == 6
    refreshed = responder.respond(request)
    assert refreshed.der != first.der
    assert refreshed.this_update == clock.now()


def test_revocation_is_resigned_at_once(ca: FleetCa, responder: OcspResponder) -> None:
    (certificate,) = issue(ca, 1)
    request = _request(certificate, ca.issuing.certificate)
    assert _single(responder.respond(request).der).certificate_status is ocsp.OCSPCertStatus.GOOD
    _revoke(ca, certificate)
    before = responder.signatures
    assert responder.sync() == 1
    assert responder.signatures == before + 2  # both CertID hashes, before anyone asks
    after = responder.signatures
    assert _single(responder.respond(request).der).certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert responder.signatures == after


def test_request_path_polls_the_registry(ca: FleetCa) -> None:
    responder = responder_for(ca, policy=OcspPolicy(poll_interval=0))
    (certificate,) = issue(ca, 1)
    request = _request(certificate, ca.issuing.certificate)
    responder.respond(request)
    _revoke(ca, certificate)  # as `fleetid revoke` would, behind the responder's back
    assert _single(responder.respond(request).der).certificate_status is ocsp.OCSPCertStatus.REVOKED


def test_nonce_gets_a_fresh_response(ca: FleetCa, responder: OcspResponder) -> None:
    (certificate,) = issue(ca, 1)
    issuer = ca.issuing.certificate
    one = responder.respond(_request(certificate, issuer, nonce=b"\x01" * 16))
    two = responder.respond(_request(certificate, issuer, nonce=b"\x02" * 16))
    assert not one.cacheable
    assert one.http_headers(ca.clock.now(), responder.policy) == {"Cache-Control": "no-store"}
    check_ocsp_response(
        one.der,
        issuer=issuer,
        serial_number=certificate.serial_number,
        now=ca.clock.now(),
        nonce=b"\x01" * 16,
    )
    with pytest.raises(ReplayError, match="nonce"):
        check_ocsp_response(
            two.der,
            issuer=issuer,
            serial_number=certificate.serial_number,
            now=ca.clock.now(),
            nonce=b"\x01" * 16,
        )
    # A pre-signed response carries no nonce: a client that sent one refuses it.
    presigned = responder.respond(_request(certificate, issuer))
    with pytest.raises(ReplayError, match="nonce"):
        check_ocsp_response(
            presigned.der,
            issuer=issuer,
            serial_number=certificate.serial_number,
            now=ca.clock.now(),
            nonce=b"\x01" * 16,
        )
    too_long = responder.respond(_request(certificate, issuer, nonce=b"\x03" * 33))
    assert (
        ocsp.load_der_ocsp_response(too_long.der).response_status
        is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_another_issuer_is_unauthorized_and_garbage_malformed(
    ca: FleetCa, stranger: FleetCa, responder: OcspResponder
) -> None:
    (foreign,) = issue(stranger, 1)
    answer = responder.respond(_request(foreign, stranger.issuing.certificate))
    assert (
        ocsp.load_der_ocsp_response(answer.der).response_status
        is ocsp.OCSPResponseStatus.UNAUTHORIZED
    )
    # Two CertIDs in one request: RFC 5019 §2.1.1 allows one (built with asn1crypto).
    (mine,) = issue(ca, 1)
    single = asn1_ocsp.OCSPRequest.load(_request(mine, ca.issuing.certificate))
    entry = single["tbs_request"]["request_list"][0]
    double = asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [entry, entry]}}).dump()
    for body in (b"", b"\x30\x03abc", b"not der at all", double):
        status = ocsp.load_der_ocsp_response(responder.respond(body).der).response_status
        assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_client_refuses_foreign_signer_other_serial_replay_and_expiry(
    ca: FleetCa, stranger: FleetCa, responder: OcspResponder, clock: ManualClock
) -> None:
    certificate, other = issue(ca, 2)
    issuer = ca.issuing.certificate
    good = responder.respond(_request(certificate, issuer)).der
    # The stranger's responder answering for its own certificate, checked against our issuer.
    (foreign,) = issue(stranger, 1)
    theirs = responder_for(stranger).respond(_request(foreign, stranger.issuing.certificate))
    with pytest.raises(VerificationError, match="not delegated by this issuer"):
        check_ocsp_response(
            theirs.der, issuer=issuer, serial_number=foreign.serial_number, now=clock.now()
        )
    with pytest.raises(VerificationError, match="another certificate"):
        check_ocsp_response(good, issuer=issuer, serial_number=other.serial_number, now=clock.now())
    # Replay: an old "good" answer after the device learnt of a revocation at a later time.
    clock.advance(timedelta(hours=1))
    _revoke(ca, certificate)
    with pytest.raises(ReplayError, match="replay"):
        check_ocsp_response(
            good,
            issuer=issuer,
            serial_number=certificate.serial_number,
            now=clock.now(),
            not_before=clock.now(),
        )
    clock.advance(responder.policy.validity + timedelta(hours=1))
    with pytest.raises(StaleError, match="nextUpdate"):
        check_ocsp_response(
            good, issuer=issuer, serial_number=certificate.serial_number, now=clock.now()
        )
    with pytest.raises(EncodingError):
        check_ocsp_response(b"junk", issuer=issuer, serial_number=1, now=clock.now())
    unauthorized = responder.respond(_request(foreign, stranger.issuing.certificate)).der
    with pytest.raises(VerificationError, match="UNAUTHORIZED"):
        check_ocsp_response(unauthorized, issuer=issuer, serial_number=1, now=clock.now())


def test_http_get_and_post(ca: FleetCa, clock: ManualClock) -> None:
    certificates = issue(ca, 8)
    client = AsgiClient(create_app(ca.settings, clock=clock, ca=ca))
    issuer = ca.issuing.certificate
    for certificate in certificates:
        request = _request(certificate, issuer)
        encoded = base64.b64encode(request).decode()
        for path in (f"/ocsp/{encoded}", f"/ocsp/{quote(encoded, safe='')}"):
            response = client.get(path)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/ocsp-response"
            assert _single(response.content).serial_number == certificate.serial_number
            age = int(response.headers["cache-control"].split("max-age=")[1].split(",")[0])
            assert 0 < age <= 60
            assert response.headers["etag"] and response.headers["expires"]
        posted = client.post(
            "/ocsp", content=request, headers={"Content-Type": "application/ocsp-request"}
        )
        assert posted.status_code == 200
        assert _single(posted.content).serial_number == certificate.serial_number
    bad = client.get("/ocsp/%%%not-base64")
    assert bad.status_code == 200
    assert (
        ocsp.load_der_ocsp_response(bad.content).response_status
        is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    wrong_type = client.post(
        "/ocsp", content=_request(certificates[0], issuer), headers={"Content-Type": "text/plain"}
    )
    assert (
        ocsp.load_der_ocsp_response(wrong_type.content).response_status
        is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
