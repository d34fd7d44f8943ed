"""ISO/IEC 7816-4 command and response APDUs (§5.1), short and extended length.

A command APDU is ``CLA INS P1 P2 [Lc data] [Le]``. Its four cases (§5.1, Table 1) are decided by
the presence of the data field and of Le; each case has a short and an extended form:

====  ==========================================  ======================================
case  short                                       extended
====  ==========================================  ======================================
1     header                                      (same)
2     header Le                                   header 00 Le1 Le2
3     header Lc data                              header 00 Lc1 Lc2 data
4     header Lc data Le                           header 00 Lc1 Lc2 data Le1 Le2
====  ==========================================  ======================================

In the short form Le = 00 means Ne = 256; in the extended form Le = 0000 means Ne = 65536
(§5.1). Lc and Le always use the same form, and Lc = 0 is not a valid length.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

# MalformedApduError is re-exported: the codec raises it and its callers name it here (errors.py
# holds it).
from fleetid.errors import MalformedApduError
from fleetid.formats.frozen import slot_setter

__all__ = [
    "SW",
    "CommandApdu",
    "MalformedApduError",
    "ResponseApdu",
    "parse_command",
    "parse_response",
    "status_word_meaning",
]

SHORT_MAX_NC = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_NC = 65535
EXTENDED_MAX_NE = 65536


class SW(IntEnum):
    """Status words used by fleetid's card (ISO 7816-4 §5.6, GP Card Spec §11)."""

    OK = 0x9000
    VERIFICATION_FAILED = 0x6300  # GP: wrong host cryptogram on EXTERNAL AUTHENTICATE
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987
    SM_DATA_OBJECTS_INCORRECT = 0x6988
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


# What each status word means, in words (ISO 7816-4 §5.6 tables 5 and 6; GP Card Spec §11).
_MEANINGS: dict[int, str] = {
    SW.OK: "command completed",
    SW.VERIFICATION_FAILED: "authentication failed (wrong key or cryptogram)",
    SW.MEMORY_FAILURE: "memory failure",
    SW.WRONG_LENGTH: "wrong length",
    SW.LOGICAL_CHANNEL_NOT_SUPPORTED: "logical channel not supported",
    SW.SECURE_MESSAGING_NOT_SUPPORTED: "secure messaging not supported",
    SW.LAST_COMMAND_OF_CHAIN_EXPECTED: "the last command of the chain was expected",
    SW.CHAINING_NOT_SUPPORTED: "command chaining not supported",
    SW.SECURITY_STATUS_NOT_SATISFIED: "security status not satisfied (no secure channel "
    "or a locked card)",
    SW.AUTH_METHOD_BLOCKED: "authentication method blocked",
    SW.REFERENCE_DATA_NOT_USABLE: "reference data not usable",
    SW.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied (wrong life-cycle state)",
    SW.COMMAND_NOT_ALLOWED: "command not allowed",
    SW.SM_DATA_OBJECTS_MISSING: "secure messaging data objects missing",
    SW.SM_DATA_OBJECTS_INCORRECT: "secure messaging data objects incorrect",
    SW.INCORRECT_DATA: "incorrect data in the command",
    SW.FUNCTION_NOT_SUPPORTED: "function not supported",
    SW.FILE_NOT_FOUND: "application or file not found",
    SW.NOT_ENOUGH_MEMORY: "not enough memory",
    SW.INCORRECT_P1P2: "incorrect parameters P1-P2",
    SW.REFERENCED_DATA_NOT_FOUND: "the referenced key or data object is not on the card",
    SW.WRONG_P1P2: "wrong parameters P1-P2",
    SW.INS_NOT_SUPPORTED: "instruction not supported",
    SW.CLA_NOT_SUPPORTED: "class not supported",
    SW.NO_PRECISE_DIAGNOSIS: "no precise diagnosis",
}


def status_word_meaning(sw: int) -> str:
    """A status word in words, for people (ISO 7816-4 §5.6); unknown ones by their group."""
    if sw in _MEANINGS:
        return _MEANINGS[sw]
    if sw & 0xFF00 == 0x6300 or sw & 0xFF00 == 0x6200:
        return "warning"
    return "error"


@dataclass(frozen=True, slots=True, init=False)
class CommandApdu:
    """A command APDU. ``ne`` is the expected response length Ne, or None when Le is absent."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    ne: int | None
    extended: bool

    def __init__(
        self,
        cla: int,
        ins: int,
        p1: int,
        p2: int,
        data: bytes = b"",
        ne: int | None = None,
        extended: bool = False,
    ) -> None:
        if (cla | ins | p1 | p2) >> 8:  # one of them is not 0..FF
            for name, value in (("cla", cla), ("ins", ins), ("p1", p1), ("p2", p2)):
                if not 0 <= value <= 0xFF:
                    raise MalformedApduError(f"{name} {value} is not a byte")
        if len(data) > EXTENDED_MAX_NC:
            raise MalformedApduError(f"Nc {len(data)} exceeds {EXTENDED_MAX_NC}")
        if ne is not None and not 1 <= ne <= EXTENDED_MAX_NE:
            raise MalformedApduError(f"Ne {ne} is outside 1..{EXTENDED_MAX_NE}")
        # Frozen: the fields are set through their slots, as the generated __init__ would
        # through object.__setattr__, at a third of the cost (tens of APDUs per device).
        _set_cla(self, cla)
        _set_ins(self, ins)
        _set_p1(self, p1)
        _set_p2(self, p2)
        _set_data(self, data)
        _set_ne(self, ne)
        _set_extended(self, extended)

    @property
    def case(self) -> int:
        """The ISO 7816-4 case: 1 (no data, no Le) to 4 (data and Le)."""
        return 1 + (self.ne is not None) + 2 * bool(self.data)

    @property
    def is_extended(self) -> bool:
        """Whether the encoding needs the extended length form."""
        return (
            self.extended
            or len(self.data) > SHORT_MAX_NC
            or (self.ne is not None and self.ne > SHORT_MAX_NE)
        )

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def encode(self) -> bytes:
        """The APDU bytes, in the shortest form unless extended length is forced or needed."""
        out = bytearray(self.header)
        extended = self.is_extended and self.case != 1
        if self.data:
            out += (
                (b"\x00" + len(self.data).to_bytes(2, "big"))
                if extended
                else bytes((len(self.data),))
            )
            out += self.data
        if self.ne is not None:
            if extended:
                le = (self.ne % EXTENDED_MAX_NE).to_bytes(2, "big")
                out += le if self.data else b"\x00" + le
            else:
                out.append(self.ne % SHORT_MAX_NE)
        return bytes(out)


_set_cla, _set_ins, _set_p1, _set_p2, _set_data, _set_ne, _set_extended = (
    slot_setter(CommandApdu, name) for name in ("cla", "ins", "p1", "p2", "data", "ne", "extended")
)


def parse_command(raw: bytes) -> CommandApdu:
    """Decode a command APDU, telling its case and form apart as ISO 7816-3 §12.1.3 does."""
    n = len(raw)
    if n < 4:
        raise MalformedApduError(f"a command APDU has at least 4 bytes, got {n}")
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    if n == 4:
        return CommandApdu(cla, ins, p1, p2)
    if n == 5:
        return CommandApdu(cla, ins, p1, p2, ne=raw[4] or SHORT_MAX_NE)
    if raw[4] != 0:
        lc = raw[4]
        if n == 5 + lc:
            return CommandApdu(cla, ins, p1, p2, raw[5:])
        if n == 6 + lc:
            return CommandApdu(cla, ins, p1, p2, raw[5:-1], raw[-1] or SHORT_MAX_NE)
        raise MalformedApduError(f"short Lc {lc} does not match a body of {n - 5} bytes")
    # raw[4] == 0: the extended form.
    if n == 7:
        return CommandApdu(
            cla, ins, p1, p2, ne=int.from_bytes(raw[5:7], "big") or EXTENDED_MAX_NE, extended=True
        )
    if n < 8:
        raise MalformedApduError(f"extended APDU of {n} bytes is truncated")
    lc = int.from_bytes(raw[5:7], "big")
    if lc == 0:
        raise MalformedApduError("extended Lc must not be 0")
    if n == 7 + lc:
        return CommandApdu(cla, ins, p1, p2, raw[7:], extended=True)
    if n == 9 + lc:
        ne = int.from_bytes(raw[-2:], "big") or EXTENDED_MAX_NE
        return CommandApdu(cla, ins, p1, p2, raw[7:-2], ne, extended=True)
    raise MalformedApduError(f"extended Lc {lc} does not match a body of {n - 7} bytes")


@dataclass(frozen=True, slots=True, init=False)
class ResponseApdu:
    """A response APDU: the data field and the status word SW1SW2."""

    data: bytes
    sw: int

    def __init__(self, data: bytes, sw: int) -> None:
        if not 0 <= sw <= 0xFFFF:
            raise MalformedApduError(f"status word {sw} is not two bytes")
        _set_response_data(self, data)  # frozen: see CommandApdu
        _set_sw(self, sw)

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")


_set_response_data = slot_setter(ResponseApdu, "data")
_set_sw = slot_setter(ResponseApdu, "sw")


def parse_response(raw: bytes) -> ResponseApdu:
    """Decode a response APDU (data followed by SW1 SW2)."""
    if len(raw) < 2:
        raise MalformedApduError(f"a response APDU has at least 2 bytes, got {len(raw)}")
    return ResponseApdu(raw[:-2], int.from_bytes(raw[-2:], "big"))
