"""The provisioning line's run: units through the four steps, in batches, resumable.

The steps and their durability are described in ``fleetid.factory.line``; the card steps are
those of ``fleetid.factory.personalisation``, here run one at a time with the manifest and audit
log committed between them. The HSM holds every key: SCP03 session keys come from its CMAC
(``HsmSessionKeys``), PUT KEY blocks arrive wrapped, and the line CA signs through it. Each
finished unit counts in ``fleetid_line_units_total`` by outcome, each quarantine in
``fleetid_line_quarantines_total`` by the step that failed (``fleetid.metrics``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid import metrics
from fleetid.clock import Clock
from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError, HsmError, SecureElementError, VerificationError
from fleetid.factory import personalisation
from fleetid.factory.auditlog import AuditEvent, AuditLog, EventKind
from fleetid.factory.ceremony import CeremonyRecord
from fleetid.factory.line.collector import CollectorPolicy, default_collections
from fleetid.factory.line.crash import NO_CRASH, CrashPlan
from fleetid.factory.line.encoding import DerCache, certificates_der, spki
from fleetid.factory.line.encoding import fingerprint as fingerprint_once
from fleetid.factory.line.manifest import ManifestReader, manifest_entry
from fleetid.factory.line.session_keys import HsmSessionKeys
from fleetid.factory.line.values import CardSource, LineConfig, LineReport, ManifestEntry
from fleetid.factory.manufacturer import IdevidIssuer
from fleetid.factory.personalisation import device_serial
from fleetid.hsm.base import Hsm, Scp03KeySet
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import aes_key_component
from fleetid.se.wire import IDENTITY_AID, ISD_AID, CardLifeCycle
from fleetid.store.engine import Engine
from fleetid.store.line_manifest_rows import (
    FINAL_STATES,
    LineManifestRows,
    ManifestTransaction,
    Step,
    UnitState,
)
from fleetid.store.writer_lock import exclusive_file_lock

__all__ = ["ProvisioningLine", "open_line"]

_ALWAYS_WRITTEN: Final = frozenset({"state", "step", "updated_at"})

# Audit log event kinds (fleetid.factory.auditlog.EventKind where one exists).


class _Quarantine(Exception):
    """A unit failed a step; carries the step it reached and why."""

    def __init__(self, reached: Step, reason: str, void_idevid: str | None = None) -> None:
        super().__init__(reason)
        self.reached = reached
        self.reason = reason
        self.void_idevid = void_idevid


@dataclass(kw_only=True)
class _Unit(DerCache):
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

    def log(self, kind: EventKind, body: dict[str, Any]) -> None:
        """Queue an audit event about this unit; the batch's commit appends it to the log."""
        self.events.append(AuditEvent(kind=kind, serial=self.serial, body=body))


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
        crash: CrashPlan = NO_CRASH,
        collections: CollectorPolicy = default_collections,
    ) -> None:
        """``crash`` and ``collections`` are chosen by the entry point: the fault-injection
        plan of the crash tests, and how the garbage collector runs during ``run``."""
        self._hsm = hsm
        self._lock_path = lock_path
        self._record = record
        self._manifest = LineManifestRows(engine)
        self._log = log
        self._clock = clock
        self._config = config or LineConfig()
        self._crash = crash.reached
        self._collections = collections
        self._line_signer: Signer = hsm.signer(record.line_ca_label)
        # What every IDevID of this line CA shares is encoded once (checked against pyca's),
        # when the first unit is certified.
        self._idevid_issuer: IdevidIssuer | None = None
        self._firmware_key = hsm.public_key(record.firmware_key_label)
        # What every unit gets above its own IDevID, encoded and fingerprinted once per line.
        line_ca, root = record.line_ca_certificate, record.root_certificate
        self._chain_tail_der = certificates_der(line_ca, root)
        self._root_der = certificates_der(root)
        self._chain_tail_fingerprints = [fingerprint_once(line_ca), fingerprint_once(root)]
        self._firmware_spki = spki(self._firmware_key)
        self._firmware_spki_sha256 = hashlib.sha256(self._firmware_spki).hexdigest()
        applet_key = self._config.applet_signing_key
        self._applet_spki_sha256 = (
            None if applet_key is None else hashlib.sha256(applet_key).hexdigest()
        )
        enc, mac, dek = record.transport_labels
        self._transport = (enc, mac, dek)
        self._manifest.ensure_schema()

    # --- reading the manifest ---------------------------------------------------------------

    def manifest(self) -> list[ManifestEntry]:
        return ManifestReader(self._manifest).entries()

    def entry(self, unit: str) -> ManifestEntry | None:
        return ManifestReader(self._manifest).entry(unit)

    # --- running ------------------------------------------------------------------------------

    def run(self, units: Sequence[str], cards: CardSource) -> LineReport:
        """Process every listed unit that has no final state yet; idempotent."""
        with self._collections():
            return self._run(units, cards)

    def _run(self, units: Sequence[str], cards: CardSource) -> LineReport:
        # Unit, serial and state of every row (which serials are taken, who is done); the
        # whole row, certificates and keys decoded, only for units a crash left unfinished.
        briefs, unfinished = self._manifest.briefs_and_rows(units)
        states = {b.unit: b.state for b in briefs}
        rows = {unit: manifest_entry(row) for unit, row in unfinished.items()}
        accepted = {b.serial: b.unit for b in briefs if b.accepted}
        pending = [u for u in units if states.get(u) not in FINAL_STATES]
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
                metrics.LINE_UNITS.labels(item.outcome.value).inc()
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
            cplc = personalisation.read_identity(client)
        except (SecureElementError, EncodingError) as exc:
            item.serial = f"UNREADABLE-{item.unit}"
            raise _Quarantine(Step.NONE, f"CPLC unreadable: {exc}") from exc
        item.kdd = cplc.kdd
        item.serial = device_serial(cplc.kdd)
        owner = accepted.get(item.serial)
        if owner is not None and owner != item.unit:
            item.outcome = UnitState.DUPLICATE
            item.reason = f"serial {item.serial} already presented by unit {owner}"
            item.log(
                EventKind.DUPLICATE_SERIAL,
                {"unit": item.unit, "first_unit": owner, "refused": True},
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
            item.log(
                EventKind.IDENTIFIED,
                {
                    "unit": item.unit,
                    "ic_serial": cplc.ic_serial.hex().upper(),
                    "ic_batch": cplc.ic_batch,
                    "kdd": item.kdd.hex().upper(),
                },
            )

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
                personalisation.open_channel(
                    client,
                    ISD_AID,
                    HsmSessionKeys(self._hsm, enc=enc, mac=mac, length=16),
                    cfg.transport_kvn,
                    cfg.security_level,
                )
            except (SecureElementError, VerificationError, EncodingError) as exc:
                raise _Quarantine(
                    Step.IDENTIFIED, f"SCP03 with the transport keys failed: {exc}"
                ) from exc
            wrapped = [self._hsm.wrap_for_put_key(k, dek) for k in item.keys.derived()]
            blocks = [aes_key_component(w.ciphertext, w.length, w.kcv) for w in wrapped]
            try:
                personalisation.replace_key_set(
                    client,
                    new_kvn=cfg.device_kvn,
                    blocks=blocks,
                    kcvs=[w.kcv for w in wrapped],
                    replace_kvn=cfg.transport_kvn,
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
        try:
            personalisation.open_channel(
                client, IDENTITY_AID, device_session, cfg.device_kvn, cfg.security_level
            )
        except (SecureElementError, VerificationError, EncodingError) as exc:
            raise _Quarantine(
                Step.IDENTIFIED, f"card does not authenticate with its device keys: {exc}"
            ) from exc
        item.kcvs = kcvs
        item.step = Step.INJECTED
        item.log(
            EventKind.INJECTION,
            {
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

    def _inject_and_certify(self, item: _Unit) -> None:
        assert item.client is not None  # noqa: S101 - step 1 powered it on
        self._inject(item, item.client)
        self._certify(item, item.client)

    def _certify(self, item: _Unit, client: SecureElementClient) -> None:
        """GENERATE the attestation key inside the identity session ``_inject`` opened."""
        cfg = self._config
        try:
            public_key = personalisation.generate_attestation_key(client, cfg.attestation_curve)
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
        item.log(
            EventKind.CERTIFICATION,
            {
                "unit": item.unit,
                "idevid_sha256": item.fingerprint(idevid),
                "certificate_serial": format(idevid.serial_number, "x"),
                "attestation_spki_sha256": hashlib.sha256(item.der(public_key)).hexdigest(),
                "canonical_spki_sha256": hashlib.sha256(item.der(canonical_key)).hexdigest(),
                "issuer": self._record.line_ca_label,
            },
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
        try:
            # A resumed unit's key was never recorded: step 3 did not commit.
            return personalisation.generate_canonical_key(
                client, self._config.canonical_curve, discard_existing=item.resumed
            )
        except SecureElementError as exc:
            raise _Quarantine(Step.INJECTED, f"canonical key generation failed: {exc}") from exc

    def _attest_canonical(self, item: _Unit, client: SecureElementClient) -> x509.Certificate:
        """ATTEST the recorded canonical key; the card must still hold that very key."""
        client.select_identity()
        if item.canonical_key is None:
            # Certified by a line without canonical keys, resumed here: make it now.
            item.canonical_key = self._generate_canonical(item, client)
        return personalisation.attest_canonical_key(
            client, item.serial, item.canonical_key, der=item.der
        )

    # --- step 4 -------------------------------------------------------------------------------

    def _secure(self, item: _Unit) -> None:
        cfg = self._config
        client = item.client
        assert item.idevid is not None and client is not None  # noqa: S101 - steps 1-3 ran
        fingerprint = item.fingerprint(item.idevid)
        personalisation.open_channel(
            client, ISD_AID, self._device_session(item), cfg.device_kvn, cfg.security_level
        )
        # Only a resumed unit can be past OP_READY here (a crash after SET STATUS).
        life_cycle = client.life_cycle() if item.resumed else CardLifeCycle.OP_READY
        if life_cycle is not CardLifeCycle.SECURED:
            # The whole chain, device first (docs/se-apdu.md DGI 0F01); the root is also the anchor.
            chain_der = item.der(item.idevid) + self._chain_tail_der
            try:
                # One STORE DATA sequence with three DGIs (GPCS §11.11; docs/se-apdu.md).
                personalisation.install(
                    client,
                    personalisation.objects(
                        chain=chain_der,
                        trust_anchors=self._root_der,
                        firmware_key=self._firmware_spki,
                        applet_signing_key=self._config.applet_signing_key,
                    ),
                )
            except SecureElementError as exc:
                raise _Quarantine(
                    Step.CERTIFIED,
                    f"STORE DATA failed: {exc}; IDevID {fingerprint} was never installed "
                    "and is void",
                    void_idevid=fingerprint,
                ) from exc
            self._crash("after-store-data")
            personalisation.set_secured(client, life_cycle)
            self._crash("after-set-status")
        item.canonical_attestation = self._attest_canonical(item, client)
        item.step = Step.SECURED
        item.outcome = UnitState.SECURED
        installed = {
            "unit": item.unit,
            "attestation_chain": [fingerprint, *self._chain_tail_fingerprints],
            "trust_anchors": self._chain_tail_fingerprints[-1:],
            "firmware_key_spki_sha256": self._firmware_spki_sha256,
            "canonical_attestation_sha256": item.fingerprint(item.canonical_attestation),
        }
        if self._applet_spki_sha256 is not None:
            installed["applet_signing_key_spki_sha256"] = self._applet_spki_sha256
        item.log(EventKind.INSTALLATION, installed)
        item.log(EventKind.LOCK, {"unit": item.unit, "life_cycle": CardLifeCycle.SECURED.name})

    # --- outcomes -----------------------------------------------------------------------------

    def _quarantine(self, item: _Unit, q: _Quarantine) -> None:
        item.outcome = UnitState.QUARANTINED
        item.reason = q.reason
        body: dict[str, Any] = {"unit": item.unit, "failed_step": int(q.reached) + 1}
        metrics.LINE_QUARANTINES.labels(str(body["failed_step"])).inc()
        body["reason"] = q.reason
        if q.void_idevid is not None:
            body["void_idevid_sha256"] = q.void_idevid
        else:
            item.idevid = None  # a certificate exists only if recorded before installation
        item.log(EventKind.QUARANTINE, body)

    def _commit(self, batch: Iterable[_Unit]) -> None:
        """Write the batch's manifest rows and audit entries in one transaction.

        Line processes sharing a data directory serialise their commits on ``line.lock``; a
        serial first seen in this batch is checked against the manifest inside the transaction,
        so two processes can never both accept one serial.
        """
        items = [item for item in batch if item.events]
        if not items:
            return
        with self._exclusive(), self._manifest.transaction() as transaction:
            fresh = [
                item
                for item in items
                if not item.recorded and item.outcome is UnitState.IN_PROGRESS
            ]
            if fresh:
                self._refuse_taken(transaction, fresh)
            now = _timestamp(self._clock.now())
            events = [event for item in items for event in item.events]
            self._write_rows(transaction, items, now)
            self._log.append_many(events, connection=transaction.connection)
        for item in items:
            item.events = []
            item.recorded = True

    def _refuse_taken(self, transaction: ManifestTransaction, fresh: list[_Unit]) -> None:
        """Turn units whose serial another unit already holds into duplicates (one query)."""
        owners = transaction.owners([item.serial for item in fresh])
        for item in fresh:
            owner = owners.get(item.serial)
            if owner is None or owner == item.unit:
                continue
            item.outcome = UnitState.DUPLICATE
            item.step = Step.NONE
            item.client = None
            item.reason = f"serial {item.serial} already presented by unit {owner}"
            item.events = []
            item.log(
                EventKind.DUPLICATE_SERIAL,
                {"unit": item.unit, "first_unit": owner, "refused": True},
            )

    def _exclusive(self) -> AbstractContextManager[None]:
        return nullcontext() if self._lock_path is None else exclusive_file_lock(self._lock_path)

    def _row(self, item: _Unit, now: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            "serial": item.serial,
            "state": item.outcome,
            "step": item.step,
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

    def _write_rows(self, transaction: ManifestTransaction, items: list[_Unit], now: str) -> None:
        """Insert new rows and update recorded ones with the columns that changed."""
        inserts = []
        for item in items:
            if not item.recorded:
                item.written = self._row(item, now)
                inserts.append({"unit": item.unit, **item.written})
        transaction.insert(inserts)
        updates: dict[str, dict[str, Any]] = {}
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
                updates[item.unit] = changed
        transaction.update(updates)


def open_line(
    data_dir: Path,
    *,
    clock: Clock,
    config: LineConfig | None = None,
    crash: CrashPlan = NO_CRASH,
    collections: CollectorPolicy = default_collections,
    pkcs11_module: str | None = None,
) -> ProvisioningLine:
    """The line of a data directory, on its activated HSM; ``crash`` and ``collections`` as
    for ``ProvisioningLine``, ``pkcs11_module`` the PKCS#11 library of a PKCS#11 HSM (else the
    ceremony config's, else SoftHSM2's where Debian installs it).

    Raises ``HsmNotActivatedError`` until custodians have run ``fleetid ceremony activate``.
    """
    from fleetid.factory.ceremony import open_activated_hsm
    from fleetid.store.engine import open_engine

    hsm, record = open_activated_hsm(data_dir, clock=clock, pkcs11_module=pkcs11_module)
    log = AuditLog.open(data_dir, hsm.signer(record.audit_key_label), record.log_origin, clock)
    return ProvisioningLine(
        hsm=hsm,
        record=record,
        engine=open_engine(data_dir),
        log=log,
        clock=clock,
        config=config,
        lock_path=data_dir / "line.lock",
        crash=crash,
        collections=collections,
    )


def _timestamp(when: datetime) -> str:
    return when.isoformat()
