"""The HSM interface: keys addressed by label, used by reference, behind an activation gate.

Two backends implement it, ``fleetid.hsm.software`` (the embedded default) and
``fleetid.hsm.pkcs11`` (any PKCS#11 token; tested on SoftHSM2). This module holds everything the two
share so that they cannot drift apart:

* the activation gate: every operation raises ``HsmNotActivatedError`` until ``activate(kek)`` is
  given the key-encryption key whose check value was recorded when the HSM was initialised;
* verify-before-return: every ECDSA signature a backend produces is verified against the key's
  public half before it leaves (SoftHSM2 issue #901 reports intermittently invalid ``CKM_ECDSA``
  signatures);
* the per-device SCP03 key diversification, defined once here (``diversification_data``) and
  computed inside the token by both backends;
* the export refusals.

Per-device diversification (both backends compute exactly these bytes)::

    D_i   = i (1 byte, from 1) ‖ 00 00 00 ‖ key type (ENC 01, MAC 02, DEK 03) ‖ 00 ‖ KDD (10 bytes)
    key   = AES-ECB(master, D_1 ‖ … ‖ D_n)          n = key length / 16

The block layout is GPPro's ``kdf3`` input (counter, key type, KDD), but the function is a plain
AES-ECB encryption of it (EMV-style diversification), because that is what a PKCS#11 token without
``CKM_SP800_108_COUNTER_KDF`` can do inside the token (``CKM_AES_ECB_ENCRYPT_DATA``, PKCS#11 v2.40
§2.14.2). It is therefore *not* byte-compatible with GPPro ``kdf3`` (a CMAC).

PUT KEY key blocks are AES-CBC with a zero ICV under the card's static Key-DEK (GP Amd D §6.2.8,
§7.2); the key check value is the first 3 bytes of AES-ECB(key, 16×01) (Amd D §7.2.2).
"""

from __future__ import annotations

import enum
import hmac
import os
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, NoReturn

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fleetid import metrics
from fleetid.crypto.signer import Signer, hash_for_curve
from fleetid.errors import HsmError, HsmNotActivatedError

__all__ = [
    "CURVES",
    "KDD_LENGTH",
    "AesKeyRole",
    "Curve",
    "DerivedKey",
    "Hsm",
    "KeyKind",
    "Scp03KeySet",
    "WrappedKey",
    "aes_kcv",
    "diversification_data",
]

Curve = Literal["P-256", "P-384"]
CURVES: Final[dict[str, ec.EllipticCurve]] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
KDD_LENGTH: Final = 10  # GP Amd D §7.1.1 Table 7-2: key diversification data, 10 bytes
KEK_LENGTHS: Final = (16, 32)
_SCP03_KEY_LENGTHS: Final = (16, 32)  # whole AES blocks: ECB derivation and zero-ICV CBC wrap
_MASTER_BITS: Final = (128, 192, 256)
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
_KCV_BLOCK: Final = b"\x01" * 16
_NONCE: Final = 12


class KeyKind(enum.Enum):
    """What a stored key is, which fixes what it may do."""

    EC = "ec"  # ECDSA signing (CA, audit log); non-extractable, sensitive
    MASTER = "aes-master"  # derives per-device keys; nothing else; non-extractable, sensitive
    TRANSPORT = "aes-transport"  # a card's transport (static) SCP03 key, imported wrapped


class AesKeyRole(enum.IntEnum):
    """The SCP03 static key roles, numbered as in the diversification input (GPPro ``kdf3``)."""

    ENC = 1
    MAC = 2
    DEK = 3


@dataclass(frozen=True, kw_only=True)
class DerivedKey:
    """A handle on a per-device key derived inside the HSM; it carries no key material."""

    label: str
    role: AesKeyRole
    length: int
    kcv: bytes


@dataclass(frozen=True, kw_only=True)
class Scp03KeySet:
    """The three diversified static keys of one device (a session object each, until released)."""

    master_label: str
    kdd: bytes
    enc: DerivedKey
    mac: DerivedKey
    dek: DerivedKey

    def derived(self) -> tuple[DerivedKey, DerivedKey, DerivedKey]:
        return (self.enc, self.mac, self.dek)


@dataclass(frozen=True, kw_only=True)
class WrappedKey:
    """A PUT KEY key component: AES-CBC(Key-DEK, zero ICV, key) and the key's KCV (Amd D §7.2)."""

    ciphertext: bytes
    kcv: bytes
    length: int


def diversification_data(kdd: bytes, role: AesKeyRole, length: int) -> bytes:
    """The ``D_1 ‖ … ‖ D_n`` that is AES-ECB encrypted under the master (see module docstring)."""
    if len(kdd) != KDD_LENGTH:
        raise HsmError(f"the KDD is {KDD_LENGTH} bytes (Amd D Table 7-2), got {len(kdd)}")
    if length not in _SCP03_KEY_LENGTHS:
        raise HsmError(f"per-device keys are 16 or 32 bytes here, not {length}")
    return b"".join(bytes((i, 0, 0, 0, int(role), 0)) + kdd for i in range(1, length // 16 + 1))


def aes_kcv(key: bytes) -> bytes:
    """The GlobalPlatform AES key check value: first 3 bytes of AES-ECB(key, 16×01) (§7.2.2)."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - one block, KCV
    return (encryptor.update(_KCV_BLOCK) + encryptor.finalize())[:3]


def _check_kek(kek: bytes) -> None:
    if len(kek) not in KEK_LENGTHS:
        raise HsmError(f"the key-encryption key is 16 or 32 bytes, got {len(kek)}")


def seal(kek: bytes, plaintext: bytes, context: bytes) -> bytes:
    """AES-GCM under the KEK: nonce ‖ ciphertext ‖ tag, with ``context`` as associated data."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(kek).encrypt(nonce, plaintext, context)


def unseal(kek: bytes, sealed: bytes, context: bytes) -> bytes:
    """Open a ``seal`` blob; a wrong KEK, altered blob or altered context raises ``HsmError``."""
    try:
        return AESGCM(kek).decrypt(sealed[:_NONCE], sealed[_NONCE:], context)
    except (InvalidTag, ValueError) as exc:
        raise HsmError(
            "sealed HSM state does not open under this KEK (altered or wrong key)"
        ) from exc


def check_kek(kek: bytes, expected_kcv: bytes) -> None:
    """Refuse a KEK whose KCV differs from the one recorded at initialisation."""
    _check_kek(kek)
    if not hmac.compare_digest(aes_kcv(kek), expected_kcv):
        raise HsmNotActivatedError(
            "wrong key-encryption key: its check value does not match the HSM's"
        )


class _VerifiedSigner:
    """A ``Signer`` over an HSM key; each signature is verified before it is returned."""

    #: Read by ``fleetid.formats.x509_sign``: a certificate's signature is not verified twice.
    verifies_signatures = True

    def __init__(self, hsm: Hsm, label: str, public_key: ec.EllipticCurvePublicKey) -> None:
        self._hsm = hsm
        self._label = label
        self._public_key = public_key
        self._hash = hash_for_curve(public_key.curve)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._hash

    @property
    def label(self) -> str:
        return self._label

    def sign(self, data: bytes) -> bytes:
        digest = hashes.Hash(self._hash)
        digest.update(data)
        return self._hsm._sign_verified(
            self._label, self._public_key, self._hash, digest.finalize()
        )


class Hsm(ABC):
    """Keys by label, used by reference; locked until ``activate`` receives the right KEK.

    Public methods check the gate and the arguments, then call the backend's ``_`` primitive, so
    both backends refuse the same things with the same errors. Each signature's time counts in
    ``fleetid_hsm_sign_seconds`` under the backend's name.
    """

    backend: ClassVar[str] = "hsm"  # the metrics label; each backend names itself

    def __init__(self) -> None:
        self._activated = False

    # -- activation ---------------------------------------------------------------------------

    @property
    def is_activated(self) -> bool:
        return self._activated

    def activate(self, kek: bytes) -> None:
        """Unlock with the key-encryption key; a wrong KEK raises ``HsmNotActivatedError``."""
        _check_kek(kek)
        if self._activated:
            self.lock()  # re-activation starts from the locked state, whatever the outcome
        self._activate(kek)
        self._activated = True

    def lock(self) -> None:
        """Forget the KEK and every key in use; ``activate`` is needed again."""
        self._activated = False
        self._lock()

    def close(self) -> None:
        self.lock()

    def _require_active(self) -> None:
        if not self._activated:
            raise HsmNotActivatedError("the HSM is locked: custodians must activate it first")

    # -- EC keys -------------------------------------------------------------------------------

    def generate_ec_key(self, label: str, curve: str) -> ec.EllipticCurvePublicKey:
        """Generate a non-extractable ECDSA key pair (P-256 or P-384) inside the HSM."""
        self._require_active()
        if curve not in CURVES:
            raise HsmError(f"curve {curve!r} is not offered; use one of {sorted(CURVES)}")
        self._require_new_label(label)
        return self._generate_ec_key(label, CURVES[curve])

    def public_key(self, label: str) -> ec.EllipticCurvePublicKey:
        self._require_active()
        self._require_kind(label, KeyKind.EC)
        return self._public_key(label)

    def signer(self, label: str) -> Signer:
        """A ``Signer`` whose signatures (DER) are made in the HSM and verified before return."""
        return _VerifiedSigner(self, label, self.public_key(label))

    def _sign_verified(
        self,
        label: str,
        public_key: ec.EllipticCurvePublicKey,
        hash_algorithm: hashes.HashAlgorithm,
        digest: bytes,
    ) -> bytes:
        self._require_active()
        started = time.perf_counter()
        signature = self._sign_digest(label, digest)
        metrics.HSM_SIGN_SECONDS.labels(self.backend).observe(time.perf_counter() - started)
        try:
            public_key.verify(signature, digest, ec.ECDSA(Prehashed(hash_algorithm)))
        except (InvalidSignature, ValueError) as exc:
            raise HsmError(
                f"the HSM returned a signature for {label!r} that does not verify"
            ) from exc
        return signature

    # -- AES keys ------------------------------------------------------------------------------

    def generate_aes_key(self, label: str, bits: int) -> bytes:
        """Generate a non-extractable master derivation key; returns its KCV."""
        self._require_active()
        if bits not in _MASTER_BITS:
            raise HsmError(f"AES keys are 128, 192 or 256 bits, not {bits}")
        self._require_new_label(label)
        return self._generate_aes_key(label, bits)

    def unwrap_aes_key(self, label: str, wrapped: bytes, kind: KeyKind) -> bytes:
        """Import an AES key wrapped under the activation KEK (RFC 5649 AES-KWP); returns its KCV.

        This is the only way key material enters: restoring a master from a ceremony backup, or
        loading a card batch's transport keys that the ceremony wrapped under the KEK.
        """
        self._require_active()
        if kind not in (KeyKind.MASTER, KeyKind.TRANSPORT):
            raise HsmError(f"only AES master or transport keys are imported, not {kind.value}")
        self._require_new_label(label)
        return self._unwrap_aes_key(label, wrapped, kind)

    def key_check_value(self, label: str) -> bytes:
        """The GP KCV of a stored AES key (for transcripts and cross-checks)."""
        self._require_active()
        kind = self._kind(label)
        if kind not in (KeyKind.MASTER, KeyKind.TRANSPORT):
            raise HsmError(f"{label!r} is not an AES key")
        return self._key_check_value(label, kind)

    def derive_scp03_keys(self, master_label: str, kdd: bytes, *, length: int = 16) -> Scp03KeySet:
        """Diversify ENC/MAC/DEK for one device from the master, inside the HSM.

        The keys are session objects (never stored); ``release`` them when the device is done.
        """
        self._require_active()
        self._require_kind(master_label, KeyKind.MASTER)
        derived = {}
        for role in AesKeyRole:
            data = diversification_data(kdd, role, length)
            out = f"{master_label}/{kdd.hex()}/{role.name.lower()}"
            kcv = self._derive(master_label, data, out, role, length)
            derived[role] = DerivedKey(label=out, role=role, length=length, kcv=kcv)
        return Scp03KeySet(
            master_label=master_label,
            kdd=bytes(kdd),
            enc=derived[AesKeyRole.ENC],
            mac=derived[AesKeyRole.MAC],
            dek=derived[AesKeyRole.DEK],
        )

    def release(self, keys: Scp03KeySet) -> None:
        """Destroy the session objects of a derived key set (a no-op for ones already gone)."""
        for key in keys.derived():
            self._release(key.label)

    def wrap_for_put_key(self, key: DerivedKey, dek: DerivedKey | str) -> WrappedKey:
        """AES-CBC(Key-DEK, zero ICV, key) made inside the HSM (Amd D §6.2.8), with the key's KCV.

        ``key`` is a derived key; ``dek`` is a derived DEK or the label of an imported transport
        key (the card's current static Key-DEK).
        """
        self._require_active()
        if not self._has_derived(key.label):
            raise HsmError(f"{key.label!r} is not a live derived key; only those are wrapped")
        if isinstance(dek, DerivedKey):
            if dek.role is not AesKeyRole.DEK or not self._has_derived(dek.label):
                raise HsmError(f"{dek.label!r} is not a live derived Key-DEK")
            dek_label = dek.label
        else:
            self._require_kind(dek, KeyKind.TRANSPORT)
            dek_label = dek
        return WrappedKey(
            ciphertext=self._wrap_cbc(key.label, dek_label), kcv=key.kcv, length=key.length
        )

    def aes_cmac(self, key: DerivedKey | str, data: bytes) -> bytes:
        """AES-CMAC under an ENC/MAC key (derived, or transport by label): SCP03 session keys.

        The session keys it yields reach the host (Amd D §6.2.1); the static keys do not.
        """
        self._require_active()
        if isinstance(key, DerivedKey):
            if key.role is AesKeyRole.DEK or not self._has_derived(key.label):
                raise HsmError(f"{key.label!r} is not a live derived ENC or MAC key")
            return self._cmac(key.label, data)
        self._require_kind(key, KeyKind.TRANSPORT)
        return self._cmac(key, data)

    # -- export refusals -----------------------------------------------------------------------

    def export_private(self, label: str) -> NoReturn:
        """Always refused: private keys are generated non-extractable and sensitive."""
        self._require_active()
        self._require_kind(label, KeyKind.EC)
        raise HsmError(f"{label!r} is a non-extractable private key; export is refused")

    def export_secret(self, label: str) -> NoReturn:
        """Always refused: master and transport keys are non-extractable and sensitive."""
        self._require_active()
        kind = self._kind(label)
        if kind is KeyKind.EC:
            raise HsmError(f"{label!r} is an EC key; use export_private (which refuses too)")
        raise HsmError(f"{label!r} is a non-extractable {kind.value} key; export is refused")

    def labels(self) -> list[str]:
        self._require_active()
        return sorted(self._labels())

    # -- helpers -------------------------------------------------------------------------------

    def _require_new_label(self, label: str) -> None:
        if not _LABEL.match(label):
            raise HsmError(f"label {label!r} is not 1-64 characters of [A-Za-z0-9._:@-]")
        if label in self._labels():
            raise HsmError(f"a key labelled {label!r} exists already")

    def _kind(self, label: str) -> KeyKind:
        kind = self._stored_kind(label)
        if kind is None:
            raise HsmError(f"no key labelled {label!r}")
        return kind

    def _require_kind(self, label: str, kind: KeyKind) -> None:
        actual = self._kind(label)
        if actual is not kind:
            raise HsmError(f"{label!r} is a {actual.value} key, not {kind.value}")

    # -- backend primitives (arguments already checked, gate already passed) --------------------

    @abstractmethod
    def _activate(self, kek: bytes) -> None: ...

    @abstractmethod
    def _lock(self) -> None: ...

    @abstractmethod
    def _labels(self) -> set[str]: ...

    @abstractmethod
    def _stored_kind(self, label: str) -> KeyKind | None: ...

    @abstractmethod
    def _generate_ec_key(
        self, label: str, curve: ec.EllipticCurve
    ) -> ec.EllipticCurvePublicKey: ...

    @abstractmethod
    def _public_key(self, label: str) -> ec.EllipticCurvePublicKey: ...

    @abstractmethod
    def _sign_digest(self, label: str, digest: bytes) -> bytes:
        """A DER ECDSA signature over a prehashed digest (unverified; the caller verifies)."""

    @abstractmethod
    def _generate_aes_key(self, label: str, bits: int) -> bytes: ...

    @abstractmethod
    def _unwrap_aes_key(self, label: str, wrapped: bytes, kind: KeyKind) -> bytes: ...

    @abstractmethod
    def _key_check_value(self, label: str, kind: KeyKind) -> bytes: ...

    @abstractmethod
    def _derive(
        self, master_label: str, data: bytes, out_label: str, role: AesKeyRole, length: int
    ) -> bytes: ...

    @abstractmethod
    def _has_derived(self, label: str) -> bool: ...

    @abstractmethod
    def _release(self, label: str) -> None: ...

    @abstractmethod
    def _wrap_cbc(self, key_label: str, dek_label: str) -> bytes: ...

    @abstractmethod
    def _cmac(self, label: str, data: bytes) -> bytes: ...
