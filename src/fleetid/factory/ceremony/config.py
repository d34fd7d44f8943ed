"""The ceremony's one reviewed input: the TOML config, its checks, and an example to start from.

The config names the ceremony, its administrator and witnesses, the custody (M-of-N), the
manufacturer, every key to create (labels and curves) and the HSM; its SHA-256 goes into the
transcript, so witnesses can check that the ceremony ran the config they reviewed.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from fleetid.errors import (
    ConfigError,
)
from fleetid.private_file import write_private_file

__all__ = [
    "CeremonyConfig",
    "HsmSpec",
    "KeySpec",
    "TransportKeys",
    "backend_name",
    "write_example_config",
]

_CONFIG_FORMAT: Final = "fleetid-ceremony-config/1"
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,47}$")
_DEFAULT_SO_PIN_ENV: Final = "FLEETID_HSM_SO_PIN"


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
    so_pin_env: str = _DEFAULT_SO_PIN_ENV  # the variable the command reads the SO PIN from
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
                    backend=backend_name(hsm.get("backend", "software")),
                    token_label=str(hsm.get("token_label", "")),
                    so_pin_env=str(hsm.get("so_pin_env", _DEFAULT_SO_PIN_ENV)),
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
    lines = ["# SE vendor transport keys for card batch B1 (SCP03 AES-128, KVN 0x30)\n"]
    lines += [f'{role} = "{value}"\n' for role, value in keys.items()]
    write_private_file(keys_path, "".join(lines).encode(), replace=False)
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


def _key_spec(table: dict[str, Any]) -> KeySpec:
    curve = str(table.get("curve", "P-256"))
    if curve not in ("P-256", "P-384"):
        raise ConfigError(f"curve {curve!r} is not P-256 or P-384")
    return KeySpec(label=str(table["label"]), curve="P-384" if curve == "P-384" else "P-256")


def backend_name(value: object) -> Literal["software", "pkcs11"]:
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
