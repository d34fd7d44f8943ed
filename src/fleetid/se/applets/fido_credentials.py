"""The FIDO applet's credential IDs and signature counter (shared by CTAP2 and U2F).

A credential ID (a U2F key handle) is ``01 ‖ nonce (12) ‖ AES-256-GCM(wrap key, nonce, d,
aad = the 32-byte RP ID hash / U2F application parameter)``: the credential's private scalar
sealed under a key generated in the card, which no command returns. It opens only on the card
that made it and only for its RP, which is how a credential of another RP is not found.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fleetid.se.applets.base import CommandContext
from fleetid.se.state import FidoCredential, FidoState

__all__ = ["CREDENTIAL_ID_LENGTH", "next_count", "unwrap", "wrap"]

_VERSION = 0x01
_NONCE = 12
CREDENTIAL_ID_LENGTH = 1 + _NONCE + 32 + 16


def next_count(fido: FidoState) -> int:
    """The global signature counter, moved on (CTAP 2.1 §6.1.1; U2F raw messages §5.4)."""
    fido.sign_count += 1
    return fido.sign_count


def wrap(ctx: CommandContext, d: int, rp_id_hash: bytes) -> bytes:
    """The credential ID of the private scalar ``d`` for ``rp_id_hash`` (the wrap key is made
    on first use)."""
    fido = ctx.state.fido
    if fido.wrap_key is None:
        fido.wrap_key = ctx.random(32)
    nonce = _nonce(ctx)
    sealed = AESGCM(fido.wrap_key).encrypt(nonce, d.to_bytes(32, "big"), rp_id_hash)
    return bytes([_VERSION]) + nonce + sealed


def _nonce(ctx: CommandContext) -> bytes:
    """A fresh AES-GCM nonce (NIST SP 800-38D §8.2.2): public, it travels in the credential ID."""
    return ctx.random(_NONCE)


def unwrap(fido: FidoState, credential_id: bytes, rp_id_hash: bytes) -> FidoCredential | None:
    """The credential ``credential_id`` names for this RP, or None (another RP's, another
    card's, one from before a Reset, or not a credential ID at all)."""
    if fido.wrap_key is None or len(credential_id) != CREDENTIAL_ID_LENGTH:
        return None
    if credential_id[0] != _VERSION:
        return None
    nonce, sealed = credential_id[1 : 1 + _NONCE], credential_id[1 + _NONCE :]
    try:
        d = int.from_bytes(AESGCM(fido.wrap_key).decrypt(nonce, sealed, rp_id_hash), "big")
    except InvalidTag:
        return None
    resident = next((c for c in fido.credentials if c.credential_id == credential_id), None)
    if resident is not None:
        return resident
    return FidoCredential(
        rp_id="",
        user_id=b"",
        user_name=None,
        display_name=None,
        credential_id=credential_id,
        private_value=d,
        created=0,
    )
