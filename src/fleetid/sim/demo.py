"""The demo: each capability adds its stage, and the stages run in order on embedded defaults.

Every failure the demo causes on purpose (a short activation, a defective or cloned chip, a
tampered image, a glitch, a revocation, a revoked AA) is a drill, and its line and report row
say so (``drill``), so that nobody reading the output takes it for a fault of the run.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

__all__ = [
    "DEMO_MAX_DEVICES",
    "DemoContext",
    "drill",
    "run_demo",
    "run_fleet_demo",
    "stage_directory",
]

DEMO_MAX_DEVICES = 10_000  # a demo, not a load test: benchmarks/ measure rates


def drill(text: str) -> str:
    """``text`` labelled as a fault the demo injected on purpose."""
    return f"drill: {text}"


@contextmanager
def stage_directory(stage: str) -> Iterator[Path]:
    """A new directory for one stage's files, removed with everything in it when it ends."""
    root = Path(tempfile.mkdtemp(prefix=f"fleetid-demo-{stage}-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class DemoContext:
    """What stages hand to each other: the console, the devices made so far, the report lines."""

    devices: int
    console: Console = field(default_factory=Console)
    state: dict[str, object] = field(default_factory=dict)
    report: list[tuple[str, str]] = field(default_factory=list)

    def record(self, item: str, value: str) -> None:
        self.report.append((item, value))


Stage = Callable[[DemoContext], None]


def _stages() -> list[tuple[str, Stage]]:
    from fleetid.sim.demo_applets import stage_applets
    from fleetid.sim.demo_fido import stage_fido
    from fleetid.sim.demo_fido_card import stage_fido_card
    from fleetid.sim.demo_fleet import stage_fleet
    from fleetid.sim.demo_line import stage_ceremony_and_line
    from fleetid.sim.demo_piv import stage_piv
    from fleetid.sim.demo_preparation import stage_preparation
    from fleetid.sim.demo_pseudonyms import stage_pseudonyms
    from fleetid.sim.demo_revocation import stage_revocation
    from fleetid.sim.demo_se import stage_secure_element
    from fleetid.sim.demo_threats import stage_threats
    from fleetid.sim.demo_tpm import stage_tpm
    from fleetid.sim.demo_v2x import stage_v2x

    return [
        ("key ceremony and provisioning line", stage_ceremony_and_line),
        ("secure elements: SCP03, keys by handle, attestation, signed boot", stage_secure_element),
        ("PIV: the card's PIV applet signs for a stock PC/SC host", stage_piv),
        ("fleet lifecycle: enrol, a year of refreshes, re-key, rollover, transfer", stage_fleet),
        ("revocation: OCSP, CRLs on contact, pushed filters", stage_revocation),
        ("V2X: enrolment with the EA, tickets from the AA, signed CAMs, CA revocation", stage_v2x),
        (
            "V2X: a week of butterfly pseudonyms, a misbehaving vehicle, a linked CRL",
            stage_pseudonyms,
        ),
        ("a TPM 2.0-rooted device: EK, AK, TPM2_Certify at the enrolment gate", stage_tpm),
        ("FIDO: operators' authenticators, trusted through signed metadata", stage_fido),
        ("FIDO2 on the card: a stock client registers and authenticates", stage_fido_card),
        ("packages: a cohort to a new configuration, then a new authority", stage_preparation),
        ("applets: an upgrade pushed to a cohort, keys kept, no recall", stage_applets),
        ("threats: flash dump, cloning, boot tampering, bus attacks", stage_threats),
    ]


def run_demo(devices: int = 5) -> int:
    """``fleetid demo``: every stage on embedded defaults, ``devices`` per stage; exit status."""
    from fleetid.errors import ConfigError

    if not 1 <= devices <= DEMO_MAX_DEVICES:
        raise ConfigError(f"the demo makes 1 to {DEMO_MAX_DEVICES} devices, not {devices}")
    ctx = DemoContext(devices=devices)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=ctx.console, show_time=False, show_path=False)],
        force=True,
    )
    ctx.console.rule("[bold]fleetid demo")
    for title, stage in _stages():
        ctx.console.rule(title)
        stage(ctx)
    table = Table(title="fleetid demo: report", show_header=False, expand=True)
    table.add_column("item", style="bold", ratio=1)
    table.add_column("value", ratio=1)
    for item, value in ctx.report:
        table.add_row(item, value)
    ctx.console.print(table)
    return 0


def run_fleet_demo(
    *,
    devices: int | None,
    years: float | None,
    state_dir: Path,
    database_url: str | None = None,
    workers: int = 0,
    seed: int | None = None,
    report_dir: Path | None = None,
    resume: bool = False,
) -> int:
    """``fleetid demo --devices N --years Y``: the fleet simulation (``fleetid.sim.fleet``);
    with ``resume`` the size, years and seed come from the run being continued unless given.
    Exit status 0 when revocation converged, 1 when it did not."""
    import json

    from fleetid.errors import ConfigError
    from fleetid.sim.fleet import FleetOptions, run_fleet

    if resume:
        try:
            started = json.loads((state_dir / "options.json").read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"nothing to resume in {state_dir}: no run was started there"
            ) from None
        devices = started["devices"] if devices is None else devices
        years = started["years"] if years is None else years
        seed = started["seed"] if seed is None else seed
    if devices is None or years is None:
        raise ConfigError("the fleet simulation needs --devices N and --years Y")
    options = FleetOptions(
        devices=devices,
        years=years,
        state_dir=state_dir,
        database_url=database_url,
        workers=workers,
        seed=0 if seed is None else seed,
        report_dir=report_dir,
        resume=resume,
    )
    report = run_fleet(options)
    return 0 if report.converged else 1
