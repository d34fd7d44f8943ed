"""Fixtures for credential packages: an authority with its preparation and discovery
services in the real HTTP app (in process), devices from the software line, and ordering."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetid.authority.attestation.fleetid_se import spki_sha256
from fleetid.authority.preparation import Order, PackageKind, PreparationService
from fleetid.authority.preparation.for_ca import PackageServices
from fleetid.clock import ManualClock
from fleetid.device.package_transport import HttpPackageTransport, in_process_client
from fleetid.device.truststore import TrustStore
from fleetid.device.unattended import UnattendedDownloader
from fleetid.formats.package_messages import discovery_reference
from fleetid.sim.software_line import LineDevice, SoftwareLine
from fleetid.store.package_repository import PackageRecord
from tests.attestation_fixtures import Authority, make_authority

BASE = "http://fleet-a.test"


@dataclass
class Setup:
    authority: Authority
    line: SoftwareLine
    clock: ManualClock
    transport: HttpPackageTransport

    @property
    def services(self) -> PackageServices:
        services: PackageServices = self.authority.app.state.packages
        return services

    @property
    def preparation(self) -> PreparationService:
        return self.services.preparation

    def device(self) -> LineDevice:
        made = self.line.make_device()
        self.authority.import_devices(made)
        return made

    def order(self, device: LineDevice, **options: Any) -> PackageRecord:
        """Order ``order_of(device, **options)`` at the preparation service."""
        return self.preparation.order(self.order_of(device, **options))

    def order_of(
        self,
        device: LineDevice,
        *,
        kind: PackageKind = PackageKind.CONFIGURATION,
        content: bytes = b'{"apn": "fleet.example"}',
        code: str | None = None,
        lifetime: timedelta = timedelta(days=1),
    ) -> Order:
        return Order(
            reference=f"order-{device.serial}",
            kind=kind,
            binding_sha256=spki_sha256(device.attestation_key),
            device_ref=discovery_reference(device.serial),
            content=content,
            confirmation_code=code,
            lifetime=lifetime,
        )

    def downloader(self, device: LineDevice, journal: Path | None = None) -> UnattendedDownloader:
        return UnattendedDownloader(
            se=device.client(),
            trust=TrustStore([self.authority.ca.root]),
            clock=self.clock,
            journal_path=journal,
        )


@pytest.fixture(name="setup")
def setup_fixture(tmp_path: Path, db_url: str) -> Iterator[Setup]:
    clock = ManualClock()
    line = SoftwareLine(clock=clock)
    authority = make_authority(tmp_path / "a", db_url, clock, [line.root], base_url=BASE)
    client = in_process_client(authority.app, BASE)
    transport = HttpPackageTransport(client, {BASE: client})
    yield Setup(authority=authority, line=line, clock=clock, transport=transport)
    client.close()
    authority.close()
