"""A python-fido2 ``CtapDevice`` over any APDU transport: the host end of CTAP's ISO 7816 binding.

python-fido2's own ``CtapPcscDevice`` needs pyscard and a PC/SC reader; this class speaks the same
framing (CTAP 2.1 §11.3: SELECT the FIDO AID, NFCCTAP_MSG ``80 10 80 00`` with one extended APDU,
GET RESPONSE after ``61xx``) straight to a ``transmit(command) -> response`` callable, such as an
emulated card in this process. Above it, python-fido2's ``Ctap2``, ``ClientPin`` and
``Fido2Client`` do the CTAP side, so nothing of the card's CBOR or PIN protocol is ours here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from threading import Event

from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID

from fleetid.errors import SecureElementError
from fleetid.formats.apdu import SW
from fleetid.se.client import Transport
from fleetid.se.wire import FIDO_AID, INS_GET_RESPONSE, INS_NFCCTAP_MSG, INS_SELECT

__all__ = ["ApduCtapDevice"]

_SW1_MORE_DATA = 0x61


class ApduCtapDevice(CtapDevice):
    """CTAP2 over ISO 7816-4 APDUs on ``transport`` (selects the FIDO applet when made)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        data, sw = self._exchange(
            bytes([0x00, INS_SELECT, 0x04, 0x00, len(FIDO_AID)]) + FIDO_AID + b"\x00"
        )
        if sw != SW.OK:
            raise SecureElementError(sw, "the card has no FIDO applet")
        self.version_string = data

    @property
    def capabilities(self) -> int:
        return int(CAPABILITY.CBOR)

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        if cmd != CTAPHID.CBOR:
            raise CtapError(CtapError.ERR.INVALID_COMMAND)
        # Extended case 4: 80 10 80 00 | 00 Lc1 Lc2 | data | Le1 Le2 (0000: Ne 65536).
        header = bytes([0x80, INS_NFCCTAP_MSG, 0x80, 0x00, 0x00]) + struct.pack(">H", len(data))
        response, sw = self._exchange(header + data + b"\x00\x00")
        if sw != SW.OK:
            raise CtapError(CtapError.ERR.OTHER)
        return response

    @classmethod
    def list_devices(cls) -> Iterator[ApduCtapDevice]:
        """None to discover: the device is made from its transport."""
        return iter(())

    def _exchange(self, command: bytes) -> tuple[bytes, int]:
        """One command, then GET RESPONSE while the card says 61xx (ISO 7816-4 §5.3.4)."""
        raw = self._transport.transmit(command)
        out = bytearray(raw[:-2])
        sw = int.from_bytes(raw[-2:], "big")
        while sw >> 8 == _SW1_MORE_DATA:
            raw = self._transport.transmit(bytes([0x00, INS_GET_RESPONSE, 0, 0, sw & 0xFF]))
            out += raw[:-2]
            sw = int.from_bytes(raw[-2:], "big")
        return bytes(out), sw
