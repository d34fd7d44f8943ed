"""The fleet simulation at scale: devices per second per stage, peak RSS, and the cost per
device between sizes, on SQLite or PostgreSQL.

For each size N given, one run of ``fleetid.sim.fleet`` (ceremony, line on every core,
attested enrolment, Y simulated years, convergence check) in a fresh state directory; PostgreSQL
runs in a fresh schema of the database the URL names, dropped afterwards. Printed per run: each
stage's units, seconds, units/s, CPU seconds and peak RSS, whether revocation converged; then,
between the smallest and each larger size, the ratio of wall and CPU seconds per device (1.00:
no scale penalty) and of peak RSS. The load average is printed before and after each run: on a
shared machine the figures move with it.

Run: ``.venv/bin/python benchmarks/fleet.py 10000 100000 [--years 1] [--workers K]
[--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--report DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console

from fleetid.sim.fleet import FleetOptions, run_fleet


def _option_values(argv: list[str]) -> set[str]:
    """The arguments that are the values of options (not sizes)."""
    return {argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}


def _schema_url(url: str) -> tuple[str, str]:
    """A fresh schema in the database ``url`` names (via psql-free SQL through the store)."""
    from fleetid.store.engine import open_engine

    schema = f"fleet_bench_{secrets.token_hex(4)}"
    engine = open_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return f"{url}?options={quote(f'-csearch_path={schema}')}", schema


def _drop_schema(url: str, schema: str) -> None:
    from fleetid.store.engine import open_engine

    engine = open_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    engine.dispose()


def _run(devices: int, args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix=f"fleet-bench-{devices}-"))
    url, schema = _schema_url(args.database_url) if args.database_url else (None, "")
    load_before = os.getloadavg()[0]
    try:
        report = run_fleet(
            FleetOptions(
                devices=devices,
                years=args.years,
                state_dir=state / "state",
                database_url=url,
                workers=args.workers,
                seed=args.seed,
                report_dir=args.report / f"{devices}" if args.report else None,
            ),
            console=Console(stderr=True),  # stdout carries the figures to the parent
        )
    finally:
        shutil.rmtree(state, ignore_errors=True)
        if schema:
            _drop_schema(args.database_url, schema)
    data = dict(report.data)
    data.pop("figures")
    data["load"] = (load_before, os.getloadavg()[0])
    return data


def _run_apart(devices: int, argv: list[str]) -> dict[str, Any]:
    """One size in a process of its own, so that its peak RSS is its own."""
    ran = subprocess.run(
        [sys.executable, __file__, str(devices), *argv, "--one"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--years", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_run(args.sizes[0], args)))
        return
    argv = [a for a in sys.argv[1:] if not a.isdigit() or a in _option_values(sys.argv[1:])]
    runs = [_run_apart(size, argv) for size in args.sizes]
    print(f"\nfleet benchmark, {args.years} simulated year(s), {os.cpu_count()} cores")
    for data in runs:
        print(
            f"\nN = {data['devices']:,} ({data['database']}): wall {data['wall_seconds']:.0f} s, "
            f"peak RSS {data['peak_rss_bytes'] / 2**20:.0f} MiB, converged {data['converged']}, "
            f"load {data['load'][0]:.1f} -> {data['load'][1]:.1f}"
        )
        header = ("stage", "units", "seconds", "units/s", "CPU s", "RSS MiB")
        print("  {:<20} {:>10} {:>9} {:>9} {:>9} {:>8}".format(*header))
        for s in data["stages"]:
            print(
                f"  {s['name']:<20} {s['units']:>10,} {s['seconds']:>9.1f} "
                f"{s['units_per_second']:>9,.0f} {s['cpu_seconds']:>9.1f} "
                f"{s['peak_rss_bytes'] / 2**20:>8.0f}"
            )
    base = runs[0]
    for data in runs[1:]:
        ratio = data["devices"] / base["devices"]
        cpu = sum(s["cpu_seconds"] for s in data["stages"]) / sum(
            s["cpu_seconds"] for s in base["stages"]
        )
        print(
            f"\ncost per device, N={data['devices']:,} against N={base['devices']:,}: wall "
            f"{data['wall_seconds'] / base['wall_seconds'] / ratio:.2f}x, CPU {cpu / ratio:.2f}x; "
            f"peak RSS {data['peak_rss_bytes'] / base['peak_rss_bytes']:.2f}x"
        )
    print(
        json.dumps(
            [
                {k: d[k] for k in ("devices", "wall_seconds", "peak_rss_bytes", "stages", "load")}
                for d in runs
            ]
        )
    )


if __name__ == "__main__":
    main()
