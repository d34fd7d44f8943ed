"""The built-in software HSM: the embedded default, with key material sealed at rest under the KEK.

State lives in one JSON file (``keystore.json``) in a data directory, or only in memory. On disk,
every private or secret key is an AES-GCM blob under the key-encryption key, with the key's label,
kind and curve as associated data (so a blob cannot be moved to another label or relabelled as
another kind); public keys and the KEK's check value are in clear. Without the KEK the file gives
away nothing but labels and public keys.

Where it necessarily differs from a hardware or PKCS#11 HSM (see ``docs/hsm.md``): once activated,
the keys are plaintext in this process's memory; "non-extractable" is enforced by this class's API,
not by a separate boundary.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from fleetid.crypto.signer import hash_for_curve
from fleetid.crypto.symmetric import AesKey
from fleetid.errors import HsmError
from fleetid.hsm.base import (
    CURVES,
    AesKeyRole,
    Hsm,
    KeyKind,
    aes_kcv,
    check_kek,
    seal,
    unseal,
)
from fleetid.private_file import write_private_file

__all__ = ["STORE_FILE", "SoftwareHsm"]

STORE_FILE: Final = "keystore.json"
_FORMAT: Final = "fleetid-software-hsm/1"
_CANARY: Final = b"fleetid software HSM canary"
_ZERO_ICV: Final = bytes(16)
_KCV_BLOCK: Final = b"\x01" * 16


def _context(label: str, kind: KeyKind, curve: str = "") -> bytes:
    return f"{_FORMAT}|{label}|{kind.value}|{curve}".encode()


def _curve_name(curve: ec.EllipticCurve) -> str:
    for name, known in CURVES.items():
        if known.name == curve.name:
            return name
    raise HsmError(f"curve {curve.name} is not offered")


class SoftwareHsm(Hsm):
    """An HSM emulated in this process; create with ``initialise``, reopen with ``open``."""

    backend = "software"

    def __init__(self, directory: Path | None, record: dict[str, Any]) -> None:
        super().__init__()
        self._directory = directory
        self._record = record
        self._guard = threading.RLock()
        self._kek: bytes | None = None
        self._ec: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._aes: dict[str, bytes] = {}
        self._derived: dict[str, bytes] = {}
        # AES contexts set up once per key (what a hardware HSM keeps as a key schedule), by
        # label; a derived key's goes with it on release, all of them on lock.
        self._contexts: dict[str, AesKey] = {}

    @classmethod
    def initialise(cls, directory: Path | None, kek: bytes) -> SoftwareHsm:
        """A new, empty HSM whose state is sealed under ``kek``; returned activated.

        ``directory=None`` keeps the state in memory only (tests, the demo).
        """
        if len(kek) not in (16, 32):
            raise HsmError(f"the key-encryption key is 16 or 32 bytes, got {len(kek)}")
        if directory is not None and (directory / STORE_FILE).exists():
            raise HsmError(f"{directory / STORE_FILE} exists; refusing to overwrite an HSM")
        record: dict[str, Any] = {
            "format": _FORMAT,
            "kek_kcv": aes_kcv(kek).hex(),
            "canary": seal(kek, _CANARY, _FORMAT.encode()).hex(),
            "keys": {},
        }
        hsm = cls(directory, record)
        hsm._persist()
        hsm.activate(kek)
        return hsm

    @classmethod
    def open(cls, directory: Path) -> SoftwareHsm:
        """Reopen an HSM from its data directory; it is locked until ``activate``."""
        path = directory / STORE_FILE
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise HsmError(f"no readable software HSM state at {path}") from exc
        if not isinstance(record, dict) or record.get("format") != _FORMAT:
            raise HsmError(f"{path} is not a {_FORMAT} key store")
        return cls(directory, record)

    # -- activation ---------------------------------------------------------------------------

    def _activate(self, kek: bytes) -> None:
        with self._guard:
            if self._directory is not None:
                self._record = type(self).open(self._directory)._record
            check_kek(kek, bytes.fromhex(self._record["kek_kcv"]))
            unseal(kek, bytes.fromhex(self._record["canary"]), _FORMAT.encode())
            ec_keys: dict[str, ec.EllipticCurvePrivateKey] = {}
            aes_keys: dict[str, bytes] = {}
            for label, entry in self._record["keys"].items():
                kind = KeyKind(entry["kind"])
                secret = unseal(
                    kek, bytes.fromhex(entry["sealed"]), _context(label, kind, entry["curve"])
                )
                if kind is KeyKind.EC:
                    private = serialization.load_der_private_key(secret, password=None)
                    if not isinstance(private, ec.EllipticCurvePrivateKey):
                        raise HsmError(f"sealed key {label!r} is not an EC key")
                    ec_keys[label] = private
                else:
                    aes_keys[label] = secret
            self._kek, self._ec, self._aes, self._derived = kek, ec_keys, aes_keys, {}
            self._contexts = {}

    def _lock(self) -> None:
        with self._guard:
            self._kek = None
            self._ec, self._aes, self._derived = {}, {}, {}
            self._contexts = {}

    # -- storage ------------------------------------------------------------------------------

    def _persist(self) -> None:
        if self._directory is None:
            return
        document = json.dumps(self._record, indent=1, sort_keys=True)
        write_private_file(self._directory / STORE_FILE, document.encode())

    def _store(
        self, label: str, kind: KeyKind, secret: bytes, curve: str = "", **extra: str
    ) -> None:
        assert self._kek is not None  # noqa: S101 - the base class checked the gate
        entry = {
            "kind": kind.value,
            "curve": curve,
            "sealed": seal(self._kek, secret, _context(label, kind, curve)).hex(),
            **extra,
        }
        self._record["keys"][label] = entry
        self._persist()

    def _labels(self) -> set[str]:
        return set(self._record["keys"])

    def _stored_kind(self, label: str) -> KeyKind | None:
        entry = self._record["keys"].get(label)
        return None if entry is None else KeyKind(entry["kind"])

    # -- EC -----------------------------------------------------------------------------------

    def _generate_ec_key(self, label: str, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
        private = ec.generate_private_key(curve)
        secret = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = private.public_key()
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with self._guard:
            self._store(label, KeyKind.EC, secret, _curve_name(curve), public=spki.hex())
            self._ec[label] = private
        return public

    def _public_key(self, label: str) -> ec.EllipticCurvePublicKey:
        return self._ec[label].public_key()

    def _sign_digest(self, label: str, digest: bytes) -> bytes:
        private = self._ec[label]
        return private.sign(digest, ec.ECDSA(Prehashed(hash_for_curve(private.curve))))

    # -- AES ----------------------------------------------------------------------------------

    def _generate_aes_key(self, label: str, bits: int) -> bytes:
        key = os.urandom(bits // 8)
        with self._guard:
            self._store(label, KeyKind.MASTER, key)
            self._aes[label] = key
        return aes_kcv(key)

    def _unwrap_aes_key(self, label: str, wrapped: bytes, kind: KeyKind) -> bytes:
        assert self._kek is not None  # noqa: S101 - the base class checked the gate
        try:
            key = aes_key_unwrap_with_padding(self._kek, wrapped)
        except (InvalidUnwrap, ValueError) as exc:
            raise HsmError("the wrapped key does not unwrap under the KEK (RFC 5649)") from exc
        if len(key) not in (16, 24, 32):
            raise HsmError(f"the unwrapped key is {len(key)} bytes, not an AES key")
        with self._guard:
            self._store(label, kind, key)
            self._aes[label] = key
        return aes_kcv(key)

    def _key_check_value(self, label: str, kind: KeyKind) -> bytes:
        return aes_kcv(self._aes[label])

    def _derive(
        self, master_label: str, data: bytes, out_label: str, role: AesKeyRole, length: int
    ) -> bytes:
        # PKCS#11 CKM_AES_ECB_ENCRYPT_DATA semantics: the key value is AES-ECB(master, data).
        if not data or len(data) % 16:
            raise HsmError(f"derivation data is whole AES blocks, got {len(data)} bytes")
        with self._guard:
            master = self._context(master_label)
            blocks = (data[i : i + 16] for i in range(0, len(data), 16))
            value = b"".join(master.encrypt_block(block) for block in blocks)
            derived = AesKey(value)
            self._derived[out_label] = value
            self._contexts[out_label] = derived
            return derived.encrypt_block(_KCV_BLOCK)[:3]  # aes_kcv (GPCS §11.8)

    def _has_derived(self, label: str) -> bool:
        return label in self._derived

    def _release(self, label: str) -> None:
        with self._guard:
            self._derived.pop(label, None)
            self._contexts.pop(label, None)

    def _secret(self, label: str) -> bytes:
        value = self._derived.get(label) or self._aes.get(label)
        if value is None:
            raise HsmError(f"no AES key labelled {label!r}")
        return value

    def _context(self, label: str) -> AesKey:
        context = self._contexts.get(label)
        if context is None:
            context = self._contexts[label] = AesKey(self._secret(label))
        return context

    def _wrap_cbc(self, key_label: str, dek_label: str) -> bytes:
        with self._guard:
            return self._context(dek_label).cbc_encrypt(_ZERO_ICV, self._derived[key_label])

    def _cmac(self, label: str, data: bytes) -> bytes:
        with self._guard:
            return self._context(label).cmac(data)
