"""Revision 0007: the butterfly authorities' state tables, up and down, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from fleetid.store.butterfly_state import ChainRow, DeviceRow, LaChains, RaRecords, SealedSecrets
from fleetid.store.engine import open_engine
from fleetid.store.migrate import downgrade, upgrade

pytest_plugins = ["tests.db_fixtures"]

_TABLES = {
    "butterfly_ra_devices",
    "butterfly_ra_seen_requests",
    "butterfly_la_seen_requests",
    "butterfly_pca_seen_requests",
    "butterfly_la_chains",
    "butterfly_secrets",
}


def test_0009_creates_and_drops_the_state_tables(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        upgrade(engine, "0008")
        assert not _TABLES & set(inspect(engine).get_table_names())
        upgrade(engine, "0009")
        assert set(inspect(engine).get_table_names()) >= _TABLES
        downgrade(engine, "0008")
        names = set(inspect(engine).get_table_names())
        assert not _TABLES & names
        assert "butterfly_work" in names
    finally:
        engine.dispose()


def test_the_repositories_keep_what_they_are_given(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        ra = RaRecords(engine)
        ra.add_device(DeviceRow(its_id=b"VIN", chains=(b"t1", b"t2"), blocked=False))
        with pytest.raises(IntegrityError):
            ra.add_device(DeviceRow(its_id=b"VIN", chains=(b"x", b"y"), blocked=False))
        ra.block(b"VIN")
        assert ra.devices() == [DeviceRow(its_id=b"VIN", chains=(b"t1", b"t2"), blocked=True)]
        assert ra.seen.remember(b"h" * 8, now=10, expires=20)
        assert not ra.seen.remember(b"h" * 8, now=11, expires=21)
        chains = LaChains(engine, b"\x01\x02")
        chains.add(ChainRow(chain_id=b"c" * 16, token=b"t", initial_seed=b"s0", at=0, seed=b"s0"))
        chains.advance(b"c" * 16, 3, b"s3")
        chains.advance(b"c" * 16, 2, b"s2")  # never back
        row = chains.get(b"c" * 16)
        assert row is not None and (row.at, row.seed) == (3, b"s3")
        assert LaChains(engine, b"\x09\x09").get(b"c" * 16) is None
        assert chains.count() == 1 and LaChains(engine, b"\x09\x09").count() == 0
        secrets = SealedSecrets(engine, "la-0102")
        secrets.put("ca-key", b"one")
        secrets.put("ca-key", b"two")
        assert secrets.all() == {"ca-key": b"two"}
        assert SealedSecrets(engine, "pseudonym-ca").all() == {}
    finally:
        engine.dispose()
