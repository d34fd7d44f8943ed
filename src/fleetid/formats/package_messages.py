"""The signed messages of package download and discovery, after GSMA SGP.22 §5.6 (ES9+)
and §5.8 (ES11): what the preparation service, the discovery service and the device agent sign,
verify and exchange. BER-TLV, each a SEQUENCE-like ``30`` of context tags in a fixed order; the
signature is over those bytes exactly. We carry the RSP sequence, not its ASN.1 profile formats.

=================== ===================================================================
SGP.22 name         here
=================== ===================================================================
serverSigned1       ``server_signed1``: transactionId, euiccChallenge, serverAddress,
                    serverChallenge (InitiateAuthentication's answer, signed by the service)
smdpSigned2         ``smdp_signed2``: transactionId, eventId, ccRequiredFlag
                    (AuthenticateClient's answer, signed by the service)
hashCc              ``hash_confirmation_code``: SHA-256(SHA-256(code) ‖ transactionId)
BoundProfilePackage ``BoundPackage``: the sealed package and the service's signature over it
PendingNotification ``Notification``: transactionId, eventId, seqNumber, result, signed in
                    the SE by the device's notification key
EID                 ``discovery_reference``: SHA-256 of the device serial, never the serial
ES11 event list     ``discovery_signed``: transactionId, serverChallenge and the event records
                    (eventId, rspServerAddress), signed by the discovery service
=================== ===================================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from fleetid.errors import EncodingError
from fleetid.formats.tlv import decode_tlv, decode_tlvs, encode_tlv

__all__ = [
    "CHALLENGE_LENGTH",
    "TRANSACTION_ID_LENGTH",
    "BoundPackage",
    "Notification",
    "attestation_challenge",
    "discovery_reference",
    "discovery_signed",
    "hash_confirmation_code",
    "server_signed1",
    "smdp_signed2",
]

TRANSACTION_ID_LENGTH: Final = 16
CHALLENGE_LENGTH: Final = 16
_SEQUENCE: Final = 0x30


def _sequence(*values: bytes) -> bytes:
    return encode_tlv(_SEQUENCE, b"".join(encode_tlv(0x80 + i, v) for i, v in enumerate(values)))


def _fields(data: bytes, count: int, what: str) -> list[bytes]:
    try:
        outer, end = decode_tlv(data)
        inner = decode_tlvs(outer.value)
    except EncodingError as exc:
        raise EncodingError(f"the {what} does not parse: {exc}") from exc
    if (
        end != len(data)
        or outer.tag != _SEQUENCE
        or [t.tag for t in inner] != [0x80 + i for i in range(count)]
    ):
        raise EncodingError(f"the {what} is not the {count} fields it should be")
    return [t.value for t in inner]


def _signed(data: bytes, count: int, what: str) -> tuple[list[bytes], bytes]:
    """The ``count`` fields and the signature of ``30 { 30 {fields} 04 signature }``."""
    try:
        outer, end = decode_tlv(data)
        tbs, signature = decode_tlvs(outer.value)
    except (EncodingError, ValueError) as exc:
        raise EncodingError(f"the {what} does not parse: {exc}") from exc
    if end != len(data) or outer.tag != _SEQUENCE or signature.tag != 0x04:
        raise EncodingError(f"the {what} is its fields and one signature")
    return _fields(tbs.encode(), count, what), signature.value


def server_signed1(
    *, transaction_id: bytes, euicc_challenge: bytes, address: str, server_challenge: bytes
) -> bytes:
    """What the service signs in InitiateAuthentication (SGP.22 §5.6.1 serverSigned1)."""
    return _sequence(transaction_id, euicc_challenge, address.encode(), server_challenge)


def smdp_signed2(*, transaction_id: bytes, event_id: str, cc_required: bool) -> bytes:
    """What the service signs in AuthenticateClient (SGP.22 §5.6.2 smdpSigned2)."""
    return _sequence(transaction_id, event_id.encode(), b"\x01" if cc_required else b"\x00")


def discovery_signed(
    *, transaction_id: bytes, server_challenge: bytes, events: Sequence[tuple[str, str]]
) -> bytes:
    """What the discovery service signs over its ES11 AuthenticateClient answer: the poll's
    transaction ID and challenge, then each event record (eventId, rspServerAddress) in the
    order given. An answer altered, cut short or replayed into another poll does not verify."""
    records = b"".join(_sequence(e.encode(), a.encode()) for e, a in events)
    return _sequence(transaction_id, server_challenge, records)


def attestation_challenge(transaction_id: bytes, server_challenge: bytes) -> bytes:
    """The challenge an SE key attestation carries for one transaction: it binds the proof of the
    SE's identity (euiccSigned1's role) to the session and to the service's fresh challenge."""
    return hashlib.sha256(transaction_id + server_challenge).digest()


def hash_confirmation_code(code: str, transaction_id: bytes) -> bytes:
    """SGP.22 §2.6.7 hashCc: SHA-256(SHA-256(code) ‖ transactionId); a captured hash is of no
    use in another transaction."""
    return hashlib.sha256(hashlib.sha256(code.encode()).digest() + transaction_id).digest()


def discovery_reference(device_serial: str) -> str:
    """The discovery index key for a device: SHA-256 of its manufacturer identity (the IDevID
    serialNumber), hex; the identity itself is never stored there."""
    return hashlib.sha256(b"fleetid discovery\x00" + device_serial.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class BoundPackage:
    """A package bound to one device's one-time key, signed by the preparation service."""

    transaction_id: bytes
    event_id: str
    kind: str
    point: bytes  # the service's one-time public key, 04 X Y
    nonce: bytes
    ciphertext: bytes = field(repr=False)
    signature: bytes = field(repr=False, default=b"")

    def tbs(self) -> bytes:
        return _sequence(
            self.transaction_id,
            self.event_id.encode(),
            self.kind.encode(),
            self.point,
            self.nonce,
            self.ciphertext,
        )

    def encode(self) -> bytes:
        return encode_tlv(_SEQUENCE, self.tbs() + encode_tlv(0x04, self.signature))

    @classmethod
    def decode(cls, data: bytes) -> BoundPackage:
        values, signature = _signed(data, 6, "bound package")
        return cls(
            transaction_id=values[0],
            event_id=values[1].decode(errors="replace"),
            kind=values[2].decode(errors="replace"),
            point=values[3],
            nonce=values[4],
            ciphertext=values[5],
            signature=signature,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """The device's signed word on a package: installed (``success``) or failed."""

    transaction_id: bytes
    event_id: str
    sequence: int
    success: bool
    signature: bytes = field(repr=False, default=b"")

    def tbs(self) -> bytes:
        return _sequence(
            self.transaction_id,
            self.event_id.encode(),
            self.sequence.to_bytes(4, "big"),
            b"\x01" if self.success else b"\x00",
        )

    def encode(self) -> bytes:
        return encode_tlv(_SEQUENCE, self.tbs() + encode_tlv(0x04, self.signature))

    @classmethod
    def decode(cls, data: bytes) -> Notification:
        values, signature = _signed(data, 4, "notification")
        if len(values[2]) != 4 or values[3] not in (b"\x00", b"\x01"):
            raise EncodingError("the notification's sequence number or result is malformed")
        return cls(
            transaction_id=values[0],
            event_id=values[1].decode(errors="replace"),
            sequence=int.from_bytes(values[2], "big"),
            success=values[3] == b"\x01",
            signature=signature,
        )
