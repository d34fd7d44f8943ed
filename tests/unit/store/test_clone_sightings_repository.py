"""The clone detector's tables: revision 0010 creates and drops them; the repository answers
what the detector asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from fleetid.errors import StoreError
from fleetid.store.clone_sightings_repository import CloneSightings
from fleetid.store.engine import open_engine
from fleetid.store.migrate import downgrade, upgrade

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sightings(tmp_path: Path) -> CloneSightings:
    engine = open_engine(tmp_path)
    upgrade(engine)
    return CloneSightings(engine)


def _record(
    store: CloneSightings,
    device: str,
    source: str,
    minutes: int,
    *,
    counter: int | None = None,
    nonce: bytes | None = None,
) -> None:
    store.record(
        device_id=device,
        source=source,
        credential_serial="ab" * 20,
        seen_at=T0 + timedelta(minutes=minutes),
        counter=counter,
        nonce=nonce,
    )


def test_revision_0010_creates_and_drops_the_tables(tmp_path: Path) -> None:
    engine = open_engine(tmp_path)
    upgrade(engine)
    assert {"clone_sightings", "clone_quarantines"} <= set(inspect(engine).get_table_names())
    downgrade(engine, "0009")
    assert not {"clone_sightings", "clone_quarantines"} & set(inspect(engine).get_table_names())


def test_the_last_contact_per_source_and_the_highest_counter(sightings: CloneSightings) -> None:
    assert sightings.last_by_source("D1") == {} and sightings.highest_counter("D1") is None
    _record(sightings, "D1", "home", 0, counter=3)
    _record(sightings, "D1", "home", 15, counter=5)
    _record(sightings, "D1", "depot", 40)
    _record(sightings, "D2", "home", 50, counter=99)
    assert sightings.last_by_source("D1") == {
        "home": T0 + timedelta(minutes=15),
        "depot": T0 + timedelta(minutes=40),
    }
    assert sightings.highest_counter("D1") == 5


def test_a_nonce_is_seen_per_device(sightings: CloneSightings) -> None:
    _record(sightings, "D1", "home", 0, nonce=b"n" * 32)
    assert sightings.nonce_seen("D1", b"n" * 32)
    assert not sightings.nonce_seen("D1", b"m" * 32)
    assert not sightings.nonce_seen("D2", b"n" * 32)


def test_a_device_is_quarantined_once(sightings: CloneSightings) -> None:
    assert not sightings.quarantined("D1")
    sightings.quarantine("D1", signal="concurrent-sessions", detail="two places", at=T0)
    assert sightings.quarantined("D1") and not sightings.quarantined("D2")
    with pytest.raises(StoreError, match="quarantined already"):
        sightings.quarantine("D1", signal="nonce-reuse", detail="again", at=T0)
