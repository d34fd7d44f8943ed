"""EventKind is the one list of audit-log event kinds: the ceremony's, the line's and the
authority's. The authority's writes are logged as its members, and an authority event of any
other kind is refused when it is made (inside the transaction that would have written it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.revocation_fixtures import issue, open_fleet

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import create_token
from fleetid.authority.revoke import revoke_serial
from fleetid.clock import ManualClock
from fleetid.errors import EncodingError
from fleetid.factory.auditlog import EventKind
from fleetid.store.auditlog_table import audit_entries
from fleetid.store.event_kinds import AUTHORITY_KINDS
from fleetid.store.repositories import CaEvent


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[FleetCa]:
    authority = open_fleet(tmp_path / "ca", f"sqlite:///{tmp_path}/ca.db", ManualClock())
    yield authority
    authority.close()


def _kinds(ca: FleetCa) -> list[str]:
    with ca.store.engine.connect() as c:
        rows = c.execute(select(audit_entries.c.kind).order_by(audit_entries.c.seq)).all()
    return [r.kind for r in rows]


def test_the_authority_kinds_are_the_ca_members() -> None:
    assert {str(k) for k in AUTHORITY_KINDS} == {
        "ca.ca-key",
        "ca.issuance",
        "ca.revocation",
        "ca.release",
        "ca.escalation",
        "ca.token",
        "ca.applet-upgrade",
        "ca.operator-credential",
        "ca.publication",
        "ca.manufacturer",
    }


@pytest.mark.parametrize("kind", ["", "hold", "lock", "ca.hold", "issuance", EventKind.LOCK])
def test_an_authority_event_of_another_kind_is_refused(kind: str) -> None:
    with pytest.raises(EncodingError, match="no audit event kind"):
        CaEvent(kind=kind, serial=None, body={})  # type: ignore[arg-type]


def test_the_authority_logs_only_members(ca: FleetCa) -> None:
    with ca.store.transaction() as tx:
        create_token(tx, device_id="gw-1", clock=ca.clock, ttl=ca.settings.policy.token_ttl)
    (certificate,) = issue(ca, 1)
    revoke_serial(ca.store, f"{certificate.serial_number:040x}", "superseded", clock=ca.clock)
    kinds = _kinds(ca)
    assert kinds == [
        EventKind.CA_KEY,
        EventKind.CA_KEY,
        EventKind.CA_TOKEN,
        EventKind.CA_ISSUANCE,
        EventKind.CA_REVOCATION,
    ]
    assert all(kind in set(EventKind) for kind in kinds)
