"""``init_ceremony``: the keys created in a new HSM, the shares written, the transcript logged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetid.clock import Clock
from fleetid.crypto.shamir import new_kek, split_kek, wrap_under_kek
from fleetid.errors import (
    CeremonyError,
)
from fleetid.factory.auditlog import AuditLog, EventKind
from fleetid.factory.ceremony.config import CeremonyConfig
from fleetid.factory.ceremony.files import write_public, write_share
from fleetid.factory.ceremony.hsm_factory import initialise_hsm
from fleetid.factory.ceremony.record import RECORD_FILE, CeremonyRecord, transport_labels
from fleetid.factory.ceremony.transcript import build_transcript, sign_transcript
from fleetid.factory.manufacturer import (
    ManufacturerNames,
    issue_line_ca,
    issue_root,
)
from fleetid.hsm.base import KeyKind

__all__ = ["CeremonyOutcome", "init_ceremony"]


@dataclass(frozen=True, kw_only=True)
class CeremonyOutcome:
    """The public record a ceremony left, and the custodians' share files it wrote."""

    record: CeremonyRecord
    share_files: tuple[Path, ...]


def init_ceremony(
    config: CeremonyConfig,
    data_dir: Path,
    *,
    clock: Clock,
    shares_dir: Path | None = None,
    so_pin: str | None = None,
    pkcs11_module: str | None = None,
) -> CeremonyOutcome:
    """Run the ceremony: create the keys in a new HSM, write shares, log the signed transcript.

    Refuses a data directory that already holds a ceremony. Leaves the HSM locked: the line
    needs ``activate`` with M shares. ``so_pin`` is the token's SO PIN (a PKCS#11 HSM only);
    ``pkcs11_module`` the module when the config names none (``hsm_factory.initialise_hsm``).
    """
    config.check()
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / RECORD_FILE).exists():
        raise CeremonyError(f"{data_dir} already holds ceremony material; use a new data dir")
    shares_dir = shares_dir or data_dir / "shares"
    shares_dir.mkdir(parents=True, exist_ok=True)
    now = clock.now()

    kek = new_kek(config.kek_bits)
    hsm = initialise_hsm(config.hsm, data_dir, kek, so_pin=so_pin, pkcs11_module=pkcs11_module)
    try:
        root_public = hsm.generate_ec_key(config.root.label, config.root.curve)
        line_public = hsm.generate_ec_key(config.line_ca.label, config.line_ca.curve)
        log_public = hsm.generate_ec_key(config.audit_key.label, config.audit_key.curve)
        firmware_public = hsm.generate_ec_key(config.firmware_key.label, config.firmware_key.curve)
        master_kcv = hsm.generate_aes_key(config.line_master_label, config.line_master_bits)
        transport_kcvs = []
        keys = config.transport_keys
        for label, key in zip(
            transport_labels(config.transport_label), (keys.enc, keys.mac, keys.dek), strict=True
        ):
            transport_kcvs.append(
                hsm.unwrap_aes_key(label, wrap_under_kek(kek, key), KeyKind.TRANSPORT)
            )

        names = ManufacturerNames(organization=config.organization, country=config.country)
        root_signer = hsm.signer(config.root.label)
        root_cert = issue_root(names=names, signer=root_signer, now=now)
        line_cert = issue_line_ca(
            names=names,
            line_id=config.line_id,
            line_ca_public_key=line_public,
            root=root_cert,
            root_signer=root_signer,
            now=now,
        )

        shares = split_kek(
            kek,
            ceremony_id=config.ceremony_id,
            threshold=config.threshold,
            custodians=config.custodians,
        )
        share_files = tuple(write_share(shares_dir, share) for share in shares)

        transcript = build_transcript(
            config=config,
            now=now,
            kek_kcv=shares[0].kek_kcv,
            publics={
                config.root.label: ("manufacturer-root-ca", root_public),
                config.line_ca.label: ("line-ca", line_public),
                config.audit_key.label: ("audit-log", log_public),
                config.firmware_key.label: ("firmware-signing", firmware_public),
            },
            aes_kcvs={
                config.line_master_label: ("line-master-kdk", master_kcv),
                **{
                    label: ("transport", kcv)
                    for label, kcv in zip(
                        transport_labels(config.transport_label), transport_kcvs, strict=True
                    )
                },
            },
            certificates={"manufacturer-root-ca": root_cert, "line-ca": line_cert},
        )
        signatures = sign_transcript(
            transcript,
            {
                "audit-log": hsm.signer(config.audit_key.label),
                "manufacturer-root-ca": root_signer,
            },
        )
        record = CeremonyRecord(
            ceremony_id=config.ceremony_id,
            threshold=config.threshold,
            total=len(config.custodians),
            custodians=config.custodians,
            kek_kcv=shares[0].kek_kcv,
            organization=config.organization,
            root_label=config.root.label,
            line_ca_label=config.line_ca.label,
            line_id=config.line_id,
            line_master_label=config.line_master_label,
            audit_key_label=config.audit_key.label,
            log_origin=config.log_origin,
            firmware_key_label=config.firmware_key.label,
            transport_label=config.transport_label,
            hsm=config.hsm,
            root_certificate=root_cert,
            line_ca_certificate=line_cert,
            transcript=transcript,
            signatures=signatures,
        )
        log = AuditLog.open(data_dir, hsm.signer(config.audit_key.label), config.log_origin, clock)
        if log.entries(0, 1):
            raise CeremonyError(
                "the audit log is not empty: the transcript must be its first entry"
            )
        log.append(EventKind.CEREMONY, None, {"transcript": transcript, "signatures": signatures})
        write_public(data_dir, record)
    finally:
        hsm.lock()
    return CeremonyOutcome(record=record, share_files=share_files)
