"""The secure element's wire vocabulary: what the card and the host must agree on, and no more.

Both sides import this module and nothing of each other: the applets (card side) answer these
AIDs, instructions and data groups; ``fleetid.se.client`` (host side) sends them. Nothing here
holds a key or a card state, so importing it loads no card. The commands and their data fields
are laid out in ``docs/se-apdu.md``; GPCS is GlobalPlatform Card Specification v2.3.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from fleetid.errors import ConfigError, EncodingError, StoreError
from fleetid.formats.apdu import CommandApdu
from fleetid.formats.tlv import decode_tlvs, encode_tlv, find_tlv

__all__ = [
    "ATTESTATION_HANDLE",
    "BOOT_AID",
    "CLA_GP",
    "CLA_PROPRIETARY",
    "DERIVE_COCOON",
    "DERIVE_EXPLICIT",
    "DERIVE_IMPLICIT",
    "FIDO_AID",
    "FIDO_ATTESTATION_CHAIN_DGI",
    "FIDO_ATTESTATION_KEY_DGI",
    "IDENTITY_AID",
    "INS_ATTEST",
    "INS_DELETE",
    "INS_DELETE_KEY",
    "INS_DERIVE_PSEUDONYM",
    "INS_ECDH",
    "INS_EXTERNAL_AUTHENTICATE",
    "INS_GENERATE_KEY",
    "INS_GET_BOOT_STATE",
    "INS_GET_DATA",
    "INS_GET_PUBLIC_KEY",
    "INS_GET_RESPONSE",
    "INS_GET_STATUS",
    "INS_INITIALIZE_UPDATE",
    "INS_INSTALL",
    "INS_LIST_KEYS",
    "INS_LOAD",
    "INS_LOAD_BOUND_PACKAGE",
    "INS_NFCCTAP_GETRESPONSE",
    "INS_NFCCTAP_MSG",
    "INS_PUT_KEY",
    "INS_SELECT",
    "INS_SET_STATUS",
    "INS_SIGN",
    "INS_STORE_DATA",
    "INS_VERIFY_IMAGE",
    "ISD_AID",
    "MAX_ASSEMBLED_COMMAND",
    "MAX_USER_HANDLE",
    "P1_CHECK",
    "P1_CONFIRM",
    "P2_LAST_BLOCK",
    "P2_MORE_BLOCKS",
    "POLICY_REQUIRES_SESSION",
    "POLICY_USAGE_MASK",
    "BootStatus",
    "BoundPackageCommand",
    "CardLifeCycle",
    "Cplc",
    "Curve",
    "PackageSecret",
    "PersonalisationObject",
    "decode_boot_state",
    "decode_package_plaintext",
    "encode_package_plaintext",
    "verify_image_commands",
]

# --- applets ------------------------------------------------------------------------------------

#: The issuer security domain (GPCS §H.1.3, the default ISD AID of GlobalPlatform).
ISD_AID: Final = bytes.fromhex("A000000151000000")
#: ``F0`` (proprietary, unregistered RID, ISO 7816-5) ‖ "FLEETID" ‖ ``0101`` (identity applet).
IDENTITY_AID: Final = bytes.fromhex("F0464C45455449440101")
#: ``F0`` (proprietary, unregistered RID, ISO 7816-5) ‖ "fleetid" ‖ ``B0`` (boot).
BOOT_AID: Final = bytes.fromhex("F0") + b"fleetid" + bytes.fromhex("B0")
#: The FIDO applet (CTAP 2.1 §11.3.3), its NFCCTAP instructions (§11.3.4-11.3.5) and the STORE
#: DATA objects the line injects its attestation key and chain with (docs/se-apdu.md).
FIDO_AID: Final = bytes.fromhex("A0000006472F0001")
INS_NFCCTAP_MSG: Final = 0x10
INS_NFCCTAP_GETRESPONSE: Final = 0x11
FIDO_ATTESTATION_KEY_DGI: Final = 0xFD01
FIDO_ATTESTATION_CHAIN_DGI: Final = 0xFD02

# --- class and instruction bytes -----------------------------------------------------------------

#: GlobalPlatform commands are proprietary class (GPCS §11.1.4); so are fleetid's own.
CLA_GP: Final = 0x80
CLA_PROPRIETARY: Final = 0x80

# ISO 7816-4 interindustry commands.
INS_SELECT: Final = 0xA4
INS_GET_RESPONSE: Final = 0xC0
# GlobalPlatform (GPCS §11, Amendment D §7.1).
INS_INITIALIZE_UPDATE: Final = 0x50
INS_EXTERNAL_AUTHENTICATE: Final = 0x82
INS_GET_DATA: Final = 0xCA
INS_GET_STATUS: Final = 0xF2
INS_PUT_KEY: Final = 0xD8
INS_STORE_DATA: Final = 0xE2
INS_SET_STATUS: Final = 0xF0
# Card content management (GPCS §11.2 DELETE, §11.5 INSTALL, §11.6 LOAD).
INS_DELETE: Final = 0xE4
INS_INSTALL: Final = 0xE6
INS_LOAD: Final = 0xE8
# The identity applet (docs/se-apdu.md).
INS_GENERATE_KEY: Final = 0x46
INS_SIGN: Final = 0x48
INS_ECDH: Final = 0x4A
INS_GET_PUBLIC_KEY: Final = 0x4C
INS_DELETE_KEY: Final = 0x4E
INS_ATTEST: Final = 0x56
INS_LIST_KEYS: Final = 0x5C
# DERIVE PSEUDONYM KEY (proprietary): a butterfly key from a caterpillar key on the card, by mode.
INS_DERIVE_PSEUDONYM: Final = 0x62
DERIVE_COCOON: Final = 0x01  # the cocoon key: caterpillar + f_k(i, j)
DERIVE_EXPLICIT: Final = 0x02  # an explicit certificate's key: cocoon + the CA's c
DERIVE_IMPLICIT: Final = 0x03  # an implicit (ECQV) certificate's key: e·cocoon + r
# The boot applet (docs/se-apdu.md).
INS_VERIFY_IMAGE: Final = 0x38
INS_GET_BOOT_STATE: Final = 0x3A

# VERIFY IMAGE: P1 says whether a verified image is confirmed (its counter raised); P2 b8 says
# that more blocks of the image follow.
P1_CHECK: Final = 0x00
P1_CONFIRM: Final = 0x01
P2_LAST_BLOCK: Final = 0x00
P2_MORE_BLOCKS: Final = 0x80

#: The card assembles an ISO 7816-4 command chain into one command: at most the extended Nc.
MAX_ASSEMBLED_COMMAND: Final = 0xFFFF

# --- key slots and their policy byte -------------------------------------------------------------

#: The reserved slot for the manufacturer attestation key (docs/se-apdu.md).
ATTESTATION_HANDLE: Final = 0xF0
#: User key handles are 0x01..MAX_USER_HANDLE.
MAX_USER_HANDLE: Final = 0x7F
#: GENERATE KEY policy byte: b8 set means the key is used only inside a secure channel session;
#: b3-b1 are the ``fleetid.formats.attestation.KeyUsage`` bits.
POLICY_REQUIRES_SESSION: Final = 0x80
POLICY_USAGE_MASK: Final = 0x07


class PersonalisationObject:
    """The STORE DATA objects: DGI and the matching BER-TLV tag (GET DATA reads the tag)."""

    ATTESTATION_CHAIN: Final = (0x0F01, 0xDF01)
    TRUST_ANCHORS: Final = (0x0F02, 0xDF02)
    FIRMWARE_KEY: Final = (0x0F03, 0xDF03)
    KEY_CERTIFICATE: Final = (0x0F04, 0xDF04)
    #: The fleet's applet-signing key (DER SPKI, P-256): the key every load file's DAP must
    #: verify under (GPCS §9.2, §B.4.3); settable only before SECURED, as the firmware key.
    APPLET_SIGNING_KEY: Final = (0x0F05, 0xDF05)


class CardLifeCycle(IntEnum):
    """GP Card Spec §5.1.1, Table 11-5: the card life cycle coding."""

    OP_READY = 0x01
    INITIALIZED = 0x07
    SECURED = 0x0F
    CARD_LOCKED = 0x7F
    TERMINATED = 0xFF


class Curve(IntEnum):
    """Curve references in GENERATE KEY P1 (docs/se-apdu.md).

    NIST P-256 / P-384 (FIPS 186-5) and brainpoolP256r1 / brainpoolP384r1 (RFC 5639), the curves
    ETSI TS 103 097 §5 allows for V2X end-entity and CA keys.
    """

    P256 = 0x01
    P384 = 0x02
    BRAINPOOL_P256 = 0x03
    BRAINPOOL_P384 = 0x04

    @property
    def coordinate_size(self) -> int:
        return 32 if self in (Curve.P256, Curve.BRAINPOOL_P256) else 48

    @property
    def oid(self) -> str:
        return _CURVE_OIDS[self]


# SEC 2 §A.2 (NIST curves), RFC 5639 §4.1 (brainpool ecStdCurvesAndGeneration arc).
_CURVE_OIDS: dict[Curve, str] = {
    Curve.P256: "1.2.840.10045.3.1.7",
    Curve.P384: "1.3.132.0.34",
    Curve.BRAINPOOL_P256: "1.3.36.3.3.2.8.1.1.7",
    Curve.BRAINPOOL_P384: "1.3.36.3.3.2.8.1.1.11",
}

_CPLC_LENGTH: Final = 42


@dataclass(frozen=True, slots=True, kw_only=True)
class Cplc:
    """Card Production Life Cycle data (GP Card Spec Appendix H.6, tag 9F7F, 42 bytes).

    Only the fields fleetid sets are named; the rest are zero. ``ic_serial`` is the chip serial.
    """

    ic_fabricator: int = 0xF1D0
    ic_type: int = 0x5E01
    os_identifier: int = 0xF1D0
    os_release_date: int = 0x7001  # YDDD, year digit 7, day 001
    os_release_level: int = 0x0100
    ic_fabrication_date: int = 0x7001
    ic_serial: bytes = b"\x00\x00\x00\x00"
    ic_batch: int = 0x0001

    def encode(self) -> bytes:
        """The 42 CPLC bytes, in the order of GP Card Spec Table H-6."""
        head = b"".join(
            v.to_bytes(2, "big")
            for v in (
                self.ic_fabricator,
                self.ic_type,
                self.os_identifier,
                self.os_release_date,
                self.os_release_level,
                self.ic_fabrication_date,
            )
        )
        # IC serial (4), IC batch id (2), then module fabricator .. personalisation fields (24).
        return head + self.ic_serial + self.ic_batch.to_bytes(2, "big") + bytes(24)

    @classmethod
    def decode(cls, data: bytes) -> Cplc:
        if len(data) != _CPLC_LENGTH:
            raise StoreError(f"CPLC is {_CPLC_LENGTH} bytes, got {len(data)}")
        words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, 12, 2)]
        return cls(
            ic_fabricator=words[0],
            ic_type=words[1],
            os_identifier=words[2],
            os_release_date=words[3],
            os_release_level=words[4],
            ic_fabrication_date=words[5],
            ic_serial=bytes(data[12:16]),
            ic_batch=int.from_bytes(data[16:18], "big"),
        )

    @property
    def kdd(self) -> bytes:
        """SCP03 key diversification data (10 bytes), taken from CPLC as GP tools do.

        fleetid's layout: IC fabricator (2) || IC type (2) || IC batch (2) || IC serial (4).
        """
        return (
            self.ic_fabricator.to_bytes(2, "big")
            + self.ic_type.to_bytes(2, "big")
            + self.ic_batch.to_bytes(2, "big")
            + self.ic_serial
        )


# --- the boot applet's data fields ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class BootStatus:
    """GET BOOT STATE, decoded on the host: counter (4) ‖ n ‖ key hash (n) ‖ m ‖ measurement (m)."""

    security_counter: int
    key_hash: bytes | None
    measurement: bytes | None


def decode_boot_state(data: bytes) -> BootStatus:
    """Decode the GET BOOT STATE response; raise ``EncodingError`` on malformed bytes."""
    try:
        counter = int.from_bytes(data[0:4], "big")
        n = data[4]
        fingerprint = data[5 : 5 + n]
        m = data[5 + n]
        measurement = data[6 + n : 6 + n + m]
    except IndexError as exc:
        raise EncodingError("GET BOOT STATE response is truncated") from exc
    if len(data) != 6 + n + m or len(fingerprint) != n or len(measurement) != m:
        raise EncodingError("GET BOOT STATE response has the wrong length")
    return BootStatus(
        security_counter=counter,
        key_hash=bytes(fingerprint) or None,
        measurement=bytes(measurement) or None,
    )


def verify_image_commands(
    image: bytes, *, confirm: bool, block_size: int = 224, chaining: bool | None = None
) -> list[CommandApdu]:
    """The VERIFY IMAGE command(s) that carry ``image``, for the host side.

    ``chaining=True`` splits it into an ISO 7816-4 command chain (CLA b5 set on all but the last
    command), which the card assembles into one command of at most 65535 data bytes; ``False``
    uses the applet's P2=80 multi-block form; ``None`` picks chaining when the image fits in one
    assembled command. The default block of 224 bytes leaves room for SCP03 padding and C-MAC
    in a short APDU.
    """
    if not image:
        raise ConfigError("image is empty")
    if chaining is None:
        chaining = len(image) <= MAX_ASSEMBLED_COMMAND
    p1 = P1_CONFIRM if confirm else P1_CHECK
    blocks = [image[i : i + block_size] for i in range(0, len(image), block_size)]
    commands = []
    for index, block in enumerate(blocks):
        last = index == len(blocks) - 1
        if chaining:
            cla, p2 = CLA_PROPRIETARY | (0 if last else 0x10), P2_LAST_BLOCK
        else:
            cla, p2 = CLA_PROPRIETARY, P2_LAST_BLOCK if last else P2_MORE_BLOCKS
        ne = 256 if last else None  # the measurement comes back on the last command only
        commands.append(CommandApdu(cla, INS_VERIFY_IMAGE, p1, p2, block, ne=ne))
    return commands


# --- LOAD BOUND PACKAGE (installation unwraps inside the SE by handle) ----------------

#: LOAD BOUND PACKAGE (proprietary): P2 names the one-time key-agreement key the package is bound
#: to; the card opens the package with it (``fleetid.crypto.package_seal``), installs the key the
#: package carries in the first free slot, deletes the one-time key and answers the new handle
#: (``00``: none) followed by the package's public part.
INS_LOAD_BOUND_PACKAGE: Final = 0x6C
_TAG_CONTEXT: Final = 0x80
_TAG_POINT: Final = 0x81
_TAG_NONCE: Final = 0x82
_TAG_CIPHERTEXT: Final = 0x83
_TAG_SECRET: Final = 0xA0
_TAG_PUBLIC: Final = 0x84


@dataclass(frozen=True, slots=True, kw_only=True)
class BoundPackageCommand:
    """The data field of LOAD BOUND PACKAGE: BER-TLV ``80`` context (the transaction ID) ‖ ``81``
    the service's one-time point ‖ ``82`` nonce ‖ ``83`` ciphertext with tag."""

    context: bytes
    point: bytes
    nonce: bytes
    ciphertext: bytes

    def encode(self) -> bytes:
        return (
            encode_tlv(_TAG_CONTEXT, self.context)
            + encode_tlv(_TAG_POINT, self.point)
            + encode_tlv(_TAG_NONCE, self.nonce)
            + encode_tlv(_TAG_CIPHERTEXT, self.ciphertext)
        )

    @classmethod
    def decode(cls, data: bytes) -> BoundPackageCommand:
        """Raises ``EncodingError`` (a ``TlvError``) when a field is missing or out of order."""
        objects = decode_tlvs(data)
        if [o.tag for o in objects] != [_TAG_CONTEXT, _TAG_POINT, _TAG_NONCE, _TAG_CIPHERTEXT]:
            raise EncodingError("LOAD BOUND PACKAGE data is 80, 81, 82, 83 in that order")
        return cls(
            context=objects[0].value,
            point=objects[1].value,
            nonce=objects[2].value,
            ciphertext=objects[3].value,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageSecret:
    """A key a package installs: its curve, its policy byte and its private scalar."""

    curve: Curve
    policy: int
    scalar: bytes

    def __repr__(self) -> str:
        return f"PackageSecret(curve={self.curve!r}, policy={self.policy:#04x})"


def encode_package_plaintext(secret: PackageSecret | None, public: bytes) -> bytes:
    """The package plaintext: ``A0`` (curve ‖ policy ‖ scalar), if a key is carried, then ``84``
    the public part (what the card hands back to the host)."""
    head = b""
    if secret is not None:
        head = encode_tlv(_TAG_SECRET, bytes((int(secret.curve), secret.policy)) + secret.scalar)
    return head + encode_tlv(_TAG_PUBLIC, public)


def decode_package_plaintext(data: bytes) -> tuple[PackageSecret | None, bytes]:
    objects = decode_tlvs(data)
    public = find_tlv(objects, _TAG_PUBLIC)
    secret = find_tlv(objects, _TAG_SECRET)
    if public is None or len(objects) != (2 if secret is not None else 1):
        raise EncodingError("a package plaintext is an optional A0 key and one 84 public part")
    if secret is None:
        return None, public.value
    if len(secret.value) < 3:
        raise EncodingError("a package key is curve, policy and scalar")
    try:
        curve = Curve(secret.value[0])
    except ValueError:
        raise EncodingError(f"unknown curve reference {secret.value[0]:02X}") from None
    if len(secret.value) != 2 + curve.coordinate_size:
        raise EncodingError("the package key's scalar does not fit its curve")
    return PackageSecret(curve=curve, policy=secret.value[1], scalar=secret.value[2:]), public.value
