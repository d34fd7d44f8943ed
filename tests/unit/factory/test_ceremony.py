"""The key ceremony: keys in the HSM, M-of-N custody, signed transcript first in the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from fleetid.clock import ManualClock
from fleetid.errors import CeremonyError, ConfigError, HsmError, HsmNotActivatedError
from fleetid.factory import ceremony
from fleetid.factory.auditlog import AuditLogReader


@dataclass(frozen=True)
class Done:
    data: Path
    config: ceremony.CeremonyConfig
    outcome: ceremony.CeremonyOutcome
    clock: ManualClock


def _ceremony(tmp_path: Path, name: str = "c", ceremony_id: str = "acme-2027-01") -> Done:
    clock = ManualClock()
    path = ceremony.write_example_config(tmp_path / f"{name}-config", ceremony_id=ceremony_id)
    config = ceremony.CeremonyConfig.load(path)
    data = tmp_path / f"{name}-data"
    outcome = ceremony.init_ceremony(config, data, clock=clock)
    return Done(data, config, outcome, clock)


@pytest.fixture
def done(tmp_path: Path) -> Done:
    return _ceremony(tmp_path)


def test_ceremony_creates_the_keys_in_the_hsm_and_leaves_it_locked(done: Done) -> None:
    with pytest.raises(HsmNotActivatedError, match="not activated"):
        ceremony.open_activated_hsm(done.data, clock=done.clock)
    shares = ceremony.read_shares(done.outcome.share_files[:3])
    hsm = ceremony.activate(done.data, shares, clock=done.clock)
    assert set(hsm.labels()) == {
        "mfr-root-ca",
        "line-ca-l1",
        "line-master-l1",
        "audit-log",
        "firmware-signing",
        "transport-b1.enc",
        "transport-b1.mac",
        "transport-b1.dek",
    }
    with pytest.raises(HsmError, match="export is refused"):
        hsm.export_private("mfr-root-ca")
    with pytest.raises(HsmError, match="export is refused"):
        hsm.export_secret("line-master-l1")


def test_certificates_chain_and_match_the_hsm_keys(done: Done) -> None:
    record = done.outcome.record
    record.line_ca_certificate.verify_directly_issued_by(record.root_certificate)
    hsm = ceremony.activate(
        done.data, ceremony.read_shares(done.outcome.share_files[2:]), clock=done.clock
    )
    assert hsm.public_key("mfr-root-ca") == record.root_certificate.public_key()
    assert hsm.public_key("line-ca-l1") == record.line_ca_certificate.public_key()
    pem = (done.data / "manufacturer-root.pem").read_bytes()
    assert x509.load_pem_x509_certificate(pem) == record.root_certificate


def test_one_share_file_per_custodian_without_the_kek(done: Done) -> None:
    files = done.outcome.share_files
    assert len(files) == 5
    names = [f.name for f in files]
    for custodian, name in zip(done.config.custodians, names, strict=True):
        assert custodian in name
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600
    record_text = (done.data / ceremony.RECORD_FILE).read_text()
    for path in files:
        for half in ceremony.read_shares([path])[0].halves:
            assert half.hex() not in record_text


def test_transcript_is_the_first_audit_entry_and_is_signed(done: Done) -> None:
    record = done.outcome.record
    entries = AuditLogReader(done.data, record.log_origin).entries()
    assert entries[0].index == 0 and entries[0].kind == "ceremony"
    body = entries[0].body
    assert body["transcript"] == record.transcript
    transcript = record.transcript
    assert transcript["custody"]["threshold"] == 3 and transcript["custody"]["total"] == 5
    assert [c["name"] for c in transcript["custody"]["custodians"]] == list(done.config.custodians)
    assert transcript["config_sha256"] == done.config.config_sha256
    assert transcript["administrator"] and transcript["witnesses"]
    roles = {k["role"] for k in transcript["keys"]}
    assert {"manufacturer-root-ca", "line-ca", "audit-log", "line-master-kdk"} <= roles
    assert {c["role"] for c in transcript["certificates"]} == {"manufacturer-root-ca", "line-ca"}
    ceremony.verify_transcript(record)


def test_activation_is_logged_with_who_presented_shares(done: Done) -> None:
    shares = ceremony.read_shares([done.outcome.share_files[i] for i in (0, 2, 4)])
    ceremony.activate(done.data, shares, clock=done.clock)
    entries = AuditLogReader(done.data, done.outcome.record.log_origin).entries()
    assert entries[-1].kind == "activation"
    assert [p["custodian"] for p in entries[-1].body["presented"]] == ["alice", "carol", "erin"]


def test_activation_persists_for_another_process_until_deactivated(done: Done) -> None:
    ceremony.activate(
        done.data, ceremony.read_shares(done.outcome.share_files[:3]), clock=done.clock
    )
    hsm, record = ceremony.open_activated_hsm(done.data, clock=done.clock)
    assert hsm.is_activated and record.ceremony_id == "acme-2027-01"
    assert ceremony.deactivate(done.data, clock=done.clock)
    with pytest.raises(HsmNotActivatedError):
        ceremony.open_activated_hsm(done.data, clock=done.clock)
    assert AuditLogReader(done.data, record.log_origin).entries()[-1].kind == "hsm-deactivated"


# --- negative cases -------------------------------------------------------------------------


def test_m_minus_one_shares_do_not_activate(done: Done) -> None:
    shares = ceremony.read_shares(done.outcome.share_files[:2])
    with pytest.raises(CeremonyError, match="needs 3 of 5"):
        ceremony.activate(done.data, shares, clock=done.clock)
    with pytest.raises(HsmNotActivatedError):
        ceremony.open_activated_hsm(done.data, clock=done.clock)


def test_a_corrupted_share_file_does_not_activate(done: Done) -> None:
    path = done.outcome.share_files[1]
    text = path.read_text()
    marker = 'halves = ["2-'
    position = text.index(marker) + len(marker)
    digit = "a" if text[position] != "a" else "b"
    path.write_text(text[:position] + digit + text[position + 1 :])
    with pytest.raises(CeremonyError, match=r"share-2-of-5.*corrupted"):
        ceremony.read_shares(done.outcome.share_files[:3])


def test_a_share_from_another_ceremony_does_not_activate(done: Done, tmp_path: Path) -> None:
    other = _ceremony(tmp_path, name="other", ceremony_id="acme-2027-02")
    mixed = ceremony.read_shares([*done.outcome.share_files[:2], other.outcome.share_files[2]])
    with pytest.raises(CeremonyError, match="belongs to ceremony 'acme-2027-02'"):
        ceremony.activate(done.data, mixed, clock=done.clock)


def test_shares_of_another_ceremony_with_our_id_do_not_activate(tmp_path: Path) -> None:
    ours = _ceremony(tmp_path, name="ours")
    theirs = _ceremony(tmp_path, name="theirs")  # same ceremony id, other KEK
    shares = ceremony.read_shares(theirs.outcome.share_files[:3])
    with pytest.raises(CeremonyError, match="ceremony recorded"):
        ceremony.activate(ours.data, shares, clock=ours.clock)


def test_wrong_shares_do_not_activate(done: Done) -> None:
    from dataclasses import replace

    shares = ceremony.read_shares(done.outcome.share_files[:3])
    wrong = replace(shares[0], halves=(bytes(16), shares[0].halves[1]))
    with pytest.raises(CeremonyError, match="do not rebuild the KEK"):
        ceremony.activate(done.data, [wrong, *shares[1:]], clock=done.clock)


def test_an_expired_activation_is_refused(done: Done) -> None:
    ceremony.activate(
        done.data,
        ceremony.read_shares(done.outcome.share_files[:3]),
        clock=done.clock,
        valid_for=timedelta(hours=1),
    )
    done.clock.advance(timedelta(hours=2))
    with pytest.raises(HsmNotActivatedError, match="expired"):
        ceremony.open_activated_hsm(done.data, clock=done.clock)


def test_a_second_ceremony_in_the_same_data_dir_is_refused(done: Done) -> None:
    with pytest.raises(CeremonyError, match="already holds ceremony material"):
        ceremony.init_ceremony(done.config, done.data, clock=done.clock)


def test_activate_without_a_ceremony_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CeremonyError, match="no ceremony"):
        ceremony.activate(tmp_path, [], clock=ManualClock())


def test_a_tampered_transcript_does_not_verify(done: Done) -> None:
    from dataclasses import replace

    from fleetid.errors import VerificationError

    transcript = dict(done.outcome.record.transcript)
    transcript["witnesses"] = ["Mallory"]
    with pytest.raises(VerificationError):
        ceremony.verify_transcript(replace(done.outcome.record, transcript=transcript))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("threshold = 3", "threshold = 1", "not allowed"),
        ("threshold = 3", "threshold = 6", "not allowed"),
        ('label = "audit-log"\ncurve = "P-256"', 'label = "audit-log"\ncurve = "P-384"', "P-256"),
        ('label = "line-ca-l1"', 'label = "mfr-root-ca"', "own label"),
        ('format = "fleetid-ceremony-config/1"', 'format = "x"', "format"),
        ('keys_file = "transport-keys.toml"', 'keys_file = "missing.toml"', "transport keys"),
        ('witnesses = ["Internal Witness", "External Witness"]', "witnesses = []", "witness"),
        ('backend = "software"', 'backend = "cloud"', "hsm.backend"),
    ],
)
def test_unsound_configs_are_refused_before_anything_is_created(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = ceremony.write_example_config(tmp_path / "cfg")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(ConfigError, match=message):
        ceremony.CeremonyConfig.load(path)


def test_config_hash_changes_with_any_byte(tmp_path: Path) -> None:
    path = ceremony.write_example_config(tmp_path / "cfg")
    first = ceremony.CeremonyConfig.load(path).config_sha256
    path.write_text(path.read_text() + "\n# reviewed\n")
    assert ceremony.CeremonyConfig.load(path).config_sha256 != first


def test_the_so_pin_comes_from_the_caller_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command reads the SO PIN from the variable the config names and passes it; the
    ceremony itself reads no environment, so a set variable alone does not reach the token."""
    path = ceremony.write_example_config(tmp_path / "cfg", backend="pkcs11", token_label="t")
    config = ceremony.CeremonyConfig.load(path)
    monkeypatch.setenv(config.hsm.so_pin_env, "1234")
    with pytest.raises(ConfigError, match=config.hsm.so_pin_env):
        ceremony.init_ceremony(config, tmp_path / "data", clock=ManualClock())
    assert not (tmp_path / "data" / "ceremony.json").exists()


def test_share_files_and_activation_state_are_owner_only(done: Done) -> None:
    for path in done.outcome.share_files:
        assert path.stat().st_mode & 0o777 == 0o600
    hsm = ceremony.activate(
        done.data, ceremony.read_shares(done.outcome.share_files[:3]), clock=done.clock
    )
    hsm.lock()
    state = done.data / "hsm" / ceremony.ACTIVATION_FILE
    assert state.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):  # a share never replaces another
        ceremony.init_ceremony(
            done.config,
            done.data.with_name("again"),
            clock=done.clock,
            shares_dir=done.outcome.share_files[0].parent,
        )
