"""EventKind is the one list of audit-log event kinds: the ceremony's, the line's and the
authority's. The authority's writes are logged as its members, and a write whose kind it does not
name is refused with the transaction that made it."""

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


@pytest.mark.parametrize(
    ("stored", "member"),
    [
        ("ca-key", EventKind.CA_KEY),
        ("issuance", EventKind.CA_ISSUANCE),
        ("revocation", EventKind.CA_REVOCATION),
        ("release", EventKind.CA_RELEASE),
        ("escalation", EventKind.CA_ESCALATION),
        ("token", EventKind.CA_TOKEN),
    ],
)
def test_each_authority_write_has_its_member(stored: str, member: EventKind) -> None:
    assert EventKind.of_ca(stored) is member
    assert str(member) == "ca." + stored


@pytest.mark.parametrize("stored", ["", "ca-key ", "Issuance", "ca.issuance", "hold", "lock"])
def test_a_kind_the_enum_does_not_name_is_refused(stored: str) -> None:
    with pytest.raises(EncodingError, match="no audit event kind"):
        EventKind.of_ca(stored)


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


def test_a_write_of_an_unnamed_kind_is_not_recorded(ca: FleetCa) -> None:
    before = _kinds(ca)
    hook = ca.store.audit
    assert hook is not None
    with pytest.raises(EncodingError), ca.store.engine.begin() as connection:
        hook(connection, [CaEvent(kind="hold", serial=None, body={})])
    assert _kinds(ca) == before
