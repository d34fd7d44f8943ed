"""Demo stage: a deployed cohort moves to a new operator configuration, then to a new fleet
authority, with no human step on any device (the SM-DP+, SM-DS and SGP.32 patterns).

Two fleet authorities (SQLite in a temporary directory, reached in process through their HTTP
apps) trust the same manufacturer; authority B's preparation service registers its events with
authority A's discovery service. On a simulated clock:

1. A orders a configuration package for every device; one order is left to expire (a drill);
2. every device wakes up on its schedule: discover, authenticate, download, install, notify;
3. A orders B's trust anchors for every device, B orders an operational credential for each;
4. the devices wake up again: the anchors first (from A, which they trust), then B's credential
   (B's service now chains to a held anchor); the key is installed inside the SE.

The stage ends with the count of packages in each state at both services.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import LifecycleService
from fleetid.authority.preparation import PackageKind, PackageState, PreparationService
from fleetid.authority.preparation.for_ca import (
    PackageServices,
    order_for_device,
    order_for_devices,
    preparation_service,
)
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.device.package_transport import HttpPackageTransport, in_process_client
from fleetid.device.truststore import TrustStore
from fleetid.device.unattended import POLL_INTERVALS, UnattendedDownloader
from fleetid.policy.connectivity import ConnectivityProfile
from fleetid.sim.demo import DemoContext, drill, stage_directory
from fleetid.sim.software_line import LineDevice, SoftwareLine

__all__ = ["stage_preparation"]

_COHORT_MAX = 6  # a few seconds: each download is a handful of SE operations and signatures
_CONFIGURATION = b'{"apn": "fleet.example", "ntp": "time.fleet.example"}'


@dataclass
class _Site:
    ca: FleetCa
    app: FastAPI
    lifecycle: LifecycleService
    client: httpx.Client
    address: str

    @property
    def services(self) -> PackageServices:
        services: PackageServices = self.app.state.packages
        return services


def _site(
    directory: Path, name: str, clock: ManualClock, devices: list[LineDevice], line: SoftwareLine
) -> _Site:
    slug = name.lower().replace(" ", "-")
    url = f"http://{slug}.fleetid.invalid"
    settings = Settings.load(directory, environ={"FLEETID_PUBLIC_URL": url})
    ca = FleetCa.init(settings, clock=clock, name=name)
    trust_manufacturer(directory, line.root)
    import_manifest(ca.store, [d.manifest_record() for d in devices], clock.now())
    app = create_app(settings, clock=clock, ca=ca)
    lifecycle = app.state.enrolment
    assert isinstance(lifecycle, LifecycleService)  # noqa: S101 - create_app installs it
    return _Site(
        ca=ca, app=app, lifecycle=lifecycle, client=in_process_client(app, url), address=url
    )


def _counts(preparation: PreparationService) -> str:
    counts = Counter(p.state for p in preparation.repository.packages())
    return ", ".join(f"{state} {counts[state]}" for state in PackageState if counts[state])


def _wake_up(agents: list[UnattendedDownloader], transport: HttpPackageTransport) -> Counter[str]:
    """Every device's timer fires once: what each installed, by kind."""
    kinds: Counter[str] = Counter()
    for agent in agents:
        for package in agent.tick(transport):
            kinds[package.kind] += 1
    return kinds


def stage_preparation(ctx: DemoContext) -> None:
    clock = ManualClock()
    line = SoftwareLine(clock=clock)
    cohort = [line.make_device() for _ in range(min(ctx.devices, _COHORT_MAX))]
    with stage_directory("preparation") as root:
        a = _site(root / "a", "Operator A", clock, cohort, line)
        b = _site(root / "b", "Authority B", clock, cohort, line)
        try:
            # Authority B's preparation service registers its events with A's discovery service.
            b.app.state.packages = PackageServices(
                preparation=preparation_service(b.ca, b.lifecycle, a.services.discovery),
                discovery=b.services.discovery,
            )
            transport = HttpPackageTransport(a.client, {a.address: a.client, b.address: b.client})
            agents = [
                UnattendedDownloader(
                    se=d.client(),
                    trust=TrustStore([a.ca.root]),
                    clock=clock,
                    profile=ConnectivityProfile.ALWAYS_ON,
                )
                for d in cohort
            ]
            _run(ctx, clock, cohort, agents, transport, a, b)
        finally:
            for site in (a, b):
                site.client.close()
                site.ca.close()


def _run(
    ctx: DemoContext,
    clock: ManualClock,
    cohort: list[LineDevice],
    agents: list[UnattendedDownloader],
    transport: HttpPackageTransport,
    a: _Site,
    b: _Site,
) -> None:
    interval = POLL_INTERVALS[ConnectivityProfile.ALWAYS_ON]
    prep_a, prep_b = a.services.preparation, b.services.preparation
    # 1. A new operator configuration for the cohort; the last device's order expires (a drill).
    order_for_devices(
        a.ca,
        prep_a,
        serials=[device.serial for device in cohort[:-1]],
        kind=PackageKind.CONFIGURATION,
        content=_CONFIGURATION,
    )
    expiring = order_for_device(
        a.ca,
        prep_a,
        serial=cohort[-1].serial,
        kind=PackageKind.CONFIGURATION,
        content=_CONFIGURATION,
        lifetime=timedelta(minutes=30),
    )
    clock.advance(interval)
    configured = _wake_up(agents, transport)
    refused = sum(1 for agent in agents if expiring.event_id in agent.refused)
    ctx.console.print(
        f"{configured['configuration']} of {len(cohort)} devices took the new configuration "
        f"unattended; {drill('an expired order')} refused to {refused} device"
    )
    # 2. The move to authority B: A delivers B's anchors, B delivers a credential under them.
    anchors = b.ca.root.public_bytes(serialization.Encoding.PEM)
    serials = [device.serial for device in cohort]
    order_for_devices(
        a.ca, prep_a, serials=serials, kind=PackageKind.TRUST_ANCHORS, content=anchors
    )
    order_for_devices(b.ca, prep_b, serials=serials, kind=PackageKind.CREDENTIAL)
    clock.advance(interval)
    moved = _wake_up(agents, transport)
    under_b = sum(
        1
        for agent in agents
        for package in agent.installed
        if package.kind == "credential"
        and x509.load_pem_x509_certificates(package.public)[0].issuer
        == b.ca.issuing.certificate.subject
    )
    ctx.console.print(
        f"{moved['trust-anchors']} devices now trust authority B; {under_b} hold a credential "
        "from B, its key installed inside the SE"
    )
    ctx.record("packages: operator A (state counts)", _counts(prep_a))
    ctx.record("packages: authority B (state counts)", _counts(prep_b))
    ctx.record(drill("packages: an expired order"), prep_a.status(expiring.event_id).state)
