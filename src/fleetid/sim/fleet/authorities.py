"""The two fleet authorities of a simulation, reached in process through their ASGI apps as
devices would reach them (``fleetid.device.transport.HttpTransport.in_process``).

Authority A holds the fleet: its database is the run's (SQLite in the state directory, or the
``--database-url``), beside the simulation's own tables. Authority B, which a cohort moves to,
keeps its database in its own directory (SQLite): two fleet CAs do not share one database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import LifecycleService, roll_issuing_ca
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.clock import ManualClock
from fleetid.config import DATABASE_URL_ENV, Settings
from fleetid.device.transport import HttpTransport
from fleetid.errors import ConfigError
from fleetid.policy import CredentialType
from fleetid.policy.cadence import Cadence
from fleetid.revocation.crl import CrlPublisher, publisher_for
from fleetid.revocation.ocsp import OcspResponder
from fleetid.revocation.publish import FilterPublisher, filter_directory
from fleetid.store.repositories import ManifestRecord

__all__ = ["Authority", "authority_url", "open_authority"]

_BASE = "http://{name}.fleet.invalid"


def authority_url(state_dir: Path, name: str, database_url: str | None) -> str:
    """The database URL of authority ``name`` (``a`` takes the run's URL when given)."""
    if name == "a" and database_url:
        return database_url
    return f"sqlite:///{state_dir / f'authority-{name}' / 'fleetid.db'}"


@dataclass
class Authority:
    """One fleet CA with its app, its lifecycle service and its three revocation channels."""

    name: str
    ca: FleetCa
    app: Any
    transport: HttpTransport
    crls: CrlPublisher
    filters: FilterPublisher

    @property
    def service(self) -> LifecycleService:
        service = self.app.state.enrolment
        assert isinstance(service, LifecycleService)  # noqa: S101 - create_app installs it
        return service

    @property
    def responder(self) -> OcspResponder:
        responder: OcspResponder = self.app.state.ocsp_responder
        return responder

    @property
    def root(self) -> x509.Certificate:
        return self.ca.root

    @property
    def cadence(self) -> Cadence:
        return self.ca.settings.policy.profile(CredentialType.OPERATIONAL).cadence

    def import_manifest(self, records: list[ManifestRecord]) -> None:
        import_manifest(self.ca.store, records, self.ca.clock.now())

    def roll_issuing_ca(self) -> None:
        """The issuing-CA rollover (reopen the authority to serve and publish with it)."""
        roll_issuing_ca(self.ca)  # shares this CA's store and HSM: reopened by the caller

    def close(self) -> None:
        self.transport.close()
        self.ca.close()


def open_authority(
    state_dir: Path,
    name: str,
    clock: ManualClock,
    *,
    database_url: str | None,
    manufacturer: x509.Certificate,
) -> Authority:
    """Authority ``name`` of the run, made on first use and opened as it is afterwards."""
    directory = state_dir / f"authority-{name}"
    settings = Settings.load(
        directory,
        environ={
            "FLEETID_PUBLIC_URL": _BASE.format(name=name),
            DATABASE_URL_ENV: authority_url(state_dir, name, database_url),
        },
    )
    try:
        ca = FleetCa.open(settings, clock=clock)
    except ConfigError:  # not made yet
        ca = FleetCa.init(settings, clock=clock, name=f"Fleet {name.upper()}")
    trust_manufacturer(directory, manufacturer)  # a file named by the root: idempotent
    app = create_app(settings, clock=clock, ca=ca)
    return Authority(
        name=name,
        ca=ca,
        app=app,
        transport=HttpTransport.in_process(app, settings.base_url),
        crls=publisher_for(ca),
        filters=FilterPublisher.for_ca(ca, directory=filter_directory(settings.data_dir)),
    )
