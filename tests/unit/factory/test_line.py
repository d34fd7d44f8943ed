"""The provisioning line: happy path, every quarantine path, duplicate serials, and resume at
every crash point (in-process; tests/integration/test_line_crash_resume.py kills a subprocess)."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetid.authority.applet_rollout import RolloutOutcome, push_applet
from fleetid.clock import ManualClock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import (
    ConfigError,
    HsmNotActivatedError,
    SecureElementError,
    VerificationError,
)
from fleetid.factory import ceremony
from fleetid.factory import line as line_module
from fleetid.factory.auditlog import AuditLogReader
from fleetid.factory.line import (
    CRASH_ENV,
    CRASH_POINTS,
    NO_CRASH,
    CrashPlan,
    HsmSessionKeys,
    LineConfig,
    ProvisioningLine,
    Step,
    UnitState,
    open_line,
)
from fleetid.factory.manufacturer import certificate_fingerprint, hardware_module_name_of
from fleetid.hsm import SoftwareHsm
from fleetid.hsm.base import KeyKind
from fleetid.se.client import SecureElementClient
from fleetid.se.packages import IDENTITY_V2
from fleetid.se.scp03 import StaticKeys, derive_session_keys
from fleetid.se.state import CardLifeCycle
from fleetid.sim.wafer import TRANSPORT_KVN, Defect, Wafer

HAPPY_KINDS = ["identified", "injection", "certification", "installation", "lock"]


@dataclass
class Plant:
    data: Path
    clock: ManualClock
    transport: StaticKeys
    record: ceremony.CeremonyRecord

    def line(self, batch_size: int = 4, crash: CrashPlan = NO_CRASH) -> ProvisioningLine:
        return open_line(
            self.data, clock=self.clock, config=LineConfig(batch_size=batch_size), crash=crash
        )

    def wafer(self, count: int, **kwargs: object) -> Wafer:
        return Wafer.fabricate(
            None,
            lot="T",
            count=count,
            transport_keys=self.transport,
            **kwargs,  # type: ignore[arg-type]
        )

    def log(self) -> AuditLogReader:
        return AuditLogReader(self.data, self.record.log_origin)


@pytest.fixture
def plant(tmp_path: Path) -> Plant:
    clock = ManualClock()
    config_path = ceremony.write_example_config(tmp_path / "cfg")
    outcome = ceremony.init_ceremony(
        ceremony.CeremonyConfig.load(config_path), tmp_path / "data", clock=clock
    )
    ceremony.activate(tmp_path / "data", ceremony.read_shares(outcome.share_files[:3]), clock=clock)
    doc = tomllib.loads((tmp_path / "cfg" / "transport-keys.toml").read_text())
    transport = StaticKeys(**{k: bytes.fromhex(doc[k]) for k in ("enc", "mac", "dek")})
    return Plant(tmp_path / "data", clock, transport, outcome.record)


def _kinds(plant: Plant, serial: str) -> list[str]:
    return [e.kind for e in plant.log().entries_for_serial(serial)]


def _assert_agreement(plant: Plant, line: ProvisioningLine, wafer: Wafer) -> None:
    """Log, manifest and cards agree for every unit (the crash/resume invariant)."""
    entries = {e.unit: e for e in line.manifest()}
    assert set(entries) == {u.unit for u in wafer.units}
    for unit in wafer.units:
        entry = entries[unit.unit]
        kinds = _kinds(plant, entry.serial)
        client = SecureElementClient(wafer.power_on(unit.unit))
        client.select_isd()
        if entry.state is UnitState.SECURED:
            assert kinds == HAPPY_KINDS
            assert client.life_cycle() is CardLifeCycle.SECURED
            client.select_identity()
            chain = client.attestation_chain()
            assert entry.idevid is not None and chain[0] == entry.idevid
            assert entry.idevid.public_key() == entry.attestation_public_key
            assert client.get_public_key(0xF0).public_key == entry.attestation_public_key
            # The canonical key on the card is the one recorded, attested for this serial.
            canonical = client.get_public_key(line_module.CANONICAL_KEY_HANDLE).public_key
            assert entry.canonical_public_key == canonical != entry.attestation_public_key
            assert entry.canonical_attestation is not None
            assert entry.canonical_attestation.public_key() == canonical
            entry.canonical_attestation.verify_directly_issued_by(entry.idevid)
        else:
            assert entry.state in (UnitState.QUARANTINED, UnitState.DUPLICATE)
            assert client.life_cycle() is not CardLifeCycle.SECURED
    reader = plant.log()
    from fleetid.factory.auditlog import load_verifier_key

    _, key = load_verifier_key(plant.data)
    reader.verify_all(key)


# --- happy path -------------------------------------------------------------------------------


def test_devices_leave_the_line_attested_and_locked(plant: Plant) -> None:
    wafer = plant.wafer(5)
    line = plant.line(batch_size=2)
    report = line.run([u.unit for u in wafer.units], wafer)
    assert (report.processed, report.secured, report.quarantined) == (5, 5, 0)
    for unit, entry in zip(wafer.units, line.manifest(), strict=True):
        assert entry.state is UnitState.SECURED and entry.step is Step.SECURED
        idevid = entry.idevid
        assert idevid is not None
        idevid.verify_directly_issued_by(plant.record.line_ca_certificate)
        assert entry.idevid_fingerprint == certificate_fingerprint(idevid)
        assert hardware_module_name_of(idevid).hw_serial.hex().upper() == entry.serial
        assert entry.serial.endswith(unit.ic_serial.hex().upper())
        assert isinstance(entry.attestation_public_key, ec.EllipticCurvePublicKey)
    _assert_agreement(plant, line, wafer)


def test_cards_hold_chain_anchor_and_firmware_key_and_only_device_keys(plant: Plant) -> None:
    wafer = plant.wafer(1)
    line = plant.line()
    line.run([wafer.units[0].unit], wafer)
    client = SecureElementClient(wafer.power_on(wafer.units[0].unit))
    client.select_isd()
    versions = {kvn for _, kvn, _, _ in client.key_information()}
    assert versions == {line_module.DEVICE_KVN}  # the transport key set was replaced
    with pytest.raises((SecureElementError, VerificationError)):
        client.open_secure_channel(plant.transport, key_version=TRANSPORT_KVN)
    client.select_identity()
    chain = client.attestation_chain()
    assert chain[1:] == [plant.record.line_ca_certificate, plant.record.root_certificate]
    assert client.trust_anchors() == [plant.record.root_certificate]


def test_a_secured_card_refuses_re_personalisation(plant: Plant) -> None:
    wafer = plant.wafer(1)
    line = plant.line()
    line.run([wafer.units[0].unit], wafer)
    entry = line.manifest()[0]
    hsm, record = ceremony.open_activated_hsm(plant.data, clock=plant.clock)
    client = SecureElementClient(wafer.power_on(entry.unit))
    client.select_isd()
    cplc = client.cplc()
    keys = hsm.derive_scp03_keys(record.line_master_label, cplc.kdd)
    session = HsmSessionKeys(hsm, enc=keys.enc, mac=keys.mac, length=16)
    client.open_secure_channel(session, key_version=line_module.DEVICE_KVN)  # type: ignore[arg-type]
    with pytest.raises(SecureElementError) as refused:
        client.install_attestation_chain([plant.record.line_ca_certificate])
    assert refused.value.sw == 0x6985
    with pytest.raises(SecureElementError) as refused:
        client.install_firmware_key(hsm.public_key(record.line_ca_label))
    assert refused.value.sw == 0x6985


def test_every_event_is_logged_with_the_serial(plant: Plant) -> None:
    wafer = plant.wafer(2)
    line = plant.line()
    line.run([u.unit for u in wafer.units], wafer)
    for entry in line.manifest():
        logged = plant.log().entries_for_serial(entry.serial)
        assert [e.kind for e in logged] == HAPPY_KINDS
        injection = logged[1].body
        assert injection["key_version"] == line_module.DEVICE_KVN
        assert set(injection["kcvs"]) == {"enc", "mac", "dek"}
        assert logged[2].body["idevid_sha256"] == entry.idevid_fingerprint
    assert plant.log().entries()[0].kind == "ceremony"


def test_rerunning_neither_duplicates_nor_skips(plant: Plant) -> None:
    wafer = plant.wafer(3)
    units = [u.unit for u in wafer.units]
    line = plant.line()
    line.run(units[:2], wafer)
    size = len(plant.log().entries())
    again = plant.line().run(units, wafer)
    assert (again.processed, again.already_done, again.secured) == (1, 2, 1)
    assert len(plant.log().entries()) == size + len(HAPPY_KINDS)
    assert plant.line().run(units, wafer).processed == 0
    _assert_agreement(plant, line, wafer)


def test_hsm_session_keys_equal_the_scp03_kdf_on_the_same_static_keys(tmp_path: Path) -> None:
    from fleetid.crypto.shamir import wrap_under_kek

    kek = bytes(range(16))
    hsm = SoftwareHsm.initialise(None, kek)
    keys = StaticKeys(enc=bytes(range(16, 32)), mac=bytes(range(32, 48)), dek=bytes(16))
    hsm.unwrap_aes_key("t.enc", wrap_under_kek(kek, keys.enc), KeyKind.TRANSPORT)
    hsm.unwrap_aes_key("t.mac", wrap_under_kek(kek, keys.mac), KeyKind.TRANSPORT)
    host, card = bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718")
    via_hsm = HsmSessionKeys(hsm, enc="t.enc", mac="t.mac", length=16).session_keys(host, card)
    assert via_hsm == derive_session_keys(keys, host, card)


# --- negative cases ---------------------------------------------------------------------------


def test_the_line_cannot_run_before_activation(plant: Plant) -> None:
    ceremony.deactivate(plant.data, clock=plant.clock)
    with pytest.raises(HsmNotActivatedError, match="ceremony activate"):
        plant.line()


@pytest.mark.parametrize(
    ("defect", "failed_step", "reason"),
    [
        (Defect.REFUSES_PUT_KEY, 2, "card refused PUT KEY: SW 6A80"),
        (Defect.BAD_KCV, 2, "key check values do not match"),
        (Defect.KEYGEN_FAILS, 3, "attestation key generation failed: SW 6F00"),
        (Defect.STORE_DATA_FAILS, 4, "STORE DATA failed: SW 6A84"),
    ],
)
def test_every_quarantine_path(plant: Plant, defect: Defect, failed_step: int, reason: str) -> None:
    wafer = plant.wafer(3, defects={1: defect})
    line = plant.line()
    report = line.run([u.unit for u in wafer.units], wafer)
    assert (report.secured, report.quarantined) == (2, 1)
    entry = line.entry(wafer.units[1].unit)
    assert entry is not None and entry.state is UnitState.QUARANTINED
    assert entry.reason is not None and reason in entry.reason
    logged = plant.log().entries_for_serial(entry.serial)
    assert logged[-1].kind == "quarantine"
    assert logged[-1].body["failed_step"] == failed_step
    assert "lock" not in [e.kind for e in logged]
    client = SecureElementClient(wafer.power_on(entry.unit))
    client.select_identity()
    with pytest.raises(SecureElementError):
        client.attestation_chain()  # no certificate ever reached the card
    if defect is Defect.STORE_DATA_FAILS:
        assert "void" in entry.reason
        assert logged[-1].body["void_idevid_sha256"] == entry.idevid_fingerprint
    else:
        assert entry.idevid is None
    _assert_agreement(plant, line, wafer)
    assert line.run([u.unit for u in wafer.units], wafer).processed == 0  # stays quarantined


def test_a_second_chip_with_a_seen_serial_is_refused_and_logged(plant: Plant) -> None:
    wafer = plant.wafer(4, clones={3: 1})
    line = plant.line(batch_size=8)
    report = line.run([u.unit for u in wafer.units], wafer)
    assert (report.secured, report.duplicates) == (3, 1)
    clone = line.entry(wafer.units[3].unit)
    first = line.entry(wafer.units[1].unit)
    assert clone is not None and first is not None
    assert clone.state is UnitState.DUPLICATE and clone.serial == first.serial
    assert first.state is UnitState.SECURED
    kinds = _kinds(plant, clone.serial)
    assert kinds.count("duplicate-serial") == 1 and kinds.count("certification") == 1
    client = SecureElementClient(wafer.power_on(clone.unit))
    client.select_isd()
    assert client.life_cycle() is CardLifeCycle.OP_READY  # untouched
    assert {kvn for _, kvn, _, _ in client.key_information()} == {TRANSPORT_KVN}


def test_a_duplicate_serial_in_a_later_lot_is_refused(plant: Plant) -> None:
    first = plant.wafer(2)
    line = plant.line()
    line.run([u.unit for u in first.units], first)
    # A chip of a later lot that presents the serial of an accepted one (same CPLC, other die).
    later = Wafer.fabricate(
        None,
        lot="U",
        count=1,
        transport_keys=plant.transport,
        ic_serials={0: first.units[0].ic_serial},
    )
    later_unit = later.units[0]
    report = plant.line().run([later_unit.unit], later)
    assert report.duplicates == 1
    entry = plant.line().entry(later_unit.unit)
    assert entry is not None and entry.state is UnitState.DUPLICATE


# --- crash at every point, resume in-process --------------------------------------------------


class _Crashed(BaseException):
    pass


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_resume_after_a_crash_at_every_point(plant: Plant, point: str) -> None:
    wafer = plant.wafer(3, defects={2: Defect.STORE_DATA_FAILS})
    units = [u.unit for u in wafer.units]

    def crash(code: int) -> None:
        raise _Crashed(code)

    with pytest.raises(_Crashed):
        plant.line(batch_size=3, crash=CrashPlan(point, exit=crash)).run(units, wafer)
    for unit in units:
        wafer.power_on(unit)  # power cycle: volatile state is gone
    line = plant.line(batch_size=3)
    report = line.run(units, wafer)
    assert report.processed + report.already_done == 3
    final = {e.unit: e.state for e in line.manifest()}
    assert final == {
        units[0]: UnitState.SECURED,
        units[1]: UnitState.SECURED,
        units[2]: UnitState.QUARANTINED,
    }
    _assert_agreement(plant, line, wafer)


def test_idevid_chain_verifies_with_an_independent_path_builder(plant: Plant) -> None:
    from cryptography.x509.verification import PolicyBuilder, Store

    wafer = plant.wafer(1)
    line = plant.line()
    line.run([wafer.units[0].unit], wafer)
    idevid = line.manifest()[0].idevid
    assert idevid is not None
    verifier = (
        PolicyBuilder()
        .store(Store([plant.record.root_certificate]))
        .time(plant.clock.now())
        .build_client_verifier()
    )
    chain = verifier.verify(idevid, [plant.record.line_ca_certificate]).chain
    assert chain[-1] == plant.record.root_certificate
    assert isinstance(chain[0], x509.Certificate)


def test_manifest_reader_answers_for_secured_quarantined_and_unknown_serials(plant: Plant) -> None:
    from fleetid.factory.line import ManifestReader
    from fleetid.store.engine import open_engine

    wafer = plant.wafer(2, defects={1: Defect.KEYGEN_FAILS})
    line = plant.line()
    line.run([u.unit for u in wafer.units], wafer)
    good, bad = line.manifest()
    reader = ManifestReader(open_engine(plant.data))
    assert reader.require_secured(good.serial).idevid == good.idevid
    with pytest.raises(VerificationError, match="quarantined"):
        reader.require_secured(bad.serial)
    with pytest.raises(VerificationError, match="not on the line manifest"):
        reader.require_secured("00" * 10)


def test_a_crash_plan_names_a_known_point_or_none() -> None:
    assert CrashPlan.from_environment({}) == NO_CRASH
    assert CrashPlan.from_environment({CRASH_ENV: ""}) == NO_CRASH
    assert CrashPlan.from_environment({CRASH_ENV: "after-issue"}).point == "after-issue"
    with pytest.raises(ConfigError, match="not a line crash point"):
        CrashPlan.from_environment({CRASH_ENV: "after-lunch"})


def test_the_line_reads_no_crash_plan_from_the_environment(
    plant: Plant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only entry points turn the variable into a plan: a line built without one runs through."""
    monkeypatch.setenv(CRASH_ENV, CRASH_POINTS[0])
    wafer = plant.wafer(1)
    report = plant.line().run([u.unit for u in wafer.units], wafer)
    assert report.secured == 1


def test_the_line_counts_units_quarantines_and_hsm_signatures(plant: Plant) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "secured": sample("fleetid_line_units_total", outcome="secured"),
        "quarantined": sample("fleetid_line_units_total", outcome="quarantined"),
        "step 3": sample("fleetid_line_quarantines_total", failed_step="3"),
        "signatures": sample("fleetid_hsm_sign_seconds_count", backend="software"),
    }
    wafer = plant.wafer(3, defects={1: Defect.KEYGEN_FAILS})
    plant.line().run([u.unit for u in wafer.units], wafer)
    after = {
        "secured": sample("fleetid_line_units_total", outcome="secured"),
        "quarantined": sample("fleetid_line_units_total", outcome="quarantined"),
        "step 3": sample("fleetid_line_quarantines_total", failed_step="3"),
        "signatures": sample("fleetid_hsm_sign_seconds_count", backend="software"),
    }
    assert after["secured"] - before["secured"] == 2
    assert after["quarantined"] - before["quarantined"] == 1
    assert after["step 3"] - before["step 3"] == 1
    # The line CA signs each secured unit's IDevID in the HSM (the audit log may sign more).
    assert after["signatures"] - before["signatures"] >= 2


def test_the_line_puts_the_applet_signing_key_on_cards_and_logs_it(plant: Plant) -> None:
    applet_signer = SoftwareSigner(new_private_key())
    spki = applet_signer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    wafer = plant.wafer(1)
    line = open_line(plant.data, clock=plant.clock, config=LineConfig(applet_signing_key=spki))
    line.run([wafer.units[0].unit], wafer)
    entry = line.manifest()[0]
    (installed,) = [
        e for e in plant.log().entries_for_serial(entry.serial) if e.kind == "installation"
    ]
    assert installed.body["applet_signing_key_spki_sha256"] == hashlib.sha256(spki).hexdigest()
    hsm, record = ceremony.open_activated_hsm(plant.data, clock=plant.clock)

    def card_keys(kdd: bytes) -> HsmSessionKeys:
        keys = hsm.derive_scp03_keys(record.line_master_label, kdd)
        return HsmSessionKeys(hsm, enc=keys.enc, mac=keys.mac, length=16)

    cohort = {entry.unit: wafer.power_on(entry.unit)}
    push = partial(
        push_applet,
        cohort=cohort,
        card_keys=card_keys,
        audit=None,
        key_version=line_module.DEVICE_KVN,
    )
    (refused,) = push(IDENTITY_V2, signer=SoftwareSigner(new_private_key()))
    assert (refused.outcome, refused.status_word) == (RolloutOutcome.REFUSED, "6982")
    (upgraded,) = push(IDENTITY_V2, signer=applet_signer)
    assert (upgraded.outcome, upgraded.before, upgraded.after) == (RolloutOutcome.UPGRADED, 1, 2)
