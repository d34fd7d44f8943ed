"""The V2X authorities' software key store: one PKCS#8 file per key, encrypted under the
operator's passphrase (AES-256-CBC, PBKDF2; mode 0600), as ``fleetid v2x init`` writes it.

The passphrase comes from the caller (the CLI reads ``FLEETID_V2X_PASSPHRASE``); it is never
logged or stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import PrivateKey, generate_key
from fleetid.errors import ConfigError
from fleetid.formats.ieee1609 import Certificate
from fleetid.private_file import write_private_file

__all__ = ["authority_keys", "load_keys", "signer_key", "write_keys"]


def signer_key(generated: dict[str, PrivateKey]) -> Callable[[str, str], PrivateKey]:
    """A key factory that keeps each key it makes under its role, for ``write_keys``."""

    def make(role: str, curve: str) -> PrivateKey:
        generated[role] = generate_key(curve)
        return generated[role]

    return make


def write_keys(keys_dir: Path, generated: dict[str, PrivateKey], passphrase: bytes) -> None:
    """Each key as ``<role>.p8``, PKCS#8 encrypted under the passphrase (mode 0600)."""
    encryption = serialization.BestAvailableEncryption(passphrase)
    for role, key in generated.items():
        write_private_file(
            keys_dir / f"{role}.p8",
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            ),
            replace=False,
        )


def load_keys(keys_dir: Path, roles: Iterable[str], passphrase: bytes) -> dict[str, PrivateKey]:
    """The keys of ``roles`` from the key store; ``ConfigError`` for a wrong passphrase."""
    keys: dict[str, PrivateKey] = {}
    for role in roles:
        try:
            loaded = serialization.load_pem_private_key(
                (keys_dir / f"{role}.p8").read_bytes(), password=passphrase
            )
        except ValueError:
            raise ConfigError("wrong passphrase for the V2X key store") from None
        except FileNotFoundError:
            raise ConfigError(f"the V2X key store has no {role}.p8") from None
        if not isinstance(loaded, PrivateKey):
            raise ConfigError(f"{role}.p8 is not an EC key")
        keys[role] = loaded
    return keys


def authority_keys(
    keys: dict[str, PrivateKey], role: str, certificate: Certificate
) -> AuthorityKeys:
    """An authority's keys from the store: ``<role>`` signs, ``<role>-enc`` decrypts."""
    return AuthorityKeys(
        signer=SoftwareSigner(keys[role]),
        decryption_key=keys[f"{role}-enc"],
        certificate=certificate,
    )
