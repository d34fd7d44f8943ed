"""The one OCSP relying-party check (``fleetid.revocation.check.ocsp``), rule by rule.

fleetid had two: ``revocation/ocsp.py``'s ``check_response`` (called only by tests) and
``device/verifier.py``'s own. Where they disagreed the stricter RFC 6960 reading won; each test
below names the rule and the copy it would have failed against (the lenient one). Responses are
written with pyca's builder, signed by a software issuing CA (``tests/peer_fixtures.py``), so the
checker is held to artefacts fleetid's responder did not write.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from tests.peer_fixtures import NOW, Pki

from fleetid.errors import (
    CertificateRevokedError,
    ReplayError,
    StaleError,
    VerificationError,
)
from fleetid.revocation.check.ocsp import check_ocsp_response, verify_ocsp_response


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _delegate(
    pki: Pki,
    *,
    eku: list[ObjectIdentifier] | None = None,
    key_usage: x509.KeyUsage | None = None,
    not_after: datetime = NOW + timedelta(days=30),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A responder certificate the issuing CA signs, with the extensions asked for."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("Delegated responder"))
        .issuer_name(pki.issuing.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=60))
        .not_valid_after(not_after)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(pki.issuing_key, hashes.SHA256()), key


def _usage(*, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=not digital_signature,
        encipher_only=False,
        decipher_only=False,
    )


def _response(
    pki: Pki,
    leaf: x509.Certificate,
    *,
    signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    named: x509.Certificate | None = None,
    encoding: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.HASH,
    certs: list[x509.Certificate] | None = None,
    this_update: datetime = NOW - timedelta(hours=1),
    next_update: datetime | None = NOW + timedelta(days=1),
    revoked_at: datetime | None = None,
    extension: x509.ExtensionType | None = None,
) -> bytes:
    responder, key = signer or (pki.issuing, pki.issuing_key)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=pki.issuing,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD,
            this_update=this_update,
            next_update=next_update,
            revocation_time=revoked_at,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
        )
        .responder_id(encoding, named or responder)
    )
    if certs:
        builder = builder.certificates(certs)
    if extension is not None:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _check(pki: Pki, leaf: x509.Certificate, der: bytes, **kwargs: object) -> object:
    return check_ocsp_response(
        der,
        serial_number=leaf.serial_number,
        issuer=pki.issuing,
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_good_answer_from_the_issuer_and_from_its_delegate(pki: Pki) -> None:
    leaf = pki.leaf()
    assert _check(pki, leaf, _response(pki, leaf)).status is ocsp.OCSPCertStatus.GOOD  # type: ignore[attr-defined]
    delegate = _delegate(pki, eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
    answer = _check(pki, leaf, _response(pki, leaf, signer=delegate, certs=[delegate[0]]))
    assert answer.responder == delegate[0]  # type: ignore[attr-defined]


def test_the_responder_id_must_name_the_signer(pki: Pki) -> None:
    """RFC 6960 §3.2 (2)-(3), §4.2.1: the ResponderID names the key that signed. The lenient copy
    (``check_response``) tried every key it could find and ignored the ResponderID."""
    leaf = pki.leaf()
    # A certificate carrying the issuer's key under another name: the response says "signed by
    # Somebody Else", and the issuer's key signed it.
    alias = (
        x509.CertificateBuilder()
        .subject_name(_name("Somebody Else"))
        .issuer_name(_name("Somebody Else"))
        .public_key(pki.issuing_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(pki.issuing_key, hashes.SHA256())
    )
    der = _response(pki, leaf, named=alias, encoding=ocsp.OCSPResponderEncoding.NAME)
    with pytest.raises(VerificationError, match="not signed by the issuer or its delegate"):
        _check(pki, leaf, der)


def test_a_delegate_without_ocsp_signing_is_refused_as_a_verification_error(pki: Pki) -> None:
    """RFC 6960 §4.2.2.2: a delegate's extendedKeyUsage holds id-kp-OCSPSigning. The lenient copy
    (``check_response``) let pyca's ``ExtensionNotFound`` escape for a delegate with no
    extendedKeyUsage, which no caller catches as a refusal."""
    leaf = pki.leaf()
    for eku in (
        None,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
    ):
        delegate = _delegate(pki, eku=eku)
        der = _response(pki, leaf, signer=delegate, certs=[delegate[0]])
        with pytest.raises(VerificationError, match="id-kp-OCSPSigning"):
            _check(pki, leaf, der)


def test_a_delegate_whose_key_usage_forbids_signing_is_refused(pki: Pki) -> None:
    """RFC 5280 §4.2.1.3: signing a response is a digitalSignature. Both copies ignored keyUsage."""
    leaf = pki.leaf()
    delegate = _delegate(
        pki, eku=[ExtendedKeyUsageOID.OCSP_SIGNING], key_usage=_usage(digital_signature=False)
    )
    der = _response(pki, leaf, signer=delegate, certs=[delegate[0]])
    with pytest.raises(VerificationError, match="keyUsage"):
        _check(pki, leaf, der)


def test_a_delegate_of_another_issuer_is_refused(pki: Pki) -> None:
    """RFC 6960 §4.2.2.2: issued directly by the certificate's CA (name and signature)."""
    leaf = pki.leaf()
    other = Pki()
    delegate = _delegate(other, eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
    der = _response(pki, leaf, signer=delegate, certs=[delegate[0]])
    with pytest.raises(VerificationError, match="not delegated by this issuer"):
        _check(pki, leaf, der)


def test_a_lapsed_delegate_is_stale(pki: Pki) -> None:
    """A delegate outside its validity: the two copies raised two different "stale" classes
    (``StaleResponseError``, ``StaleRevocationError``); now one family, ``StaleError``."""
    leaf = pki.leaf()
    delegate = _delegate(
        pki, eku=[ExtendedKeyUsageOID.OCSP_SIGNING], not_after=NOW - timedelta(minutes=1)
    )
    der = _response(pki, leaf, signer=delegate, certs=[delegate[0]])
    with pytest.raises(StaleError, match="not valid now"):
        _check(pki, leaf, der)


def test_an_unsuccessful_response_is_stale_not_a_bare_refusal(pki: Pki) -> None:
    """RFC 6960 §2.3: tryLater, unauthorized... carry no status. The device copy read that as
    "stale material", ``check_response`` as a plain ``VerificationError``: now ``StaleError``."""
    leaf = pki.leaf()
    for status in (ocsp.OCSPResponseStatus.TRY_LATER, ocsp.OCSPResponseStatus.UNAUTHORIZED):
        der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
            serialization.Encoding.DER
        )
        with pytest.raises(StaleError, match=status.name):
            _check(pki, leaf, der)


def test_a_revoked_answer_is_revoked_however_old(pki: Pki) -> None:
    """What was revoked stays revoked: ``check_response`` judged freshness first and called an
    expired "revoked" answer stale; the device copy (and now the one check) says revoked."""
    leaf = pki.leaf()
    der = _response(
        pki,
        leaf,
        this_update=NOW - timedelta(days=3),
        next_update=NOW - timedelta(days=2),
        revoked_at=NOW - timedelta(days=4),
    )
    with pytest.raises(CertificateRevokedError, match="OCSP: revoked"):
        _check(pki, leaf, der)


def test_a_this_update_in_the_future_is_stale_unless_within_the_skew(pki: Pki) -> None:
    """The skew rule, thisUpdate side: ``check_response`` tolerated 5 minutes by default, the
    device none. The default is now none; a caller may allow a skew for a responder ahead."""
    leaf = pki.leaf()
    der = _response(pki, leaf, this_update=NOW + timedelta(minutes=1))
    with pytest.raises(StaleError, match="in the future"):
        _check(pki, leaf, der)
    _check(pki, leaf, der, skew=timedelta(minutes=5))


def test_a_next_update_in_the_past_is_stale_whatever_the_skew(pki: Pki) -> None:
    """The skew rule, nextUpdate side (RFC 6960 §4.2.2.1): ``check_response`` accepted a response
    up to 5 minutes past its nextUpdate; a skew never lengthens a response's life."""
    leaf = pki.leaf()
    der = _response(
        pki, leaf, this_update=NOW - timedelta(days=1), next_update=NOW - timedelta(minutes=1)
    )
    for skew in (timedelta(0), timedelta(minutes=5)):
        with pytest.raises(StaleError, match="nextUpdate"):
            _check(pki, leaf, der, skew=skew)


def test_an_answer_older_than_the_policy_allows_is_stale(pki: Pki) -> None:
    """A maximum age of thisUpdate: the device copy had it, ``check_response`` did not."""
    leaf = pki.leaf()
    der = _response(
        pki, leaf, this_update=NOW - timedelta(days=2), next_update=NOW + timedelta(days=2)
    )
    _check(pki, leaf, der)
    with pytest.raises(StaleError, match="older than the policy"):
        _check(pki, leaf, der, max_age=timedelta(days=1))


def test_a_critical_extension_it_does_not_understand_refuses_the_response(pki: Pki) -> None:
    """RFC 6960 §4.4 / RFC 5280 §4.2: an unknown critical extension is not ignored."""
    leaf = pki.leaf()
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.32473.99.1"), b"\x05\x00")
    der = _response(pki, leaf, extension=unknown)
    with pytest.raises(VerificationError, match="critical extension"):
        _check(pki, leaf, der)


def test_nonce_and_replay(pki: Pki) -> None:
    """RFC 8954: a request's nonce is echoed; an answer older than one already known is a replay
    (``check_response`` raised ``ResponseReplayError``, the device ``OcspReplayError``: one
    family, ``ReplayError``)."""
    leaf = pki.leaf()
    der = _response(pki, leaf, this_update=NOW - timedelta(hours=2))
    with pytest.raises(ReplayError, match="nonce"):
        _check(pki, leaf, der, nonce=b"\x01" * 16)
    with pytest.raises(ReplayError, match="replay"):
        _check(pki, leaf, der, not_before=NOW - timedelta(hours=1))
    with_nonce = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=pki.issuing,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + timedelta(days=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.issuing)
        .add_extension(x509.OCSPNonce(b"\x01" * 16), critical=False)
        .sign(pki.issuing_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    _check(pki, leaf, with_nonce, nonce=b"\x01" * 16)


def test_the_cert_id_must_name_this_certificate_and_this_issuer(pki: Pki) -> None:
    """RFC 6960 §3.2 (1), §4.1.1."""
    leaf, other = pki.leaf(), pki.leaf()
    with pytest.raises(VerificationError, match="another certificate or issuer"):
        _check(pki, other, _response(pki, leaf))


def test_verify_then_require_current_is_check(pki: Pki) -> None:
    """The two halves the device uses: authenticity first (it records what it saw), then the
    status and freshness."""
    leaf = pki.leaf()
    der = _response(pki, leaf, revoked_at=NOW - timedelta(hours=2))
    answer = verify_ocsp_response(
        der, serial_number=leaf.serial_number, issuer=pki.issuing, now=NOW
    )
    assert answer.status is ocsp.OCSPCertStatus.REVOKED
    with pytest.raises(CertificateRevokedError):
        answer.require_current(NOW)
