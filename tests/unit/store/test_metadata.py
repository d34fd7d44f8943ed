"""Every table of the store hangs off one ``MetaData``, so one Alembic history covers them all."""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy import MetaData, Table

import fleetid.store
from fleetid.store.metadata import metadata


def _store_modules() -> list[object]:
    names = [
        f"fleetid.store.{info.name}"
        for info in pkgutil.iter_modules(fleetid.store.__path__)
        if info.name != "migrations"
    ]
    return [importlib.import_module(name) for name in names]


def test_the_store_defines_one_metadata_and_every_table_is_on_it() -> None:
    tables: list[Table] = []
    for module in _store_modules():
        for name, value in vars(module).items():
            if isinstance(value, MetaData):
                assert value is metadata, f"{module.__name__}.{name} is a second MetaData"
            if isinstance(value, Table):
                tables.append(value)
    assert len(tables) >= 19
    strays = [t.name for t in tables if t.metadata is not metadata]
    assert strays == []
    assert {t.name for t in tables} <= set(metadata.tables)
