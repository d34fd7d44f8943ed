"""The revocation registry on SQLite and PostgreSQL: watermarks, status at a watermark, changes,
the revoked set, and the population the filter builder reads.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from sqlalchemy import Engine
from tests.revocation_fixtures import NOW, add_certificates, add_issuer, issue, open_fleet

from fleetid.authority.fleet_ca import CRL_SHARDS, FleetCa
from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import NotFoundError, PolicyError
from fleetid.revocation.check.filter import FilterVerifier, Verdict
from fleetid.revocation.crl import CrlKind, crl_watermark, publisher_for
from fleetid.revocation.filter import format as filter_format
from fleetid.revocation.filter.builder import build_filter
from fleetid.revocation.ocsp import OcspPolicy, responder_for
from fleetid.revocation.registry import CertificateState, RevocationRegistry, certificate_id
from fleetid.store.repositories import Store


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


@pytest.fixture
def registry(store: Store) -> RevocationRegistry:
    return RevocationRegistry(store)


def test_watermark_counts_committed_revocations(store: Store, registry: RevocationRegistry) -> None:
    issuer, _ = add_issuer(store)
    serials = add_certificates(store, issuer, 3)
    assert registry.watermark() == 0
    first = registry.revoke(f"{serials[0]:x}", "keyCompromise", now=NOW)
    second = registry.revoke(f"{serials[1]:x}", "superseded", now=NOW)
    assert (first.sequence, second.sequence) == (1, 2)
    assert registry.watermark() == 2


def test_refused_revocation_does_not_move_the_watermark(
    store: Store, registry: RevocationRegistry
) -> None:
    issuer, _ = add_issuer(store)
    (serial,) = add_certificates(store, issuer, 1)
    registry.revoke(f"{serial:x}", "keyCompromise", now=NOW)
    with pytest.raises(PolicyError, match="already revoked"):
        registry.revoke(f"{serial:x}", "superseded", now=NOW)
    with pytest.raises(NotFoundError):
        registry.revoke("7" * 40, "superseded", now=NOW)
    with pytest.raises(PolicyError, match="not an RFC 5280"):
        registry.revoke(f"{serial:x}", "stolen", now=NOW)
    assert registry.watermark() == 1


def test_status_at_a_watermark(store: Store, registry: RevocationRegistry) -> None:
    issuer, _ = add_issuer(store)
    a, b = add_certificates(store, issuer, 2)
    registry.revoke(f"{a:x}", "keyCompromise", now=NOW)
    registry.revoke(f"{b:x}", "cessationOfOperation", now=NOW + timedelta(hours=1))
    now_b = registry.status(issuer, b)
    assert now_b.state is CertificateState.REVOKED
    assert (now_b.reason, now_b.sequence, now_b.revoked_at) == (
        "cessationOfOperation",
        2,
        NOW + timedelta(hours=1),
    )
    # At watermark 1, b was not yet revoked: the answer of that watermark never changes.
    assert registry.status(issuer, b, watermark=1).state is CertificateState.GOOD
    assert registry.status(issuer, a, watermark=1).state is CertificateState.REVOKED
    assert registry.status(issuer, a, watermark=0).state is CertificateState.GOOD


def test_unknown_serial_and_other_issuer_are_unknown(
    store: Store, registry: RevocationRegistry
) -> None:
    issuer, _ = add_issuer(store, 1)
    other, _ = add_issuer(store, 2)
    (serial,) = add_certificates(store, issuer, 1)
    assert registry.status(issuer, serial).state is CertificateState.GOOD
    assert registry.status(other, serial).state is CertificateState.UNKNOWN
    assert registry.status(issuer, serial ^ 1).state is CertificateState.UNKNOWN
    assert registry.status(issuer, 1 << 170).state is CertificateState.UNKNOWN  # > 20 octets


def test_revoked_set_and_changes(store: Store, registry: RevocationRegistry) -> None:
    issuer, _ = add_issuer(store)
    serials = add_certificates(store, issuer, 6)
    short = add_certificates(store, issuer, 1, lifetime=timedelta(days=1))[0]
    for serial in [*serials[:4], short]:
        registry.revoke(f"{serial:x}", "keyCompromise", now=NOW)
    w = registry.watermark()
    assert w == 5
    at3 = [e.serial_number for e in registry.revoked(3, chunk_size=2)]
    assert at3 == serials[:3]
    everything = [e.serial_number for e in registry.revoked(w, chunk_size=2)]
    assert everything == [*serials[:4], short]
    unexpired = registry.revoked(w, unexpired_at=NOW + timedelta(days=2))
    assert [e.serial_number for e in unexpired] == serials[:4]
    delta = list(registry.changes(2, 4))
    assert [(e.serial_number, e.sequence) for e in delta] == [(serials[2], 3), (serials[3], 4)]
    assert list(registry.changes(w, w)) == []
    assert list(registry.revoked(w, issuer_id=issuer + 99)) == []
    with pytest.raises(ValueError, match="backwards"):
        list(registry.changes(4, 2))


def test_population_streams_the_covered_universe(
    store: Store, registry: RevocationRegistry
) -> None:
    issuer, key_id = add_issuer(store)
    old = add_certificates(store, issuer, 5)
    expired = add_certificates(
        store, issuer, 2, issued_at=NOW - timedelta(days=30), lifetime=timedelta(days=1)
    )
    late = add_certificates(store, issuer, 2, issued_at=NOW + timedelta(hours=2))
    registry.revoke(f"{old[1]:x}", "keyCompromise", now=NOW)
    registry.revoke(f"{old[3]:x}", "keyCompromise", now=NOW)
    registry.revoke(f"{late[0]:x}", "keyCompromise", now=NOW)
    chunks = list(
        registry.population(
            watermark=1,
            issued_until=NOW + timedelta(hours=1),
            unexpired_at=NOW,
            chunk_size=2,
        )
    )
    assert [len(c) for c in chunks] == [2, 2, 1]
    ids = [i for c in chunks for i in c.certificate_ids]
    flags = [f for c in chunks for f in c.revoked]
    assert ids == [certificate_id(key_id, s) for s in old]
    # At watermark 1 only old[1] is revoked; old[3] (sequence 2) is not yet.
    assert flags == [False, True, False, False, False]
    assert all(t == NOW for c in chunks for t in c.issued_at)
    excluded = {certificate_id(key_id, s) for s in expired + late}
    assert not excluded & set(ids)


def test_certificate_id_is_the_filters() -> None:
    key_id = bytes(range(20))
    for serial in (1, 0xABCDEF, (1 << 159) + 12345):
        assert certificate_id(key_id, serial) == filter_format.certificate_id(key_id, serial)
    with pytest.raises(ValueError):
        certificate_id(key_id, 0)
    with pytest.raises(ValueError):
        certificate_id(b"", 5)


# --- the three channels at one watermark -------------------------------------------------------


def test_ocsp_crl_and_filter_never_disagree_at_a_watermark(tmp_path: Path, db_url: str) -> None:
    clock = ManualClock()
    ca = open_fleet(tmp_path, db_url, clock)
    try:
        _three_channels(ca, clock)
    finally:
        ca.close()


def _three_channels(ca: FleetCa, clock: ManualClock) -> None:
    registry = RevocationRegistry(ca.store)
    responder = responder_for(ca, registry=registry, policy=OcspPolicy(poll_interval=3600))
    publisher = publisher_for(ca, registry=registry)
    filter_signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    issuer = ca.issuing.certificate
    key_id = ca.issuing.record.subject_key_id
    certificates = issue(ca, 40)
    rng = random.Random(5280)
    reasons = ("keyCompromise", "superseded", "unspecified", "cessationOfOperation")
    for victims in (0, 3, 9):
        for certificate in rng.sample(certificates, victims):
            if registry.status(ca.issuing.record.id, certificate.serial_number).state is (
                CertificateState.GOOD
            ):
                registry.revoke(
                    f"{certificate.serial_number:x}", rng.choice(reasons), now=clock.now()
                )
        clock.advance(timedelta(minutes=10))
        watermark = registry.watermark()
        # OCSP at the watermark.
        assert responder.sync() == watermark
        ocsp_says: dict[int, bool] = {}
        for certificate in certificates:
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(certificate, issuer, hashes.SHA256())
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
            single = next(
                iter(ocsp.load_der_ocsp_response(responder.respond(request).der).responses)
            )
            ocsp_says[certificate.serial_number] = (
                single.certificate_status is ocsp.OCSPCertStatus.REVOKED
            )
        # CRLs (every shard's full + delta) at the watermark.
        publisher.publish(force=True)
        crl_says: dict[int, bool] = {}
        for certificate in certificates:
            shard = certificate.serial_number % CRL_SHARDS
            full = x509.load_der_x509_crl(publisher.current(1, shard, CrlKind.FULL).der)
            delta = x509.load_der_x509_crl(publisher.current(1, shard, CrlKind.DELTA).der)
            assert crl_watermark(full) == crl_watermark(delta) == watermark
            listed = {r.serial_number for r in full} | {r.serial_number for r in delta}
            crl_says[certificate.serial_number] = certificate.serial_number in listed
        # The offline filter built from the registry's population at the watermark.
        revoked_ids: list[bytes] = []
        valid_ids: list[bytes] = []
        for chunk in registry.population(
            watermark=watermark, issued_until=clock.now(), unexpired_at=clock.now(), chunk_size=7
        ):
            for cert_id, flag in zip(chunk.certificate_ids, chunk.revoked, strict=True):
                (revoked_ids if flag else valid_ids).append(cert_id)
        verifier = FilterVerifier(filter_signer.public_key())
        header = verifier.load(
            build_filter(
                revoked_ids,
                valid_ids,
                watermark=watermark,
                coverage_until=clock.now(),
                signer=filter_signer,
            )
        )
        assert header.watermark == watermark
        for certificate in certificates:
            serial = certificate.serial_number
            verdict = verifier.status(
                certificate_id(key_id, serial), certificate.not_valid_before_utc
            )
            truth = registry.status(ca.issuing.record.id, serial, watermark=watermark)
            revoked = truth.state is CertificateState.REVOKED
            assert ocsp_says[serial] is crl_says[serial] is revoked, serial
            assert (verdict is Verdict.REVOKED) is revoked, serial
        assert sum(ocsp_says.values()) == len(revoked_ids)
