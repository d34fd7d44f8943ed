"""The PIV card edge on the wire, shared by the card's applet and the host's client.

NIST SP 800-73-4 Part 2 (card commands, status words), SP 800-73-4 Part 1 Table 3 (data object
tags) and SP 800-78-4 Table 6-2 (algorithm identifiers), plus the Yubico PIV extensions stock
tools send (GET VERSION ``FD``, GET SERIAL ``F8``, SET MANAGEMENT KEY ``FF``, GET METADATA
``F7``). The complete reference, with status words, is docs/se-apdu.md.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fleetid.errors import EncodingError
from fleetid.se.wire import Curve

__all__ = [
    "ALGORITHM_OF_CURVE",
    "CURVE_OF_ALGORITHM",
    "DEFAULT_MANAGEMENT_ALGORITHM",
    "DEFAULT_MANAGEMENT_KEY",
    "DEFAULT_PIN",
    "DEFAULT_PUK",
    "INS_CHANGE_REFERENCE",
    "INS_GENERAL_AUTHENTICATE",
    "INS_GENERATE",
    "INS_GET_DATA",
    "INS_GET_METADATA",
    "INS_GET_SERIAL",
    "INS_GET_VERSION",
    "INS_PUT_DATA",
    "INS_RESET_RETRY",
    "INS_SET_MANAGEMENT_KEY",
    "INS_VERIFY",
    "KEY_SLOTS",
    "MANAGEMENT_ALGORITHMS",
    "MANAGEMENT_KEY",
    "OBJECT_OF_SLOT",
    "PIN_REFERENCE",
    "PIV_AID",
    "PUK_REFERENCE",
    "SLOT_AUTHENTICATION",
    "SLOT_CARD_AUTHENTICATION",
    "SLOT_KEY_MANAGEMENT",
    "SLOT_SIGNATURE",
    "TAG_CCC",
    "TAG_CHUID",
    "TAG_DISCOVERY",
    "administration_cipher",
    "block_size",
    "pad_reference_data",
]

#: SP 800-73-4 Part 1 §2.2: the PIV Card Application AID (RID A000000308, PIX 00001000 0100).
PIV_AID: Final = bytes.fromhex("A000000308000010000100")

INS_VERIFY: Final = 0x20
INS_CHANGE_REFERENCE: Final = 0x24
INS_RESET_RETRY: Final = 0x2C
INS_GENERATE: Final = 0x47
INS_GENERAL_AUTHENTICATE: Final = 0x87
INS_GET_DATA: Final = 0xCB
INS_PUT_DATA: Final = 0xDB
# Yubico extensions (the YubiKey PIV application's proprietary instructions).
INS_GET_METADATA: Final = 0xF7
INS_GET_SERIAL: Final = 0xF8
INS_GET_VERSION: Final = 0xFD
INS_SET_MANAGEMENT_KEY: Final = 0xFF

#: SP 800-73-4 Part 1 Table 4b: key references.
PIN_REFERENCE: Final = 0x80
PUK_REFERENCE: Final = 0x81
MANAGEMENT_KEY: Final = 0x9B
SLOT_AUTHENTICATION: Final = 0x9A
SLOT_SIGNATURE: Final = 0x9C
SLOT_KEY_MANAGEMENT: Final = 0x9D
SLOT_CARD_AUTHENTICATION: Final = 0x9E
KEY_SLOTS: Final = (
    SLOT_AUTHENTICATION,
    SLOT_SIGNATURE,
    SLOT_KEY_MANAGEMENT,
    SLOT_CARD_AUTHENTICATION,
)

#: SP 800-73-4 Part 1 Table 3: BER-TLV tags of the data objects.
TAG_CHUID: Final = 0x5FC102
TAG_CCC: Final = 0x5FC107
TAG_DISCOVERY: Final = 0x7E
#: The X.509 certificate object of each key slot (Table 3 and Part 1 §3.3).
OBJECT_OF_SLOT: Final = {
    SLOT_AUTHENTICATION: 0x5FC105,
    SLOT_SIGNATURE: 0x5FC10A,
    SLOT_KEY_MANAGEMENT: 0x5FC10B,
    SLOT_CARD_AUTHENTICATION: 0x5FC101,
}

#: SP 800-78-4 Table 6-2: cryptographic mechanism identifiers (P1 of GENERAL AUTHENTICATE).
CURVE_OF_ALGORITHM: Final = {0x11: Curve.P256, 0x14: Curve.P384}
ALGORITHM_OF_CURVE: Final = {c: a for a, c in CURVE_OF_ALGORITHM.items()}
#: Administration key algorithms and key lengths: AES-128 / -192 / -256, and three-key Triple
#: DES (``03``) for middleware that knows no AES administration key.
MANAGEMENT_ALGORITHMS: Final = {0x03: 24, 0x08: 16, 0x0A: 24, 0x0C: 32}

#: A factory-fresh card's PIN, PUK and administration key, which the issuer changes at issuance
#: (the values stock PIV middleware assumes).
DEFAULT_PIN: Final = b"123456"
DEFAULT_PUK: Final = b"12345678"
DEFAULT_MANAGEMENT_KEY: Final = bytes.fromhex("010203040506070801020304050607080102030405060708")
#: SP 800-78-4 Table 6-2: ``0A`` is AES-192.
DEFAULT_MANAGEMENT_ALGORITHM: Final = 0x0A

_PAD = 0xFF
_REFERENCE_LENGTH = 8


def pad_reference_data(value: bytes) -> bytes:
    """A PIN or PUK as the card compares it: padded to 8 bytes with ``FF`` (SP 800-73-4 Part 2
    §2.4.3)."""
    return value + bytes((_PAD,)) * (_REFERENCE_LENGTH - len(value))


def block_size(algorithm: int) -> int:
    """The block size of an administration key algorithm: 8 for Triple DES, 16 for AES."""
    return 8 if algorithm == 0x03 else 16


def administration_cipher(algorithm: int, key: bytes) -> Cipher[modes.ECB]:
    """The block cipher of the administration key exchanges (SP 800-73-4 Part 2 Appendix A.1),
    which card and host both compute: one block of ECB is the raw block cipher."""
    if MANAGEMENT_ALGORITHMS.get(algorithm) != len(key):
        raise EncodingError(f"not a key of administration key algorithm {algorithm:02X}")
    if algorithm == 0x03:
        return Cipher(TripleDES(key), modes.ECB())  # noqa: S305
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305
