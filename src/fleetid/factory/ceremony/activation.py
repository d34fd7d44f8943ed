"""Activation: M custodian shares rebuild the KEK and activate the HSM until a set expiry.

A hardware HSM stays activated until it is reset, whatever happens to the host process. The
software HSM and a PKCS#11 session cannot outlive the process, so ``activate`` leaves
``hsm/activation.json`` (mode 0600, ``fleetid.private_file``, with an expiry): the emulated HSM's
volatile activated state, which holds the rebuilt KEK. ``deactivate`` removes it. This is where
the emulation necessarily differs from hardware (see ``docs/provisioning.md``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from fleetid.clock import Clock
from fleetid.crypto.shamir import KekShare, combine_kek
from fleetid.errors import (
    CeremonyError,
    EncodingError,
    HsmNotActivatedError,
)
from fleetid.factory.auditlog import AuditLog, EventKind
from fleetid.factory.ceremony.files import write_private_json
from fleetid.factory.ceremony.hsm_factory import HSM_DIR, open_hsm
from fleetid.factory.ceremony.record import CeremonyRecord, load_record
from fleetid.hsm.base import Hsm

__all__ = ["ACTIVATION_FILE", "activate", "deactivate", "open_activated_hsm", "read_shares"]

ACTIVATION_FILE: Final = "activation.json"
_DEFAULT_ACTIVATION: Final = timedelta(hours=12)  # one shift; custodians come back after


def read_shares(paths: Sequence[Path]) -> list[KekShare]:
    """Parse custodian share files; each error names the file."""
    shares = []
    for path in paths:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CeremonyError(f"cannot read share file {path}: {exc}") from exc
        try:
            shares.append(KekShare.from_text(text, source=str(path.name)))
        except EncodingError as exc:
            raise CeremonyError(str(exc)) from exc
    return shares


def activate(
    data_dir: Path,
    shares: Sequence[KekShare],
    *,
    clock: Clock,
    valid_for: timedelta = _DEFAULT_ACTIVATION,
    pkcs11_module: str | None = None,
) -> Hsm:
    """Rebuild the KEK from M shares, activate the HSM and log who did it; returns the HSM.

    Fewer than M shares, a corrupted share, a share of another ceremony or a wrong share raise
    ``CeremonyError`` and leave the HSM locked. The attempt is logged either way.
    """
    record = load_record(data_dir)
    presented = [{"index": s.index, "custodian": s.custodian} for s in shares]
    # A refused attempt cannot be logged here: the log key is in the locked HSM. The CLI reports it.
    kek = combine_kek(shares, ceremony_id=record.ceremony_id, expected_kcv=record.kek_kcv)
    hsm = open_hsm(record.hsm, data_dir, pkcs11_module=pkcs11_module)
    hsm.activate(kek)
    now = clock.now()
    expires = now + valid_for
    write_private_json(
        data_dir / HSM_DIR / ACTIVATION_FILE,
        {
            "ceremony_id": record.ceremony_id,
            "kek": kek.hex(),
            "activated_at": now.isoformat(),
            "expires_at": expires.isoformat(),
        },
    )
    log = AuditLog.open(data_dir, hsm.signer(record.audit_key_label), record.log_origin, clock)
    log.append(
        EventKind.ACTIVATION,
        None,
        {
            "ceremony_id": record.ceremony_id,
            "presented": presented,
            "threshold": record.threshold,
            "expires_at": expires.isoformat(),
        },
    )
    return hsm


def open_activated_hsm(
    data_dir: Path, *, clock: Clock, pkcs11_module: str | None = None
) -> tuple[Hsm, CeremonyRecord]:
    """The HSM in its activated state, as ``activate`` left it; refuse if it is not activated.
    ``pkcs11_module``: the PKCS#11 module when the ceremony config named none."""
    record = load_record(data_dir)
    path = data_dir / HSM_DIR / ACTIVATION_FILE
    hint = f"run `fleetid ceremony activate` with {record.threshold} of {record.total} shares"
    if not path.exists():
        raise HsmNotActivatedError(f"the HSM is not activated: {hint}")
    try:
        state = json.loads(path.read_text())
        kek = bytes.fromhex(state["kek"])
        expires = datetime.fromisoformat(state["expires_at"])
        ceremony_id = state["ceremony_id"]
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise HsmNotActivatedError(f"the activation state is unreadable: {hint}") from exc
    if ceremony_id != record.ceremony_id:
        raise HsmNotActivatedError(f"the activation is for another ceremony: {hint}")
    if clock.now() >= expires:
        raise HsmNotActivatedError(f"the activation expired at {expires.isoformat()}: {hint}")
    hsm = open_hsm(record.hsm, data_dir, pkcs11_module=pkcs11_module)
    hsm.activate(kek)
    return hsm, record


def deactivate(data_dir: Path, *, clock: Clock, pkcs11_module: str | None = None) -> bool:
    """Forget the activation; returns whether there was one. Logged while the key is usable."""
    try:
        hsm, record = open_activated_hsm(data_dir, clock=clock, pkcs11_module=pkcs11_module)
    except HsmNotActivatedError:
        (data_dir / HSM_DIR / ACTIVATION_FILE).unlink(missing_ok=True)
        return False
    try:
        AuditLog.open(
            data_dir, hsm.signer(record.audit_key_label), record.log_origin, clock
        ).append(EventKind.HSM_DEACTIVATED, None, {"ceremony_id": record.ceremony_id})
    finally:
        hsm.lock()
        (data_dir / HSM_DIR / ACTIVATION_FILE).unlink(missing_ok=True)
    return True
