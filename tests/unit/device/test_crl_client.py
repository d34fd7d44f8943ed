"""The device's fetch-on-contact CRL client (``fleetid.device.crl_client``) against fleetid's own
publisher and distribution points, SQLite and PostgreSQL: what it fetches, what it answers, and
what it refuses (the rules themselves: ``tests/unit/revocation/test_check_crl.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.revocation_fixtures import (
    BASE,
    AsgiClient,
    crl_shard_of,
    open_fleet,
    revoke,
    same_shard,
)

from fleetid.api import create_app
from fleetid.authority.fleet_ca import CRL_SHARDS, FleetCa
from fleetid.clock import ManualClock
from fleetid.device.crl_client import CrlClient
from fleetid.errors import (
    CertificateRevokedError,
    CrlRollbackError,
    DeltaBaseError,
    DeltaGapError,
    EncodingError,
    StaleError,
    VerificationError,
)
from fleetid.revocation.crl import CrlKind, CrlPublisher, publisher_for

_shard = crl_shard_of
_same_shard = same_shard
_revoke = revoke


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ca(tmp_path: Path, db_url: str, clock: ManualClock) -> Iterator[FleetCa]:
    authority = open_fleet(tmp_path, db_url, clock)
    yield authority
    authority.close()


@pytest.fixture
def publisher(ca: FleetCa) -> CrlPublisher:
    return publisher_for(ca)


def _fetcher(ca: FleetCa, clock: ManualClock) -> tuple[list[str], object]:
    client = AsgiClient(create_app(ca.settings, clock=clock, ca=ca))
    seen: list[str] = []

    def fetch(url: str) -> bytes:
        seen.append(url)
        response = client.get(url.removeprefix(BASE))
        assert response.status_code == 200, response.text
        return response.content

    return seen, fetch


def test_client_fetches_deltas_then_the_full_shard_when_behind(
    ca: FleetCa, publisher: CrlPublisher, clock: ManualClock
) -> None:
    a, b, c = _same_shard(ca, 3)
    _, fetch = _fetcher(ca, clock)
    client = CrlClient(ca.issuing.certificate, fetch=fetch, max_age=timedelta(days=2))  # type: ignore[arg-type]
    _revoke(ca, a)
    publisher.publish(force=True)
    first = client.refresh(c, clock.now())
    assert first.fetched == ("full", "delta")
    with pytest.raises(CertificateRevokedError):
        client.check(a, clock.now())
    client.check(c, clock.now())
    # Next contact, a revocation later: only the delta (cumulative since the held full's base).
    clock.advance(timedelta(hours=3))
    _revoke(ca, b)
    publisher.publish()
    second = client.refresh(c, clock.now())
    assert second.fetched == ("delta",)
    assert second.bytes < first.bytes
    with pytest.raises(CertificateRevokedError):
        client.check(b, clock.now())
    assert client.check(c, clock.now()).delta_number is not None
    # Eight days without contact: the deltas are based on a newer full CRL now.
    clock.advance(timedelta(days=8))
    publisher.publish()
    third = client.refresh(c, clock.now())
    assert third.fetched == ("full", "delta")
    with pytest.raises(CertificateRevokedError):
        client.check(b, clock.now())
    client.check(c, clock.now())


def test_stale_crl_is_never_not_revoked(
    ca: FleetCa, publisher: CrlPublisher, clock: ManualClock
) -> None:
    a, c = _same_shard(ca, 2)
    _, fetch = _fetcher(ca, clock)
    client = CrlClient(ca.issuing.certificate, fetch=fetch, max_age=timedelta(days=1))  # type: ignore[arg-type]
    with pytest.raises(StaleError, match="no CRL held"):
        client.check(c, clock.now())
    _revoke(ca, a)
    client.refresh(c, clock.now())
    client.check(c, clock.now())
    clock.advance(timedelta(days=1, seconds=1))
    with pytest.raises(StaleError, match="too old"):
        client.check(c, clock.now())
    with pytest.raises(CertificateRevokedError):  # what is listed stays revoked
        client.check(a, clock.now())
    lenient = CrlClient(ca.issuing.certificate, fetch=fetch, max_age=timedelta(days=30))  # type: ignore[arg-type]
    lenient.refresh(c, clock.now() - timedelta(days=1))
    clock.advance(publisher.policy.full_validity)
    with pytest.raises(StaleError, match="nextUpdate"):
        lenient.check(c, clock.now())


def test_client_refuses_wrong_base_gap_rollback_scope_and_signer(
    ca: FleetCa,
    publisher: CrlPublisher,
    clock: ManualClock,
    tmp_path: Path,
    backend: str,
    database_url_for: Callable[[str], str],
) -> None:
    (a,) = _same_shard(ca, 1)
    shard = _shard(a)
    url = f"{BASE}/crl/issuing-1/{shard}.crl"
    other_url = f"{BASE}/crl/issuing-1/{(shard + 1) % CRL_SHARDS}.crl"
    old = {p.kind: p for p in publisher.publish(force=True) if p.shard == shard}
    clock.advance(timedelta(minutes=1))
    _revoke(ca, a)
    new = {p.kind: p for p in publisher.publish(force=True) if p.shard == shard}
    client = CrlClient(ca.issuing.certificate, fetch=lambda u: b"", max_age=timedelta(days=1))
    with pytest.raises(DeltaGapError, match="no complete CRL"):
        client.load_delta(url, new[CrlKind.DELTA].der)
    client.load_full(url, new[CrlKind.FULL].der)
    # An older delta (its number below the held complete CRL): wrong base.
    with pytest.raises(DeltaBaseError):
        client.load_delta(url, old[CrlKind.DELTA].der)
    with pytest.raises(CrlRollbackError):
        client.load_full(url, old[CrlKind.FULL].der)
    with pytest.raises(VerificationError, match="delta CRL where"):
        client.load_full(url, new[CrlKind.DELTA].der)
    with pytest.raises(VerificationError, match="scope"):
        client.load_full(other_url, new[CrlKind.FULL].der)
    # A device that holds only the old full CRL while the delta needs a newer one: a gap.
    behind = CrlClient(ca.issuing.certificate, fetch=lambda u: b"", max_age=timedelta(days=1))
    behind.load_full(url, old[CrlKind.FULL].der)
    clock.advance(publisher.policy.delta_window + timedelta(days=1))
    latest = {p.kind: p for p in publisher.publish() if p.shard == shard}
    with pytest.raises(DeltaGapError, match="needs complete CRL"):
        behind.load_delta(url, latest[CrlKind.DELTA].der)
    # A CRL of another fleet CA (same names, other key).
    (tmp_path / "stranger").mkdir()
    stranger = open_fleet(tmp_path / "stranger", database_url_for(backend), ManualClock())
    try:
        foreign = publisher_for(stranger).publish(force=True)
    finally:
        stranger.close()
    with pytest.raises(VerificationError, match="not signed"):
        client.load_full(url, next(p for p in foreign if p.shard == shard).der)
    with pytest.raises(EncodingError):
        client.load_full(url, b"\x30\x03garbage")
