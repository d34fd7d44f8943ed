"""The ceremony's public record (``<data-dir>/ceremony.json``): labels, certificates, custody and
the signed transcript; everything the line needs and nothing secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.errors import (
    CeremonyError,
)
from fleetid.factory.ceremony.config import HsmSpec, backend_name

__all__ = ["RECORD_FILE", "CeremonyRecord", "load_record", "pem", "transport_labels"]

RECORD_FILE: Final = "ceremony.json"
_RECORD_FORMAT: Final = "fleetid-ceremony-record/1"


@dataclass(frozen=True, kw_only=True)
class CeremonyRecord:
    """What the ceremony left in the data directory for the line: public material only."""

    ceremony_id: str
    threshold: int
    total: int
    custodians: tuple[str, ...]
    kek_kcv: bytes
    organization: str
    root_label: str
    line_ca_label: str
    line_id: str
    line_master_label: str
    audit_key_label: str
    log_origin: str
    firmware_key_label: str
    transport_label: str
    hsm: HsmSpec
    root_certificate: x509.Certificate
    line_ca_certificate: x509.Certificate
    transcript: dict[str, Any]
    signatures: dict[str, str]

    @property
    def transport_labels(self) -> tuple[str, str, str]:
        return transport_labels(self.transport_label)

    def to_json(self) -> str:
        doc = {
            "format": _RECORD_FORMAT,
            "ceremony_id": self.ceremony_id,
            "threshold": self.threshold,
            "total": self.total,
            "custodians": list(self.custodians),
            "kek_kcv": self.kek_kcv.hex(),
            "organization": self.organization,
            "labels": {
                "root": self.root_label,
                "line_ca": self.line_ca_label,
                "line_master": self.line_master_label,
                "audit_log": self.audit_key_label,
                "firmware": self.firmware_key_label,
                "transport": self.transport_label,
            },
            "line_id": self.line_id,
            "log_origin": self.log_origin,
            "hsm": {
                "backend": self.hsm.backend,
                "token_label": self.hsm.token_label,
                "so_pin_env": self.hsm.so_pin_env,
                "module": self.hsm.module,
            },
            "root_certificate": pem(self.root_certificate),
            "line_ca_certificate": pem(self.line_ca_certificate),
            "transcript": self.transcript,
            "signatures": self.signatures,
        }
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CeremonyRecord:
        try:
            doc = json.loads(text)
            if doc.get("format") != _RECORD_FORMAT:
                raise CeremonyError(f"not a {_RECORD_FORMAT} file")
            labels, hsm = doc["labels"], doc["hsm"]
            return cls(
                ceremony_id=doc["ceremony_id"],
                threshold=int(doc["threshold"]),
                total=int(doc["total"]),
                custodians=tuple(doc["custodians"]),
                kek_kcv=bytes.fromhex(doc["kek_kcv"]),
                organization=doc["organization"],
                root_label=labels["root"],
                line_ca_label=labels["line_ca"],
                line_id=doc["line_id"],
                line_master_label=labels["line_master"],
                audit_key_label=labels["audit_log"],
                log_origin=doc["log_origin"],
                firmware_key_label=labels["firmware"],
                transport_label=labels["transport"],
                hsm=HsmSpec(
                    backend=backend_name(hsm["backend"]),
                    token_label=hsm["token_label"],
                    so_pin_env=hsm["so_pin_env"],
                    module=hsm["module"],
                ),
                root_certificate=x509.load_pem_x509_certificate(doc["root_certificate"].encode()),
                line_ca_certificate=x509.load_pem_x509_certificate(
                    doc["line_ca_certificate"].encode()
                ),
                transcript=doc["transcript"],
                signatures=doc["signatures"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CeremonyError(f"ceremony record is incomplete or malformed: {exc}") from exc


def load_record(data_dir: Path) -> CeremonyRecord:
    """The record ``init_ceremony`` left in ``data_dir``; ``CeremonyError`` if there is none."""
    path = data_dir / RECORD_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise CeremonyError(
            f"no ceremony in {data_dir}: run `fleetid ceremony init` first"
        ) from exc
    return CeremonyRecord.from_json(text)


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def transport_labels(prefix: str) -> tuple[str, str, str]:
    return (f"{prefix}.enc", f"{prefix}.mac", f"{prefix}.dek")
