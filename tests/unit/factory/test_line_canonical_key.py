"""The line registers each vehicle's canonical key at manufacture; the EA imports it from the
manifest, checking the card's attestation itself (ETSI TS 102 941 §6.2.3.2)."""

from __future__ import annotations

import dataclasses
import itertools
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, inspect, text
from tests.v2x_fixtures import new_pki

from fleetid.authority.v2x.manufactured import import_manufactured, its_id_of
from fleetid.clock import ManualClock
from fleetid.crypto.v2xkeys import CURVES
from fleetid.device.v2x import ItsStation, SecureElementV2xKeys
from fleetid.errors import PolicyError
from fleetid.factory import ceremony
from fleetid.factory.line import (
    CANONICAL_KEY_HANDLE,
    LineConfig,
    ManifestEntry,
    ManifestReader,
    ProvisioningLine,
    UnitState,
    canonical_challenge,
    open_line,
)
from fleetid.formats.attestation import KEY_PROPERTIES_OID, KeyUsage, decode_key_properties
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import Curve
from fleetid.sim.test_card import DemoManufacturer
from fleetid.sim.wafer import Defect, Wafer
from fleetid.store.engine import open_engine
from fleetid.store.migrate import current_revision, upgrade

_LOTS = itertools.count()


@dataclass
class Plant:
    data: Path
    clock: ManualClock
    transport: StaticKeys
    record: ceremony.CeremonyRecord

    def run(
        self, count: int, curve: Curve = Curve.P256, **kw: object
    ) -> tuple[Wafer, list[ManifestEntry]]:
        lot = f"C{next(_LOTS)}"  # one plant for the module: every run is a new lot
        wafer = Wafer.fabricate(None, lot=lot, count=count, transport_keys=self.transport, **kw)  # type: ignore[arg-type]
        line = open_line(self.data, clock=self.clock, config=LineConfig(canonical_curve=curve))
        line.run([u.unit for u in wafer.units], wafer)
        return wafer, line.manifest()

    def roots(self) -> dict[str, list[x509.Certificate]]:
        return {
            "intermediates": [self.record.line_ca_certificate],
            "trusted_roots": [self.record.root_certificate],
        }


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Plant:
    tmp = tmp_path_factory.mktemp("plant")
    clock = ManualClock()
    config_path = ceremony.write_example_config(tmp / "cfg")
    outcome = ceremony.init_ceremony(
        ceremony.CeremonyConfig.load(config_path), tmp / "data", clock=clock
    )
    ceremony.activate(tmp / "data", ceremony.read_shares(outcome.share_files[:3]), clock=clock)
    doc = tomllib.loads((tmp / "cfg" / "transport-keys.toml").read_text())
    transport = StaticKeys(**{k: bytes.fromhex(doc[k]) for k in ("enc", "mac", "dek")})
    return Plant(tmp / "data", clock, transport, outcome.record)


def _properties(attestation: x509.Certificate) -> object:
    ext = attestation.extensions.get_extension_for_oid(x509.ObjectIdentifier(KEY_PROPERTIES_OID))
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    return decode_key_properties(ext.value.value)


@pytest.mark.parametrize("curve", [Curve.P256, Curve.BRAINPOOL_P256], ids=["nist", "brainpool"])
def test_the_line_records_an_attested_canonical_key(plant: Plant, curve: Curve) -> None:
    wafer, entries = plant.run(2, curve)
    mine = [e for e in entries if e.unit in {u.unit for u in wafer.units}]
    assert len(mine) == 2
    for entry in mine:
        assert entry.state is UnitState.SECURED
        key, attestation = entry.canonical_public_key, entry.canonical_attestation
        assert key is not None and attestation is not None and entry.idevid is not None
        assert (
            key.curve.name
            == (CURVES["nistP256"] if curve is Curve.P256 else CURVES["brainpoolP256r1"]).name
        )
        assert key != entry.attestation_public_key
        attestation.verify_directly_issued_by(entry.idevid)
        props = _properties(attestation)
        assert props.key_handle == CANONICAL_KEY_HANDLE  # type: ignore[attr-defined]
        assert props.usage == KeyUsage.SIGN  # type: ignore[attr-defined]
        assert props.chip_serial.hex().upper() == entry.serial  # type: ignore[attr-defined]
        assert props.challenge == canonical_challenge(entry.serial)  # type: ignore[attr-defined]
        assert props.origin == "generatedOnCard" and props.exportable is False  # type: ignore[attr-defined]


def test_an_attestation_of_another_key_than_the_recorded_one_quarantines(
    plant: Plant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 4 checks that the card attests the very canonical key step 3 recorded: here the
    line records a key the card does not hold, and the unit is quarantined, its IDevID void."""
    generate = ProvisioningLine._generate_canonical

    def another_key(self: ProvisioningLine, item: object, client: object) -> object:
        generate(self, item, client)  # type: ignore[arg-type]
        return ec.generate_private_key(ec.SECP256R1()).public_key()

    monkeypatch.setattr(ProvisioningLine, "_generate_canonical", another_key)
    wafer, entries = plant.run(1)
    (entry,) = [e for e in entries if e.unit == wafer.units[0].unit]
    assert entry.state is UnitState.QUARANTINED
    assert entry.reason is not None
    assert "attests another canonical key than the recorded one" in entry.reason
    assert "is void" in entry.reason


@pytest.mark.parametrize("family", ["nist", "brainpool"])
def test_the_ea_imports_the_manifest_and_the_vehicle_enrols_with_its_card(
    plant: Plant, family: str
) -> None:
    curve = Curve.P256 if family == "nist" else Curve.BRAINPOOL_P256
    wafer, _ = plant.run(2, curve)
    units = {u.unit for u in wafer.units}
    entries = [e for e in ManifestReader(open_engine(plant.data)).entries() if e.unit in units]
    pki = new_pki(family)
    report = import_manufactured(pki.ea, entries, **plant.roots())
    assert sorted(report.imported) == sorted(e.serial for e in entries) and not report.refused
    again = import_manufactured(pki.ea, entries, **plant.roots())
    assert not again.imported and sorted(again.already) == sorted(report.imported)
    # The vehicle signs its enrolment with the canonical key the line made on its card.
    entry = entries[0]
    client = SecureElementClient(wafer.power_on(entry.unit))
    client.select_identity()
    station = ItsStation(
        its_id=its_id_of(entry.serial),
        canonical_key=SecureElementSigner(client, CANONICAL_KEY_HANDLE),
        keys=SecureElementV2xKeys(client),
        family=pki.hierarchy.family,
        trust=pki.hierarchy.trust_store(),
        clock=pki.clock,
    )
    station.enrol(pki.ea.handle_enrolment)
    assert station.enrolment_credential is not None


def test_import_refuses_a_stranger_manufacturer(plant: Plant) -> None:
    wafer, _ = plant.run(1)
    entries = [
        e
        for e in ManifestReader(open_engine(plant.data)).entries()
        if e.unit == wafer.units[0].unit
    ]
    pki = new_pki("nist")
    stranger = DemoManufacturer.create()
    report = import_manufactured(
        pki.ea,
        entries,
        intermediates=[plant.record.line_ca_certificate],
        trusted_roots=[stranger.root_certificate],
    )
    assert not report.imported and "trusted root" in report.refused[entries[0].serial]
    assert not pki.ea.is_registered(its_id_of(entries[0].serial))


def test_import_refuses_rows_whose_key_or_attestation_was_swapped(plant: Plant) -> None:
    wafer, _ = plant.run(2)
    units = {u.unit for u in wafer.units}
    a, b = [e for e in ManifestReader(open_engine(plant.data)).entries() if e.unit in units]
    pki = new_pki("nist")
    key_swapped = dataclasses.replace(a, canonical_public_key=b.canonical_public_key)
    # b's attestation over b's key, put in a's row: another chip, another challenge.
    cert_swapped = dataclasses.replace(
        a,
        canonical_public_key=b.canonical_public_key,
        canonical_attestation=b.canonical_attestation,
    )
    # a's own attestation and key, but claimed under b's serial.
    serial_swapped = dataclasses.replace(a, serial=b.serial)
    reasons = {}
    for name, row in (("key", key_swapped), ("cert", cert_swapped), ("serial", serial_swapped)):
        report = import_manufactured(pki.ea, [row], **plant.roots())
        assert not report.imported
        (reasons[name],) = report.refused.values()
    assert "another key" in reasons["key"]
    assert "another chip" in reasons["cert"] and "another chip" in reasons["serial"]
    with pytest.raises(PolicyError, match="unknownits"):
        ItsStation(
            its_id=its_id_of(a.serial),
            canonical_key=SecureElementSigner(_card(wafer, a.unit), CANONICAL_KEY_HANDLE),
            keys=SecureElementV2xKeys(_card(wafer, a.unit)),
            family=pki.hierarchy.family,
            trust=pki.hierarchy.trust_store(),
            clock=pki.clock,
        ).enrol(pki.ea.handle_enrolment)


def test_a_challenge_for_another_serial_is_refused(plant: Plant) -> None:
    wafer, _ = plant.run(1)
    (entry,) = [
        e
        for e in ManifestReader(open_engine(plant.data)).entries()
        if e.unit == wafer.units[0].unit
    ]
    client = _card(wafer, entry.unit)
    # Same key and chip, but not the challenge the line binds to this serial.
    forged = client.attest(CANONICAL_KEY_HANDLE, os.urandom(32))
    pki = new_pki("nist")
    report = import_manufactured(
        pki.ea, [dataclasses.replace(entry, canonical_attestation=forged)], **plant.roots()
    )
    assert "another challenge" in report.refused[entry.serial]


def test_quarantined_units_are_not_imported(plant: Plant) -> None:
    wafer, _ = plant.run(1, defects={0: Defect.STORE_DATA_FAILS})
    (entry,) = [
        e
        for e in ManifestReader(open_engine(plant.data)).entries()
        if e.unit == wafer.units[0].unit
    ]
    assert entry.state is UnitState.QUARANTINED
    report = import_manufactured(new_pki("nist").ea, [entry], **plant.roots())
    assert report.skipped == (entry.serial,) and not report.imported


def test_revision_0002_adds_the_columns_and_keeps_rows(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO line_manifest (unit, serial, state, step, updated_at) "
                "VALUES ('u1', 'S1', 'secured', 4, 't')"
            )
        )
    columns = {c["name"] for c in inspect(engine).get_columns("line_manifest")}
    assert "canonical_public_key" not in columns
    upgrade(engine, "0002")
    assert current_revision(engine) == "0002"
    columns = {c["name"] for c in inspect(engine).get_columns("line_manifest")}
    assert {"canonical_public_key", "canonical_attestation"} <= columns
    (entry,) = ManifestReader(engine).entries()
    assert entry.serial == "S1" and entry.canonical_public_key is None
    report = import_manufactured(new_pki("nist").ea, [entry], intermediates=[], trusted_roots=[])
    assert report.skipped == ("S1",)


def _card(wafer: Wafer, unit: str) -> SecureElementClient:
    client = SecureElementClient(wafer.power_on(unit))
    client.select_identity()
    return client
