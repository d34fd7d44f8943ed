"""Sharded full and delta CRLs (RFC 5280) on SQLite and PostgreSQL: what the publisher writes and
what the distribution points serve (the device's client: ``tests/unit/device/test_crl_client.py``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy import select
from tests.revocation_fixtures import (
    BASE,
    AsgiClient,
    crl_shard_of,
    issue,
    revoke,
    same_shard,
)

from fleetid.api import create_app
from fleetid.authority.fleet_ca import CRL_SHARDS, FleetCa
from fleetid.clock import ManualClock
from fleetid.revocation.crl import (
    WATERMARK_OID,
    CrlKind,
    CrlPublisher,
    crl_watermark,
    publisher_for,
)
from fleetid.store.crl_table import crl_publications


@pytest.fixture
def publisher(ca: FleetCa) -> CrlPublisher:
    return publisher_for(ca)


_shard = crl_shard_of
_same_shard = same_shard
_revoke = revoke


def _crl(publisher: CrlPublisher, shard: int, kind: CrlKind) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(publisher.current(1, shard, kind).der)


def test_full_and_delta_carry_the_rfc5280_extensions(ca: FleetCa, publisher: CrlPublisher) -> None:
    (a,) = issue(ca, 1)
    w = _revoke(ca, a, "superseded")
    done = publisher.publish(force=True)
    assert len(done) == 2 * CRL_SHARDS + 1  # and the root's CRL
    shard = _shard(a)
    full, delta = _crl(publisher, shard, CrlKind.FULL), _crl(publisher, shard, CrlKind.DELTA)
    issuing = ca.issuing.certificate
    for crl in (full, delta):
        assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
        assert crl.issuer == issuing.subject
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical
        assert idp.value.only_contains_user_certs
        assert [n.value for n in idp.value.full_name or ()] == [f"{BASE}/crl/issuing-1/{shard}.crl"]
        assert crl_watermark(crl) == w
        assert not crl.extensions.get_extension_for_oid(WATERMARK_OID).critical
    full_number = full.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical
    assert indicator.value.crl_number == full_number
    assert delta.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > full_number
    freshest = full.extensions.get_extension_for_class(x509.FreshestCRL)
    assert not freshest.critical
    assert freshest.value[0].full_name[0].value == f"{BASE}/crl/issuing-1/{shard}-delta.crl"  # type: ignore[index]
    with pytest.raises(x509.ExtensionNotFound):
        full.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    # The root's CRL over the CA certificates it signed (D2): onlyContainsCACerts, no scope URL.
    (root_publication,) = [p for p in done if p.issuer_id not in {ca.issuing.record.id}]
    root_crl = x509.load_der_x509_crl(root_publication.der)
    assert root_crl.is_signature_valid(ca.root.public_key())  # type: ignore[arg-type]
    assert root_crl.issuer == ca.root.subject and len(root_crl) == 0
    root_idp = root_crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert root_idp.only_contains_ca_certs and root_idp.full_name is None
    with pytest.raises(x509.ExtensionNotFound):
        root_crl.extensions.get_extension_for_class(x509.FreshestCRL)
    entry = full.get_revoked_certificate_by_serial_number(a.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.superseded
    )
    # The certificate's own distribution point is the URL in the CRL's IDP.
    cdp = a.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == f"{BASE}/crl/issuing-1/{shard}.crl"  # type: ignore[index]


def test_shards_list_only_their_own_and_unspecified_has_no_reason(
    ca: FleetCa, publisher: CrlPublisher
) -> None:
    certificates = issue(ca, 12)
    for certificate in certificates[:6]:
        _revoke(ca, certificate, "unspecified")
    publisher.publish(force=True)
    for shard in range(CRL_SHARDS):
        listed = {r.serial_number for r in _crl(publisher, shard, CrlKind.FULL)}
        expected = {c.serial_number for c in certificates[:6] if _shard(c) == shard}
        assert listed == expected
    entry = _crl(publisher, _shard(certificates[0]), CrlKind.FULL)[0]
    with pytest.raises(x509.ExtensionNotFound):
        entry.extensions.get_extension_for_class(x509.CRLReason)


def test_a_revocation_makes_only_its_shard_publish_a_full_and_a_delta(
    ca: FleetCa, publisher: CrlPublisher, clock: ManualClock
) -> None:
    (a,) = issue(ca, 1)
    first = publisher.publish(force=True)
    assert publisher.publish() == []  # nothing due
    clock.advance(timedelta(minutes=5))
    w = _revoke(ca, a)
    done = publisher.publish()
    # B3: the full CRL at the distribution point lists it at once, not at the next daily one.
    assert [(p.shard, p.kind) for p in done] == [
        (_shard(a), CrlKind.FULL),
        (_shard(a), CrlKind.DELTA),
    ]
    full, delta = (x509.load_der_x509_crl(p.der) for p in done)
    assert [r.serial_number for r in full] == [a.serial_number]
    assert [r.serial_number for r in delta] == [a.serial_number]
    assert crl_watermark(full) == crl_watermark(delta) == w
    # The delta's base stays the scheduled full CRL, which is kept; the refreshed one is served.
    base = next(p for p in first if p.shard == _shard(a) and p.kind is CrlKind.FULL)
    assert done[1].base_number == base.crl_number
    assert publisher.latest(ca.issuing.record.id, _shard(a), CrlKind.FULL) == done[0]
    # An hour later every shard re-issues a delta; the fulls wait for their interval.
    clock.advance(publisher.policy.delta_interval)
    assert {p.kind for p in publisher.publish()} == {CrlKind.DELTA}


def test_fulls_refreshed_between_scheduled_ones_are_pruned(
    ca: FleetCa, publisher: CrlPublisher, clock: ManualClock
) -> None:
    certificates = _same_shard(ca, 3)
    shard = _shard(certificates[0])
    publisher.publish(force=True)
    for certificate in certificates:
        clock.advance(timedelta(minutes=1))
        _revoke(ca, certificate)
        publisher.publish()
    with ca.store.engine.connect() as c:
        numbers = (
            c.execute(
                select(crl_publications.c.crl_number).where(
                    crl_publications.c.issuer_id == ca.issuing.record.id,
                    crl_publications.c.shard == shard,
                    crl_publications.c.kind == "full",
                )
            )
            .scalars()
            .all()
        )
    assert len(numbers) == 2  # the scheduled base and the newest refresh


def test_delta_base_is_the_oldest_full_in_the_window(
    ca: FleetCa, publisher: CrlPublisher, clock: ManualClock
) -> None:
    (a,) = issue(ca, 1)
    shard = _shard(a)
    first = publisher.publish(force=True)
    first_full = next(p for p in first if p.shard == shard and p.kind is CrlKind.FULL)
    clock.advance(publisher.policy.full_interval)
    _revoke(ca, a)
    second = publisher.publish()
    full = next(p for p in second if p.shard == shard and p.kind is CrlKind.FULL)
    delta = next(p for p in second if p.shard == shard and p.kind is CrlKind.DELTA)
    assert full.crl_number > first_full.crl_number
    assert delta.base_number == first_full.crl_number  # still inside the 7-day window
    clock.advance(publisher.policy.delta_window + timedelta(seconds=1))
    third = publisher.publish()
    delta = next(p for p in third if p.shard == shard and p.kind is CrlKind.DELTA)
    newest_full = next(p for p in third if p.shard == shard and p.kind is CrlKind.FULL)
    assert delta.base_number == newest_full.crl_number


def test_expired_certificates_leave_the_full_crl(
    ca: FleetCa, publisher: CrlPublisher, clock: ManualClock
) -> None:
    (a,) = issue(ca, 1)
    _revoke(ca, a)
    publisher.publish(force=True)
    assert len(_crl(publisher, _shard(a), CrlKind.FULL)) == 1
    clock.set(a.not_valid_after_utc + timedelta(seconds=1))
    publisher.publish(force=True)
    assert len(_crl(publisher, _shard(a), CrlKind.FULL)) == 0


def test_distribution_points_serve_with_caching_headers(ca: FleetCa, clock: ManualClock) -> None:
    (a,) = issue(ca, 1)
    client = AsgiClient(create_app(ca.settings, clock=clock, ca=ca))
    path = f"/crl/issuing-1/{_shard(a)}.crl"
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    age = int(response.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert crl.next_update_utc is not None
    assert 0 < age <= (crl.next_update_utc - clock.now()).total_seconds()
    assert response.headers["last-modified"] and response.headers["expires"]
    again = client.get(path, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    other = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    delta = client.get(f"/crl/issuing-1/{_shard(a)}-delta.crl")
    assert delta.status_code == 200
    delta_age = int(delta.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert delta_age <= 60
    for missing in ("/crl/issuing-1/99.crl", "/crl/issuing-7/1.crl", "/crl/issuing-1/x.crl"):
        assert client.get(missing).status_code == 404
