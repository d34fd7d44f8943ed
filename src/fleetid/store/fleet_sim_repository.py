"""The fleet simulation's rows (``fleetid.store.fleet_sim_tables``), read and written in batches.

Every method is one short transaction, except ``commit_batch``, which writes a batch's device
changes, the events it consumed and the figures it adds together: a run killed between two
batches resumes at the first batch not committed, and no figure is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fleetid.store.bulk import execute_many
from fleetid.store.engine import open_engine
from fleetid.store.fleet_sim_tables import (
    fleet_sim_artefacts,
    fleet_sim_daily,
    fleet_sim_devices,
    fleet_sim_events,
    fleet_sim_meta,
    fleet_sim_stages,
    fleet_sim_syncs,
)
from fleetid.store.migrate import ensure_schema

__all__ = ["FleetSimStore", "SimDevice", "SimEvent", "SimStage", "new_device_row"]


@dataclass(frozen=True, kw_only=True)
class SimDevice:
    """One device row, as a stage reads it."""

    idx: int
    unit: str
    kind: str
    profile: str
    authority: str
    state: str
    serial: str | None
    handle: int | None
    certificate: bytes | None
    renew_day: int | None
    next_sync_day: int | None
    last_sync_day: int | None
    revoked_day: int | None


@dataclass(frozen=True, kw_only=True)
class SimEvent:
    id: int
    day: int
    idx: int
    kind: str


@dataclass(frozen=True, kw_only=True)
class SimStage:
    name: str
    position: int
    seconds: float
    cpu_seconds: float
    units: int
    peak_rss_bytes: int


def new_device_row(idx: int, unit: str, profile: str, state: str, **columns: Any) -> dict[str, Any]:
    """A device row as the line leaves it: X.509, at authority A, no credential yet."""
    return {
        "idx": idx,
        "unit": unit,
        "kind": "x509",
        "profile": profile,
        "authority": "a",
        "state": state,
        "serial": None,
        "handle": None,
        "certificate": None,
        "renew_day": None,
        "next_sync_day": None,
        "last_sync_day": None,
        "revoked_day": None,
        **columns,
    }


def _device(row: Any) -> SimDevice:
    return SimDevice(**dict(row._mapping))


def _put_meta(conn: Connection, values: Mapping[str, str]) -> None:
    for key, value in values.items():
        conn.execute(delete(fleet_sim_meta).where(fleet_sim_meta.c.key == key))
        conn.execute(insert(fleet_sim_meta).values(key=key, value=value))


def _add_on_conflict(conn: Connection, table: Any, keys: Sequence[str], column: str) -> Any:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET column = column + excluded.column``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={column: table.c[column] + statement.excluded[column]},
    )


class FleetSimStore:
    """The simulation's tables in one database (the authority's, so one URL serves both)."""

    def __init__(self, target: str | Engine) -> None:
        self.engine = target if isinstance(target, Engine) else open_engine(target)
        ensure_schema(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- the run's options and cursors -------------------------------------------------------

    def meta(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {row.key: row.value for row in conn.execute(select(fleet_sim_meta))}

    def set_meta(self, values: Mapping[str, str]) -> None:
        with self.engine.begin() as conn:
            _put_meta(conn, values)

    # -- stages ------------------------------------------------------------------------------

    def record_stage(self, stage: SimStage) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(fleet_sim_stages).where(fleet_sim_stages.c.name == stage.name))
            conn.execute(insert(fleet_sim_stages).values(**stage.__dict__))

    def stages(self) -> list[SimStage]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(fleet_sim_stages).order_by(fleet_sim_stages.c.position))
            return [SimStage(**dict(row._mapping)) for row in rows]

    # -- devices -----------------------------------------------------------------------------

    def replace_devices(
        self, first: int, last: int, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, str]
    ) -> None:
        """The device rows with indices ``first`` to ``last`` (inclusive) become ``rows`` (every
        column of ``fleet_sim_devices``), with ``meta`` written in the same commit."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(fleet_sim_devices).where(fleet_sim_devices.c.idx.between(first, last))
            )
            execute_many(conn, insert(fleet_sim_devices), rows)
            _put_meta(conn, meta)

    def devices_in_state(self, state: str, *, after: int, limit: int) -> list[SimDevice]:
        """Up to ``limit`` devices in ``state`` with an index above ``after``, in index order."""
        query = (
            select(fleet_sim_devices)
            .where(fleet_sim_devices.c.state == state, fleet_sim_devices.c.idx > after)
            .order_by(fleet_sim_devices.c.idx)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_device(row) for row in conn.execute(query)]

    def devices(self, indices: Iterable[int]) -> dict[int, SimDevice]:
        wanted = list(indices)
        if not wanted:
            return {}
        query = select(fleet_sim_devices).where(fleet_sim_devices.c.idx.in_(wanted))
        with self.engine.connect() as conn:
            return {row.idx: _device(row) for row in conn.execute(query)}

    def due(
        self, column: str, day: int, states: Sequence[str], *, after: int, limit: int
    ) -> list[SimDevice]:
        """Devices in ``states`` whose ``column`` (``renew_day`` or ``next_sync_day``) is on or
        before ``day``, in index order."""
        query = (
            select(fleet_sim_devices)
            .where(
                fleet_sim_devices.c[column] <= day,
                fleet_sim_devices.c.state.in_(list(states)),
                fleet_sim_devices.c.idx > after,
            )
            .order_by(fleet_sim_devices.c.idx)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_device(row) for row in conn.execute(query)]

    def count_by(self, *columns: str) -> list[tuple[Any, ...]]:
        """``(value, …, count)`` of the devices grouped by ``columns``."""
        cols = [fleet_sim_devices.c[name] for name in columns]
        query = select(*cols, func.count()).group_by(*cols).order_by(*cols)
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def sync_views(self, states: Sequence[str]) -> list[tuple[str, int, int]]:
        """``(profile, last_sync_day, devices)`` of the devices in ``states``: who holds which
        view of the revocation data."""
        query = (
            select(fleet_sim_devices.c.profile, fleet_sim_devices.c.last_sync_day, func.count())
            .where(fleet_sim_devices.c.state.in_(list(states)))
            .group_by(fleet_sim_devices.c.profile, fleet_sim_devices.c.last_sync_day)
            .order_by(fleet_sim_devices.c.profile, fleet_sim_devices.c.last_sync_day)
        )
        with self.engine.connect() as conn:
            return [
                (row[0], -1 if row[1] is None else int(row[1]), int(row[2]))
                for row in conn.execute(query)
            ]

    def staleness(self, day: int, states: Sequence[str]) -> dict[str, float]:
        """Mean days since the last revocation sync, per profile, of the devices in ``states``
        that have synced at least once."""
        query = (
            select(
                fleet_sim_devices.c.profile,
                func.avg(day - fleet_sim_devices.c.last_sync_day),
            )
            .where(
                fleet_sim_devices.c.state.in_(list(states)),
                fleet_sim_devices.c.last_sync_day.is_not(None),
            )
            .group_by(fleet_sim_devices.c.profile)
        )
        with self.engine.connect() as conn:
            return {str(row[0]): float(row[1]) for row in conn.execute(query)}

    def revoked(self, *, after: int, limit: int) -> list[SimDevice]:
        """Devices revoked by the simulation (a revocation day is set), in index order."""
        query = (
            select(fleet_sim_devices)
            .where(fleet_sim_devices.c.revoked_day.is_not(None), fleet_sim_devices.c.idx > after)
            .order_by(fleet_sim_devices.c.idx)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_device(row) for row in conn.execute(query)]

    # -- the event queue ---------------------------------------------------------------------

    def events_due(self, day: int, *, limit: int) -> list[SimEvent]:
        query = (
            select(fleet_sim_events)
            .where(fleet_sim_events.c.day <= day)
            .order_by(fleet_sim_events.c.day, fleet_sim_events.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [SimEvent(**dict(row._mapping)) for row in conn.execute(query)]

    # -- one batch, committed at once ----------------------------------------------------------

    def commit_batch(
        self,
        *,
        devices: Sequence[Mapping[str, Any]] = (),
        done_events: Sequence[int] = (),
        daily: Mapping[tuple[int, str], float] | None = None,
        syncs: Mapping[tuple[str, int, int], int] | None = None,
        meta: Mapping[str, str] | None = None,
        new_events: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Device changes (each mapping has ``idx`` and the columns it changes), consumed
        events, figures to add per (day, name) and syncs per (profile, from, to): one commit."""
        with self.engine.begin() as conn:
            for change in devices:
                values = {k: v for k, v in change.items() if k != "idx"}
                conn.execute(
                    update(fleet_sim_devices)
                    .where(fleet_sim_devices.c.idx == change["idx"])
                    .values(**values)
                )
            if new_events:
                conn.execute(
                    delete(fleet_sim_events).where(
                        fleet_sim_events.c.id.in_([e["id"] for e in new_events])
                    )
                )
                execute_many(conn, insert(fleet_sim_events), new_events)
            if done_events:
                conn.execute(delete(fleet_sim_events).where(fleet_sim_events.c.id.in_(done_events)))
            if daily:
                statement = _add_on_conflict(conn, fleet_sim_daily, ("day", "name"), "value")
                for (day, name), value in sorted(daily.items()):
                    conn.execute(statement.values(day=day, name=name, value=value))
            if syncs:
                add_syncs = _add_on_conflict(
                    conn, fleet_sim_syncs, ("profile", "from_day", "to_day"), "devices"
                )
                for (profile, start, end), count in sorted(syncs.items()):
                    conn.execute(
                        add_syncs.values(profile=profile, from_day=start, to_day=end, devices=count)
                    )
            _put_meta(conn, meta or {})

    # -- figures -----------------------------------------------------------------------------

    def daily(self) -> list[tuple[int, str, float]]:
        query = select(fleet_sim_daily).order_by(fleet_sim_daily.c.name, fleet_sim_daily.c.day)
        with self.engine.connect() as conn:
            return [(row.day, row.name, row.value) for row in conn.execute(query)]

    def syncs(self) -> list[tuple[str, int, int, int]]:
        query = select(fleet_sim_syncs).order_by(
            fleet_sim_syncs.c.profile, fleet_sim_syncs.c.from_day, fleet_sim_syncs.c.to_day
        )
        with self.engine.connect() as conn:
            return [(r.profile, r.from_day, r.to_day, r.devices) for r in conn.execute(query)]

    # -- published artefacts -----------------------------------------------------------------

    def add_artefacts(self, day: int, channel: str, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        with self.engine.begin() as conn:
            last = conn.execute(select(func.max(fleet_sim_artefacts.c.seq))).scalar()
            seq = 0 if last is None else int(last) + 1
            conn.execute(
                insert(fleet_sim_artefacts),
                [
                    {"seq": seq + n, "day": day, "channel": channel, "url": url, "data": data}
                    for n, (url, data) in enumerate(items)
                ],
            )

    def latest_artefacts(self, day: int, channel: str) -> dict[str, tuple[int, bytes]]:
        """The last artefact of ``channel`` per URL published up to ``day``: ``{url: (day,
        data)}``, what a device that fetched everything on that day holds."""
        last = (
            select(func.max(fleet_sim_artefacts.c.seq))
            .where(fleet_sim_artefacts.c.channel == channel, fleet_sim_artefacts.c.day <= day)
            .group_by(fleet_sim_artefacts.c.url)
        )
        query = select(
            fleet_sim_artefacts.c.day, fleet_sim_artefacts.c.url, fleet_sim_artefacts.c.data
        ).where(fleet_sim_artefacts.c.seq.in_(last))
        with self.engine.connect() as conn:
            return {str(r.url): (int(r.day), bytes(r.data)) for r in conn.execute(query)}
