"""CTAP1/U2F raw messages on the FIDO applet (FIDO U2F Raw Message Formats v1.2, CTAP 2.1 §11.2).

Class ``00``, as a CTAP1 client sends them after SELECT answered ``U2F_V2``:

=============== ==== ========== ============================================ =================
command         INS  P1         data                                         response
=============== ==== ========== ============================================ =================
U2F_REGISTER    01   00 / 03    challenge (32) ‖ application (32)            05 ‖ public key ‖
                                                                             L ‖ key handle ‖
                                                                             cert ‖ signature
U2F_AUTHENTICATE 02  03 / 07    challenge ‖ application ‖ L ‖ key handle     UP ‖ counter ‖
                     / 08                                                    signature
U2F_VERSION     03   00         —                                            ``U2F_V2``
=============== ==== ========== ============================================ =================

Key handles are the applet's credential IDs (``fido_credentials``) sealed for the application
parameter, so a U2F registration is also a CTAP2 credential of an RP whose ID hashes to it. The
registration is signed by the line's model attestation key with its leaf certificate (FIDO U2F
§4.3). Status words (§3.3): ``6985`` user presence needed (denied, or check-only of a handle that
is ours), ``6A80`` a key handle that is not ours for this application, ``6700`` a wrong length,
``6A86`` a P1 U2F does not define.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.formats.apdu import SW, CommandApdu
from fleetid.se.applets.base import CommandContext, Reply, refuse
from fleetid.se.applets.fido_credentials import next_count, unwrap, wrap

__all__ = ["INS_U2F_AUTHENTICATE", "INS_U2F_REGISTER", "INS_U2F_VERSION", "u2f_command"]

INS_U2F_REGISTER = 0x01
INS_U2F_AUTHENTICATE = 0x02
INS_U2F_VERSION = 0x03
_CHECK_ONLY, _ENFORCE, _DONT_ENFORCE = 0x07, 0x03, 0x08
_USER_PRESENT = 0x01


def u2f_command(ctx: CommandContext, apdu: CommandApdu, presence: Callable[[str], bool]) -> Reply:
    """One U2F raw message; ``presence`` is the applet's user presence hook."""
    if apdu.ins == INS_U2F_VERSION:
        if apdu.data:
            raise refuse(SW.WRONG_LENGTH, "U2F_VERSION takes no data")
        return Reply(data=b"U2F_V2")
    if apdu.ins == INS_U2F_REGISTER:
        return _register(ctx, apdu, presence)
    if apdu.ins == INS_U2F_AUTHENTICATE:
        return _authenticate(ctx, apdu, presence)
    raise refuse(SW.INS_NOT_SUPPORTED, f"INS {apdu.ins:02X}")


def _register(ctx: CommandContext, apdu: CommandApdu, presence: Callable[[str], bool]) -> Reply:
    """U2F_REGISTER (§4.1-4.3)."""
    if len(apdu.data) != 64:
        raise refuse(SW.WRONG_LENGTH, "U2F_REGISTER takes challenge and application")
    fido = ctx.state.fido
    if fido.attestation_key is None or not fido.attestation_chain:
        raise refuse(SW.CONDITIONS_NOT_SATISFIED, "no attestation key injected")
    challenge, application = apdu.data[:32], apdu.data[32:]
    if not presence(""):
        raise refuse(SW.CONDITIONS_NOT_SATISFIED, "user presence required")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    handle = wrap(ctx, key.private_numbers().private_value, application)
    next_count(fido)
    ctx.persist()
    attestation = ec.derive_private_key(fido.attestation_key, ec.SECP256R1())
    signed = b"\x00" + application + challenge + handle + public
    signature = attestation.sign(signed, ec.ECDSA(hashes.SHA256()))
    certificate = fido.attestation_chain[0]
    return Reply(data=b"\x05" + public + bytes([len(handle)]) + handle + certificate + signature)


def _authenticate(ctx: CommandContext, apdu: CommandApdu, presence: Callable[[str], bool]) -> Reply:
    """U2F_AUTHENTICATE (§5.1-5.4)."""
    if apdu.p1 not in (_CHECK_ONLY, _ENFORCE, _DONT_ENFORCE):
        raise refuse(SW.INCORRECT_P1P2, f"U2F_AUTHENTICATE P1 {apdu.p1:02X}")
    data = apdu.data
    if len(data) < 65 or len(data) != 65 + data[64]:
        raise refuse(SW.WRONG_LENGTH, "U2F_AUTHENTICATE data")
    challenge, application, handle = data[:32], data[32:64], data[65:]
    fido = ctx.state.fido
    credential = unwrap(fido, handle, application)
    if credential is None:
        raise refuse(SW.INCORRECT_DATA, "key handle not ours for this application")
    if apdu.p1 == _CHECK_ONLY:
        raise refuse(SW.CONDITIONS_NOT_SATISFIED, "check-only: the key handle is ours")
    flags = 0
    if apdu.p1 == _ENFORCE:
        if not presence(""):
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "user presence required")
        flags = _USER_PRESENT
    counter = next_count(fido)
    ctx.persist()
    signed = application + struct.pack(">BI", flags, counter) + challenge
    key = ec.derive_private_key(credential.private_value, ec.SECP256R1())
    signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return Reply(data=struct.pack(">BI", flags, counter) + signature)
