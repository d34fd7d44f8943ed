"""Demo stage: the fleet lifecycle on the devices the line made.

Two fleet authorities (SQLite in temporary directories, reached in process through their ASGI
apps) trust the manufacturer root; authority A imports the whole line manifest, authority B only
the devices that will move to it. Then, on a simulated clock:

1. every manufactured device enrols with its IDevID (attestation-gated ``simpleenroll``);
2. a year passes one day at a time; each agent applies the renewal cadence (refresh, proven by
   its current credential); the issuing CA rolls over at day 180;
3. one cohort re-keys (new SE key, attested, under the old credential);
4. a few devices move to authority B (released at A as ``cessationOfOperation``);
5. some devices are revoked (keyCompromise); their next refresh is refused.

Uses ``ctx.state["line"]`` (``fleetid.sim.demo_line.DemoLine``) when the line stage ran, otherwise
makes ``ctx.devices`` devices with ``fleetid.sim.software_line.SoftwareLine``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.progress import Progress

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import LifecycleService, roll_issuing_ca
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.authority.revoke import revoke_device
from fleetid.clock import ManualClock, SystemClock
from fleetid.config import Settings
from fleetid.device.agent import AgentState, DeviceAgent
from fleetid.device.transport import HttpTransport
from fleetid.device.truststore import TrustStore
from fleetid.errors import AuthenticationError
from fleetid.policy import CredentialType
from fleetid.se.client import SecureElementClient
from fleetid.sim.demo import DemoContext, drill, stage_directory
from fleetid.sim.software_line import SoftwareLine
from fleetid.store.repositories import ManifestRecord
from fleetid.store.schema import CertificateStatus

__all__ = ["DemoAuthority", "demo_authority", "stage_fleet"]

_DAYS = 365
_ROLL_ISSUING_ON = 180


@dataclass
class DemoAuthority:
    name: str
    ca: FleetCa
    service: LifecycleService
    transport: HttpTransport


def demo_authority(
    directory: Path, name: str, clock: ManualClock, manufacturer: x509.Certificate
) -> DemoAuthority:
    slug = name.lower().replace(" ", "-")
    settings = Settings.load(
        directory, environ={"FLEETID_PUBLIC_URL": f"http://{slug}.fleetid.invalid"}
    )
    ca = FleetCa.init(settings, clock=clock, name=name)
    trust_manufacturer(directory, manufacturer)
    app = create_app(settings, clock=clock, ca=ca)
    service = app.state.enrolment
    assert isinstance(service, LifecycleService)  # noqa: S101 - create_app installs it
    return DemoAuthority(
        name=name,
        ca=ca,
        service=service,
        transport=HttpTransport.in_process(app, settings.base_url),
    )


def _devices(
    ctx: DemoContext, clock: ManualClock
) -> tuple[x509.Certificate, list[tuple[ManifestRecord, SecureElementClient]]]:
    line: Any = ctx.state.get("line")
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    out: list[tuple[ManifestRecord, SecureElementClient]] = []
    if line is not None:
        for entry in line.devices:
            record = ManifestRecord(
                unit=entry.unit,
                serial=entry.serial,
                state=entry.state,
                idevid_fingerprint=entry.idevid_fingerprint,
                attestation_public_key=entry.attestation_public_key.public_bytes(der, spki),
                idevid=entry.idevid.public_bytes(der),
            )
            client = line.client(entry)
            client.select_identity()
            out.append((record, client))
        root: x509.Certificate = line.record.root_certificate
        return root, out
    software = SoftwareLine(clock=clock)
    for _ in range(ctx.devices):
        made = software.make_device()
        out.append((made.manifest_record(), made.client()))
    return software.root, out


def stage_fleet(ctx: DemoContext) -> None:
    console = ctx.console
    clock = ManualClock(SystemClock().now())
    with stage_directory("fleet") as root_dir:
        _run(ctx, clock, root_dir)
    console.print()


def _run(ctx: DemoContext, clock: ManualClock, root_dir: Path) -> None:
    console = ctx.console
    manufacturer, devices = _devices(ctx, clock)
    a = demo_authority(root_dir / "a", "Fleet A", clock, manufacturer)
    b = demo_authority(root_dir / "b", "Fleet B", clock, manufacturer)
    records = [record for record, _ in devices]
    movers = records[-max(1, len(records) // 5) :] if len(records) > 2 else []
    import_manifest(a.ca.store, records, clock.now())
    import_manifest(b.ca.store, movers, clock.now())
    cadence = a.ca.settings.policy.profile(CredentialType.OPERATIONAL).cadence
    agents = [
        DeviceAgent(se=client, clock=clock, cadence=cadence, trust=TrustStore([a.ca.root]))
        for _, client in devices
    ]
    started = time.perf_counter()
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("enrol (attestation)", total=len(agents))
        for agent in agents:
            agent.enrol(a.transport)
            progress.advance(task)
    enrol_rate = len(agents) / (time.perf_counter() - started)

    # A year, one day at a time; the issuing CA rolls over half way.
    refreshes = 0
    revoked_ids: list[str] = []
    revoke_count = max(1, len(agents) // 10) if len(agents) > 3 else 0
    started = time.perf_counter()
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("a simulated year of refreshes", total=_DAYS)
        for day in range(1, _DAYS + 1):
            clock.advance(timedelta(days=1))
            if day == _ROLL_ISSUING_ON:
                a.service.replace_ca(roll_issuing_ca(a.service.ca))
            if day == 300 and revoke_count:
                for agent in agents[:revoke_count]:
                    revoke_device(a.ca.store, agent.device_id, "keyCompromise", clock=clock)
                    revoked_ids.append(agent.device_id)
            for agent in agents:
                try:
                    if agent.tick(a.transport) == "refresh":
                        refreshes += 1
                except AuthenticationError:
                    pass  # a revoked device learns it here; the agent is now REVOKED
            progress.advance(task)
    year_seconds = time.perf_counter() - started

    live = [x for x in agents if x.state in (AgentState.ENROLLED, AgentState.REKEYED)]
    cohort = live[: max(1, len(live) // 3)]
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("re-key one cohort", total=len(cohort))
        for agent in cohort:
            agent.rekey(a.transport)
            progress.advance(task)

    mover_serials = {r.serial for r in movers}
    moved = 0
    with Progress(console=console, transient=False) as progress:
        moving = [x for x in live if x.device_id in mover_serials]
        task = progress.add_task("move devices to authority B", total=len(moving))
        for agent in moving:
            agent.transfer(a.transport, b.transport, b.ca.root)
            moved += 1
            progress.advance(task)

    with a.ca.store.transaction() as tx:
        valid = tx.certificates.count(status=CertificateStatus.VALID)
        revoked = tx.certificates.count(status=CertificateStatus.REVOKED)
    issuers = {x.credential.certificate.issuer.rfc4514_string() for x in live if x.credential}
    console.print(
        f"  {len(agents)} devices enrolled at {enrol_rate:.0f}/s; a year simulated in "
        f"{year_seconds:.1f} s ({refreshes} refreshes); issuing CA rolled on day "
        f"{_ROLL_ISSUING_ON}; {len(cohort)} re-keyed; {moved} moved to Fleet B; "
        f"{drill(f'{len(revoked_ids)} revoked for key compromise on day 300')}"
    )
    console.print(f"  current issuers: {', '.join(sorted(issuers))}")
    ctx.record("fleet: devices enrolled by attestation", str(len(agents)))
    ctx.record("fleet: refreshes in a simulated year", str(refreshes))
    ctx.record("fleet: re-keyed / moved to B", f"{len(cohort)} / {moved}")
    ctx.record(drill("fleet: revoked for key compromise"), str(len(revoked_ids)))
    ctx.record("fleet A certificates valid / revoked", f"{valid} / {revoked}")
    for authority in (a, b):
        authority.transport.close()
        authority.ca.close()
