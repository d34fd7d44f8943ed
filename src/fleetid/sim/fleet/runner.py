"""``fleetid demo --devices N --years Y``: the fleet simulation's stages in order, each measured,
each resumable.

The state directory holds the factory (ceremony, wafer lots, line database), the two authorities
and, unless ``--database-url`` names another, the database with the simulation's tables. A
stage that finished is recorded there with its figures; ``--resume`` skips it and continues the
first one that did not, from its last committed batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from fleetid.clock import ManualClock
from fleetid.errors import ConfigError
from fleetid.sim.fleet.authorities import Authority, authority_url, open_authority
from fleetid.sim.fleet.check import check_convergence
from fleetid.sim.fleet.devices import SYNC_HOUR, DeviceWorld, time_of
from fleetid.sim.fleet.factory import (
    LotResult,
    lot_count,
    manufacturer_root,
    run_ceremony,
    run_lots,
    unit_name,
)
from fleetid.sim.fleet.lifecycle import enrol_fleet, run_day
from fleetid.sim.fleet.metrics import Measured, StageMeter, measure_stage
from fleetid.sim.fleet.options import FleetOptions
from fleetid.sim.fleet.plan import plan_for
from fleetid.sim.fleet.report import FleetReport, build_report, print_summary, write_report
from fleetid.store.fleet_sim_repository import FleetSimStore, SimStage, new_device_row

__all__ = ["run_fleet"]

# Every run starts its simulated life on the same day, so a seed gives the same calendar.
SIMULATED_START: Final = datetime(2027, 1, 4, tzinfo=UTC)
_FACTORY_LEAD: Final = timedelta(days=3)
_OPTIONS_KEY: Final = "options"


def _fingerprint(options: FleetOptions) -> str:
    """The options a resumed run must share with the run it continues."""
    return json.dumps(
        {
            "devices": options.devices,
            "years": options.years,
            "seed": options.seed,
            "broken_channel": options.broken_channel,
            "lot_size": options.lot_size,
        },
        sort_keys=True,
    )


def _open_store(options: FleetOptions) -> FleetSimStore:
    state = options.state_dir
    if options.resume:
        if not (state / "options.json").exists():
            raise ConfigError(f"nothing to resume in {state}: no run was started there")
        if (state / "options.json").read_text() != _fingerprint(options):
            raise ConfigError(
                f"the run in {state} was started with other options: "
                f"{(state / 'options.json').read_text()}"
            )
    elif state.exists() and any(state.iterdir()):
        raise ConfigError(f"{state} holds a run already: add --resume, or remove it")
    state.mkdir(parents=True, exist_ok=True)
    (state / "authority-a").mkdir(exist_ok=True)
    store = FleetSimStore(authority_url(state, "a", options.database_url))
    meta = store.meta()
    if not options.resume and meta:
        store.dispose()
        raise ConfigError("the database holds a fleet simulation already: use an empty one")
    if not meta:
        store.set_meta({_OPTIONS_KEY: _fingerprint(options)})
    (state / "options.json").write_text(_fingerprint(options))
    return store


class _Run:
    def __init__(self, options: FleetOptions, console: Console, store: FleetSimStore) -> None:
        self.options = options
        self.console = console
        self.store = store
        self.clock = ManualClock(SIMULATED_START - _FACTORY_LEAD)
        self.authorities: dict[str, Authority] = {}
        self.world: DeviceWorld | None = None

    def stage(
        self, position: int, name: str, total: int | None, body: Callable[[StageMeter], None]
    ) -> None:
        done = {s.name for s in self.store.stages()}
        if name in done:
            self.console.print(f"  {name}: done before, skipped")
            return
        measured: list[Measured] = []
        with measure_stage(self.console, name, total, measured) as meter:
            body(meter)
        m = measured[0]
        self.store.record_stage(
            SimStage(
                name=name,
                position=position,
                seconds=m.seconds,
                cpu_seconds=m.cpu_seconds,
                units=m.units,
                peak_rss_bytes=m.peak_rss_bytes,
            )
        )

    # -- authorities ---------------------------------------------------------------------------

    def open_authorities(self) -> DeviceWorld:
        root = x509.load_der_x509_certificate(manufacturer_root(self.options))
        for name in ("a", "b"):
            self.authorities[name] = open_authority(
                self.options.state_dir,
                name,
                self.clock,
                database_url=self.options.database_url if name == "a" else None,
                manufacturer=root,
            )
        self._remember_issuer()
        self.world = DeviceWorld(
            options=self.options,
            start=SIMULATED_START,
            clock=self.clock,
            authorities=self.authorities,
        )
        return self.world

    def reopen_a(self) -> None:
        root = x509.load_der_x509_certificate(manufacturer_root(self.options))
        self.authorities["a"].close()
        self.authorities["a"] = open_authority(
            self.options.state_dir,
            "a",
            self.clock,
            database_url=self.options.database_url,
            manufacturer=root,
        )
        self._remember_issuer()

    def _remember_issuer(self) -> None:
        pem = (
            self.authorities["a"]
            .ca.issuing.certificate.public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        held = json.loads(self.store.meta().get("issuers", "[]"))
        if pem not in held:
            self.store.set_meta({"issuers": json.dumps([*held, pem])})

    def issuers(self) -> list[x509.Certificate]:
        return [
            x509.load_pem_x509_certificate(pem.encode())
            for pem in json.loads(self.store.meta().get("issuers", "[]"))
        ]

    def close(self) -> None:
        for authority in self.authorities.values():
            authority.close()

    # -- stages --------------------------------------------------------------------------------

    def ceremony(self, meter: StageMeter) -> None:
        run_ceremony(self.options, self.clock)
        meter.advance()

    def line(self, meter: StageMeter) -> None:
        options = self.options
        done_lots = set(json.loads(self.store.meta().get("lots_done", "[]")))
        # Lots done before a resume show on the bar, and are not this run's units.
        before = (
            min(options.lot_size, options.devices - lot * options.lot_size) for lot in done_lots
        )
        meter.progress.update(meter.task, completed=sum(before))
        todo = [lot for lot in range(lot_count(options)) if lot not in done_lots]
        world = self.open_authorities()

        def done(result: LotResult) -> None:
            secured = [r for _, r in result.records if r is not None]
            world.authorities["a"].import_manifest(secured)
            movers = [
                r
                for idx, r in result.records
                if r is not None and plan_for(options, idx).fate == "transfer"
            ]
            if movers:
                world.authorities["b"].import_manifest(movers)
            rows = [
                new_device_row(
                    idx,
                    unit_name(options, idx),
                    plan_for(options, idx).profile.value,
                    "made" if record is not None else "quarantined",
                )
                for idx, record in result.records
            ]
            done_lots.add(result.lot)
            self.store.replace_devices(result.records[0][0], result.records[-1][0], rows, {})
            # The lot's figures and its place in the done list commit together.
            self.store.commit_batch(
                daily={
                    (result.lot, "lot:seconds"): result.seconds,
                    (result.lot, "lot:secured"): float(len(secured)),
                    (result.lot, "lot:quarantined"): float(len(result.records) - len(secured)),
                },
                meta={"lots_done": json.dumps(sorted(done_lots))},
            )
            meter.advance(len(result.records))

        run_lots(options, todo, SIMULATED_START - _FACTORY_LEAD, done)

    def enrol(self, meter: StageMeter) -> None:
        assert self.world is not None  # noqa: S101 - the line stage opened it
        enrol_fleet(self.world, self.store, meter.advance)

    def year(self, meter: StageMeter) -> None:
        assert self.world is not None  # noqa: S101
        first = int(self.store.meta().get("day_done", "-1")) + 1
        meter.progress.update(meter.task, completed=first)
        for day in range(first, self.options.days + 1):
            run_day(self.world, self.store, day, meter.count, self.reopen_a)
            meter.progress.update(meter.task, advance=1)

    def check(self, meter: StageMeter) -> None:
        assert self.world is not None  # noqa: S101
        end = time_of(SIMULATED_START, self.options.days, SYNC_HOUR)
        result = check_convergence(self.world, self.store, self.issuers(), end)
        self.store.set_meta(
            {
                "converged": json.dumps(result.converged),
                "convergence": json.dumps(
                    {
                        "views": result.views,
                        "devices": result.devices,
                        "failing_devices": result.failing_devices,
                        "revoked_peers": result.revoked_peers,
                        "checks": result.checks,
                        "reasons": result.reasons,
                    },
                    sort_keys=True,
                ),
            }
        )
        meter.advance(result.checks)


def run_fleet(options: FleetOptions, console: Console | None = None) -> FleetReport:
    """Run (or resume) the simulation; its report, written to ``options.report_dir`` if set."""
    console = console or Console()
    started = time.perf_counter()
    store = _open_store(options)
    run = _Run(options, console, store)
    try:
        if options.resume:
            console.print(f"[bold]resuming[/bold] the run in {options.state_dir}")
        days = options.days
        run.stage(0, "ceremony", 1, run.ceremony)
        run.stage(1, "line", options.devices, run.line)
        if run.world is None:
            run.open_authorities()
        run.stage(2, "enrolment", None, run.enrol)
        run.stage(3, "lifecycle", days + 1, run.year)
        run.stage(4, "convergence check", None, run.check)
        report = build_report(options, store, wall_seconds=time.perf_counter() - started)
    finally:
        run.close()
        store.dispose()
    print_summary(console, report)
    if options.report_dir is not None:
        write_report(report, options.report_dir)
    return report
