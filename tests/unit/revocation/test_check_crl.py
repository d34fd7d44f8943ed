"""The one CRL relying-party check (``fleetid.revocation.check.crl``), rule by rule.

fleetid had two CRL state machines: the device's ``CrlClient`` (``device/crl_client.py``) and
``PeerVerifier.load_crl`` (``device/verifier.py``). Where they disagreed the stricter RFC 5280
reading won; each test below names the rule and the copy it would have failed against (the
lenient one). CRLs are written with pyca's builder and a software issuing CA
(``tests/peer_fixtures.py``), not by fleetid's publisher.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier
from tests.peer_fixtures import NOW, TEST_CRL_URL, Pki

from fleetid.errors import (
    CertificateRevokedError,
    CrlRollbackError,
    DeltaBaseError,
    DeltaGapError,
    EncodingError,
    StaleError,
    VerificationError,
)
from fleetid.revocation.check.crl import HeldCrls, verify_crl

OTHER_URL = "http://fleet.test/crl/issuing-1/other.crl"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _idp(
    *,
    names: tuple[str, ...] = (TEST_CRL_URL,),
    only_user: bool = True,
    only_ca: bool = False,
    reasons: frozenset[x509.ReasonFlags] | None = None,
) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(n) for n in names],
        relative_name=None,
        only_contains_user_certs=only_user,
        only_contains_ca_certs=only_ca,
        only_some_reasons=reasons,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )


def _crl(
    pki: Pki,
    entries: dict[int, x509.ReasonFlags] | None = None,
    *,
    number: int | None = 1,
    delta_of: int | None = None,
    idp: x509.IssuingDistributionPoint | None = None,
    idp_critical: bool = True,
    no_idp: bool = False,
    this_update: datetime = NOW - timedelta(hours=1),
    next_update: datetime = NOW + timedelta(days=1),
    extra: x509.ExtensionType | None = None,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> x509.CertificateRevocationList:
    """Any CRL, including the malformed ones (pyca's builder, signed by the issuing CA)."""
    certificate, key = issuer or (pki.issuing, pki.issuing_key)
    builder = x509.CertificateRevocationListBuilder().issuer_name(certificate.subject)
    builder = builder.last_update(this_update).next_update(next_update)
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    if not no_idp:
        builder = builder.add_extension(idp or _idp(), critical=idp_critical)
    if delta_of is not None:
        builder = builder.add_extension(x509.DeltaCRLIndicator(delta_of), critical=True)
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    for serial, reason in (entries or {}).items():
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(this_update)
            .add_extension(x509.CRLReason(reason), critical=False)
            .build()
        )
    return builder.sign(key, hashes.SHA256())


def _held(pki: Pki, *crls: x509.CertificateRevocationList) -> HeldCrls:
    held = HeldCrls(pki.issuing)
    for crl in crls:
        held.load(crl)
    return held


KEY_COMPROMISE = x509.ReasonFlags.key_compromise
HOLD = x509.ReasonFlags.certificate_hold


def test_a_full_crl_and_a_delta_answer(pki: Pki) -> None:
    good, listed, on_delta = pki.leaf(), pki.leaf(), pki.leaf()
    held = _held(
        pki,
        _crl(pki, {listed.serial_number: KEY_COMPROMISE}, number=10),
        _crl(pki, {on_delta.serial_number: KEY_COMPROMISE}, number=11, delta_of=10),
    )
    verdict = held.status(good, NOW)
    assert (verdict.crl_number, verdict.delta_number) == (10, 11)
    for revoked, number in ((listed, 10), (on_delta, 11)):
        with pytest.raises(CertificateRevokedError, match=f"CRL {number}"):
            held.status(revoked, NOW)


# --- what one CRL must be (verify_crl) ------------------------------------------------------------


def test_a_crl_without_a_crl_number_is_a_verification_error(pki: Pki) -> None:
    """RFC 5280 §5.2.3. The verifier's copy raised ``EncodingError`` (the DER parses: it is the
    CRL that is unusable), the client's ``VerificationError``: the one check raises the latter."""
    with pytest.raises(VerificationError, match="CRL number") as caught:
        verify_crl(_crl(pki, number=None), pki.issuing)
    assert not isinstance(caught.value, EncodingError)


def test_a_crl_without_an_issuing_distribution_point_is_refused(pki: Pki) -> None:
    """RFC 5280 §5.2.5: fleetid's CRLs are partitioned and a certificate names its partition; a CRL
    that does not say which partition it covers cannot stand for one. The verifier's copy took
    such a CRL as covering everything; the client refused it."""
    with pytest.raises(VerificationError, match="issuingDistributionPoint"):
        verify_crl(_crl(pki, no_idp=True), pki.issuing)


def test_the_issuing_distribution_point_must_be_critical_and_plain(pki: Pki) -> None:
    """RFC 5280 §5.2.5: the extension is critical; some-reasons, indirect and user-and-CA CRLs
    cannot say "not revoked" for a fleet certificate alone. Both copies ignored these fields."""
    with pytest.raises(VerificationError, match="not critical"):
        verify_crl(_crl(pki, idp_critical=False), pki.issuing)
    partial = _idp(reasons=frozenset({KEY_COMPROMISE}))
    with pytest.raises(VerificationError, match="some-reasons"):
        verify_crl(_crl(pki, idp=partial), pki.issuing)


def test_a_crl_with_a_critical_extension_it_does_not_understand_is_refused(pki: Pki) -> None:
    """RFC 5280 §5.2: such a CRL MUST NOT be used. Both copies used it."""
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.32473.99.2"), b"\x05\x00")
    with pytest.raises(VerificationError, match="critical extension"):
        verify_crl(_crl(pki, extra=unknown), pki.issuing)


def test_a_complete_crl_never_lists_remove_from_crl(pki: Pki) -> None:
    """RFC 5280 §5.3.1: removeFromCRL is a delta CRL's. Both copies took it in a complete CRL."""
    listed = pki.leaf()
    crl = _crl(pki, {listed.serial_number: x509.ReasonFlags.remove_from_crl})
    with pytest.raises(VerificationError, match="removeFromCRL"):
        verify_crl(crl, pki.issuing)


def test_the_issuer_must_be_allowed_to_sign_crls(pki: Pki) -> None:
    """RFC 5280 §6.3.3 (f): the CRL issuer's keyUsage has cRLSign. The client's copy never looked
    (the verifier's asked it of the issuers it was given)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "No CRL signing")])
    no_crl_sign = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(pki.root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(pki.root_key, hashes.SHA384())
    )
    crl = _crl(pki, issuer=(no_crl_sign, key))
    with pytest.raises(VerificationError, match="cRLSign"):
        verify_crl(crl, no_crl_sign)


def test_a_crl_of_another_key_or_garbage_is_refused(pki: Pki) -> None:
    forged = _crl(pki, issuer=(pki.issuing, ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(VerificationError, match="not signed"):
        verify_crl(forged, pki.issuing)
    with pytest.raises(EncodingError):
        verify_crl(b"\x30\x03abc", pki.issuing)


# --- what is kept (HeldCrls) ----------------------------------------------------------------------


def test_a_lower_crl_number_is_a_crl_rollback(pki: Pki) -> None:
    """RFC 5280 §5.2.3. The verifier's copy raised ``FilterRollbackError`` for a CRL: the one
    check raises ``CrlRollbackError``, full or delta."""
    held = _held(pki, _crl(pki, number=8), _crl(pki, number=10, delta_of=8))
    with pytest.raises(CrlRollbackError):
        held.load(_crl(pki, number=7))
    with pytest.raises(CrlRollbackError):
        held.load(_crl(pki, number=9, delta_of=8))


def test_a_second_crl_under_a_held_number_is_refused(pki: Pki) -> None:
    """RFC 5280 §5.2.3: a number names one CRL of a scope. The client kept the first and ignored
    the second, the verifier replaced the first: both are refused now, and the first stays."""
    listed = pki.leaf()
    first = _crl(pki, number=5)
    held = _held(pki, first)
    held.load(first)  # the same CRL again: nothing happens
    with pytest.raises(VerificationError, match="two different CRLs numbered 5"):
        held.load(_crl(pki, {listed.serial_number: KEY_COMPROMISE}, number=5))
    held.status(listed, NOW)


def test_a_delta_without_its_complete_crl_is_a_gap(pki: Pki) -> None:
    """RFC 5280 §5.2.4. The verifier's copy called it stale material, the client a gap
    (``DeltaGapError``): the delta cannot be used until a complete CRL is held."""
    with pytest.raises(DeltaGapError, match="no complete CRL"):
        _held(pki, _crl(pki, number=5, delta_of=4))


def test_a_delta_that_needs_a_newer_complete_crl_is_refused_when_loaded(pki: Pki) -> None:
    """RFC 5280 §5.2.4: a delta applies to a complete CRL numbered at least its BaseCRLNumber. The
    verifier's copy kept such a delta and only skipped it when answering; the client refused it."""
    held = _held(pki, _crl(pki, number=3))
    with pytest.raises(DeltaGapError, match="needs complete CRL 5"):
        held.load(_crl(pki, number=6, delta_of=5))


def test_a_delta_not_newer_than_the_complete_crl_is_refused(pki: Pki) -> None:
    """RFC 5280 §5.2.4: the delta's number is above the complete CRL's. The verifier's copy took a
    delta older than the complete CRL it held."""
    held = _held(pki, _crl(pki, number=9))
    with pytest.raises(DeltaBaseError, match="not newer than complete CRL 9"):
        held.load(_crl(pki, number=8, delta_of=7))


def test_a_delta_of_another_scope_is_refused(pki: Pki) -> None:
    """RFC 5280 §5.2.4, §6.3.3 (b): a delta has its complete CRL's scope. The verifier's copy
    called a delta of an overlapping scope stale; the client refused it as a wrong base."""
    held = _held(pki, _crl(pki, number=9))
    other = _idp(names=(TEST_CRL_URL, OTHER_URL))
    with pytest.raises(DeltaBaseError, match="scope"):
        held.load(_crl(pki, number=10, delta_of=9, idp=other))


# --- the answer -----------------------------------------------------------------------------------


def test_a_certificate_outside_every_held_scope_is_stale(pki: Pki) -> None:
    """RFC 5280 §6.3.3 (b)(2): the IDP names the certificate's distribution point, and a CRL of CA
    certificates says nothing of an end entity. Neither copy looked at onlyContainsCACerts."""
    leaf = pki.leaf()
    for scope in (_idp(names=(OTHER_URL,)), _idp(only_user=False, only_ca=True)):
        with pytest.raises(StaleError, match="no CRL held"):
            _held(pki, _crl(pki, idp=scope)).status(leaf, NOW)


def test_remove_from_crl_on_the_delta_releases_a_held_certificate(pki: Pki) -> None:
    """RFC 5280 §6.3.3 (j): a delta's removeFromCRL makes the certificate unrevoked. The client's
    copy read every delta entry as a revocation, so a certificate released from hold stayed
    revoked on it until the next complete CRL: the one place where the RFC's reading is the
    accepting one, and the verifier's copy had it."""
    leaf = pki.leaf()
    held = _held(
        pki,
        _crl(pki, {leaf.serial_number: HOLD}, number=1),
        _crl(pki, {leaf.serial_number: x509.ReasonFlags.remove_from_crl}, number=2, delta_of=1),
    )
    assert held.status(leaf, NOW).delta_number == 2


def test_a_delta_past_its_next_update_is_stale(pki: Pki) -> None:
    """RFC 5280 §6.3.3 (a): every CRL used is before its nextUpdate. The client looked only at the
    complete CRL's nextUpdate."""
    leaf = pki.leaf()
    held = _held(
        pki,
        _crl(pki, number=1, next_update=NOW + timedelta(days=7)),
        _crl(pki, number=2, delta_of=1, next_update=NOW - timedelta(minutes=1)),
    )
    with pytest.raises(StaleError, match="CRL 2 is past its nextUpdate"):
        held.status(leaf, NOW)


def test_a_complete_crl_past_its_next_update_is_stale_even_with_a_fresh_delta(pki: Pki) -> None:
    """RFC 5280 §6.3.3 (a). The verifier looked only at the newest CRL's (the delta's)."""
    leaf = pki.leaf()
    held = _held(
        pki,
        _crl(pki, number=1, next_update=NOW - timedelta(minutes=1)),
        _crl(pki, number=2, delta_of=1, next_update=NOW + timedelta(hours=2)),
    )
    with pytest.raises(StaleError, match="CRL 1 is past its nextUpdate"):
        held.status(leaf, NOW)
    held.status(leaf, NOW, tolerance=timedelta(minutes=5))  # the policy's tolerance


def test_a_this_update_in_the_future_is_stale(pki: Pki) -> None:
    """The skew rule, as for OCSP: a CRL whose thisUpdate is ahead of the clock by more than the
    skew is not yet valid. Neither copy looked."""
    leaf = pki.leaf()
    held = _held(pki, _crl(pki, this_update=NOW + timedelta(minutes=2)))
    with pytest.raises(StaleError, match="in the future"):
        held.status(leaf, NOW)
    held.status(leaf, NOW, skew=timedelta(minutes=5))


def test_what_is_listed_stays_revoked_however_old(pki: Pki) -> None:
    """Both copies agreed: a listed certificate is revoked before anything is judged stale."""
    leaf = pki.leaf()
    held = _held(pki, _crl(pki, {leaf.serial_number: KEY_COMPROMISE}, number=1))
    later = NOW + timedelta(days=30)
    with pytest.raises(CertificateRevokedError):
        held.status(leaf, later, max_age=timedelta(days=1))
    with pytest.raises(StaleError, match="too old"):
        held.status(pki.leaf(), later, max_age=timedelta(days=1))


def test_a_certificate_of_another_issuer_is_refused(pki: Pki) -> None:
    held = _held(pki, _crl(pki))
    with pytest.raises(VerificationError, match="not from this CRL issuer"):
        held.status(Pki().leaf(), NOW)
