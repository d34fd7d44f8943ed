"""The provisioning line's tamper-evident audit log: an RFC 6962/9162 Merkle tree over SQL rows,
with C2SP ``tlog-checkpoint`` tree heads signed by the HSM's log key.

Every line event (ceremony, activation, each injection with its device serial, quarantine, lock)
is one entry. An entry's leaf, the bytes hashed into the tree, is the RFC 8785 canonical JSON
object::

    {"body": {...}, "format": "fleetid.audit-entry.v1", "index": 7, "kind": "injection",
     "logged_at": "2027-01-01T00:00:00.000000Z", "serial": "ABCD..."}

so an entry moved to another position no longer hashes to its leaf. Bodies carry key IDs, check
values and hashes, never key material.

Appending is crash-consistent: the entry rows and the signed checkpoint that covers them are
written in one transaction, so after any crash the log ends at a signed checkpoint. The signature
is checked against the log key before it is stored.

Layout in a data directory (``AuditLog.open``): ``fleetid.db`` (SQLite; tables
``audit_log_entries`` and ``audit_log_checkpoints``) and ``audit-log.vkey``, the signed-note
verifier key (``origin+keyid+base64(0x02 || SPKI)``) that ``fleetid audit verify`` trusts unless
given another. A verifier that does not trust the data directory should pass the key it was
handed at the ceremony, and the checkpoints it has seen published (``published=``), which also
catches a log truncated together with its checkpoints.

The named entry points ``leaf_hash``, ``verify_inclusion`` and ``verify_consistency`` are the
RFC 9162 functions of ``fleetid.formats.merkle``; proofs come from ``fleetid.formats.merkle_tree``,
a separate implementation.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.clock import Clock
from fleetid.crypto.signer import Signer
from fleetid.errors import (
    ConfigError,
    EncodingError,
    LogTamperedError,
    StoreError,
    VerificationError,
)
from fleetid.formats.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    parse_signed_note,
    parse_verifier_key,
    sign_checkpoint,
    verifier_key,
)
from fleetid.formats.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from fleetid.formats.merkle_tree import MerkleTree
from fleetid.store.auditlog_repository import (
    AuditLogRows,
    AuditLogStore,
    CheckpointRow,
    EntryRow,
    Transaction,
)
from fleetid.store.engine import Engine
from fleetid.store.event_kinds import EventKind

__all__ = [
    "LEAF_FORMAT",
    "VKEY_FILENAME",
    "AuditEvent",
    "AuditLog",
    "AuditLogReader",
    "Entry",
    "EventKind",
    "SignedCheckpoint",
    "VerificationReport",
    "encode_leaf",
    "leaf_hash",
    "load_verifier_key",
    "verify_consistency",
    "verify_inclusion",
]

LEAF_FORMAT = "fleetid.audit-entry.v1"
VKEY_FILENAME = "audit-log.vkey"
_KIND = re.compile(r"[a-z][a-z0-9._-]{0,63}")
_WRITE_ATTEMPTS = 3
_MAX_SAFE_INTEGER = 2**53 - 1


# RFC 8785 on ASCII-only JSON (no floats, integers in the I-JSON range) is what Python's encoder
# writes with sorted keys and no whitespace: members sorted by UTF-16 code units (§3.2.3) equal
# code point order for ASCII names; strings escape '"', '\\', \b \t \n \f \r as such and the
# other controls as lower-case \u00xx (§3.2.2.2); integers print as ECMAScript does (§3.2.2.3).
# Anything else (floats, non-ASCII text, other types) goes through rfc8785 itself.
_PLAIN_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return bool(value.isascii())
    if kind is int:
        return bool(-_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER)
    if kind is bool or value is None:
        return True
    if kind is list:
        return all(_plain(item) for item in value)
    if kind is dict:
        return all(
            type(name) is str and name.isascii() and _plain(item) for name, item in value.items()
        )
    return False


def _canonical(value: Any, what: str) -> bytes:
    """RFC 8785 form of ``value``; the appending path's (see ``_plain``)."""
    kind = type(value)
    if kind is str and value.isascii():
        return encode_basestring(value).encode("ascii")
    if kind is int and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return str(value).encode("ascii")
    if _plain(value):
        return _PLAIN_JSON.encode(value).encode("ascii")
    return _rfc8785(value, what)


def _rfc8785(value: Any, what: str) -> bytes:
    """RFC 8785 form of ``value`` by the rfc8785 package alone (the reading path's)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise EncodingError(f"{what} is not canonicalisable JSON (RFC 8785): {exc}") from exc


def _timestamp(when: datetime) -> str:
    if when.tzinfo is None:
        raise ConfigError("the audit log clock must give timezone-aware times")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_leaf(*, index: int, logged_at: str, kind: str, serial: str | None, body: Any) -> bytes:
    """The leaf bytes of one entry: RFC 8785 canonical JSON (see the module docstring)."""
    record = {
        "body": body,
        "format": LEAF_FORMAT,
        "index": index,
        "kind": kind,
        "logged_at": logged_at,
        "serial": serial,
    }
    return _rfc8785(record, "audit entry")


_LEAF_FORMAT_JSON = rfc8785.dumps(LEAF_FORMAT)


def _compose_leaf(
    *, index: int, logged_at: str, kind: str, serial: str | None, body_json: str
) -> bytes:
    """``encode_leaf`` for a body already in canonical form, without canonicalising it again.

    RFC 8785 §3.2.3 serialises an object as its members sorted by name, each value in its own
    canonical form, so the record is its members (``body`` < ``format`` < ``index`` < ``kind`` <
    ``logged_at`` < ``serial``) around the body's canonical text. Appending uses this; reading
    (``Entry.leaf``, ``verify_all``) decodes the stored body and runs ``encode_leaf``, so the two
    paths check each other.
    """
    return b"".join(
        (
            b'{"body":',
            body_json.encode("utf-8"),
            b',"format":',
            _LEAF_FORMAT_JSON,
            b',"index":',
            _canonical(index, "entry index"),
            b',"kind":',
            _canonical(kind, "entry kind"),
            b',"logged_at":',
            _canonical(logged_at, "entry time"),
            b',"serial":',
            _canonical(serial, "entry serial"),
            b"}",
        )
    )


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    """An event to append: its kind, the device serial if it concerns one, and a JSON body."""

    kind: str
    serial: str | None
    body: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One appended entry. ``body_json`` is the canonical JSON text of the body."""

    index: int
    logged_at: str
    kind: str
    serial: str | None
    body_json: str

    @property
    def body(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body_json)
        return value

    def leaf(self) -> bytes:
        try:
            body = json.loads(self.body_json)
        except ValueError as exc:
            raise EncodingError(f"entry {self.index} body is not JSON") from exc
        return encode_leaf(
            index=self.index,
            logged_at=self.logged_at,
            kind=self.kind,
            serial=self.serial,
            body=body,
        )

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.leaf())


@dataclass(frozen=True, kw_only=True)
class SignedCheckpoint:
    """A checkpoint and the signed note it was published as."""

    checkpoint: Checkpoint
    note: bytes

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root_hash(self) -> bytes:
        return self.checkpoint.root_hash


@dataclass(frozen=True, kw_only=True)
class VerificationReport:
    """What ``verify_all`` checked: every entry, every checkpoint, and the latest tree head."""

    entries: int
    checkpoints: int
    tree_size: int
    root_hash: bytes


def _entry_from_row(row: EntryRow) -> Entry:
    return Entry(
        index=row.seq,
        logged_at=row.logged_at,
        kind=row.kind,
        serial=row.serial,
        body_json=row.body,
    )


def _unsigned(note: bytes) -> Checkpoint:
    """The tree head in a stored note, read without checking its signature (the log's own)."""
    return parse_checkpoint(parse_signed_note(note).text)


class AuditLogReader:
    """Read access to an audit log: entries, proofs, and full verification. Needs no key."""

    def __init__(self, engine_or_url: Engine | str | Path, origin: str) -> None:
        self._store = AuditLogStore(engine_or_url)
        self._engine = self._store.engine
        self.origin = origin
        self._tree: MerkleTree | None = None

    # -- reading ---------------------------------------------------------------------------

    def entries(self, start: int = 0, stop: int | None = None) -> list[Entry]:
        with self._store.reading() as rows:
            return [_entry_from_row(row) for row in rows.entries(start, stop)]

    def entries_for_serial(self, serial: str) -> list[Entry]:
        """Every entry about one device, in log order."""
        with self._store.reading() as rows:
            return [_entry_from_row(row) for row in rows.entries_for_serials([serial])]

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self._store.reading() as rows:
            row = rows.latest_checkpoint()
        if row is None:
            return None
        note = row.note.encode("utf-8")
        return SignedCheckpoint(checkpoint=_unsigned(note), note=note)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 PATH for entry ``index`` in the tree of ``size`` entries (default: all)."""
        return self._proof(lambda tree: tree.inclusion_proof(index, size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 6962 PROOF between the trees of ``size1`` and ``size2`` entries."""
        return self._proof(lambda tree: tree.consistency_proof(size1, size2))

    def _proof(self, prove: Callable[[MerkleTree], list[bytes]]) -> list[bytes]:
        """``prove`` on the tree as stored; a size or index outside it is a ``StoreError``."""
        with self._store.reading() as rows:
            tree = self._synced_tree(rows)
        try:
            return prove(tree)
        except ValueError as exc:
            raise StoreError(str(exc)) from exc

    def prove_serial(self, serial: str) -> dict[str, Any]:
        """A device's entries with inclusion proofs against the latest checkpoint, as JSON data.
        ``serial`` matches in either case; the answer names the serial as the log wrote it.

        A third party checks each entry by hashing ``leaf`` (UTF-8) with ``leaf_hash``, running
        ``verify_inclusion`` against the root in ``checkpoint`` and verifying that note's
        signature with the log's verifier key.
        """
        with self._store.reading() as stored:
            tree = self._synced_tree(stored)
            row = stored.latest_checkpoint()
            # Serials are hex; an operator types either case (indexed lookups, no full scan).
            rows = stored.entries_for_serials({serial, serial.upper(), serial.lower()})
        if row is None:
            raise StoreError("the audit log has no checkpoint yet")
        note = row.note.encode("utf-8")
        head = _unsigned(note)
        proofs = []
        for entry_row in rows:
            entry = _entry_from_row(entry_row)
            if entry.index >= head.size:
                continue  # not yet covered by a checkpoint (cannot happen through ``AuditLog``)
            proofs.append(
                {
                    "index": entry.index,
                    "leaf": entry.leaf().decode("utf-8"),
                    "leaf_hash_hex": tree.leaf(entry.index).hex(),
                    "inclusion_proof_hex": [
                        node.hex() for node in tree.inclusion_proof(entry.index, head.size)
                    ],
                }
            )
        return {
            "origin": self.origin,
            "serial": rows[0].serial if rows else serial,
            "tree_size": head.size,
            "root_hash_b64": base64.b64encode(head.root_hash).decode("ascii"),
            "checkpoint": note.decode("utf-8"),
            "entries": proofs,
        }

    # -- verification ----------------------------------------------------------------------

    def verify_all(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        published: Sequence[bytes] = (),
    ) -> VerificationReport:
        """Re-compute the tree from the entries and check every checkpoint against it.

        Checks, in one pass: each entry's position and content (its canonical leaf recomputed
        against the stored leaf hash), each checkpoint's signature and root, the consistency of
        successive checkpoints (an RFC 6962 proof from the recomputed tree, checked by the RFC
        9162 verifier), that no entry lies beyond the last signed checkpoint, and the same for
        any ``published`` checkpoint notes. Raises ``LogTamperedError`` whose ``index`` is the
        first altered, deleted or reordered entry found. A checkpoint mismatch only bounds the
        bad entry to the range that checkpoint newly covers: an entry found bad in that range by
        its own content is named instead; otherwise the range's first entry is.
        """
        with self._store.reading() as stored:
            rows = stored.entries()
            checkpoint_rows = stored.checkpoints()
        # (first index, message, end of the range it bounds or None for that very entry)
        findings: list[tuple[int, str, int | None]] = []

        def flag(index: int, message: str, until: int | None = None) -> None:
            findings.append((index, message, until))

        tree = MerkleTree()
        for position, row in enumerate(rows):
            if row.seq != position:
                flag(position, f"missing (deleted or moved); the next stored entry is {row.seq}")
                break
            try:
                recomputed = _entry_from_row(row).leaf_hash()
            except EncodingError as exc:
                flag(position, f"does not decode: {exc}")
                recomputed = row.leaf_hash
            if recomputed != row.leaf_hash:
                flag(position, "altered: its content does not hash to its stored leaf hash")
            tree.append(recomputed)

        previous: Checkpoint | None = None
        matched = 0  # the largest checkpointed size whose root matches the recomputed tree
        for held in checkpoint_rows:
            covered_from = previous.size if previous else 0
            try:
                head = open_checkpoint(held.note.encode("utf-8"), public_key, self.origin)
            except VerificationError as exc:
                flag(
                    covered_from,
                    f"checkpoint at size {held.tree_size} is not valid: {exc}",
                    held.tree_size,
                )
                continue
            if head.size != held.tree_size or head.root_hash != held.root_hash:
                flag(
                    covered_from,
                    f"checkpoint row {held.tree_size} differs from its signed note",
                    held.tree_size,
                )
            if previous is not None and previous.size > 0 and head.size <= tree.size:
                try:
                    verify_consistency(
                        previous.size,
                        head.size,
                        tree.consistency_proof(previous.size, head.size),
                        previous.root_hash,
                        head.root_hash,
                    )
                except VerificationError:
                    flag(
                        matched,
                        f"checkpoint at size {head.size} is not consistent with the checkpoint "
                        f"at size {previous.size} over the stored entries",
                        head.size,
                    )
            if head.size > tree.size:
                flag(tree.size, f"missing: the checkpoint at size {head.size} covers it")
            elif tree.root(head.size) != head.root_hash:
                flag(
                    matched,
                    f"the entries {matched}..{head.size - 1} do not match the signed checkpoint "
                    f"at size {head.size} (the first bad entry is among them)",
                    head.size,
                )
            else:
                matched = max(matched, head.size)
            previous = head

        latest_size = previous.size if previous else 0
        if tree.size > latest_size:
            flag(latest_size, "not covered by any signed checkpoint (appended outside the log)")
        for note in published:
            head = open_checkpoint(note, public_key, self.origin)
            if head.size > tree.size:
                flag(tree.size, f"missing: a published checkpoint at size {head.size} covers it")
            elif tree.root(head.size) != head.root_hash:
                flag(
                    0,
                    f"the log does not match the published checkpoint at size {head.size}",
                    head.size,
                )
        precise = [(i, message) for i, message, until in findings if until is None]
        bounded = [
            (i, message)
            for i, message, until in findings
            if until is not None and not any(i <= j < until for j, _ in precise)
        ]
        if precise or bounded:
            index, message = min(precise + bounded, key=lambda finding: finding[0])
            raise LogTamperedError(message, index)
        return VerificationReport(
            entries=len(rows),
            checkpoints=len(checkpoint_rows),
            tree_size=latest_size,
            root_hash=previous.root_hash if previous else EMPTY_ROOT,
        )

    # -- internals -------------------------------------------------------------------------

    def _synced_tree(self, rows: AuditLogRows) -> MerkleTree:
        """The cached tree if it still matches the database, else one rebuilt from it.

        In sync means: the same number of entries, and the latest stored checkpoint's root is
        the cached tree's root at that size. When another writer (a second line process) has
        appended since, the cached tree takes the new leaves only, if they follow it without a gap
        and the result matches the latest checkpoint (which that writer signed over the same
        tree); anything else rebuilds from every stored leaf. A rebuilt tree that does not match
        the latest checkpoint means the stored leaves were altered; we refuse to go on from there.
        """
        size = rows.size()
        latest = rows.latest_checkpoint()

        def matches(tree: MerkleTree) -> bool:
            if latest is None:
                return True
            return latest.tree_size <= tree.size and tree.root(latest.tree_size) == latest.root_hash

        cached, self._tree = self._tree, None
        if cached is not None and cached.size < size:
            newer = rows.leaf_hashes(cached.size)
            try:
                if [seq for seq, _ in newer] != list(range(cached.size, size)):
                    raise ValueError("not the entries that follow the cached tree")
                for _, digest in newer:
                    cached.append(digest)
            except ValueError:
                cached = None  # the full rebuild below says what is wrong
        if cached is not None and cached.size == size and matches(cached):
            self._tree = cached
            return cached
        tree = MerkleTree(digest for _, digest in rows.leaf_hashes())
        if tree.size != size:
            raise LogTamperedError("the entry sequence has gaps (an entry was deleted)")
        if not matches(tree):
            raise LogTamperedError("the stored entries do not match the latest signed checkpoint")
        self._tree = tree
        return tree


class AuditLog(AuditLogReader):
    """The writable log: appends entries and signs checkpoints with the HSM's log key."""

    def __init__(
        self, engine_or_url: Engine | str | Path, signer: Signer, origin: str, clock: Clock
    ) -> None:
        super().__init__(engine_or_url, origin)
        # Checks the key name and that the key is P-256 (signed-note type 0x02).
        self.verifier_key = verifier_key(origin, signer.public_key())
        if not isinstance(signer.hash_algorithm, hashes.SHA256):
            raise ConfigError("the audit log key signs SHA-256 digests (P-256)")
        self._signer = signer
        self._clock = clock
        # The tables are part of the store's schema (Alembic revision 0001).
        self._store.migrate()

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        signer: Signer,
        origin: str,
        clock: Clock,
        *,
        engine: Engine | None = None,
    ) -> AuditLog:
        """The log in a data directory (in ``engine`` if given, e.g. the authority's PostgreSQL);
        writes ``audit-log.vkey`` the first time."""
        directory = Path(data_dir)
        log = cls(engine or directory, signer, origin, clock)
        vkey_path = directory / VKEY_FILENAME
        if vkey_path.exists():
            if vkey_path.read_text().strip() != log.verifier_key:
                raise ConfigError(f"{vkey_path} names another log key or origin")
        else:
            vkey_path.write_text(log.verifier_key + "\n")
        return log

    def append(
        self,
        kind: str,
        serial: str | None,
        body: dict[str, Any],
        *,
        connection: Transaction | None = None,
    ) -> Entry:
        """Append one event and the signed checkpoint covering it, in one transaction."""
        return self.append_many([AuditEvent(kind=kind, serial=serial, body=body)], connection)[0]

    def append_many(
        self, events: Iterable[AuditEvent], connection: Transaction | None = None
    ) -> list[Entry]:
        """Append events and one signed checkpoint covering them all, in one transaction.

        With ``connection``, the rows join the caller's open transaction (so a manifest row and
        its log entry commit together); the caller commits or rolls back.
        """
        batch = list(events)
        if not batch:
            raise ValueError("append_many needs at least one event")
        prepared = [
            (_check_kind(event.kind), _check_serial(event.serial), _body_json(event.body))
            for event in batch
        ]

        def write(rows: AuditLogRows) -> list[Entry]:
            tree = self._synced_tree(rows)
            logged_at = _timestamp(self._clock.now())
            stored: list[EntryRow] = []
            for offset, (kind, serial, body_json) in enumerate(prepared):
                index = tree.size + offset
                leaf = _compose_leaf(
                    index=index, logged_at=logged_at, kind=kind, serial=serial, body_json=body_json
                )
                stored.append(
                    EntryRow(
                        seq=index,
                        logged_at=logged_at,
                        kind=kind,
                        serial=serial,
                        body=body_json,
                        leaf_hash=leaf_hash(leaf),
                    )
                )
            self._tree = None  # until the rows and the checkpoint are written
            rows.add_entries(stored)
            for row in stored:
                tree.append(row.leaf_hash)
            self._sign_and_store(rows, tree)
            self._tree = tree
            return [_entry_from_row(row) for row in stored]

        return self._store.write(write, connection, on_failure=self._forget_tree)

    def checkpoint(self, *, connection: Transaction | None = None) -> SignedCheckpoint:
        """The signed checkpoint at the current size, signing one if there is none yet."""

        def write(rows: AuditLogRows) -> SignedCheckpoint:
            return self._sign_and_store(rows, self._synced_tree(rows))

        return self._store.write(write, connection, on_failure=self._forget_tree)

    def _forget_tree(self) -> None:
        """A write failed or lost a race: the next one re-reads the log. (Within a caller's
        transaction, which may still roll back, ``_synced_tree`` notices next time.)"""
        self._tree = None

    def _sign_and_store(self, rows: AuditLogRows, tree: MerkleTree) -> SignedCheckpoint:
        size = tree.size
        root = tree.root()
        existing = rows.checkpoint_at(size)
        if existing is not None:
            note = existing.note.encode("utf-8")
            return SignedCheckpoint(checkpoint=_unsigned(note), note=note)
        previous = rows.latest_checkpoint()
        if previous is not None and 0 < previous.tree_size < size:
            # c2sp.org/tlog-checkpoint: a log MUST NOT sign a checkpoint inconsistent with one
            # it signed before. Checked with the verifier, not assumed from the prover.
            verify_consistency(
                previous.tree_size,
                size,
                tree.consistency_proof(previous.tree_size, size),
                previous.root_hash,
                root,
            )
        head = Checkpoint(origin=self.origin, size=size, root_hash=root)
        note = sign_checkpoint(head, self._signer)
        rows.add_checkpoint(
            CheckpointRow(tree_size=size, root_hash=root, note=note.decode("utf-8"))
        )
        return SignedCheckpoint(checkpoint=head, note=note)


def _check_kind(kind: str) -> str:
    if not _KIND.fullmatch(str(kind)):
        raise EncodingError(f"invalid audit event kind {kind!r}")
    return str(kind)


def _check_serial(serial: str | None) -> str | None:
    if serial is not None and (not serial or len(serial) > 128 or not serial.isprintable()):
        raise EncodingError(f"invalid device serial {serial!r}")
    return serial


def _body_json(body: dict[str, Any]) -> str:
    if not isinstance(body, dict):
        raise EncodingError("an audit event body is a JSON object")
    if _plain(body):
        # No floats, integers within the I-JSON range: the text reads back to the same value.
        return _PLAIN_JSON.encode(body)
    text = _rfc8785(body, "audit event body").decode("utf-8")
    # The reading path (``Entry.leaf``) decodes the stored text and canonicalises it again. A float
    # in [2^53, 1e21) is written as an integer literal (RFC 8785 §3.2.2.3) that then reads back as
    # an integer outside the I-JSON range and would not re-encode: refuse it here.
    json.loads(text, parse_int=_safe_integer)
    return text


def _safe_integer(literal: str) -> int:
    value = int(literal)
    if not -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        raise EncodingError(f"{literal} is outside the I-JSON integer range (RFC 7493 §2.2)")
    return value


def load_verifier_key(data_dir: str | Path) -> tuple[str, ec.EllipticCurvePublicKey]:
    """The origin and public key from ``<data-dir>/audit-log.vkey``."""
    path = Path(data_dir) / VKEY_FILENAME
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the audit log verifier key {path}: {exc}") from exc
    return parse_verifier_key(text)
