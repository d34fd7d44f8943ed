"""The world the threat scenarios attack: one fleet, SE-rooted devices and software-key devices.

* **The factory** is the real one (``fleetid.sim.demo_line`` wiring): a 2-of-3 key ceremony in
  the software HSM, a wafer lot kept in files (one fuse file, the chip, and one sealed flash
  file, the SE's persisted state, per unit) and the provisioning line, which diversifies every
  device's SCP03 keys from the line master inside the HSM.
* **The fleet authority** is a ``FleetCa`` with its ASGI app reached over in-process HTTP; it
  trusts the manufacturer root and imports the line manifest (attestation provisioner) and
  hands out one-time tokens (token provisioner).
* **An SE device** is a secured unit whose agent enrolled by attestation; its host storage holds
  only public material (its certificate, the fleet root) and its firmware image.
* **A software device** is the token provisioner's profile: a software key generated on the
  software line, kept in host storage as PKCS#8 encrypted under a storage passphrase that the
  firmware carries (a host has no fused secret to derive one from), and enrolled with its token.

``open_chip`` is where a test double removes a control (a chip whose flash is not sealed, a boot
applet that accepts any image); ``TargetFleet.referee`` reads what only the scenario's referee may
read (the chip's unsealed state), never the attacker.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import LifecycleService
from fleetid.authority.provisioners import BasicCredentials
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.authority.provisioners.token import create_token
from fleetid.clock import ManualClock, SystemClock
from fleetid.config import Settings
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.device.agent import DeviceAgent
from fleetid.device.transport import HttpTransport
from fleetid.device.truststore import TrustStore
from fleetid.errors import ConfigError
from fleetid.factory import ceremony
from fleetid.factory.line import ManifestEntry, UnitState, fewer_collections, open_line
from fleetid.factory.manifest_file import manifest_record
from fleetid.formats.csr_attestation import build_csr
from fleetid.formats.mcuboot import build_image
from fleetid.policy import CredentialType
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.keystore import Silicon
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import CardState
from fleetid.sim.demo_line import DemoLine
from fleetid.sim.wafer import Wafer

__all__ = [
    "FIRMWARE_COUNTER",
    "HostStorage",
    "OpenChip",
    "SeDevice",
    "SoftwareDevice",
    "TargetFleet",
]

#: The security counter of the firmware the fleet runs (an older image carries a lower one).
FIRMWARE_COUNTER = 5
_BASE_URL = "http://threats.fleetid.invalid"
_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_PEM = serialization.Encoding.PEM

#: Powers up a chip from its fuse file and its flash file: the emulator's own
#: (``SecureElement.open``), or a test double with a control removed.
OpenChip = Callable[[Path, Path], SecureElement]


@dataclass
class HostStorage:
    """A device's host flash, file by file: what a probe on the host's flash reads."""

    files: dict[str, bytes] = field(default_factory=dict)

    def dump(self) -> bytes:
        """The raw image a flash reader gets (names and contents, back to back)."""
        return b"".join(name.encode() + b"\0" + data + b"\0" for name, data in self.files.items())


@dataclass
class SeDevice:
    """A secured unit off the line, enrolled by attestation; its keys are in its SE."""

    entry: ManifestEntry
    card: SecureElement
    agent: DeviceAgent
    host: HostStorage
    fuse_path: Path
    flash_path: Path

    @property
    def device_id(self) -> str:
        return self.entry.serial

    @property
    def client(self) -> SecureElementClient:
        se = self.agent.se
        assert isinstance(se, SecureElementClient)  # noqa: S101 - SE devices are made with one
        return se


@dataclass
class SoftwareDevice:
    """A software-key device (token provisioner): its key lives in host storage."""

    device_id: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    host: HostStorage

    @property
    def signer(self) -> SoftwareSigner:
        return SoftwareSigner(self.key)


@dataclass
class SoftwareFleet:
    """The software devices' line: one storage passphrase and one firmware key for the fleet.

    ``bundles`` are the line's per-device artefacts: each device's encrypted key file, as the
    line writes it to the device (and keeps it to re-flash a returned unit).
    """

    passphrase: bytes
    firmware_signer: SoftwareSigner
    firmware: bytes
    bundles: dict[str, bytes] = field(default_factory=dict)


def subject_for(device_id: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])


def firmware_payload(extra: bytes = b"") -> bytes:
    """A host firmware payload: code bytes, the strings every firmware carries, ``extra``."""
    return (
        os.urandom(2048)
        + b"\0fleetid agent 1.4.0\0est path /.well-known/est\0log level info\0"
        + extra
        + os.urandom(512)
    )


class TargetFleet:
    """One fleet to attack (module docstring); ``close`` removes its files."""

    def __init__(
        self,
        *,
        units: int = 10,
        open_chip: OpenChip = SecureElement.open,
        clock: ManualClock | None = None,
    ) -> None:
        self.clock = clock or ManualClock(SystemClock().now())
        self.open_chip = open_chip
        self._connections: list[HttpTransport] = []
        self.root = Path(tempfile.mkdtemp(prefix="fleetid-threats-"))
        try:
            self.factory = self._factory(units)
            self._authority()
            self.firmware = build_image(
                firmware_payload(),
                self.factory.hsm.signer(self.factory.record.firmware_key_label),
                version="1.4.0",
                security_counter=FIRMWARE_COUNTER,
            )
            self.se_devices: list[SeDevice] = []
            self.software = self._software_fleet()
            self.software_devices: list[SoftwareDevice] = []
        except BaseException:
            self.close()
            raise

    # -- the factory ------------------------------------------------------------------------

    def _factory(self, count: int) -> DemoLine:
        config_path = ceremony.write_example_config(
            self.root / "ceremony",
            ceremony_id="threats-1",
            threshold=2,
            custodians=("alice", "bob", "carol"),
        )
        config = ceremony.CeremonyConfig.load(config_path)
        data = self.root / "factory"
        outcome = ceremony.init_ceremony(config, data, clock=self.clock)
        ceremony.activate(data, ceremony.read_shares(outcome.share_files[:2]), clock=self.clock)
        doc = tomllib.loads((self.root / "ceremony" / "transport-keys.toml").read_text())
        transport = StaticKeys(**{role: bytes.fromhex(doc[role]) for role in ("enc", "mac", "dek")})
        wafer = Wafer.fabricate(
            self.root / "wafer", lot="THREATS", count=count, transport_keys=transport
        )
        line = open_line(data, clock=self.clock, collections=fewer_collections)
        line.run([u.unit for u in wafer.units], wafer)
        secured = [e for e in line.manifest() if e.state is UnitState.SECURED]
        hsm, record = ceremony.open_activated_hsm(data, clock=self.clock)
        return DemoLine(data_dir=data, record=record, hsm=hsm, wafer=wafer, devices=secured)

    def _authority(self) -> None:
        settings = Settings.load(self.root / "fleet", environ={"FLEETID_PUBLIC_URL": _BASE_URL})
        self.ca = FleetCa.init(settings, clock=self.clock, name="Fleet T")
        trust_manufacturer(settings.data_dir, self.factory.record.root_certificate)
        self.app: Any = create_app(settings, clock=self.clock, ca=self.ca)
        service = self.app.state.enrolment
        assert isinstance(service, LifecycleService)  # noqa: S101 - create_app installs it
        self.service = service
        records = [manifest_record(e) for e in self.factory.devices]
        import_manifest(self.ca.store, records, self.clock.now())
        self.transport = HttpTransport.in_process(self.app, _BASE_URL)

    def connect(self) -> HttpTransport:
        """A new connection to the fleet authority, as from another place on the network (kept
        open until ``close``)."""
        connection = HttpTransport.in_process(self.app, _BASE_URL)
        self._connections.append(connection)
        return connection

    # -- SE devices ---------------------------------------------------------------------------

    def chip_paths(self, unit: str) -> tuple[Path, Path]:
        """The unit's fuse file (the chip) and flash file (its persisted state)."""
        directory = self.root / "wafer"
        return directory / f"{unit}.fuse", directory / f"{unit}.flash"

    def se_device(self) -> SeDevice:
        """A secured unit not used yet, enrolled now (each scenario attacks its own)."""
        used = {d.entry.unit for d in self.se_devices}
        entry = next((e for e in self.factory.devices if e.unit not in used), None)
        if entry is None:
            raise ConfigError(f"the fleet's {len(used)} units are all in use")
        device = self._se_device(entry)
        self.se_devices.append(device)
        return device

    def _se_device(self, entry: ManifestEntry) -> SeDevice:
        fuse, flash = self.chip_paths(entry.unit)
        card = self.open_chip(fuse, flash)
        client = SecureElementClient(card)
        client.select_identity()
        agent = DeviceAgent(
            se=client,
            clock=self.clock,
            cadence=self.ca.settings.policy.profile(CredentialType.OPERATIONAL).cadence,
            trust=TrustStore([self.ca.root]),
        )
        credential = agent.enrol(self.transport)
        host = HostStorage(
            {
                "firmware.bin": self.firmware,
                "agent/credential.pem": credential.certificate.public_bytes(_PEM),
                "agent/handle": str(credential.handle).encode(),
                "trust/fleet-root.pem": self.ca.root.public_bytes(_PEM),
            }
        )
        return SeDevice(
            entry=entry, card=card, agent=agent, host=host, fuse_path=fuse, flash_path=flash
        )

    def referee_state(self, device: SeDevice) -> CardState:
        """The chip's state as only its silicon opens it: for the referee, never the attacker."""
        return CardState.from_bytes(device.card.flash.read(Silicon.load(device.fuse_path)))

    # -- software devices ---------------------------------------------------------------------

    def _software_fleet(self) -> SoftwareFleet:
        passphrase = secrets.token_urlsafe(24).encode()
        signer = SoftwareSigner(new_private_key())
        image = build_image(
            firmware_payload(b"storage-key\0" + passphrase + b"\0"),
            signer,
            version="1.4.0",
            security_counter=FIRMWARE_COUNTER,
        )
        return SoftwareFleet(passphrase=passphrase, firmware_signer=signer, firmware=image)

    def software_device(self) -> SoftwareDevice:
        """A software device not used yet, made and enrolled now."""
        device = self._software_device(f"sw-{len(self.software_devices):04d}")
        self.software_devices.append(device)
        return device

    def _software_device(self, device_id: str) -> SoftwareDevice:
        key = new_private_key()
        signer = SoftwareSigner(key)
        with self.ca.store.transaction() as tx:
            token = create_token(tx, device_id=device_id, clock=self.clock, ttl=timedelta(days=30))
        csr = build_csr(subject=subject_for(device_id), signer=signer).public_bytes(_DER)
        certificate = self.service.simple_enroll(
            BasicCredentials(username=token.username, password=token.password), csr
        )
        encrypted = key.private_bytes(
            _PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self.software.passphrase),
        )
        self.software.bundles[device_id] = encrypted
        host = HostStorage(
            {
                "firmware.bin": self.software.firmware,
                "boot/firmware-key.der": signer_spki(self.software.firmware_signer),
                "boot/security-counter": str(FIRMWARE_COUNTER).encode(),
                "identity/key.pem": encrypted,
                "identity/credential.pem": certificate.public_bytes(_PEM),
                "identity/token": str(token).encode(),
            }
        )
        return SoftwareDevice(device_id=device_id, key=key, certificate=certificate, host=host)

    def close(self) -> None:
        for connection in self._connections:
            connection.close()
        self._connections.clear()
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.close()
        ca = getattr(self, "ca", None)
        if ca is not None:
            ca.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TargetFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def signer_spki(signer: SoftwareSigner) -> bytes:
    return signer.public_key().public_bytes(_DER, _SPKI)
