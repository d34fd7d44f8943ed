"""Time to revoke one certificate in a store of 1 M certificates, on SQLite and PostgreSQL.

For each backend: migrate an empty database, bulk-load ``--rows`` certificate rows (SQLite:
DB-API ``executemany`` in one transaction; PostgreSQL: ``COPY … FROM STDIN``), then revoke
``--samples`` random serials one at a time through ``fleetid.authority.revoke.revoke_serial``
(one transaction each: counter bump + one indexed UPDATE + commit) and report the latency
distribution, plus the query plan of the UPDATE.

    .venv/bin/python benchmarks/revoke.py                      # 1 M rows, both backends
    .venv/bin/python benchmarks/revoke.py --rows 100000 --backend sqlite

PostgreSQL is ``$FLEETID_TEST_POSTGRES`` (default postgres@127.0.0.1:5432/test); a schema of
its own is created and dropped. SQLite runs in WAL mode with ``synchronous=FULL`` (the store's
setting): every commit is fsynced.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, text

from fleetid.authority.revoke import revoke_serial
from fleetid.clock import SystemClock
from fleetid.store.engine import open_engine
from fleetid.store.repositories import NewCaKey, Store
from fleetid.store.schema import CaRole

_COLUMNS = (
    "serial",
    "issuer_id",
    "device_id",
    "profile",
    "status",
    "subject",
    "public_key_sha256",
    "not_before",
    "not_after",
    "issued_at",
    "der",
)
_DER = secrets.token_bytes(550)  # the size of a typical P-256 end-entity certificate
_BATCH = 50_000
_NAMES, _MARKS = ", ".join(_COLUMNS), ", ".join("?" for _ in _COLUMNS)
_SQLITE_INSERT = f"INSERT INTO certificates ({_NAMES}) VALUES ({_MARKS})"  # noqa: S608 - constants


def _serial() -> str:
    return f"{int.from_bytes(secrets.token_bytes(20), 'big') >> 1:040x}"


def _rows(count: int, issuer_id: int, sqlite: bool) -> Iterator[tuple[object, ...]]:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    for n in range(count):
        not_before = start + timedelta(seconds=n)
        times: tuple[object, ...] = (
            not_before,
            not_before + timedelta(days=30),
            not_before,
        )
        if sqlite:  # what UtcDateTime stores on SQLite: naive UTC
            times = tuple(t.replace(tzinfo=None).isoformat(" ") for t in times)  # type: ignore[attr-defined]
        yield (
            _serial(),
            issuer_id,
            None,
            "operational",
            "valid",
            f"CN=device-{n}",
            secrets.token_bytes(32),
            *times,
            _DER,
        )


def _issuer(store: Store) -> int:
    now = datetime.now(UTC)
    with store.transaction() as tx:
        return tx.ca_keys.add(
            NewCaKey(
                role=CaRole.ISSUING,
                generation=1,
                hsm_label="bench-issuing-1",
                subject="CN=bench",
                subject_key_id=bytes(20),
                not_before=now,
                not_after=now + timedelta(days=3650),
                active=True,
                certificate=b"\x30\x00",
                created_at=now,
            )
        ).id


def _load(engine: Engine, count: int, issuer_id: int) -> list[str]:
    """Bulk-load ``count`` rows; returns a sample of their serials."""
    sample: list[str] = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(  # type: ignore[attr-defined]
                f"COPY certificates ({', '.join(_COLUMNS)}) FROM STDIN"
            ) as copy:
                for row in _rows(count, issuer_id, sqlite=False):
                    if len(sample) < 10_000:
                        sample.append(str(row[0]))
                    copy.write_row(row)
        else:
            statement = _SQLITE_INSERT
            batch: list[tuple[object, ...]] = []
            for row in _rows(count, issuer_id, sqlite=True):
                if len(sample) < 10_000:
                    sample.append(str(row[0]))
                batch.append(row)
                if len(batch) == _BATCH:
                    cursor.executemany(statement, batch)
                    batch = []
            if batch:
                cursor.executemany(statement, batch)
        raw.commit()
        if engine.dialect.name == "postgresql":
            cursor.execute("ANALYZE certificates")
            raw.commit()
        cursor.close()
    finally:
        raw.close()
    return sample


def _plan(engine: Engine, serial: str) -> str:
    update = "UPDATE certificates SET status = 'revoked' WHERE serial = :s AND status = 'valid'"
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(text(f"EXPLAIN {update}"), {"s": serial}).all()
            return " | ".join(r[0].strip() for r in rows)
        rows = connection.execute(text(f"EXPLAIN QUERY PLAN {update}"), {"s": serial}).all()
        return " | ".join(str(r[-1]) for r in rows)


@contextmanager
def _database(backend: str) -> Iterator[Engine]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            engine = open_engine(Path(directory))
            try:
                yield engine
            finally:
                engine.dispose()
        return
    server = os.environ.get(
        "FLEETID_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    schema = f"fleetid_bench_{secrets.token_hex(4)}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = open_engine(f"{server}?options={quote(f'-csearch_path={schema}')}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(backend: str, rows: int, samples: int) -> dict[str, float | str]:
    with _database(backend) as engine:
        store = Store(engine)
        issuer_id = _issuer(store)
        started = time.perf_counter()
        serials = _load(engine, rows, issuer_id)
        load_s = time.perf_counter() - started
        with store.transaction() as tx:
            assert tx.certificates.count() == rows
        chosen = random.sample(serials, samples)
        clock = SystemClock()
        timings = []
        for serial in chosen:
            started = time.perf_counter()
            revoke_serial(store, serial, "keyCompromise", clock=clock)
            timings.append((time.perf_counter() - started) * 1000)
        with store.transaction() as tx:
            assert tx.certificates.revoked_since(0, limit=samples + 1)[-1].sequence == samples
        timings.sort()
        return {
            "backend": backend,
            "rows": rows,
            "load_s": load_s,
            "median_ms": statistics.median(timings),
            "p95_ms": timings[int(0.95 * (len(timings) - 1))],
            "max_ms": timings[-1],
            "plan": _plan(engine, chosen[0]),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(
        f"{'backend':<11} {'rows':>9} {'load s':>8} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}"
    )
    for backend in backends:
        r = run(backend, args.rows, args.samples)
        print(
            f"{r['backend']:<11} {r['rows']:>9} {r['load_s']:>8.1f} {r['median_ms']:>10.2f}"
            f" {r['p95_ms']:>8.2f} {r['max_ms']:>8.2f}"
        )
        print(f"  plan: {r['plan']}")


if __name__ == "__main__":
    main()
