"""The vpcd bridge without pcscd: the protocol core, the ATR, and the socket loop against a fake
vpcd listening on a loopback port."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from functools import reduce
from operator import xor

import pytest
from tests.optional import PCSC_EXTRA, require_module

from fleetid.errors import ConfigError, EncodingError
from fleetid.formats.apdu import parse_command
from fleetid.se.pcsc import (
    FLEETID_ATR,
    VPCD_DEFAULT_PORT,
    Card,
    Control,
    VpcdBridge,
    VpcdSession,
    build_atr,
    decode_frame_length,
    encode_frame,
    vpcd_port_from_config,
)

DEBIAN_VPCD_CONF = """\
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so
CHANNELID    0x8C7B
"""


class EchoCard:
    """Answers SELECT with 9000 and echoes the data field of anything else."""

    def __init__(self) -> None:
        self.resets = 0
        self.commands: list[bytes] = []

    def transmit(self, command: bytes) -> bytes:
        self.commands.append(command)
        apdu = parse_command(command)
        if apdu.ins == 0xA4:
            return b"\x90\x00"
        return apdu.data + b"\x90\x00"

    def reset(self) -> None:
        self.resets += 1


class PlainCard:
    """A card with no reset() method."""

    def transmit(self, command: bytes) -> bytes:
        return b"\x6d\x00"


class BrokenCard:
    def transmit(self, command: bytes) -> bytes:
        raise RuntimeError("card bug")


# --- ATR (ISO/IEC 7816-3 §8.2), checked with pyscard's independent ATR parser ----------------


def test_atr_bytes_are_the_documented_ones() -> None:
    expected = bytes.fromhex("3B8D8131FE458057") + b"fleetid" + bytes.fromhex("7380014090")
    assert expected == FLEETID_ATR


def test_atr_tck_makes_the_xor_of_t0_to_tck_zero() -> None:
    assert reduce(xor, FLEETID_ATR[1:], 0) == 0


def test_atr_parses_with_pyscard_as_t1_only_with_our_historical_bytes() -> None:
    # pyscard is optional (no Linux wheel): only this cross-check needs it, not the module.
    atr = require_module("smartcard.ATR", install=PCSC_EXTRA).ATR(list(FLEETID_ATR))
    assert atr.isT1Supported()
    assert not atr.isT0Supported()
    assert bytes(atr.getHistoricalBytes()) == b"\x80\x57fleetid\x73\x80\x01\x40"
    assert atr.getChecksum() == FLEETID_ATR[-1]


def test_atr_with_corrupted_byte_fails_the_tck_check() -> None:
    bad = bytearray(FLEETID_ATR)
    bad[8] ^= 0x01
    assert reduce(xor, bad[1:], 0) != 0


def test_atr_rejects_more_than_fifteen_historical_bytes() -> None:
    with pytest.raises(EncodingError):
        build_atr(bytes(16))


# --- framing ---------------------------------------------------------------------------------


def test_frame_is_big_endian_length_then_payload() -> None:
    assert encode_frame(b"\x04") == b"\x00\x01\x04"
    assert encode_frame(bytes(300))[:2] == b"\x01\x2c"
    assert decode_frame_length(b"\x01\x2c") == 300


def test_frame_too_long_is_refused() -> None:
    with pytest.raises(EncodingError):
        encode_frame(bytes(0x10000))


def test_frame_header_of_wrong_size_is_refused() -> None:
    with pytest.raises(EncodingError):
        decode_frame_length(b"\x00")


# --- the sans-I/O session ---------------------------------------------------------------------


def test_session_answers_get_atr_and_nothing_to_power_messages() -> None:
    card = EchoCard()
    session = VpcdSession(card)
    assert session.handle(bytes([Control.GET_ATR])) == FLEETID_ATR
    assert session.handle(bytes([Control.POWER_ON])) is None
    assert session.powered
    assert session.handle(bytes([Control.POWER_OFF])) is None
    assert not session.powered
    assert session.counters.power_on == 1
    assert session.counters.power_off == 1


def test_session_passes_apdus_to_the_card() -> None:
    card = EchoCard()
    session = VpcdSession(card)
    assert session.handle(bytes.fromhex("00A4040002A000")) == b"\x90\x00"
    assert session.handle(bytes.fromhex("8010000003010203")) == b"\x01\x02\x03\x90\x00"
    assert session.counters.apdus == 2


def test_session_reset_and_power_off_warm_reset_the_card() -> None:
    card = EchoCard()
    session = VpcdSession(card)
    session.handle(bytes([Control.RESET]))
    session.handle(bytes([Control.POWER_OFF]))
    assert card.resets == 2
    assert session.counters.reset == 1


def test_session_works_with_a_card_without_reset() -> None:
    card = PlainCard()
    assert isinstance(card, Card)
    session = VpcdSession(card)
    assert session.handle(bytes([Control.RESET])) is None
    assert session.handle(b"\x00\xca\x00\x00\x00") == b"\x6d\x00"


def test_session_refuses_unknown_control_and_empty_payload() -> None:
    session = VpcdSession(EchoCard())
    with pytest.raises(EncodingError):
        session.handle(b"\x03")
    with pytest.raises(EncodingError):
        session.handle(b"")


# --- configuration ---------------------------------------------------------------------------


def test_port_from_debian_vpcd_config() -> None:
    assert vpcd_port_from_config(DEBIAN_VPCD_CONF) == VPCD_DEFAULT_PORT == 35963


def test_port_in_decimal() -> None:
    assert vpcd_port_from_config("DEVICENAME /dev/null:40000\n") == 40000


@pytest.mark.parametrize(
    "text",
    [
        "DEVICENAME localhost:35963\n",  # vpcd connects out: not a listening reader
        "DEVICENAME /dev/null:port\n",
        "DEVICENAME /dev/null:70000\n",
        "FRIENDLYNAME x\n",
    ],
)
def test_bad_vpcd_config_raises(text: str) -> None:
    with pytest.raises(ConfigError):
        vpcd_port_from_config(text)


def test_bridge_refuses_bad_port() -> None:
    with pytest.raises(ConfigError):
        VpcdBridge(EchoCard(), port=0)


# --- the socket loop against a fake vpcd -----------------------------------------------------


@pytest.fixture
def fake_vpcd() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    yield server
    server.close()


def _send(conn: socket.socket, payload: bytes, *, split: bool = False) -> None:
    frame = struct.pack(">H", len(payload)) + payload
    if split:  # vpcd writes the length and the payload separately
        conn.sendall(frame[:2])
        conn.sendall(frame[2:])
    else:
        conn.sendall(frame)


def _recv(conn: socket.socket) -> bytes:
    header = conn.recv(2, socket.MSG_WAITALL)
    (length,) = struct.unpack(">H", header)
    return conn.recv(length, socket.MSG_WAITALL)


def test_bridge_serves_atr_and_apdus(fake_vpcd: socket.socket) -> None:
    card = EchoCard()
    port = fake_vpcd.getsockname()[1]
    with VpcdBridge(card, port=port) as bridge:
        conn, _ = fake_vpcd.accept()
        with conn:
            conn.settimeout(10)
            bridge.wait_connected(10)
            _send(conn, b"\x04")
            assert _recv(conn) == FLEETID_ATR
            _send(conn, b"\x01")
            _send(conn, bytes.fromhex("80100000020a0b"), split=True)
            assert _recv(conn) == b"\x0a\x0b\x90\x00"
            big = bytes.fromhex("80100000000400") + bytes(range(256)) * 4 + b"\x00\x00"
            _send(conn, big, split=True)
            assert _recv(conn) == bytes(range(256)) * 4 + b"\x90\x00"
            _send(conn, b"\x02")
            _send(conn, b"\x04")  # ordering: the reset was handled before this answer
            assert _recv(conn) == FLEETID_ATR
            assert card.resets == 1
            assert bridge.session.powered


def test_bridge_reconnects_after_vpcd_drops_the_link(fake_vpcd: socket.socket) -> None:
    port = fake_vpcd.getsockname()[1]
    with VpcdBridge(EchoCard(), port=port):
        first, _ = fake_vpcd.accept()
        first.close()  # pcscd restarted
        second, _ = fake_vpcd.accept()
        with second:
            second.settimeout(10)
            _send(second, b"\x04")
            assert _recv(second) == FLEETID_ATR


def test_bridge_stop_closes_the_link(fake_vpcd: socket.socket) -> None:
    port = fake_vpcd.getsockname()[1]
    bridge = VpcdBridge(EchoCard(), port=port)
    bridge.start()
    conn, _ = fake_vpcd.accept()
    with conn:
        conn.settimeout(10)
        bridge.wait_connected(10)
        bridge.stop()
        assert conn.recv(1) == b""  # end of stream: the card is removed
    assert not bridge.connected.is_set()


def test_bridge_drops_link_on_a_frame_cut_short(fake_vpcd: socket.socket) -> None:
    port = fake_vpcd.getsockname()[1]
    with VpcdBridge(EchoCard(), port=port):
        first, _ = fake_vpcd.accept()
        first.sendall(b"\x00\x05\x00\xa4")  # 2 of 5 announced bytes, then close
        first.close()
        second, _ = fake_vpcd.accept()  # the bridge recovered and reconnected
        second.close()


def test_bridge_records_a_card_exception_and_stops(fake_vpcd: socket.socket) -> None:
    port = fake_vpcd.getsockname()[1]
    bridge = VpcdBridge(BrokenCard(), port=port)
    bridge.start()
    conn, _ = fake_vpcd.accept()
    with conn:
        conn.settimeout(10)
        _send(conn, b"\x00\xa4\x04\x00")
        assert conn.recv(1) == b""
    bridge.stop()
    assert isinstance(bridge.error, RuntimeError)


def test_wait_connected_times_out_when_no_reader_listens() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port now
    with VpcdBridge(EchoCard(), port=port) as bridge, pytest.raises(ConfigError):
        bridge.wait_connected(0.3)


def test_bridge_cannot_start_twice(fake_vpcd: socket.socket) -> None:
    port = fake_vpcd.getsockname()[1]
    with VpcdBridge(EchoCard(), port=port) as bridge, pytest.raises(ConfigError):
        bridge.start()
