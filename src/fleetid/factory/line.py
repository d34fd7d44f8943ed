"""The provisioning line: blank secure element in, attested and locked device out.

Per unit, four steps (the seed's "line" pattern):

1. IDENTIFIED: power on a blank card from the wafer (transport keys, OP_READY) and read its chip
   serial (CPLC, GET DATA 9F7F). The device serial is the 10-byte KDD built from the CPLC
   (fabricator, type, batch, IC serial), in upper-case hex.
2. INJECTED: open SCP03 with the transport keys and PUT KEY the per-device ENC/MAC/DEK,
   diversified from the line master key inside the HSM and wrapped there under the transport
   Key-DEK. The host handles ciphertext, KCVs and session keys only: the SCP03 session keys come
   from the HSM's AES-CMAC (``HsmSessionKeys``), so no static key ever reaches this process.
3. CERTIFIED: GENERATE the attestation key on the card (slot F0); the line CA (HSM) issues the
   IEEE 802.1AR IDevID for its public key, serial in an RFC 4108 HardwareModuleName. GENERATE
   the vehicle's canonical signing key too (slot ``CANONICAL_KEY_HANDLE``, sign only, never
   exportable): the key an EA knows the vehicle by (ETSI TS 102 941 §6.2.3.2). The manifest
   records its public key.
4. SECURED: STORE DATA the IDevID chain, the manufacturer trust anchor and the firmware
   verification key; SET STATUS INITIALIZED then SECURED (GPCS §5.1.1): the card refuses
   re-personalisation from then on. Then the card ATTESTs the canonical key (its certificate
   chains to the IDevID; the challenge is ``canonical_challenge(serial)``), and the manifest
   records that certificate, so an EA can import the manufactured vehicles from the manifest and
   check each canonical key against the manufacturer root itself.

Durability. Steps 1-3 of a batch commit in one transaction, step 4 in another; each commit
writes the manifest rows and their audit-log entries (with the serial) together, and the log
signs a checkpoint covering them. The certificate is recorded *before* it is installed (a
write-ahead record), so every certificate that ever reaches a card is in the log. A card can be
ahead of the manifest after a crash, never behind, and each step recognises that: a card that
already holds the device key set (GET DATA 00E0) skips PUT KEY but must authenticate with the
HSM-derived keys; an attestation key is regenerated unless one was certified; a card already
SECURED is only recorded. Re-running processes every unit without a final state, once.

Quarantine. A unit that fails a step never gets a certificate onto its card: the manifest row
says ``quarantined`` with the reason, and the log has a ``quarantine`` entry. A STORE DATA
failure happens after issuance; that IDevID is recorded as void (never installed) and the unit is
quarantined. A second chip presenting a serial already accepted gets a ``duplicate`` row of its
own and a ``duplicate-serial`` log entry, and is not touched further.

Fault injection for crash tests: ``FLEETID_LINE_CRASH=<point>`` makes the process ``os._exit``
the first time it reaches that point (see ``CRASH_POINTS``).
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from fleetid.clock import Clock
from fleetid.crypto.signer import Signer
from fleetid.errors import (
    EncodingError,
    HsmError,
    SecureElementError,
    StoreError,
    VerificationError,
)
from fleetid.factory.auditlog import AuditEvent, AuditLog
from fleetid.factory.ceremony import CeremonyRecord
from fleetid.factory.manufacturer import IdevidIssuer, certificate_fingerprint
from fleetid.formats import x509_tbs
from fleetid.formats.attestation import KeyUsage
from fleetid.hsm.base import DerivedKey, Hsm, Scp03KeySet
from fleetid.se.client import SecureElementClient, Transport
from fleetid.se.scp03 import SessionKeys, aes_key_component, session_keys_by_prf
from fleetid.se.state import CardLifeCycle, Curve
from fleetid.se.wire import PersonalisationObject
from fleetid.store.bulk import execute_many
from fleetid.store.manifest_table import line_manifest
from fleetid.store.migrate import ensure_schema
from fleetid.store.writer_lock import exclusive_file_lock

__all__ = [
    "CANONICAL_KEY_HANDLE",
    "CRASH_POINTS",
    "DEVICE_KVN",
    "CardSource",
    "HsmSessionKeys",
    "LineConfig",
    "LineReport",
    "ManifestEntry",
    "ManifestReader",
    "ProvisioningLine",
    "Step",
    "UnitState",
    "canonical_challenge",
    "device_serial",
    "open_line",
]

DEVICE_KVN: Final = 0x30
#: The identity-applet slot of the vehicle's canonical key (docs/se-apdu.md: host handles 01-7F).
CANONICAL_KEY_HANDLE: Final = 0x01
CRASH_ENV: Final = "FLEETID_LINE_CRASH"
CRASH_POINTS: Final = (
    "identified",  # CPLC read, nothing done to the card
    "after-put-key",  # card holds the device keys, manifest does not know
    "after-generate",  # card holds an uncertified attestation key
    "after-issue",  # IDevID signed, not recorded
    "after-certified-commit",  # IDevID recorded, not installed
    "after-store-data",  # chain installed, card not locked
    "after-set-status",  # card SECURED, manifest does not know
    "after-secured-commit",  # everything recorded
)
_CRASH_EXIT: Final = 86
_IN_CHUNK: Final = 500  # units per SQL IN list (SQLite's bound-parameter limit)
_ALWAYS_WRITTEN: Final = frozenset({"state", "step", "updated_at"})
_GEN0_THRESHOLD: Final = 10_000  # see _fewer_collections
# Dies without unwinding (no finally, no flush): what a power cut or SIGKILL leaves behind.
_hard_exit = os._exit

# Audit log event kinds (fleetid.factory.auditlog.EventKind where one exists).
_IDENTIFIED: Final = "identified"
_INJECTION: Final = "injection"
_CERTIFICATION: Final = "certification"
_INSTALLATION: Final = "installation"
_LOCK: Final = "lock"
_QUARANTINE: Final = "quarantine"
_DUPLICATE: Final = "duplicate-serial"


class Step(IntEnum):
    """The last step whose effect is recorded for a unit."""

    NONE = 0
    IDENTIFIED = 1
    INJECTED = 2
    CERTIFIED = 3
    SECURED = 4


class UnitState(StrEnum):
    IN_PROGRESS = "in-progress"
    SECURED = "secured"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"


_FINAL: Final = frozenset({UnitState.SECURED, UnitState.QUARANTINED, UnitState.DUPLICATE})


class CardSource(Protocol):
    """Where the line gets its cards: the wafer (emulated) or a reader (PC/SC)."""

    def power_on(self, unit: str) -> Transport: ...


@dataclass(frozen=True, kw_only=True)
class LineConfig:
    transport_kvn: int = 0x01
    device_kvn: int = DEVICE_KVN
    security_level: int = 0x33  # C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION (Amd D Table 7-6)
    attestation_curve: Curve = Curve.P256
    #: The canonical key's curve: P-256 or brainpoolP256r1 (ETSI TS 103 097 §5 end-entity keys).
    canonical_curve: Curve = Curve.P256
    batch_size: int = 64


@dataclass(frozen=True, kw_only=True)
class ManifestEntry:
    """One unit's row of the line manifest."""

    unit: str
    serial: str
    state: UnitState
    step: Step
    reason: str | None
    key_version: int | None
    attestation_public_key: ec.EllipticCurvePublicKey | None
    idevid: x509.Certificate | None
    idevid_fingerprint: str | None
    canonical_public_key: ec.EllipticCurvePublicKey | None = None
    canonical_attestation: x509.Certificate | None = None


@dataclass(frozen=True, kw_only=True)
class LineReport:
    processed: int
    secured: int
    quarantined: int
    duplicates: int
    already_done: int


class ManifestReader:
    """Read-only access to the line manifest, needing no HSM (the enrolment side uses this)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def entries(self) -> list[ManifestEntry]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(line_manifest).order_by(line_manifest.c.unit)).all()
        return [_entry(row) for row in rows]

    def by_serial(self, serial: str) -> ManifestEntry | None:
        """The accepted unit (secured or quarantined) holding ``serial``, if any."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(line_manifest).where(
                    line_manifest.c.serial == serial,
                    line_manifest.c.state != UnitState.DUPLICATE.value,
                )
            ).first()
        return None if row is None else _entry(row)

    def require_secured(self, serial: str) -> ManifestEntry:
        """The secured unit with ``serial``; raise ``VerificationError`` for any other answer."""
        entry = self.by_serial(serial)
        if entry is None:
            raise VerificationError(f"serial {serial} is not on the line manifest")
        if entry.state is not UnitState.SECURED:
            raise VerificationError(f"serial {serial} left the line {entry.state.value}")
        return entry


def device_serial(kdd: bytes) -> str:
    """The device serial: the CPLC-derived KDD in upper-case hex."""
    return kdd.hex().upper()


def canonical_challenge(serial: str) -> bytes:
    """The ATTEST challenge for a unit's canonical key: bound to its serial, so a certificate
    cannot be moved to another manifest row (32 bytes, within ATTEST's 64)."""
    return hashlib.sha256(b"fleetid canonical key\x00" + serial.encode()).digest()


class HsmSessionKeys:
    """SCP03 session keys (Amd D §6.2.1) derived with the HSM's AES-CMAC over static keys it holds.

    The one SCP03 KDF (``fleetid.crypto.symmetric.scp03_kdf``, Amd D §4.1.5) runs with the HSM's
    AES-CMAC under the static key's handle as its PRF: each 16-byte block is one CMAC the HSM
    computes. The static keys stay in the HSM; the session keys reach the host, as the spec
    intends.
    """

    def __init__(self, hsm: Hsm, *, enc: DerivedKey | str, mac: DerivedKey | str, length: int):
        self._hsm, self._enc, self._mac, self._length = hsm, enc, mac, length

    def session_keys(self, host_challenge: bytes, card_challenge: bytes) -> SessionKeys:
        return session_keys_by_prf(
            partial(self._hsm.aes_cmac, self._enc),
            partial(self._hsm.aes_cmac, self._mac),
            host_challenge,
            card_challenge,
            self._length * 8,
        )


class _Quarantine(Exception):
    """A unit failed a step; carries the step it reached and why."""

    def __init__(self, reached: Step, reason: str, void_idevid: str | None = None) -> None:
        super().__init__(reason)
        self.reached = reached
        self.reason = reason
        self.void_idevid = void_idevid


@dataclass(kw_only=True)
class _Unit:
    """What the line knows about one unit while a batch is in flight."""

    unit: str
    serial: str = ""
    kdd: bytes = b""
    row: ManifestEntry | None = None
    events: list[AuditEvent] = field(default_factory=list)
    keys: Scp03KeySet | None = None
    kcvs: bytes = b""
    attestation_key: ec.EllipticCurvePublicKey | None = None
    idevid: x509.Certificate | None = None
    canonical_key: ec.EllipticCurvePublicKey | None = None
    canonical_attestation: x509.Certificate | None = None
    client: SecureElementClient | None = None
    recorded: bool = False
    resumed: bool = False
    outcome: UnitState = UnitState.IN_PROGRESS
    step: Step = Step.NONE
    reason: str | None = None
    #: The manifest columns as this run last wrote them (a later commit sends what changed).
    written: dict[str, Any] = field(default_factory=dict)
    # DER of the keys and certificates above, by object: each is encoded once per unit.
    _encoded: dict[int, tuple[object, bytes]] = field(default_factory=dict, repr=False)

    def der(self, value: x509.Certificate | ec.EllipticCurvePublicKey) -> bytes:
        """DER of a certificate, SubjectPublicKeyInfo of a public key; once per object."""
        cached = self._encoded.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        der = _der(value) if isinstance(value, x509.Certificate) else _spki(value)
        self._encoded[id(value)] = (value, der)
        return der

    def fingerprint(self, certificate: x509.Certificate) -> str:
        """``certificate_fingerprint``: SHA-256 of the DER, lower-case hex."""
        return hashlib.sha256(self.der(certificate)).hexdigest()


class ProvisioningLine:
    """Runs units through the four steps against an activated HSM; see the module docstring."""

    def __init__(
        self,
        *,
        hsm: Hsm,
        record: CeremonyRecord,
        engine: Engine,
        log: AuditLog,
        clock: Clock,
        config: LineConfig | None = None,
        lock_path: Path | None = None,
    ) -> None:
        self._hsm = hsm
        self._lock_path = lock_path
        self._record = record
        self._engine = engine
        self._log = log
        self._clock = clock
        self._config = config or LineConfig()
        self._crash_at = os.environ.get(CRASH_ENV, "")
        self._line_signer: Signer = hsm.signer(record.line_ca_label)
        # What every IDevID of this line CA shares is encoded once (checked against pyca's),
        # when the first unit is certified.
        self._idevid_issuer: IdevidIssuer | None = None
        self._firmware_key = hsm.public_key(record.firmware_key_label)
        # What every unit gets above its own IDevID, encoded and fingerprinted once per line.
        line_ca, root = record.line_ca_certificate, record.root_certificate
        self._chain_tail_der = _der(line_ca, root)
        self._root_der = _der(root)
        self._chain_tail_fingerprints = [_fingerprint(line_ca), _fingerprint(root)]
        self._firmware_spki = _spki(self._firmware_key)
        self._firmware_spki_sha256 = hashlib.sha256(self._firmware_spki).hexdigest()
        enc, mac, dek = record.transport_labels
        self._transport = (enc, mac, dek)
        try:
            # The manifest's shape is the Alembic head (revision 0002 added the canonical key).
            ensure_schema(engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the line manifest table: {exc}") from exc

    # --- reading the manifest ---------------------------------------------------------------

    def manifest(self) -> list[ManifestEntry]:
        return ManifestReader(self._engine).entries()

    def entry(self, unit: str) -> ManifestEntry | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(line_manifest).where(line_manifest.c.unit == unit)).first()
        return None if row is None else _entry(row)

    # --- running ------------------------------------------------------------------------------

    def run(self, units: Sequence[str], cards: CardSource) -> LineReport:
        """Process every listed unit that has no final state yet; idempotent."""
        with _fewer_collections():
            return self._run(units, cards)

    def _run(self, units: Sequence[str], cards: CardSource) -> LineReport:
        manifest = line_manifest.c
        with self._engine.connect() as conn:
            # Unit, serial and state of every row (which serials are taken, who is done); the
            # whole row, certificates and keys decoded, only for units a crash left unfinished.
            brief = conn.execute(select(manifest.unit, manifest.serial, manifest.state)).all()
            states = {r.unit: UnitState(r.state) for r in brief}
            unfinished = [u for u in units if u in states and states[u] not in _FINAL]
            rows: dict[str, ManifestEntry] = {}
            for start in range(0, len(unfinished), _IN_CHUNK):
                chunk = unfinished[start : start + _IN_CHUNK]
                query = select(line_manifest).where(manifest.unit.in_(chunk))
                rows.update((r.unit, _entry(r)) for r in conn.execute(query))
        accepted = {r.serial: r.unit for r in brief if r.state != UnitState.DUPLICATE.value}
        pending = [u for u in units if states.get(u) not in _FINAL]
        already_done = len(units) - len(pending)
        totals = {state: 0 for state in UnitState}
        size = max(1, self._config.batch_size)
        for start in range(0, len(pending), size):
            batch = [
                _Unit(unit=u, row=rows.get(u), recorded=u in states, resumed=u in states)
                for u in pending[start : start + size]
            ]
            try:
                for item in batch:
                    self._guarded(item, self._identify, cards, accepted)
                self._commit(batch)
                self._crash("identified")
                for item in batch:
                    if item.outcome is UnitState.IN_PROGRESS and item.step < Step.CERTIFIED:
                        self._guarded(item, self._inject_and_certify)
                self._commit(batch)
                self._crash("after-certified-commit")
                for item in batch:
                    if item.outcome is UnitState.IN_PROGRESS:
                        self._guarded(item, self._secure)
                self._commit(batch)
                self._crash("after-secured-commit")
            finally:
                for item in batch:
                    if item.keys is not None:
                        self._hsm.release(item.keys)
                        item.keys = None
            for item in batch:
                totals[item.outcome] += 1
        return LineReport(
            processed=len(pending),
            secured=totals[UnitState.SECURED],
            quarantined=totals[UnitState.QUARANTINED],
            duplicates=totals[UnitState.DUPLICATE],
            already_done=already_done,
        )

    def _guarded(self, item: _Unit, step: Callable[..., None], *args: Any) -> None:
        """Run one step for one unit; any card or verification failure quarantines it."""
        try:
            step(item, *args)
        except _Quarantine as q:
            self._quarantine(item, q)
        except (SecureElementError, EncodingError, VerificationError) as exc:
            void = item.fingerprint(item.idevid) if item.idevid is not None else None
            reason = f"card failed at step {item.step + 1}: {exc}"
            if void is not None:
                reason += f"; IDevID {void} is void"
            self._quarantine(item, _Quarantine(item.step, reason, void_idevid=void))

    # --- steps 1-3 ----------------------------------------------------------------------------

    def _identify(self, item: _Unit, cards: CardSource, accepted: dict[str, str]) -> None:
        try:
            client = SecureElementClient(cards.power_on(item.unit))
            client.select_isd()
            cplc = client.cplc()
        except (SecureElementError, EncodingError) as exc:
            item.serial = f"UNREADABLE-{item.unit}"
            raise _Quarantine(Step.NONE, f"CPLC unreadable: {exc}") from exc
        item.kdd = cplc.kdd
        item.serial = device_serial(cplc.kdd)
        owner = accepted.get(item.serial)
        if owner is not None and owner != item.unit:
            item.outcome = UnitState.DUPLICATE
            item.reason = f"serial {item.serial} already presented by unit {owner}"
            item.events.append(
                AuditEvent(
                    kind=_DUPLICATE,
                    serial=item.serial,
                    body={"unit": item.unit, "first_unit": owner, "refused": True},
                )
            )
            return
        accepted[item.serial] = item.unit
        item.client = client
        item.step = Step.IDENTIFIED
        if item.row is not None:
            # Resuming a unit recorded before a crash: carry on from its recorded step.
            item.step = max(item.row.step, Step.IDENTIFIED)
            item.attestation_key = item.row.attestation_public_key
            item.idevid = item.row.idevid
            item.canonical_key = item.row.canonical_public_key
        else:
            item.events.append(
                AuditEvent(
                    kind=_IDENTIFIED,
                    serial=item.serial,
                    body={
                        "unit": item.unit,
                        "ic_serial": cplc.ic_serial.hex().upper(),
                        "ic_batch": cplc.ic_batch,
                        "kdd": item.kdd.hex().upper(),
                    },
                )
            )

    def _open(self, client: SecureElementClient, keys: HsmSessionKeys, kvn: int) -> None:
        # HostSession takes a SessionKeySource (static keys held in the HSM); the client's
        # signature names StaticKeys only.
        client.open_secure_channel(keys, self._config.security_level, key_version=kvn)

    def _device_session(self, item: _Unit) -> HsmSessionKeys:
        if item.keys is None:
            item.keys = self._hsm.derive_scp03_keys(self._record.line_master_label, item.kdd)
        return HsmSessionKeys(
            self._hsm, enc=item.keys.enc, mac=item.keys.mac, length=item.keys.enc.length
        )

    def _inject(self, item: _Unit, client: SecureElementClient) -> None:
        cfg = self._config
        # A unit first seen in this run was untouched until now (step 1 committed before any
        # change to the card); only a resumed one may already hold the device key set.
        versions = (
            {kvn for _, kvn, _, _ in client.key_information()}
            if item.resumed
            else {cfg.transport_kvn}
        )
        device_session = self._device_session(item)
        assert item.keys is not None  # noqa: S101 - set by _device_session
        kcvs = b"".join(k.kcv for k in item.keys.derived())
        if cfg.device_kvn not in versions:
            enc, mac, dek = self._transport
            try:
                self._open(
                    client,
                    HsmSessionKeys(self._hsm, enc=enc, mac=mac, length=16),
                    cfg.transport_kvn,
                )
            except (SecureElementError, VerificationError, EncodingError) as exc:
                raise _Quarantine(
                    Step.IDENTIFIED, f"SCP03 with the transport keys failed: {exc}"
                ) from exc
            wrapped = [self._hsm.wrap_for_put_key(k, dek) for k in item.keys.derived()]
            blocks = [aes_key_component(w.ciphertext, w.length, w.kcv) for w in wrapped]
            try:
                client.put_key_components(
                    cfg.device_kvn,
                    blocks,
                    replace_kvn=cfg.transport_kvn,
                    kcvs=[w.kcv for w in wrapped],
                )
            except SecureElementError as exc:
                raise _Quarantine(Step.IDENTIFIED, f"card refused PUT KEY: {exc}") from exc
            except EncodingError as exc:
                raise _Quarantine(
                    Step.IDENTIFIED, f"PUT KEY key check values do not match the HSM's: {exc}"
                ) from exc
            self._crash("after-put-key")
        # The card proves it holds the HSM-derived keys by authenticating with them (Amd D §6.2.2);
        # the identity applet takes its secure channel from the ISD's key sets.
        client.select_identity()
        try:
            self._open(client, device_session, cfg.device_kvn)
        except (SecureElementError, VerificationError, EncodingError) as exc:
            raise _Quarantine(
                Step.IDENTIFIED, f"card does not authenticate with its device keys: {exc}"
            ) from exc
        item.kcvs = kcvs
        item.step = Step.INJECTED
        item.events.append(
            AuditEvent(
                kind=_INJECTION,
                serial=item.serial,
                body={
                    "unit": item.unit,
                    "key_version": cfg.device_kvn,
                    "replaced_key_version": cfg.transport_kvn,
                    "kcvs": {
                        "enc": item.keys.enc.kcv.hex().upper(),
                        "mac": item.keys.mac.kcv.hex().upper(),
                        "dek": item.keys.dek.kcv.hex().upper(),
                    },
                    "master": self._record.line_master_label,
                },
            )
        )

    def _inject_and_certify(self, item: _Unit) -> None:
        assert item.client is not None  # noqa: S101 - step 1 powered it on
        self._inject(item, item.client)
        self._certify(item, item.client)

    def _certify(self, item: _Unit, client: SecureElementClient) -> None:
        """GENERATE the attestation key inside the identity session ``_inject`` opened."""
        cfg = self._config
        try:
            public_key = client.generate_attestation_key(cfg.attestation_curve)
        except SecureElementError as exc:
            raise _Quarantine(Step.INJECTED, f"attestation key generation failed: {exc}") from exc
        self._crash("after-generate")
        canonical_key = self._generate_canonical(item, client)
        try:
            idevid = self._idevids().issue(
                public_key=public_key,
                device_serial=item.serial,
                chip_serial=item.kdd,
                now=self._clock.now(),
            )
        except (HsmError, VerificationError) as exc:
            raise _Quarantine(Step.INJECTED, f"IDevID issuance failed: {exc}") from exc
        self._crash("after-issue")
        item.attestation_key = public_key
        item.canonical_key = canonical_key
        item.idevid = idevid
        item.step = Step.CERTIFIED
        item.events.append(
            AuditEvent(
                kind=_CERTIFICATION,
                serial=item.serial,
                body={
                    "unit": item.unit,
                    "idevid_sha256": item.fingerprint(idevid),
                    "certificate_serial": format(idevid.serial_number, "x"),
                    "attestation_spki_sha256": hashlib.sha256(item.der(public_key)).hexdigest(),
                    "canonical_spki_sha256": hashlib.sha256(item.der(canonical_key)).hexdigest(),
                    "issuer": self._record.line_ca_label,
                },
            )
        )

    def _idevids(self) -> IdevidIssuer:
        if self._idevid_issuer is None:
            self._idevid_issuer = IdevidIssuer(
                line_ca=self._record.line_ca_certificate,
                line_ca_signer=self._line_signer,
                organization=self._record.organization,
            )
        return self._idevid_issuer

    def _generate_canonical(
        self, item: _Unit, client: SecureElementClient
    ) -> ec.EllipticCurvePublicKey:
        """GENERATE the canonical key; a resumed unit's unrecorded one is discarded first."""
        if item.resumed and any(h == CANONICAL_KEY_HANDLE for h, _, _ in client.list_keys()):
            client.delete_key(CANONICAL_KEY_HANDLE)  # never recorded: step 3 did not commit
        try:
            info = client.generate_key(
                self._config.canonical_curve, KeyUsage.SIGN, handle=CANONICAL_KEY_HANDLE
            )
        except SecureElementError as exc:
            raise _Quarantine(Step.INJECTED, f"canonical key generation failed: {exc}") from exc
        return info.public_key

    def _attest_canonical(self, item: _Unit, client: SecureElementClient) -> x509.Certificate:
        """ATTEST the recorded canonical key; the card must still hold that very key."""
        client.select_identity()
        if item.canonical_key is None:
            # Certified by a line without canonical keys, resumed here: make it now.
            item.canonical_key = self._generate_canonical(item, client)
        attestation = client.attest(CANONICAL_KEY_HANDLE, canonical_challenge(item.serial))
        if not x509_tbs.certifies(item.der(attestation), item.der(item.canonical_key)):
            raise VerificationError("the card attests another canonical key than the recorded one")
        return attestation

    # --- step 4 -------------------------------------------------------------------------------

    def _secure(self, item: _Unit) -> None:
        cfg = self._config
        client = item.client
        assert item.idevid is not None and client is not None  # noqa: S101 - steps 1-3 ran
        fingerprint = item.fingerprint(item.idevid)
        client.select_isd()
        self._open(client, self._device_session(item), cfg.device_kvn)
        # Only a resumed unit can be past OP_READY here (a crash after SET STATUS).
        life_cycle = client.life_cycle() if item.resumed else CardLifeCycle.OP_READY
        if life_cycle is not CardLifeCycle.SECURED:
            # The whole chain, device first (docs/se-apdu.md DGI 0F01); the root is also the anchor.
            chain_der = item.der(item.idevid) + self._chain_tail_der
            try:
                # One STORE DATA sequence with three DGIs (GPCS §11.11; docs/se-apdu.md).
                client.store_data(
                    [
                        (PersonalisationObject.ATTESTATION_CHAIN[0], chain_der),
                        (PersonalisationObject.TRUST_ANCHORS[0], self._root_der),
                        (PersonalisationObject.FIRMWARE_KEY[0], self._firmware_spki),
                    ]
                )
            except SecureElementError as exc:
                raise _Quarantine(
                    Step.CERTIFIED,
                    f"STORE DATA failed: {exc}; IDevID {fingerprint} was never installed "
                    "and is void",
                    void_idevid=fingerprint,
                ) from exc
            self._crash("after-store-data")
            if life_cycle is CardLifeCycle.OP_READY:
                client.set_status(CardLifeCycle.INITIALIZED)
            client.set_status(CardLifeCycle.SECURED)
            self._crash("after-set-status")
        item.canonical_attestation = self._attest_canonical(item, client)
        item.step = Step.SECURED
        item.outcome = UnitState.SECURED
        item.events.append(
            AuditEvent(
                kind=_INSTALLATION,
                serial=item.serial,
                body={
                    "unit": item.unit,
                    "attestation_chain": [fingerprint, *self._chain_tail_fingerprints],
                    "trust_anchors": self._chain_tail_fingerprints[-1:],
                    "firmware_key_spki_sha256": self._firmware_spki_sha256,
                    "canonical_attestation_sha256": item.fingerprint(item.canonical_attestation),
                },
            )
        )
        item.events.append(
            AuditEvent(
                kind=_LOCK,
                serial=item.serial,
                body={"unit": item.unit, "life_cycle": CardLifeCycle.SECURED.name},
            )
        )

    # --- outcomes -----------------------------------------------------------------------------

    def _quarantine(self, item: _Unit, q: _Quarantine) -> None:
        item.outcome = UnitState.QUARANTINED
        item.reason = q.reason
        body: dict[str, Any] = {"unit": item.unit, "failed_step": int(q.reached) + 1}
        body["reason"] = q.reason
        if q.void_idevid is not None:
            body["void_idevid_sha256"] = q.void_idevid
        else:
            item.idevid = None  # a certificate exists only if recorded before installation
        item.events.append(AuditEvent(kind=_QUARANTINE, serial=item.serial, body=body))

    def _commit(self, batch: Iterable[_Unit]) -> None:
        """Write the batch's manifest rows and audit entries in one transaction.

        Line processes sharing a data directory serialise their commits on ``line.lock``; a
        serial first seen in this batch is checked against the manifest inside the transaction,
        so two processes can never both accept one serial.
        """
        items = [item for item in batch if item.events]
        if not items:
            return
        with self._exclusive():
            try:
                with self._engine.begin() as conn:
                    fresh = [
                        item
                        for item in items
                        if not item.recorded and item.outcome is UnitState.IN_PROGRESS
                    ]
                    if fresh:
                        self._refuse_taken(conn, fresh)
                    now = _timestamp(self._clock.now())
                    events = [event for item in items for event in item.events]
                    self._write_rows(conn, items, now)
                    self._log.append_many(events, connection=conn)
            except SQLAlchemyError as exc:
                raise StoreError(f"line manifest commit failed: {exc}") from exc
        for item in items:
            item.events = []
            item.recorded = True

    def _refuse_taken(self, conn: Connection, fresh: list[_Unit]) -> None:
        """Turn units whose serial another unit already holds into duplicates (one query)."""
        owners = {
            row.serial: row.unit
            for row in conn.execute(
                select(line_manifest.c.unit, line_manifest.c.serial).where(
                    line_manifest.c.serial.in_([item.serial for item in fresh]),
                    line_manifest.c.state != UnitState.DUPLICATE.value,
                )
            )
        }
        for item in fresh:
            owner = owners.get(item.serial)
            if owner is None or owner == item.unit:
                continue
            item.outcome = UnitState.DUPLICATE
            item.step = Step.NONE
            item.client = None
            item.reason = f"serial {item.serial} already presented by unit {owner}"
            item.events = [
                AuditEvent(
                    kind=_DUPLICATE,
                    serial=item.serial,
                    body={"unit": item.unit, "first_unit": owner, "refused": True},
                )
            ]

    def _exclusive(self) -> AbstractContextManager[None]:
        return nullcontext() if self._lock_path is None else exclusive_file_lock(self._lock_path)

    def _row(self, item: _Unit, now: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            "serial": item.serial,
            "state": item.outcome.value,
            "step": int(item.step),
            "reason": item.reason,
            "updated_at": now,
        }
        if item.kcvs:
            values["key_version"] = self._config.device_kvn
            values["key_kcvs"] = item.kcvs.hex().upper()
        if item.attestation_key is not None:
            values["attestation_public_key"] = item.der(item.attestation_key)
        if item.idevid is not None:
            values["idevid"] = item.der(item.idevid)
            values["idevid_fingerprint"] = item.fingerprint(item.idevid)
        if item.canonical_key is not None:
            values["canonical_public_key"] = item.der(item.canonical_key)
        if item.canonical_attestation is not None:
            values["canonical_attestation"] = item.der(item.canonical_attestation)
        return values

    def _write_rows(self, conn: Connection, items: list[_Unit], now: str) -> None:
        """Insert new rows and update recorded ones, as executemany per shape of row."""
        inserts = []
        for item in items:
            if not item.recorded:
                item.written = self._row(item, now)
                inserts.append({"unit": item.unit, **item.written})
        if inserts:
            shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
            for values in inserts:
                shapes.setdefault(frozenset(values), []).append(values)
            for group in shapes.values():
                execute_many(conn, insert(line_manifest), group)
        updates: dict[frozenset[str], list[dict[str, Any]]] = {}
        for item in items:
            if item.recorded:
                row = self._row(item, now)
                # Columns this run already wrote with the same value are left as they are.
                changed = {
                    k: v
                    for k, v in row.items()
                    if k in _ALWAYS_WRITTEN or k not in item.written or item.written[k] != v
                }
                item.written.update(changed)
                values = {"target_unit": item.unit, **changed}
                updates.setdefault(frozenset(values), []).append(values)
        for group in updates.values():
            columns: dict[str, Any] = {k: bindparam(k) for k in group[0] if k != "target_unit"}
            execute_many(
                conn,
                update(line_manifest)
                .where(line_manifest.c.unit == bindparam("target_unit"))
                .values(columns),
                group,
            )

    def _crash(self, point: str) -> None:
        if self._crash_at == point:
            _hard_exit(_CRASH_EXIT)


def open_line(
    data_dir: Path, *, clock: Clock, config: LineConfig | None = None
) -> ProvisioningLine:
    """The line of a data directory, on its activated HSM.

    Raises ``HsmNotActivatedError`` until custodians have run ``fleetid ceremony activate``.
    """
    from fleetid.factory.ceremony import open_activated_hsm
    from fleetid.store.engine import open_engine

    hsm, record = open_activated_hsm(data_dir, clock=clock)
    log = AuditLog.open(data_dir, hsm.signer(record.audit_key_label), record.log_origin, clock)
    return ProvisioningLine(
        hsm=hsm,
        record=record,
        engine=open_engine(data_dir),
        log=log,
        clock=clock,
        config=config,
        lock_path=data_dir / "line.lock",
    )


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run with CPython's cyclic collector triggered less often, restored afterwards.

    A unit allocates thousands of short-lived objects (APDUs, session contexts, certificates,
    SQL parameters); with the default threshold (700 net allocations) the collector runs every
    few units and now and then walks the whole heap, which cost about 5 % of the line's CPU.
    What exists when the run starts (the card source, the HSM, imported modules) is frozen
    (``gc.freeze``) for the run unless the caller froze something already, so the full
    collections that still come do not walk it. Reference counting still frees everything
    acyclic at once; the cyclic collector still runs, once per ``_GEN0_THRESHOLD`` allocations.
    """
    before = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(before[0], _GEN0_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freeze:
            gc.unfreeze()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@lru_cache(maxsize=4096)
def _fingerprint(certificate: x509.Certificate) -> str:
    """``certificate_fingerprint``, once per certificate: a unit's IDevID is named in its events
    and manifest row at several steps."""
    return certificate_fingerprint(certificate)


def _der(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certificates)


def _timestamp(when: datetime) -> str:
    return when.isoformat()


def _ec_key(unit: str, der: bytes | None, what: str) -> ec.EllipticCurvePublicKey | None:
    if der is None:
        return None
    loaded = serialization.load_der_public_key(bytes(der))
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise StoreError(f"unit {unit}: {what} is not EC")
    return loaded


def _certificate(der: bytes | None) -> x509.Certificate | None:
    return None if der is None else x509.load_der_x509_certificate(bytes(der))


def _entry(row: Any) -> ManifestEntry:
    public = _ec_key(row.unit, row.attestation_public_key, "attestation key")
    idevid = _certificate(row.idevid)
    return ManifestEntry(
        unit=row.unit,
        serial=row.serial,
        state=UnitState(row.state),
        step=Step(row.step),
        reason=row.reason,
        key_version=row.key_version,
        attestation_public_key=public,
        idevid=idevid,
        idevid_fingerprint=row.idevid_fingerprint,
        canonical_public_key=_ec_key(row.unit, row.canonical_public_key, "canonical key"),
        canonical_attestation=_certificate(row.canonical_attestation),
    )
