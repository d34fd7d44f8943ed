"""The ceremony transcript: who, when, which keys (with fingerprints and check values), the
custody and the config's hash, in RFC 8785 canonical JSON, signed in the HSM by the audit-log key
and by the manufacturer root key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Final

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import Signer, verify_signature
from fleetid.errors import (
    VerificationError,
)
from fleetid.factory.ceremony.config import CeremonyConfig
from fleetid.factory.ceremony.record import CeremonyRecord
from fleetid.factory.manufacturer import (
    certificate_fingerprint,
)

__all__ = ["build_transcript", "sign_transcript", "verify_transcript"]

_TRANSCRIPT_FORMAT: Final = "fleetid-ceremony-transcript/1"


def build_transcript(
    *,
    config: CeremonyConfig,
    now: datetime,
    kek_kcv: bytes,
    publics: dict[str, tuple[str, ec.EllipticCurvePublicKey]],
    aes_kcvs: dict[str, tuple[str, bytes]],
    certificates: dict[str, x509.Certificate],
) -> dict[str, Any]:
    keys: list[dict[str, str]] = []
    for label, (role, public) in publics.items():
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keys.append(
            {
                "label": label,
                "role": role,
                "type": f"ecdsa-{public.curve.name}",
                "spki_sha256": hashlib.sha256(spki).hexdigest(),
                "public_key": spki.hex(),
            }
        )
    for label, (role, kcv) in aes_kcvs.items():
        keys.append({"label": label, "role": role, "type": "aes", "kcv": kcv.hex().upper()})
    return {
        "format": _TRANSCRIPT_FORMAT,
        "ceremony_id": config.ceremony_id,
        "purpose": config.purpose,
        "performed_at": now.isoformat(),
        "config_sha256": config.config_sha256,
        "administrator": config.administrator,
        "witnesses": list(config.witnesses),
        "custody": {
            "threshold": config.threshold,
            "total": len(config.custodians),
            "custodians": [
                {"index": i, "name": name} for i, name in enumerate(config.custodians, start=1)
            ],
            "kek_bits": config.kek_bits,
            "kek_kcv": kek_kcv.hex().upper(),
        },
        "hsm_backend": config.hsm.backend,
        "keys": keys,
        "certificates": [
            {
                "role": role,
                "subject": cert.subject.rfc4514_string(),
                "serial": format(cert.serial_number, "x"),
                "sha256": certificate_fingerprint(cert),
                "not_before": cert.not_valid_before_utc.isoformat(),
                "not_after": cert.not_valid_after_utc.isoformat(),
            }
            for role, cert in certificates.items()
        ],
        "log_origin": config.log_origin,
    }


def sign_transcript(transcript: dict[str, Any], signers: dict[str, Signer]) -> dict[str, str]:
    message = rfc8785.dumps(transcript)
    return {role: signer.sign(message).hex() for role, signer in signers.items()}


def verify_transcript(record: CeremonyRecord) -> None:
    """Check both transcript signatures against the keys the transcript itself names.

    The root signature is checked with the root certificate's key, which must be the key the
    transcript lists; raise ``VerificationError`` on any mismatch.
    """
    message = rfc8785.dumps(record.transcript)
    listed = {k["role"]: k for k in record.transcript.get("keys", []) if "public_key" in k}
    root_key = record.root_certificate.public_key()
    if not isinstance(root_key, ec.EllipticCurvePublicKey):
        raise VerificationError("the manufacturer root key is not ECDSA")
    for role, signature in sorted(record.signatures.items()):
        entry = listed.get(role)
        if entry is None:
            raise VerificationError(f"transcript signed by {role!r}, a key it does not list")
        public = serialization.load_der_public_key(bytes.fromhex(entry["public_key"]))
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise VerificationError(f"{role!r} key is not ECDSA")
        verify_signature(public, bytes.fromhex(signature), message)
    if set(record.signatures) != {"audit-log", "manufacturer-root-ca"}:
        raise VerificationError("the transcript needs the audit-log and root signatures")
    root_entry = listed["manufacturer-root-ca"]
    root_spki = root_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if root_spki.hex() != root_entry["public_key"]:
        raise VerificationError("the root certificate's key is not the transcript's root key")
