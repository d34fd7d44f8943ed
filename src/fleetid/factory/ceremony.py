"""The key ceremony: one reviewed config file in, keys inside the HSM, custodian shares out.

The model is Let's Encrypt's ``boulder/cmd/ceremony``: the only input is a configuration file
that witnesses have reviewed (its SHA-256 is in the transcript), and the output is public
material (certificates, public keys, check values) plus one share file per custodian. Split custody
follows the YubiHSM 2 / DNSSEC root-KSK pattern: a fresh key-encryption key (KEK) protects the
HSM's stored keys and its activation; it exists in the clear only during ``init_ceremony``, is
split M-of-N with Shamir (:mod:`fleetid.crypto.shamir`) and then forgotten. M custodians bring it
back with ``activate``.

``init_ceremony`` creates, inside the HSM:

* the manufacturer root CA key and its self-signed certificate;
* the line CA key and its certificate (issued by the root);
* the line master key-derivation key (AES) that diversifies per-device SCP03 keys;
* the audit-log signing key (ECDSA P-256, as C2SP signed-note type 0x02 requires);
* the firmware signing key, whose public half the line installs on every card;
* the card batch's transport keys, imported wrapped under the KEK (RFC 5649).

Its transcript (who, when, which keys, fingerprints, M/N, the config hash) is signed in the HSM by
the audit-log key and by the root key, and becomes the first entry of the audit log.

Activation state. A hardware HSM stays activated until it is reset, whatever happens to the
host process. The software HSM and a PKCS#11 session cannot outlive the process, so ``activate``
leaves ``hsm/activation.json`` (mode 0600, with an expiry): the emulated HSM's volatile activated
state, which holds the rebuilt KEK. ``deactivate`` removes it. This is where the emulation
necessarily differs from hardware (see ``docs/provisioning.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.clock import Clock
from fleetid.crypto.shamir import KekShare, combine_kek, new_kek, split_kek, wrap_under_kek
from fleetid.crypto.signer import Signer, verify_signature
from fleetid.errors import (
    CeremonyError,
    ConfigError,
    EncodingError,
    HsmNotActivatedError,
    VerificationError,
)
from fleetid.factory.manufacturer import (
    ManufacturerNames,
    certificate_fingerprint,
    issue_line_ca,
    issue_root,
)
from fleetid.hsm.base import Hsm, KeyKind

__all__ = [
    "ACTIVATION_FILE",
    "RECORD_FILE",
    "CeremonyConfig",
    "CeremonyOutcome",
    "CeremonyRecord",
    "HsmSpec",
    "KeySpec",
    "TransportKeys",
    "activate",
    "deactivate",
    "init_ceremony",
    "load_record",
    "open_activated_hsm",
    "read_shares",
    "verify_transcript",
    "write_example_config",
]

RECORD_FILE: Final = "ceremony.json"
ACTIVATION_FILE: Final = "activation.json"
_HSM_DIR: Final = "hsm"
_PKCS11_STATE: Final = "pkcs11-activation.json"
_RECORD_FORMAT: Final = "fleetid-ceremony-record/1"
_TRANSCRIPT_FORMAT: Final = "fleetid-ceremony-transcript/1"
_CONFIG_FORMAT: Final = "fleetid-ceremony-config/1"
_DEFAULT_ACTIVATION: Final = timedelta(hours=12)  # one shift; custodians come back after
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,47}$")

CEREMONY_KIND: Final = "ceremony"
ACTIVATION_KIND: Final = "activation"
DEACTIVATION_KIND: Final = "hsm-deactivated"


# --- the reviewed config ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class KeySpec:
    """An ECDSA key to create in the HSM."""

    label: str
    curve: Literal["P-256", "P-384"]


@dataclass(frozen=True, kw_only=True)
class HsmSpec:
    """Which HSM the ceremony initialises: the software HSM in the data directory, or a token."""

    backend: Literal["software", "pkcs11"] = "software"
    token_label: str = ""
    so_pin_env: str = "FLEETID_HSM_SO_PIN"
    module: str = ""


@dataclass(frozen=True, kw_only=True)
class TransportKeys:
    """The card batch's transport (initial static) SCP03 keys, as the SE vendor delivers them."""

    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)

    def __post_init__(self) -> None:
        lengths = {len(self.enc), len(self.mac), len(self.dek)}
        if len(lengths) != 1 or lengths.pop() not in (16, 32):
            raise ConfigError("transport keys are three AES keys of 16 or 32 bytes each")


@dataclass(frozen=True, kw_only=True)
class CeremonyConfig:
    """The one reviewed input of a ceremony (see ``docs/provisioning.md`` for the TOML form)."""

    ceremony_id: str
    purpose: str
    administrator: str
    witnesses: tuple[str, ...]
    threshold: int
    custodians: tuple[str, ...]
    kek_bits: int
    organization: str
    country: str
    root: KeySpec
    line_ca: KeySpec
    line_id: str
    line_master_label: str
    line_master_bits: int
    audit_key: KeySpec
    log_origin: str
    firmware_key: KeySpec
    transport_label: str
    transport_keys: TransportKeys = field(repr=False)
    hsm: HsmSpec
    config_sha256: str

    @classmethod
    def load(cls, path: Path) -> CeremonyConfig:
        """Read and check a ceremony config (TOML); its bytes are hashed into the transcript."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read ceremony config {path}: {exc}") from exc
        return cls.from_toml(raw, base_dir=path.parent)

    @classmethod
    def from_toml(cls, raw: bytes, *, base_dir: Path) -> CeremonyConfig:
        try:
            doc = tomllib.loads(raw.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"ceremony config is not TOML: {exc}") from exc
        try:
            if doc.get("format") != _CONFIG_FORMAT:
                raise ConfigError(f"ceremony config must say format = {_CONFIG_FORMAT!r}")
            ceremony, custody = doc["ceremony"], doc["custody"]
            manufacturer, transport = doc["manufacturer"], doc["transport"]
            hsm = doc.get("hsm", {})
            keys_file = base_dir / str(transport["keys_file"])
            config = cls(
                ceremony_id=str(ceremony["id"]),
                purpose=str(ceremony.get("purpose", "")),
                administrator=str(ceremony["administrator"]),
                witnesses=tuple(str(w) for w in ceremony.get("witnesses", ())),
                threshold=int(custody["threshold"]),
                custodians=tuple(str(c) for c in custody["custodians"]),
                kek_bits=int(custody.get("kek_bits", 256)),
                organization=str(manufacturer["organization"]),
                country=str(manufacturer.get("country", "DE")),
                root=_key_spec(doc["root"]),
                line_ca=_key_spec(doc["line_ca"]),
                line_id=str(doc["line_ca"]["line_id"]),
                line_master_label=str(doc["line_master"]["label"]),
                line_master_bits=int(doc["line_master"].get("bits", 128)),
                audit_key=_key_spec(doc["audit_log"]),
                log_origin=str(doc["audit_log"]["origin"]),
                firmware_key=_key_spec(doc["firmware"]),
                transport_label=str(transport["label"]),
                transport_keys=_read_transport_keys(keys_file),
                hsm=HsmSpec(
                    backend=_backend(hsm.get("backend", "software")),
                    token_label=str(hsm.get("token_label", "")),
                    so_pin_env=str(hsm.get("so_pin_env", "FLEETID_HSM_SO_PIN")),
                    module=str(hsm.get("module", "")),
                ),
                config_sha256=hashlib.sha256(raw).hexdigest(),
            )
        except KeyError as exc:
            raise ConfigError(f"ceremony config lacks {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"ceremony config has a bad value: {exc}") from exc
        config.check()
        return config

    def check(self) -> None:
        """Refuse configs that could not make a sound ceremony, before anything is created."""
        labels = [
            self.root.label,
            self.line_ca.label,
            self.line_master_label,
            self.audit_key.label,
            self.firmware_key.label,
            self.transport_label,
        ]
        for label in labels:
            if not _NAME.match(label):
                raise ConfigError(f"key label {label!r} must match {_NAME.pattern}")
        if len(set(labels)) != len(labels):
            raise ConfigError("every key in a ceremony needs its own label")
        if not 2 <= self.threshold <= len(self.custodians):
            raise ConfigError(
                f"custody {self.threshold}-of-{len(self.custodians)} is not allowed: "
                "need 2 <= M <= N"
            )
        if self.kek_bits not in (128, 256):
            raise ConfigError("kek_bits is 128 or 256")
        if self.line_master_bits not in (128, 192, 256):
            raise ConfigError("the line master key has 128, 192 or 256 bits")
        if self.audit_key.curve != "P-256":
            raise ConfigError("the audit-log key is P-256 (C2SP signed-note type 0x02)")
        if not self.administrator or len(self.witnesses) < 1:
            raise ConfigError("a ceremony names its administrator and at least one witness")
        if self.hsm.backend == "pkcs11" and not self.hsm.token_label:
            raise ConfigError("the pkcs11 backend needs hsm.token_label")
        if len(self.country) != 2:
            raise ConfigError("country is an ISO 3166 two-letter code")


def write_example_config(
    directory: Path,
    *,
    ceremony_id: str = "acme-2027-01",
    threshold: int = 3,
    custodians: Sequence[str] = ("alice", "bob", "carol", "dave", "erin"),
    organization: str = "Acme Devices",
    backend: Literal["software", "pkcs11"] = "software",
    token_label: str = "fleetid",  # noqa: S107 - a token label, not a secret
) -> Path:
    """Write a ceremony config to review and its transport keys file (fresh random keys).

    The transport keys stand for what the SE vendor delivers with a card batch; the emulated
    wafer (``fleetid.factory.wafer``) reads the same file to make blank cards.
    """
    directory.mkdir(parents=True, exist_ok=True)
    keys_path = directory / "transport-keys.toml"
    keys = {role: secrets.token_bytes(16).hex() for role in ("enc", "mac", "dek")}
    descriptor = os.open(keys_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("# SE vendor transport keys for card batch B1 (SCP03 AES-128, KVN 0x30)\n")
        handle.writelines(f'{role} = "{value}"\n' for role, value in keys.items())
    hsm_table = f'backend = "{backend}"\n'
    if backend == "pkcs11":
        hsm_table += f'token_label = "{token_label}"\nso_pin_env = "FLEETID_HSM_SO_PIN"\n'
    custodian_list = ", ".join(json.dumps(c) for c in custodians)
    text = f"""# fleetid key ceremony: the one reviewed input. Witnesses check its SHA-256.
format = "{_CONFIG_FORMAT}"

[ceremony]
id = "{ceremony_id}"
purpose = "Manufacturer root, line CA, line master key and audit-log key for line L1"
administrator = "Ceremony Administrator"
witnesses = ["Internal Witness", "External Witness"]

[custody]
threshold = {threshold}
custodians = [{custodian_list}]
kek_bits = 256

[manufacturer]
organization = {json.dumps(organization)}
country = "DE"

[root]
label = "mfr-root-ca"
curve = "P-384"

[line_ca]
label = "line-ca-l1"
curve = "P-256"
line_id = "L1"

[line_master]
label = "line-master-l1"
bits = 128

[audit_log]
label = "audit-log"
curve = "P-256"
origin = "{organization.lower().replace(" ", "-")}.example/line/L1"

[firmware]
label = "firmware-signing"
curve = "P-256"

[transport]
label = "transport-b1"
keys_file = "{keys_path.name}"

[hsm]
{hsm_table}"""
    path = directory / "ceremony.toml"
    path.write_text(text)
    return path


# --- the public record -----------------------------------------------------------------------


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
        return _transport_labels(self.transport_label)

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
            "root_certificate": _pem(self.root_certificate),
            "line_ca_certificate": _pem(self.line_ca_certificate),
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
                    backend=_backend(hsm["backend"]),
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


@dataclass(frozen=True, kw_only=True)
class CeremonyOutcome:
    record: CeremonyRecord
    share_files: tuple[Path, ...]


# --- init ------------------------------------------------------------------------------------


def init_ceremony(
    config: CeremonyConfig,
    data_dir: Path,
    *,
    clock: Clock,
    shares_dir: Path | None = None,
) -> CeremonyOutcome:
    """Run the ceremony: create the keys in a new HSM, write shares, log the signed transcript.

    Refuses a data directory that already holds a ceremony. Leaves the HSM locked: the line
    needs ``activate`` with M shares.
    """
    from fleetid.factory.auditlog import AuditLog

    config.check()
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / RECORD_FILE).exists():
        raise CeremonyError(f"{data_dir} already holds ceremony material; use a new data dir")
    shares_dir = shares_dir or data_dir / "shares"
    shares_dir.mkdir(parents=True, exist_ok=True)
    now = clock.now()

    kek = new_kek(config.kek_bits)
    hsm = _initialise_hsm(config.hsm, data_dir, kek)
    try:
        root_public = hsm.generate_ec_key(config.root.label, config.root.curve)
        line_public = hsm.generate_ec_key(config.line_ca.label, config.line_ca.curve)
        log_public = hsm.generate_ec_key(config.audit_key.label, config.audit_key.curve)
        firmware_public = hsm.generate_ec_key(config.firmware_key.label, config.firmware_key.curve)
        master_kcv = hsm.generate_aes_key(config.line_master_label, config.line_master_bits)
        transport_kcvs = []
        keys = config.transport_keys
        for label, key in zip(
            _transport_labels(config.transport_label), (keys.enc, keys.mac, keys.dek), strict=True
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
        share_files = tuple(_write_share(shares_dir, share) for share in shares)

        transcript = _transcript(
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
                        _transport_labels(config.transport_label), transport_kcvs, strict=True
                    )
                },
            },
            certificates={"manufacturer-root-ca": root_cert, "line-ca": line_cert},
        )
        signatures = _sign_transcript(
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
        log.append(CEREMONY_KIND, None, {"transcript": transcript, "signatures": signatures})
        _write_public(data_dir, record)
    finally:
        hsm.lock()
    return CeremonyOutcome(record=record, share_files=share_files)


def _transcript(
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


def _sign_transcript(transcript: dict[str, Any], signers: dict[str, Signer]) -> dict[str, str]:
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


# --- activation ------------------------------------------------------------------------------


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
) -> Hsm:
    """Rebuild the KEK from M shares, activate the HSM and log who did it; returns the HSM.

    Fewer than M shares, a corrupted share, a share of another ceremony or a wrong share raise
    ``CeremonyError`` and leave the HSM locked. The attempt is logged either way.
    """
    from fleetid.factory.auditlog import AuditLog

    record = load_record(data_dir)
    presented = [{"index": s.index, "custodian": s.custodian} for s in shares]
    # A refused attempt cannot be logged here: the log key is in the locked HSM. The CLI reports it.
    kek = combine_kek(shares, ceremony_id=record.ceremony_id, expected_kcv=record.kek_kcv)
    hsm = _open_hsm(record.hsm, data_dir)
    hsm.activate(kek)
    now = clock.now()
    expires = now + valid_for
    _write_private_json(
        data_dir / _HSM_DIR / ACTIVATION_FILE,
        {
            "ceremony_id": record.ceremony_id,
            "kek": kek.hex(),
            "activated_at": now.isoformat(),
            "expires_at": expires.isoformat(),
        },
    )
    log = AuditLog.open(data_dir, hsm.signer(record.audit_key_label), record.log_origin, clock)
    log.append(
        ACTIVATION_KIND,
        None,
        {
            "ceremony_id": record.ceremony_id,
            "presented": presented,
            "threshold": record.threshold,
            "expires_at": expires.isoformat(),
        },
    )
    return hsm


def open_activated_hsm(data_dir: Path, *, clock: Clock) -> tuple[Hsm, CeremonyRecord]:
    """The HSM in its activated state, as ``activate`` left it; refuse if it is not activated."""
    record = load_record(data_dir)
    path = data_dir / _HSM_DIR / ACTIVATION_FILE
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
    hsm = _open_hsm(record.hsm, data_dir)
    hsm.activate(kek)
    return hsm, record


def deactivate(data_dir: Path, *, clock: Clock) -> bool:
    """Forget the activation; returns whether there was one. Logged while the key is usable."""
    from fleetid.factory.auditlog import AuditLog

    try:
        hsm, record = open_activated_hsm(data_dir, clock=clock)
    except HsmNotActivatedError:
        (data_dir / _HSM_DIR / ACTIVATION_FILE).unlink(missing_ok=True)
        return False
    try:
        AuditLog.open(
            data_dir, hsm.signer(record.audit_key_label), record.log_origin, clock
        ).append(DEACTIVATION_KIND, None, {"ceremony_id": record.ceremony_id})
    finally:
        hsm.lock()
        (data_dir / _HSM_DIR / ACTIVATION_FILE).unlink(missing_ok=True)
    return True


def load_record(data_dir: Path) -> CeremonyRecord:
    path = data_dir / RECORD_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise CeremonyError(
            f"no ceremony in {data_dir}: run `fleetid ceremony init` first"
        ) from exc
    return CeremonyRecord.from_json(text)


# --- HSM backends ------------------------------------------------------------------------------


def _initialise_hsm(spec: HsmSpec, data_dir: Path, kek: bytes) -> Hsm:
    directory = data_dir / _HSM_DIR
    if spec.backend == "software":
        from fleetid.hsm.software import SoftwareHsm

        return SoftwareHsm.initialise(directory, kek)
    from fleetid.hsm.pkcs11 import Pkcs11Hsm

    so_pin = os.environ.get(spec.so_pin_env)
    if not so_pin:
        raise ConfigError(f"set ${spec.so_pin_env} to the token's SO PIN for the ceremony")
    return Pkcs11Hsm.initialise(
        token_label=spec.token_label,
        so_pin=so_pin,
        state_file=directory / _PKCS11_STATE,
        kek=kek,
        module=spec.module or None,
    )


def _open_hsm(spec: HsmSpec, data_dir: Path) -> Hsm:
    directory = data_dir / _HSM_DIR
    if spec.backend == "software":
        from fleetid.hsm.software import SoftwareHsm

        return SoftwareHsm.open(directory)
    from fleetid.hsm.pkcs11 import Pkcs11Hsm

    return Pkcs11Hsm(
        token_label=spec.token_label,
        state_file=directory / _PKCS11_STATE,
        module=spec.module or None,
    )


# --- files -----------------------------------------------------------------------------------


def _write_share(directory: Path, share: KekShare) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", share.custodian).strip("-").lower() or "custodian"
    path = directory / f"{share.ceremony_id}.share-{share.index}-of-{share.total}.{slug}.toml"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(share.to_text())
    return path


def _write_public(data_dir: Path, record: CeremonyRecord) -> None:
    (data_dir / "manufacturer-root.pem").write_text(_pem(record.root_certificate))
    (data_dir / "line-ca.pem").write_text(_pem(record.line_ca_certificate))
    temporary = data_dir / (RECORD_FILE + ".tmp")
    temporary.write_text(record.to_json())
    os.replace(temporary, data_dir / RECORD_FILE)


def _write_private_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(doc, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _transport_labels(prefix: str) -> tuple[str, str, str]:
    return (f"{prefix}.enc", f"{prefix}.mac", f"{prefix}.dek")


def _key_spec(table: dict[str, Any]) -> KeySpec:
    curve = str(table.get("curve", "P-256"))
    if curve not in ("P-256", "P-384"):
        raise ConfigError(f"curve {curve!r} is not P-256 or P-384")
    return KeySpec(label=str(table["label"]), curve="P-384" if curve == "P-384" else "P-256")


def _backend(value: object) -> Literal["software", "pkcs11"]:
    if value == "software":
        return "software"
    if value == "pkcs11":
        return "pkcs11"
    raise ConfigError(f"hsm.backend is 'software' or 'pkcs11', not {value!r}")


def _read_transport_keys(path: Path) -> TransportKeys:
    try:
        doc = tomllib.loads(path.read_text())
        return TransportKeys(
            enc=bytes.fromhex(doc["enc"]),
            mac=bytes.fromhex(doc["mac"]),
            dek=bytes.fromhex(doc["dek"]),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read the transport keys file {path}: {exc}") from exc
