"""The audit log: appends, checkpoints, proofs, crash consistency, tampering of each kind, CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, delete, select, text, update

from fleetid.cli import main
from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import (
    ConfigError,
    EncodingError,
    LogTamperedError,
    VerificationError,
)
from fleetid.factory.auditlog import (
    VKEY_FILENAME,
    AuditEvent,
    AuditLog,
    AuditLogReader,
    EventKind,
    encode_leaf,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from fleetid.formats.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_signed_note,
    sign_checkpoint,
)
from fleetid.formats.merkle_tree import MerkleTree
from fleetid.store.auditlog_table import audit_checkpoints, audit_entries
from fleetid.store.engine import DB_FILENAME

ORIGIN = "fleetid.example/line-1"
SERIALS = ["SN-A", "SN-B", "SN-C"]


@pytest.fixture(scope="module")
def signer() -> SoftwareSigner:
    return SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def log(tmp_path: Path, signer: SoftwareSigner, clock: ManualClock) -> AuditLog:
    """A log of 10 entries: a ceremony, then three events for each of three devices."""
    audit = AuditLog.open(tmp_path, signer, ORIGIN, clock)
    audit.append(EventKind.CEREMONY, None, {"m": 3, "n": 5, "keys": ["root-ca", "line-ca"]})
    for kind in (EventKind.INJECTION, EventKind.CERTIFICATION, EventKind.LOCK):
        for serial in SERIALS:
            clock.advance(timedelta(seconds=1))
            audit.append(kind, serial, {"kvn": 48, "kcv": {"enc": "a1b2c3"}, "step": str(kind)})
    return audit


def _engine(log: AuditLog) -> Engine:
    return log._engine


def _sql(log: AuditLog, statement: Any) -> None:
    with _engine(log).begin() as conn:
        conn.execute(statement)


def _tampered_index(log: AuditLog, signer: SoftwareSigner, **kwargs: Any) -> int | None:
    fresh = AuditLogReader(_engine(log), ORIGIN)
    with pytest.raises(LogTamperedError) as info:
        fresh.verify_all(signer.public_key(), **kwargs)
    return info.value.index


# -- appending and reading ----------------------------------------------------------------


def test_append_writes_an_entry_and_its_checkpoint(log: AuditLog, signer: SoftwareSigner) -> None:
    report = log.verify_all(signer.public_key())
    assert (report.entries, report.checkpoints, report.tree_size) == (10, 10, 10)
    latest = log.latest_checkpoint()
    assert latest is not None and latest.size == 10 and latest.root_hash == report.root_hash
    assert open_checkpoint(latest.note, signer.public_key(), ORIGIN) == latest.checkpoint


def test_entries_carry_clock_time_and_canonical_leaves(log: AuditLog, clock: ManualClock) -> None:
    entries = log.entries()
    assert [e.index for e in entries] == list(range(10))
    assert entries[0].logged_at == "2027-01-01T00:00:00.000000Z"
    assert entries[-1].logged_at == "2027-01-01T00:00:09.000000Z"
    leaf = entries[4].leaf()
    assert leaf == encode_leaf(
        index=4,
        logged_at=entries[4].logged_at,
        kind="certification",
        serial="SN-A",
        body={"kcv": {"enc": "a1b2c3"}, "kvn": 48, "step": "certification"},
    )
    assert leaf.startswith(b'{"body":{"kcv":{"enc":"a1b2c3"},"kvn":48,')
    assert b'"index":4' in leaf and b'"format":"fleetid.audit-entry.v1"' in leaf


def test_entries_for_serial(log: AuditLog) -> None:
    entries = log.entries_for_serial("SN-B")
    assert [e.index for e in entries] == [2, 5, 8]
    assert [e.kind for e in entries] == ["injection", "certification", "lock"]
    assert log.entries_for_serial("SN-Z") == []


def test_append_many_writes_one_checkpoint(log: AuditLog, signer: SoftwareSigner) -> None:
    events = [
        AuditEvent(kind="quarantine", serial=f"SN-Q{i}", body={"why": "kcv"}) for i in range(5)
    ]
    entries = log.append_many(events)
    assert [e.index for e in entries] == [10, 11, 12, 13, 14]
    report = log.verify_all(signer.public_key())
    assert (report.entries, report.checkpoints, report.tree_size) == (15, 11, 15)


def test_reopening_continues_the_same_tree(
    tmp_path: Path, log: AuditLog, signer: SoftwareSigner, clock: ManualClock
) -> None:
    again = AuditLog.open(tmp_path, signer, ORIGIN, clock)
    assert again.append("lock", "SN-D", {}).index == 10
    assert again.verify_all(signer.public_key()).tree_size == 11
    # The first instance notices the other writer and stays consistent.
    assert log.append("lock", "SN-E", {}).index == 11
    log.verify_all(signer.public_key())


def test_vkey_file_pins_the_log_key(tmp_path: Path, log: AuditLog, clock: ManualClock) -> None:
    vkey = (tmp_path / VKEY_FILENAME).read_text().strip()
    assert vkey == log.verifier_key and vkey.startswith(ORIGIN + "+")
    other = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError):
        AuditLog.open(tmp_path, other, ORIGIN, clock)


def test_invalid_events_are_refused_and_nothing_is_written(
    log: AuditLog, signer: SoftwareSigner
) -> None:
    for kind, serial, body in (
        ("Injection!", None, {}),
        ("lock", "", {}),
        ("lock", "SN\n1", {}),
        ("lock", None, {"raw": b"\x00"}),
        ("lock", None, {"x": float("nan")}),
        ("lock", None, {"x": 2**60}),
        ("lock", None, ["not", "an", "object"]),
    ):
        with pytest.raises(EncodingError):
            log.append(kind, serial, body)  # type: ignore[arg-type]
    assert log.verify_all(signer.public_key()).entries == 10


def test_p384_log_key_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigError):
        AuditLog(tmp_path, signer, ORIGIN, clock)


def test_data_dir_layout(tmp_path: Path, log: AuditLog) -> None:
    assert (tmp_path / DB_FILENAME).is_file() and DB_FILENAME == "fleetid.db"


# -- proofs -------------------------------------------------------------------------------


def test_inclusion_and_consistency_proofs_between_checkpoints(
    log: AuditLog, signer: SoftwareSigner
) -> None:
    with _engine(log).connect() as conn:
        notes = {
            row.tree_size: row.note.encode() for row in conn.execute(select(audit_checkpoints))
        }
    heads = {
        size: open_checkpoint(note, signer.public_key(), ORIGIN) for size, note in notes.items()
    }
    entries = log.entries()
    for size in (1, 4, 7, 10):
        for entry in entries[:size]:
            proof = log.inclusion_proof(entry.index, size)
            verify_inclusion(entry.leaf_hash(), entry.index, size, proof, heads[size].root_hash)
    for size1 in range(1, 11):
        for size2 in range(size1, 11):
            proof = log.consistency_proof(size1, size2)
            verify_consistency(size1, size2, proof, heads[size1].root_hash, heads[size2].root_hash)
    with pytest.raises(VerificationError):
        proof = log.inclusion_proof(3, 10)
        verify_inclusion(entries[4].leaf_hash(), 3, 10, proof, heads[10].root_hash)


def test_prove_serial_is_checkable_by_a_third_party(log: AuditLog, signer: SoftwareSigner) -> None:
    bundle = json.loads(json.dumps(log.prove_serial("SN-C")))  # what a third party receives
    head = open_checkpoint(bundle["checkpoint"].encode(), signer.public_key(), bundle["origin"])
    assert head.size == bundle["tree_size"] == 10
    assert [e["index"] for e in bundle["entries"]] == [3, 6, 9]
    for item in bundle["entries"]:
        leaf = item["leaf"].encode()
        assert json.loads(leaf)["serial"] == "SN-C" and json.loads(leaf)["index"] == item["index"]
        proof = [bytes.fromhex(x) for x in item["inclusion_proof_hex"]]
        verify_inclusion(leaf_hash(leaf), item["index"], head.size, proof, head.root_hash)
        # The same proof does not vouch for an edited leaf.
        edited = leaf.replace(b"SN-C", b"SN-X")
        with pytest.raises(VerificationError):
            verify_inclusion(leaf_hash(edited), item["index"], head.size, proof, head.root_hash)


# -- crash consistency --------------------------------------------------------------------


class _FailingSigner(SoftwareSigner):
    def sign(self, data: bytes) -> bytes:
        raise RuntimeError("HSM went away")


class _CorruptingSigner(SoftwareSigner):
    def sign(self, data: bytes) -> bytes:
        signature = bytearray(super().sign(data))
        signature[-1] ^= 1
        return bytes(signature)


@pytest.mark.parametrize(
    ("signer_class", "error"),
    [(_FailingSigner, RuntimeError), (_CorruptingSigner, VerificationError)],
)
def test_no_entry_without_its_checkpoint(
    tmp_path: Path,
    signer: SoftwareSigner,
    clock: ManualClock,
    signer_class: type[SoftwareSigner],
    error: type[Exception],
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    good = AuditLog(tmp_path, SoftwareSigner(key), ORIGIN, clock)
    good.append("ceremony", None, {})
    broken = AuditLog(tmp_path, signer_class(key), ORIGIN, clock)
    with pytest.raises(error):
        broken.append("injection", "SN-A", {})
    assert [e.index for e in good.entries()] == [0]
    assert good.append("injection", "SN-A", {}).index == 1
    good.verify_all(key.public_key())


def test_append_joins_the_callers_transaction(log: AuditLog, signer: SoftwareSigner) -> None:
    with pytest.raises(RuntimeError), _engine(log).begin() as conn:
        log.append("injection", "SN-R", {"n": 1}, connection=conn)
        raise RuntimeError("manifest write failed")
    assert log.entries_for_serial("SN-R") == []
    assert log.append("injection", "SN-R", {"n": 2}).index == 10  # the cache re-synced
    with _engine(log).begin() as conn:
        log.append("lock", "SN-R", {}, connection=conn)
    log.verify_all(signer.public_key())
    assert [e.index for e in log.entries_for_serial("SN-R")] == [10, 11]


def test_checkpoint_is_idempotent(log: AuditLog) -> None:
    latest = log.latest_checkpoint()
    assert latest is not None
    assert log.checkpoint().note == latest.note


def test_empty_log_verifies(tmp_path: Path, signer: SoftwareSigner, clock: ManualClock) -> None:
    audit = AuditLog(tmp_path, signer, ORIGIN, clock)
    assert audit.verify_all(signer.public_key()).entries == 0
    assert audit.checkpoint().size == 0
    audit.append("ceremony", None, {})
    assert audit.verify_all(signer.public_key()).tree_size == 1


# -- tampering, each kind detected with the first bad entry -------------------------------


def test_altered_body(log: AuditLog, signer: SoftwareSigner) -> None:
    row = audit_entries.c
    _sql(log, update(audit_entries).where(row.seq == 4).values(body='{"kvn":49}'))
    assert _tampered_index(log, signer) == 4


@pytest.mark.parametrize(
    ("column", "value"),
    [("serial", "SN-Z"), ("kind", "quarantine"), ("logged_at", "2026-01-01T00:00:00.000000Z")],
)
def test_altered_columns(log: AuditLog, signer: SoftwareSigner, column: str, value: str) -> None:
    _sql(log, update(audit_entries).where(audit_entries.c.seq == 6).values({column: value}))
    assert _tampered_index(log, signer) == 6


def test_altered_body_with_recomputed_leaf_hash(log: AuditLog, signer: SoftwareSigner) -> None:
    entry = log.entries()[4]
    forged = encode_leaf(
        index=4, logged_at=entry.logged_at, kind=entry.kind, serial="SN-Z", body=entry.body
    )
    values = {"serial": "SN-Z", "leaf_hash": leaf_hash(forged)}
    _sql(log, update(audit_entries).where(audit_entries.c.seq == 4).values(values))
    assert _tampered_index(log, signer) == 4
    # The writer refuses to sign anything on top of the altered entries.
    with pytest.raises(LogTamperedError):
        AuditLog(_engine(log), signer, ORIGIN, ManualClock()).append("lock", "SN-Z", {})


def test_altered_stored_leaf_hash(log: AuditLog, signer: SoftwareSigner) -> None:
    _sql(log, update(audit_entries).where(audit_entries.c.seq == 2).values(leaf_hash=bytes(32)))
    assert _tampered_index(log, signer) == 2


def test_deleted_entry(log: AuditLog, signer: SoftwareSigner) -> None:
    _sql(log, delete(audit_entries).where(audit_entries.c.seq == 3))
    assert _tampered_index(log, signer) == 3


def test_deleted_last_entry(log: AuditLog, signer: SoftwareSigner) -> None:
    _sql(log, delete(audit_entries).where(audit_entries.c.seq == 9))
    assert _tampered_index(log, signer) == 9


def test_reordered_contents(log: AuditLog, signer: SoftwareSigner) -> None:
    entries = log.entries()
    for position, source in ((2, entries[5]), (5, entries[2])):
        values = {"serial": source.serial, "kind": source.kind, "body": source.body_json}
        _sql(log, update(audit_entries).where(audit_entries.c.seq == position).values(values))
    assert _tampered_index(log, signer) == 2


def test_reordered_rows(log: AuditLog, signer: SoftwareSigner) -> None:
    # Whole rows, stored leaf hashes included, renumbered into each other's places.
    seq = audit_entries.c.seq
    _sql(log, update(audit_entries).where(seq == 2).values(seq=-1))
    _sql(log, update(audit_entries).where(seq == 5).values(seq=2))
    _sql(log, update(audit_entries).where(seq == -1).values(seq=5))
    assert _tampered_index(log, signer) == 2


def test_entry_appended_outside_the_log(log: AuditLog, signer: SoftwareSigner) -> None:
    leaf = encode_leaf(
        index=10, logged_at="2027-01-01T00:00:10.000000Z", kind="lock", serial="SN-F", body={}
    )
    row = {
        "seq": 10,
        "logged_at": "2027-01-01T00:00:10.000000Z",
        "kind": "lock",
        "serial": "SN-F",
        "body": "{}",
        "leaf_hash": leaf_hash(leaf),
    }
    _sql(log, audit_entries.insert().values(row))
    assert _tampered_index(log, signer) == 10


def test_forged_checkpoint_signature(log: AuditLog, signer: SoftwareSigner) -> None:
    with _engine(log).connect() as conn:
        note = conn.execute(
            select(audit_checkpoints.c.note).where(audit_checkpoints.c.tree_size == 6)
        ).scalar_one()
    signed = parse_signed_note(note.encode())
    line = signed.signatures[0]
    forged = type(line)(
        key_name=line.key_name, key_id=line.key_id, signature=line.signature[:-2] + b"\x00\x00"
    )
    bad = type(signed)(text=signed.text, signatures=(forged,)).encode().decode()
    _sql(log, update(audit_checkpoints).where(audit_checkpoints.c.tree_size == 6).values(note=bad))
    assert _tampered_index(log, signer) == 5


def test_checkpoint_signed_by_another_key(log: AuditLog, signer: SoftwareSigner) -> None:
    other = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    tree = MerkleTree(e.leaf_hash() for e in log.entries())
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=10, root_hash=tree.root()), other)
    stmt = update(audit_checkpoints).where(audit_checkpoints.c.tree_size == 10)
    _sql(log, stmt.values(note=note.decode()))
    assert _tampered_index(log, signer) == 9


def test_checkpoint_inconsistent_with_an_earlier_one(log: AuditLog, signer: SoftwareSigner) -> None:
    # Validly signed with the log key, but over a history where entry 7 differs: a split view.
    leaves = [e.leaf_hash() for e in log.entries()]
    leaves[7] = leaf_hash(b"another history")
    forked = MerkleTree(leaves)
    head = Checkpoint(origin=ORIGIN, size=10, root_hash=forked.root())
    note = sign_checkpoint(head, signer).decode()
    stmt = update(audit_checkpoints).where(audit_checkpoints.c.tree_size == 10)
    _sql(log, stmt.values(note=note, root_hash=forked.root()))
    fresh = AuditLogReader(_engine(log), ORIGIN)
    with pytest.raises(LogTamperedError, match="not consistent") as info:
        fresh.verify_all(signer.public_key())
    # Entries 0..8 are backed by the earlier checkpoints; the split begins where the
    # inconsistent checkpoint starts to cover new entries.
    assert info.value.index == 9


def test_checkpoint_row_differs_from_its_note(log: AuditLog, signer: SoftwareSigner) -> None:
    stmt = update(audit_checkpoints).where(audit_checkpoints.c.tree_size == 3)
    _sql(log, stmt.values(root_hash=bytes(32)))
    assert _tampered_index(log, signer) == 2


def test_truncation_needs_a_published_checkpoint(log: AuditLog, signer: SoftwareSigner) -> None:
    latest = log.latest_checkpoint()
    assert latest is not None
    _sql(log, delete(audit_entries).where(audit_entries.c.seq >= 8))
    _sql(log, delete(audit_checkpoints).where(audit_checkpoints.c.tree_size >= 9))
    # The log alone is a valid shorter log; the checkpoint published earlier exposes it.
    AuditLogReader(_engine(log), ORIGIN).verify_all(signer.public_key())
    assert _tampered_index(log, signer, published=[latest.note]) == 8


def test_published_checkpoint_from_another_history(log: AuditLog, signer: SoftwareSigner) -> None:
    leaves = [e.leaf_hash() for e in log.entries()]
    leaves[0] = leaf_hash(b"another ceremony")
    note = sign_checkpoint(
        Checkpoint(origin=ORIGIN, size=10, root_hash=MerkleTree(leaves).root()), signer
    )
    assert _tampered_index(log, signer, published=[note]) is not None


def test_untampered_log_passes_with_published_checkpoints(
    log: AuditLog, signer: SoftwareSigner
) -> None:
    with _engine(log).connect() as conn:
        notes = [n.encode() for n in conn.execute(select(audit_checkpoints.c.note)).scalars()]
    assert log.verify_all(signer.public_key(), published=notes).tree_size == 10


def test_wrong_verification_key(log: AuditLog) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(LogTamperedError):
        log.verify_all(other)


# -- CLI ----------------------------------------------------------------------------------


def test_cli_verify_ok(tmp_path: Path, log: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {ORIGIN}: 10 entries, 10 checkpoints")


def test_cli_verify_reports_the_first_bad_entry(
    tmp_path: Path, log: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    _sql(log, text("UPDATE audit_log_entries SET body = '{}' WHERE seq IN (3, 7)"))
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith("BAD entry 3:")


def test_cli_verify_with_an_explicit_wrong_key(
    tmp_path: Path, log: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetid.formats.checkpoint import verifier_key

    other = verifier_key(ORIGIN, ec.generate_private_key(ec.SECP256R1()).public_key())
    assert main(["audit", "verify", "--data-dir", str(tmp_path), "--vkey", other]) == 1
    assert capsys.readouterr().out.startswith("BAD")


def test_cli_verify_detects_truncation_with_published_note(
    tmp_path: Path, log: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    latest = log.latest_checkpoint()
    assert latest is not None
    published = tmp_path / "published.note"
    published.write_bytes(latest.note)
    _sql(log, delete(audit_entries).where(audit_entries.c.seq == 9))
    _sql(log, delete(audit_checkpoints).where(audit_checkpoints.c.tree_size == 10))
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 0
    args = ["audit", "verify", "--data-dir", str(tmp_path), "--published", str(published)]
    assert main(args) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("BAD entry 9:")


def test_cli_prove(
    tmp_path: Path, log: AuditLog, signer: SoftwareSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "prove", "SN-A", "--data-dir", str(tmp_path)]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert bundle["verifier_key"] == log.verifier_key
    head = open_checkpoint(bundle["checkpoint"].encode(), signer.public_key(), ORIGIN)
    assert [e["index"] for e in bundle["entries"]] == [1, 4, 7]
    for item in bundle["entries"]:
        proof = [bytes.fromhex(x) for x in item["inclusion_proof_hex"]]
        verify_inclusion(
            leaf_hash(item["leaf"].encode()), item["index"], head.size, proof, head.root_hash
        )


def test_cli_prove_unknown_serial(
    tmp_path: Path, log: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "prove", "SN-NONE", "--data-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    # Said on stderr, one line naming the serial; no proof document on stdout.
    assert out == ""
    assert err.count("\n") == 1 and "no device 'SN-NONE'" in err


def test_cli_without_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 1
    assert "no audit log database" in capsys.readouterr().err


def test_reader_without_tables_raises_store_error(tmp_path: Path) -> None:
    from fleetid.errors import StoreError

    with pytest.raises(StoreError):
        AuditLogReader(tmp_path, ORIGIN).entries()
    with pytest.raises(StoreError):
        AuditLogReader(tmp_path, ORIGIN).verify_all(
            ec.generate_private_key(ec.SECP256R1()).public_key()
        )


def test_cli_verify_names_the_edited_entry_inside_a_batched_checkpoint(
    tmp_path: Path, signer: SoftwareSigner, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the line checkpoints a batch of entries at once; a body edit of one of them
    was reported as the batch's first entry (the checkpoint range), not the entry itself."""
    audit = AuditLog.open(tmp_path, signer, ORIGIN, clock)
    audit.append(EventKind.CEREMONY, None, {"m": 3})
    audit.append_many(AuditEvent(kind="lock", serial=f"SN-{i}", body={"i": i}) for i in range(6))
    audit.append_many(AuditEvent(kind="lock", serial=f"SN-{i}", body={"i": i}) for i in range(6))
    _sql(audit, text("UPDATE audit_log_entries SET body = '{\"i\": 99}' WHERE seq = 4"))
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith("BAD entry 4: altered")


def test_cli_prove_matches_the_serial_in_either_case(
    tmp_path: Path, log: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: a serial typed in lower case found nothing."""
    log.append("lock", "F1D05E01000183510000", {})
    assert main(["audit", "prove", "f1d05e01000183510000", "--data-dir", str(tmp_path)]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert bundle["serial"] == "F1D05E01000183510000" and len(bundle["entries"]) == 1
