"""DER codecs for the two extensions of a fleetid key-attestation certificate, pure.

1. **Key properties** (fleetid's own), under ``KEY_PROPERTIES_OID``. The arc is ITU-T X.667 /
   ISO/IEC 9834-8 §6.3: ``2.25.<UUID as an integer>`` may be used by whoever generated the UUID,
   without registration. fleetid's UUID, generated once (version 4, random) for this project, is
   ``92a340f0-5602-4fa6-bfc0-45a0b8b2b66c``, so ``FLEETID_ARC`` is
   ``2.25.194914948888131036316958145097030088300`` and the key-properties extension is arc ``.1``
   below it. It states what Android's KeyDescription or TPM2_Certify's ``fixedTPM`` /
   ``sensitiveDataOrigin`` attributes state: where the key was made, that it cannot leave, what it
   may do, and the verifier's challenge.
2. **TCG DICE TcbInfo**, ``2.23.133.5.4.1`` (TCG "DICE Attestation Architecture" v1.0/v1.1 §6.1.1,
   ``tcg-dice-TcbInfo``), with its published ASN.1 structure (implicitly tagged optional fields;
   ``fwids`` is a SEQUENCE OF FWID {hashAlg, digest}). The card fills vendor, model, version, svn
   (the monotonic security counter) and one FWID with the SHA-256 measurement of the firmware
   image the card last verified.

Both are compiled from the ASN.1 module ``attestation.asn`` beside this file with ``asn1tools``
(DER); nothing here writes DER by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import asn1tools

from fleetid.errors import EncodingError
from fleetid.formats.tlv import decode_tlv, decode_tlvs, encode_tlv

__all__ = [
    "FLEETID_ARC",
    "FLEETID_UUID",
    "KEY_PROPERTIES_OID",
    "OID_SHA256",
    "OID_SHA384",
    "TCG_DICE_TCB_INFO_OID",
    "Fwid",
    "KeyOrigin",
    "KeyProperties",
    "KeyUsage",
    "TcbInfo",
    "decode_key_properties",
    "decode_tcb_info",
    "encode_key_properties",
    "encode_tcb_info",
]

FLEETID_UUID = "92a340f0-5602-4fa6-bfc0-45a0b8b2b66c"
FLEETID_ARC = "2.25.194914948888131036316958145097030088300"
KEY_PROPERTIES_OID = FLEETID_ARC + ".1"
TCG_DICE_TCB_INFO_OID = "2.23.133.5.4.1"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"  # NIST CSOR id-sha256
OID_SHA384 = "2.16.840.1.101.3.4.2.2"  # NIST CSOR id-sha384

_ASN_PATH = Path(__file__).with_name("attestation.asn")


@cache
def _spec() -> Any:
    return asn1tools.compile_files(str(_ASN_PATH), "der")


class KeyUsage(IntFlag):
    """What a key on the card may do; bit values as in the APDU policy byte (docs/se-apdu.md)."""

    SIGN = 0x01
    KEY_AGREEMENT = 0x02
    ATTEST = 0x04


class KeyOrigin:
    """Where a key's private half came from (the ENUMERATED ``KeyOrigin``)."""

    GENERATED_ON_CARD = "generatedOnCard"
    IMPORTED = "imported"


_USAGE_BITS = (
    (KeyUsage.SIGN, 0),
    (KeyUsage.KEY_AGREEMENT, 1),
    (KeyUsage.ATTEST, 2),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyProperties:
    """The value of the key-properties extension."""

    chip_serial: bytes
    key_handle: int
    curve_oid: str
    usage: KeyUsage
    challenge: bytes
    origin: str = KeyOrigin.GENERATED_ON_CARD
    exportable: bool = False
    requires_secure_channel: bool = False
    version: int = 1


def _usage_to_bits(usage: KeyUsage) -> tuple[bytes, int]:
    # A named BIT STRING in DER drops trailing zero bits (X.690 §11.2.2); asn1tools expects the
    # (bytes, bit length) pair, so give it the minimal length.
    value = 0
    length = 0
    for flag, bit in _USAGE_BITS:
        if usage & flag:
            value |= 0x80 >> bit
            length = bit + 1
    return bytes((value,)) if length else b"", length


def _bits_to_usage(bits: tuple[bytes, int]) -> KeyUsage:
    raw, length = bits
    usage = KeyUsage(0)
    for flag, bit in _USAGE_BITS:
        if bit < length and raw[bit // 8] & (0x80 >> (bit % 8)):
            usage |= flag
    return usage


def encode_key_properties(props: KeyProperties) -> bytes:
    """DER of ``FleetIdKeyProperties``.

    The components other than the chip serial and the challenge are asn1tools' encoding, made
    once per distinct value (a card attests its keys with the same properties again and
    again); the two OCTET STRINGs are placed around them (X.690 §8.7, §8.9: a SEQUENCE's
    contents are its components' encodings in order).
    """
    version, middle = _key_properties_template(
        props.version,
        props.key_handle,
        props.curve_oid,
        props.origin,
        props.exportable,
        props.usage,
        props.requires_secure_channel,
    )
    return encode_tlv(
        0x30,
        version + encode_tlv(0x04, props.chip_serial) + middle + encode_tlv(0x04, props.challenge),
    )


@lru_cache(maxsize=256)
def _key_properties_template(
    version: int,
    key_handle: int,
    curve_oid: str,
    origin: str,
    exportable: bool,
    usage: KeyUsage,
    requires_secure_channel: bool,
) -> tuple[bytes, bytes]:
    """asn1tools' DER of the components before the chip serial (the version) and between it and
    the challenge, from an encoding with both empty."""
    der = _asn1tools_key_properties(
        KeyProperties(
            version=version,
            chip_serial=b"",
            key_handle=key_handle,
            curve_oid=curve_oid,
            origin=origin,
            exportable=exportable,
            usage=usage,
            requires_secure_channel=requires_secure_channel,
            challenge=b"",
        )
    )
    parts = decode_tlvs(decode_tlv(der)[0].value)
    if len(parts) != 9 or parts[1].tag != 0x04 or parts[-1].tag != 0x04:
        raise EncodingError("FleetIdKeyProperties has not the components the template expects")
    return parts[0].encode(), b"".join(part.encode() for part in parts[2:-1])


def _asn1tools_key_properties(props: KeyProperties) -> bytes:
    """The whole DER of ``props`` as asn1tools encodes it (the reference for the above)."""
    return bytes(
        _spec().encode(
            "FleetIdKeyProperties",
            {
                "version": props.version,
                "chipSerial": props.chip_serial,
                "keyHandle": props.key_handle,
                "curve": props.curve_oid,
                "origin": props.origin,
                "exportable": props.exportable,
                "usage": _usage_to_bits(props.usage),
                "requiresSecureChannel": props.requires_secure_channel,
                "challenge": props.challenge,
            },
        )
    )


def decode_key_properties(der: bytes) -> KeyProperties:
    """Parse ``FleetIdKeyProperties``; raise ``EncodingError`` if it is not that DER.

    The inverse of ``encode_key_properties``: the chip serial and the challenge are read from
    their places, and the components between them are asn1tools' decoding, made once per
    distinct encoding of them. What decoded must then encode back to the very bytes (DER, and
    nothing the fields do not say, such as a usage bit without a name).
    """
    try:
        sequence, end = decode_tlv(der)
        parts = decode_tlvs(sequence.value) if sequence.tag == 0x30 and end == len(der) else []
    except EncodingError as exc:
        raise EncodingError(f"key properties do not decode: {exc}") from exc
    if len(parts) != 9 or parts[1].tag != 0x04 or parts[8].tag != 0x04:
        raise EncodingError("key properties do not decode: not a FleetIdKeyProperties SEQUENCE")
    shared = _decode_shared_components(
        parts[0].encode(), b"".join(part.encode() for part in parts[2:8])
    )
    props = KeyProperties(chip_serial=parts[1].value, challenge=parts[8].value, **shared)
    if encode_key_properties(props) != der:
        raise EncodingError("key properties are not in DER form")
    return props


@lru_cache(maxsize=256)
def _decode_shared_components(version: bytes, middle: bytes) -> dict[str, Any]:
    """asn1tools' decoding of the components ``encode_key_properties`` takes from its template,
    with the chip serial and the challenge empty."""
    empty = encode_tlv(0x04, b"")
    try:
        v = _spec().decode(
            "FleetIdKeyProperties", encode_tlv(0x30, version + empty + middle + empty)
        )
    except asn1tools.Error as exc:
        raise EncodingError(f"key properties do not decode: {exc}") from exc
    return {
        "version": v["version"],
        "key_handle": v["keyHandle"],
        "curve_oid": v["curve"],
        "origin": v["origin"],
        "exportable": v["exportable"],
        "usage": _bits_to_usage(v["usage"]),
        "requires_secure_channel": v["requiresSecureChannel"],
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Fwid:
    """One firmware measurement: a hash algorithm OID and its digest."""

    hash_alg: str
    digest: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class TcbInfo:
    """The fields of ``DiceTcbInfo`` fleetid uses (all optional in the TCG structure)."""

    vendor: str | None = None
    model: str | None = None
    version: str | None = None
    svn: int | None = None
    layer: int | None = None
    index: int | None = None
    fwids: tuple[Fwid, ...] = field(default_factory=tuple)
    vendor_info: bytes | None = None
    type: bytes | None = None


_TCB_SCALARS = (
    ("vendor", "vendor"),
    ("model", "model"),
    ("version", "version"),
    ("svn", "svn"),
    ("layer", "layer"),
    ("index", "index"),
    ("vendor_info", "vendorInfo"),
    ("type", "type"),
)


def encode_tcb_info(info: TcbInfo) -> bytes:
    """DER of TCG ``DiceTcbInfo``."""
    value: dict[str, Any] = {}
    for attr, name in _TCB_SCALARS:
        item = getattr(info, attr)
        if item is not None:
            value[name] = item
    if info.fwids:
        value["fwids"] = [{"hashAlg": f.hash_alg, "digest": f.digest} for f in info.fwids]
    return bytes(_spec().encode("DiceTcbInfo", value))


@lru_cache(maxsize=256)
def decode_tcb_info(der: bytes) -> TcbInfo:
    """Parse TCG ``DiceTcbInfo``; raise ``EncodingError`` if it is not that DER. The devices of
    one firmware report the same TcbInfo, so the last few are remembered (``TcbInfo`` is
    immutable)."""
    try:
        v = _spec().decode("DiceTcbInfo", der)
        if _spec().encode("DiceTcbInfo", v) != der:
            raise EncodingError("TcbInfo is not in DER form")
    except asn1tools.Error as exc:
        raise EncodingError(f"TcbInfo does not decode: {exc}") from exc
    kwargs: dict[str, Any] = {attr: v.get(name) for attr, name in _TCB_SCALARS}
    for attr in ("vendor_info", "type"):
        if kwargs[attr] is not None:
            kwargs[attr] = bytes(kwargs[attr])
    fwids = tuple(
        Fwid(hash_alg=f["hashAlg"], digest=bytes(f["digest"])) for f in v.get("fwids", [])
    )
    return TcbInfo(fwids=fwids, **kwargs)
