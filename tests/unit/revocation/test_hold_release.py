"""B4: hold, release and escalation (RFC 5280 §5.3.1) on the three channels, from the registry's
one state machine; removeFromCRL refused as a revocation reason. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from tests.revocation_fixtures import issue, open_fleet

from fleetid.authority.fleet_ca import CRL_SHARDS, FleetCa
from fleetid.clock import ManualClock
from fleetid.errors import PolicyError
from fleetid.revocation.check.filter import FilterVerifier, Verdict
from fleetid.revocation.crl import CrlKind, CrlPublisher, publisher_for
from fleetid.revocation.filter.format import FilterKind
from fleetid.revocation.ocsp import OcspPolicy, OcspResponder, responder_for
from fleetid.revocation.publish import FilterPublisher
from fleetid.revocation.registry import CertificateState, RevocationRegistry, certificate_id


@dataclass
class Channels:
    ca: FleetCa
    clock: ManualClock
    registry: RevocationRegistry
    responder: OcspResponder
    crls: CrlPublisher
    filters: FilterPublisher
    certificate: x509.Certificate

    @property
    def serial(self) -> str:
        return f"{self.certificate.serial_number:x}"

    def ocsp(self) -> ocsp.OCSPSingleResponse:
        self.responder.sync()
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(self.certificate, self.ca.issuing.certificate, hashes.SHA256())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        response = ocsp.load_der_ocsp_response(self.responder.respond(request).der)
        return next(iter(response.responses))

    def crl(self, kind: CrlKind) -> x509.CertificateRevocationList:
        self.crls.publish()
        shard = self.certificate.serial_number % CRL_SHARDS
        return x509.load_der_x509_crl(self.crls.current(1, shard, kind).der)

    def crl_reason(self, kind: CrlKind) -> x509.ReasonFlags | None:
        entry = self.crl(kind).get_revoked_certificate_by_serial_number(
            self.certificate.serial_number
        )
        if entry is None:
            return None
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason

    def filter(self) -> tuple[FilterKind, Verdict]:
        published = self.filters.publish()
        verifier = FilterVerifier(self.ca.issuing.signer.public_key())
        verifier.load(self.filters.full or b"")
        if self.filters.delta is not None:
            verifier.load(self.filters.delta)
        key = certificate_id(self.ca.issuing.record.subject_key_id, self.certificate.serial_number)
        return published.kind, verifier.status(key, self.certificate.not_valid_before_utc)


@pytest.fixture
def channels(tmp_path: Path, db_url: str) -> Iterator[Channels]:
    clock = ManualClock()
    ca = open_fleet(tmp_path, db_url, clock)
    try:
        (certificate,) = issue(ca, 1)
        clock.advance(timedelta(hours=1))  # inside the filter's coverage
        registry = RevocationRegistry(ca.store)
        crls = publisher_for(ca, registry=registry)
        crls.publish(force=True)
        filters = FilterPublisher.for_ca(ca)
        filters.publish_full()
        yield Channels(
            ca=ca,
            clock=clock,
            registry=registry,
            responder=responder_for(ca, registry=registry, policy=OcspPolicy(poll_interval=3600)),
            crls=crls,
            filters=filters,
            certificate=certificate,
        )
    finally:
        ca.close()


def test_remove_from_crl_is_not_a_revocation_reason(channels: Channels) -> None:
    with pytest.raises(PolicyError, match="removeFromCRL is not a revocation reason"):
        channels.registry.revoke(channels.serial, "removeFromCRL", now=channels.clock.now())
    assert channels.registry.watermark() == 0
    assert channels.ocsp().certificate_status is ocsp.OCSPCertStatus.GOOD
    assert channels.crl_reason(CrlKind.FULL) is None
    assert channels.filter()[1] is Verdict.VALID


def test_hold_then_release_on_every_channel(channels: Channels) -> None:
    registry, clock = channels.registry, channels.clock
    held = registry.revoke(channels.serial, "certificateHold", now=clock.now())
    single = channels.ocsp()
    assert single.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert single.revocation_reason is x509.ReasonFlags.certificate_hold
    assert channels.crl_reason(CrlKind.FULL) is x509.ReasonFlags.certificate_hold
    assert channels.filter() == (FilterKind.DELTA, Verdict.REVOKED)

    clock.advance(timedelta(minutes=5))
    released = registry.release(channels.serial, now=clock.now())
    assert released.sequence == held.sequence + 1
    assert channels.ocsp().certificate_status is ocsp.OCSPCertStatus.GOOD
    assert channels.crl_reason(CrlKind.FULL) is None  # the entry is gone from the full CRL
    # The delta lists the release as removeFromCRL (§5.3.1), dated at the release.
    delta = channels.crl(CrlKind.DELTA)
    entry = delta.get_revoked_certificate_by_serial_number(channels.certificate.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.remove_from_crl
    assert entry.revocation_date_utc == clock.now().replace(microsecond=0)
    # A delta filter cannot take a revocation back: the publisher rebases.
    assert channels.filter() == (FilterKind.FULL, Verdict.VALID)
    # The history: revoked at the hold's watermark, good at the release's.
    issuer = channels.ca.issuing.record.id
    serial = channels.certificate.serial_number
    assert registry.status(issuer, serial, watermark=held.sequence).reason == "certificateHold"
    assert registry.status(issuer, serial).state is CertificateState.GOOD
    assert [e.reason for e in registry.changes(0, released.sequence)] == ["removeFromCRL"]
    assert [e.reason for e in registry.revoked(held.sequence)] == ["certificateHold"]
    assert list(registry.revoked(released.sequence)) == []
    with pytest.raises(PolicyError, match="no hold to release"):
        registry.release(channels.serial, now=clock.now())
    # Released, it can be revoked again, for good.
    registry.revoke(channels.serial, "keyCompromise", now=clock.now())
    with pytest.raises(PolicyError, match="only a certificateHold is released"):
        registry.release(channels.serial, now=clock.now())
    assert channels.ocsp().certificate_status is ocsp.OCSPCertStatus.REVOKED


def test_escalation_on_every_channel_and_no_way_back(channels: Channels) -> None:
    registry, clock = channels.registry, channels.clock
    revoked_at = clock.now()
    superseded = registry.revoke(channels.serial, "superseded", now=revoked_at)
    assert channels.crl_reason(CrlKind.FULL) is x509.ReasonFlags.superseded
    assert channels.filter()[1] is Verdict.REVOKED
    clock.advance(timedelta(hours=2))
    with pytest.raises(PolicyError, match="in the future"):
        registry.escalate(channels.serial, "keyCompromise", now=clock.now(),
                          invalidity_date=clock.now() + timedelta(days=1))  # fmt: skip
    compromised_at = revoked_at - timedelta(days=3)  # known now, it happened before
    escalated = registry.escalate(
        channels.serial, "keyCompromise", now=clock.now(), invalidity_date=compromised_at
    )
    assert escalated.revoked_at == revoked_at  # revoked since then; reason and invalidity new
    for kind in (CrlKind.FULL, CrlKind.DELTA):
        entry = channels.crl(kind).get_revoked_certificate_by_serial_number(
            channels.certificate.serial_number
        )
        assert entry is not None
        invalidity = entry.extensions.get_extension_for_class(x509.InvalidityDate)
        assert not invalidity.critical  # RFC 5280 §5.3.2
        assert invalidity.value.invalidity_date_utc == compromised_at.replace(microsecond=0)
    single = channels.ocsp()
    assert single.revocation_reason is x509.ReasonFlags.key_compromise
    assert single.revocation_time_utc == revoked_at.replace(microsecond=0)
    assert channels.crl_reason(CrlKind.FULL) is x509.ReasonFlags.key_compromise
    assert channels.crl_reason(CrlKind.DELTA) is x509.ReasonFlags.key_compromise
    assert channels.filter()[1] is Verdict.REVOKED
    issuer, serial = channels.ca.issuing.record.id, channels.certificate.serial_number
    at_first = registry.status(issuer, serial, watermark=superseded.sequence)
    assert at_first.reason == "superseded"
    for reason in ("superseded", "certificateHold", "cACompromise"):
        with pytest.raises(PolicyError, match="cannot become"):
            registry.escalate(channels.serial, reason, now=clock.now())
    with pytest.raises(PolicyError, match="already revoked"):
        registry.escalate(channels.serial, "keyCompromise", now=clock.now())
    assert registry.watermark() == escalated.sequence  # refusals do not move it


def test_a_hold_is_made_permanent_with_any_reason(channels: Channels) -> None:
    registry, now = channels.registry, channels.clock.now()
    registry.revoke(channels.serial, "certificateHold", now=now)
    registry.escalate(channels.serial, "cessationOfOperation", now=now)
    assert channels.crl_reason(CrlKind.FULL) is x509.ReasonFlags.cessation_of_operation
    with pytest.raises(PolicyError, match="cannot become"):
        registry.escalate(channels.serial, "certificateHold", now=now)
    (other,) = issue(channels.ca, 1)
    with pytest.raises(PolicyError, match="not revoked"):
        registry.escalate(f"{other.serial_number:x}", "keyCompromise", now=now)
