"""The PKCS#11 backend (python-pkcs11), tested on SoftHSM2 2.6.1.

Activation: the token's user PIN is random, set once by ``initialise`` with the SO PIN
(``C_InitPIN``), and kept only as an AES-GCM blob under the key-encryption key in a small state file
next to the token configuration. Nobody types it; ``activate(kek)`` checks the KEK's KCV, opens the
PIN and logs in. ``lock`` closes the session, which logs out and destroys every session object
(derived keys and the KEK object).

Token mechanisms used (SoftHSM2 2.6.1 has no ``CKM_ECDSA_SHA*`` nor ``CKM_SP800_108_COUNTER_KDF``):

* ``CKM_ECDSA`` over a digest computed here; the token's raw ``r ‖ s`` is DER-encoded here;
* ``CKM_AES_ECB_ENCRYPT_DATA`` for per-device diversification (see ``fleetid.hsm.base``);
* ``CKM_AES_CBC`` with a zero IV in ``C_WrapKey`` for PUT KEY blocks (GP Amd D §6.2.8);
* ``CKM_AES_KEY_WRAP_PAD`` (SoftHSM's RFC 5649 KWP) to import keys wrapped under the KEK;
* ``CKM_AES_CMAC`` for SCP03 session-key derivation, ``CKM_AES_ECB`` on 16×01 for KCVs.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from fleetid.errors import HsmError
from fleetid.hsm.base import AesKeyRole, Hsm, KeyKind, aes_kcv, check_kek, seal, unseal
from fleetid.private_file import write_private_file

__all__ = ["Pkcs11Hsm", "find_pkcs11_module"]

_FORMAT: Final = "fleetid-pkcs11-activation/1"
_KCV_BLOCK: Final = b"\x01" * 16
_ZERO_ICV: Final = bytes(16)
_CURVE_OIDS: Final = {"secp256r1": "secp256r1", "secp384r1": "secp384r1"}
_MODULE_NAMES: Final = ("libsofthsm2.so", "libsofthsm2.dylib")
_MODULE_DIRS: Final = (
    "lib/softhsm",
    "lib/*/softhsm",
    "lib64/softhsm",
    "lib/pkcs11",
    "lib/*/pkcs11",
    "lib64/pkcs11",
    "lib",
)
_PREFIXES: Final = ("/usr", "/usr/local", "/opt/homebrew", "/opt/local")


def find_pkcs11_module(configured: str | Path | None = None) -> Path:
    """The PKCS#11 module: ``configured`` (which must be a file), else SoftHSM2 found where it is
    installed. The entry points pass what the operator configured (``$FLEETID_PKCS11_MODULE``,
    ``fleetid.config.PKCS11_MODULE_ENV``); nothing here reads the environment.

    The search starts from the prefix of ``softhsm2-util`` on ``PATH`` and then tries the usual
    distribution prefixes; it raises ``HsmError`` if nothing is found.
    """
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise HsmError(f"the PKCS#11 module {configured} is not a file")
        return path
    prefixes: list[Path] = []
    util = shutil.which("softhsm2-util")
    if util:
        prefixes.append(Path(util).resolve().parent.parent)
    prefixes.extend(Path(prefix) for prefix in _PREFIXES)
    for prefix in prefixes:
        for directory in _MODULE_DIRS:
            for name in _MODULE_NAMES:
                for candidate in sorted(prefix.glob(f"{directory}/{name}")):
                    if candidate.is_file():
                        return candidate
    raise HsmError("no PKCS#11 module found; install SoftHSM2 or configure the module's path")


@contextmanager
def _token_errors(action: str) -> Iterator[None]:
    try:
        yield
    except pkcs11.PKCS11Error as exc:
        raise HsmError(f"the token refused to {action}: {type(exc).__name__} {exc}") from exc


def _load_library(module: str | Path | None) -> Any:
    path = find_pkcs11_module(module)
    with _token_errors("load the PKCS#11 module"):
        return pkcs11.lib(str(path))


def _find_token(library: Any, token_label: str) -> Any:
    with _token_errors(f"find token {token_label!r}"):
        return library.get_token(token_label=token_label)


class Pkcs11Hsm(Hsm):
    """An HSM on a PKCS#11 token; ``initialise`` once with the SO PIN, then ``activate(kek)``."""

    backend = "pkcs11"

    def __init__(
        self, *, token_label: str, state_file: Path, module: str | Path | None = None
    ) -> None:
        super().__init__()
        try:
            self._state = json.loads(state_file.read_text())
        except (OSError, ValueError) as exc:
            raise HsmError(f"no readable PKCS#11 activation state at {state_file}") from exc
        if self._state.get("format") != _FORMAT or self._state.get("token_label") != token_label:
            raise HsmError(f"{state_file} is not the activation state of token {token_label!r}")
        self._token_label = token_label
        self._token = _find_token(_load_library(module), token_label)
        self._guard = threading.RLock()
        self._session: Any = None
        self._kek_object: Any = None
        self._keys: dict[str, Any] = {}
        self._kinds: dict[str, KeyKind] = {}
        self._publics: dict[str, ec.EllipticCurvePublicKey] = {}
        self._derived: dict[str, Any] = {}

    @classmethod
    def initialise(
        cls,
        *,
        token_label: str,
        so_pin: str,
        state_file: Path,
        kek: bytes,
        module: str | Path | None = None,
    ) -> Pkcs11Hsm:
        """Give an initialised token a random user PIN sealed under ``kek``; returned activated.

        The SO PIN stays with the ceremony (SoftHSM has no M-of-N of its own); the user PIN exists
        only inside ``state_file``, sealed.
        """
        if len(kek) not in (16, 32):
            raise HsmError(f"the key-encryption key is 16 or 32 bytes, got {len(kek)}")
        if state_file.exists():
            raise HsmError(f"{state_file} exists; refusing to re-initialise the token's PIN")
        token = _find_token(_load_library(module), token_label)
        user_pin = secrets.token_urlsafe(24)
        with _token_errors("set the user PIN"), token.open(rw=True, so_pin=so_pin) as session:
            session.init_pin(user_pin)
        state = {
            "format": _FORMAT,
            "token_label": token_label,
            "kek_kcv": aes_kcv(kek).hex(),
            "sealed_pin": seal(kek, user_pin.encode(), _pin_context(token_label)).hex(),
        }
        document = json.dumps(state, indent=1, sort_keys=True)
        write_private_file(state_file, document.encode(), replace=False)
        hsm = cls(token_label=token_label, state_file=state_file, module=module)
        hsm.activate(kek)
        return hsm

    # -- activation ---------------------------------------------------------------------------

    def _activate(self, kek: bytes) -> None:
        check_kek(kek, bytes.fromhex(self._state["kek_kcv"]))
        user_pin = unseal(
            kek, bytes.fromhex(self._state["sealed_pin"]), _pin_context(self._token_label)
        ).decode()
        with self._guard, _token_errors("log in"):
            try:
                session = self._token.open(rw=True, user_pin=user_pin)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # PKCS#11 login state is per application: another instance in this process is
                # logged in already. The KEK was checked and the PIN opened above all the same.
                session = self._token.open(rw=True)
            try:
                self._kek_object = session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.SECRET_KEY,
                        Attribute.KEY_TYPE: KeyType.AES,
                        Attribute.VALUE: kek,
                        Attribute.TOKEN: False,
                        Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.UNWRAP: True,
                        Attribute.WRAP: False,
                        Attribute.ENCRYPT: False,
                        Attribute.DECRYPT: False,
                        Attribute.LABEL: "fleetid-activation-kek",
                    }
                )
                self._index(session)
            except BaseException:
                session.close()
                raise
            self._session = session

    def _lock(self) -> None:
        with self._guard:
            session, self._session = self._session, None
            self._kek_object = None
            self._keys, self._kinds, self._publics, self._derived = {}, {}, {}, {}
            if session is not None:
                with _token_errors("close the session"):
                    session.close()

    def _index(self, session: Any) -> None:
        """Learn the token objects: EC private keys and AES keys, by label."""
        for obj in session.get_objects({Attribute.TOKEN: True}):
            label = obj[Attribute.LABEL]
            object_class = obj[Attribute.CLASS]
            if object_class == ObjectClass.PRIVATE_KEY:
                self._kinds[label] = KeyKind.EC
                self._keys[label] = obj
            elif object_class == ObjectClass.SECRET_KEY:
                self._kinds[label] = KeyKind.MASTER if obj[Attribute.DERIVE] else KeyKind.TRANSPORT
                self._keys[label] = obj
            elif object_class == ObjectClass.PUBLIC_KEY:
                self._publics[label] = _public_from_token(obj)

    def _labels(self) -> set[str]:
        return set(self._kinds)

    def _stored_kind(self, label: str) -> KeyKind | None:
        return self._kinds.get(label)

    # -- EC -----------------------------------------------------------------------------------

    def _generate_ec_key(self, label: str, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
        with self._guard, _token_errors("generate an EC key pair"):
            parameters = self._session.create_domain_parameters(
                KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[curve.name])},
                local=True,
            )
            public, private = parameters.generate_keypair(
                store=True,
                label=label,
                id=label.encode(),
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                public_template={Attribute.TOKEN: True, Attribute.VERIFY: True},
                private_template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.DERIVE: False,
                },
            )
            public_key = _public_from_token(public)
            self._keys[label], self._kinds[label] = private, KeyKind.EC
            self._publics[label] = public_key
        return public_key

    def _public_key(self, label: str) -> ec.EllipticCurvePublicKey:
        return self._publics[label]

    def _sign_digest(self, label: str, digest: bytes) -> bytes:
        with self._guard, _token_errors("sign"):
            raw = self._keys[label].sign(digest, mechanism=Mechanism.ECDSA)
        # PKCS#11 v2.40 §2.3.1: the CKM_ECDSA signature is r ‖ s, each the length of the order.
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    # -- AES ----------------------------------------------------------------------------------

    def _generate_aes_key(self, label: str, bits: int) -> bytes:
        with self._guard, _token_errors("generate an AES key"):
            key = self._session.generate_key(
                KeyType.AES,
                bits,
                label=label,
                id=label.encode(),
                store=True,
                capabilities=MechanismFlag.DERIVE,
                template=_MASTER_TEMPLATE,
            )
            self._keys[label], self._kinds[label] = key, KeyKind.MASTER
        return self._key_check_value(label, KeyKind.MASTER)

    def _unwrap_aes_key(self, label: str, wrapped: bytes, kind: KeyKind) -> bytes:
        template = _MASTER_TEMPLATE if kind is KeyKind.MASTER else _TRANSPORT_TEMPLATE
        with self._guard:
            with _token_errors("unwrap the key under the KEK (RFC 5649)"):
                key = self._kek_object.unwrap_key(
                    ObjectClass.SECRET_KEY,
                    KeyType.AES,
                    wrapped,
                    label=label,
                    id=label.encode(),
                    mechanism=Mechanism.AES_KEY_WRAP_PAD,
                    store=True,
                    capabilities=MechanismFlag(0),
                    template=template,
                )
            self._keys[label], self._kinds[label] = key, kind
            try:
                return self._key_check_value(label, kind)
            except HsmError:
                # Not a usable AES key (e.g. a 20-byte value): do not keep it on the token.
                self._keys.pop(label)
                self._kinds.pop(label)
                with _token_errors("destroy the refused key"):
                    key.destroy()
                raise

    def _key_check_value(self, label: str, kind: KeyKind) -> bytes:
        key = self._keys[label]
        with self._guard, _token_errors("compute a KCV"):
            if kind is KeyKind.TRANSPORT:
                return bytes(key.encrypt(_KCV_BLOCK, mechanism=Mechanism.AES_ECB)[:3])
            # A master may only derive: derive AES-ECB(master, 16×01) as a readable session object.
            # 16×01 is not a diversification block (those start i ‖ 00 00 00), so this reveals
            # nothing about any device key.
            check = key.derive_key(
                KeyType.AES,
                128,
                mechanism=Mechanism.AES_ECB_ENCRYPT_DATA,
                mechanism_param=_KCV_BLOCK,
                store=False,
                capabilities=MechanismFlag(0),
                template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
            )
            try:
                return bytes(check[Attribute.VALUE][:3])
            finally:
                check.destroy()

    def _derive(
        self, master_label: str, data: bytes, out_label: str, role: AesKeyRole, length: int
    ) -> bytes:
        capabilities = MechanismFlag.ENCRYPT | (
            MechanismFlag.WRAP if role is AesKeyRole.DEK else MechanismFlag.SIGN
        )
        with self._guard, _token_errors("derive a per-device key"):
            key = self._keys[master_label].derive_key(
                KeyType.AES,
                length * 8,
                label=out_label,
                mechanism=Mechanism.AES_ECB_ENCRYPT_DATA,
                mechanism_param=data,
                store=False,
                capabilities=capabilities,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: True,  # C_WrapKey needs it; CKA_SENSITIVE blocks reads
                    Attribute.DERIVE: False,
                },
            )
            kcv = bytes(key.encrypt(_KCV_BLOCK, mechanism=Mechanism.AES_ECB)[:3])
            # CKA_ENCRYPT was only for the KCV; drop it so the key is no AES-ECB oracle.
            key[Attribute.ENCRYPT] = False
            stale = self._derived.pop(out_label, None)
            if stale is not None:
                stale.destroy()
            self._derived[out_label] = key
        return kcv

    def _has_derived(self, label: str) -> bool:
        return label in self._derived

    def _release(self, label: str) -> None:
        with self._guard:
            key = self._derived.pop(label, None)
            if key is not None:
                with _token_errors("destroy a derived key"):
                    key.destroy()

    def _secret(self, label: str) -> Any:
        key = self._derived.get(label) or self._keys.get(label)
        if key is None:
            raise HsmError(f"no AES key labelled {label!r}")
        return key

    def _wrap_cbc(self, key_label: str, dek_label: str) -> bytes:
        with self._guard, _token_errors("wrap the key under the Key-DEK"):
            return bytes(
                self._secret(dek_label).wrap_key(
                    self._derived[key_label], mechanism=Mechanism.AES_CBC, mechanism_param=_ZERO_ICV
                )
            )

    def _cmac(self, label: str, data: bytes) -> bytes:
        with self._guard, _token_errors("compute an AES-CMAC"):
            return bytes(self._secret(label).sign(data, mechanism=Mechanism.AES_CMAC))


_MASTER_TEMPLATE: Final[dict[Attribute, Any]] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.DERIVE: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
}
_TRANSPORT_TEMPLATE: Final[dict[Attribute, Any]] = {
    **_MASTER_TEMPLATE,
    Attribute.DERIVE: False,
    Attribute.ENCRYPT: True,  # KCV (AES-ECB of 16×01)
    Attribute.SIGN: True,  # AES-CMAC for SCP03 session keys
    Attribute.WRAP: True,  # as the card's current Key-DEK
}


def _pin_context(token_label: str) -> bytes:
    return f"{_FORMAT}|{token_label}|user-pin".encode()


def _public_from_token(public: Any) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(encode_ec_public_key(public))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise HsmError("the token returned a public key that is not EC")
    return key
