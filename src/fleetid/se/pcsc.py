"""Expose an emulated card to PC/SC through the ``vpcd`` virtual reader (vsmartcard).

Debian's ``vsmartcard-vpcd`` is a pcsc-lite reader driver. Loaded by ``pcscd`` with the
configuration in ``/etc/reader.conf.d/vpcd`` (``DEVICENAME /dev/null:0x8C7B``), it listens on TCP
port 35963 for a "virtual ICC" and shows a reader to every PC/SC application. We implement the
card end of its socket protocol ourselves (vsmartcard's own Python card side is GPL-3.0):

* every message, in either direction, is a 2-byte big-endian length followed by the payload;
* the reader sends a 1-byte payload as a control message: ``00`` power off, ``01`` power on,
  ``02`` reset, ``04`` get ATR. Only "get ATR" is answered (with the ATR);
* any other payload is a command APDU, answered with the card's response APDU.

The protocol core, :class:`VpcdSession`, does no I/O (sans-I/O); :class:`VpcdBridge` runs it
over a TCP connection in a background thread and reconnects when ``pcscd`` restarts.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from dataclasses import dataclass, replace
from enum import IntEnum
from functools import reduce
from operator import xor
from types import TracebackType
from typing import Protocol, runtime_checkable

from fleetid.errors import ConfigError, EncodingError

__all__ = [
    "FLEETID_ATR",
    "VPCD_DEFAULT_HOST",
    "VPCD_DEFAULT_PORT",
    "Card",
    "Control",
    "VpcdBridge",
    "VpcdSession",
    "build_atr",
    "decode_frame_length",
    "encode_frame",
    "vpcd_port_from_config",
]

_log = logging.getLogger(__name__)

VPCD_DEFAULT_HOST = "127.0.0.1"
# /etc/reader.conf.d/vpcd: ``DEVICENAME /dev/null:0x8C7B``, i.e. listen on port 35963; the
# second slot of the same driver listens on 35964.
VPCD_DEFAULT_PORT = 0x8C7B

_FRAME_HEADER = struct.Struct(">H")
_MAX_PAYLOAD = 0xFFFF


def build_atr(historical: bytes) -> bytes:
    """Return an ISO/IEC 7816-3 ATR offering T=1 only, with the given historical bytes.

    Layout (7816-3 §8.2): TS = 3B (direct convention); T0 = 8K (TD1 follows, K historical
    bytes); TD1 = 81 (TD2 follows, T=1); TD2 = 31 (TA3 and TB3 follow, T=1); TA3 = FE (IFSC 254);
    TB3 = 45 (BWI 4, CWI 5); the historical bytes; TCK. TCK is present because a protocol other
    than T=0 is indicated (§8.2.5) and makes the XOR of T0 .. TCK zero.
    """
    if len(historical) > 15:
        raise EncodingError("an ATR holds at most 15 historical bytes (ISO/IEC 7816-3 §8.2.2)")
    body = bytes([0x80 | len(historical), 0x81, 0x31, 0xFE, 0x45]) + historical
    tck = reduce(xor, body, 0)
    return b"\x3b" + body + bytes([tck])


# Historical bytes (ISO/IEC 7816-4 §8.1.1): category indicator 80, then COMPACT-TLV objects:
# 5x "card issuer's data" = "fleetid"; 73 "card capabilities": selection by full DF name (80),
# data coding byte 01, extended Lc and Le fields supported (40).
_HISTORICAL = b"\x80" + bytes([0x50 | len(b"fleetid")]) + b"fleetid" + b"\x73\x80\x01\x40"

# 3B 8D 81 31 FE 45 80 57 'fleetid' 73 80 01 40, TCK 90.
FLEETID_ATR = build_atr(_HISTORICAL)


def vpcd_port_from_config(text: str) -> int:
    """Read the port of the first vpcd slot from a pcsc-lite ``reader.conf`` file for vpcd.

    The driver listens when ``DEVICENAME`` is ``/dev/null:<port>``; the port may be decimal or
    hexadecimal (``0x8C7B``). Any other ``DEVICENAME`` makes vpcd connect out instead, which the
    bridge does not serve.
    """
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "DEVICENAME":
            host, sep, port = fields[1].rpartition(":")
            if not sep or host != "/dev/null":
                raise ConfigError(f"vpcd DEVICENAME {fields[1]!r} is not a listening reader")
            try:
                value = int(port, 0)
            except ValueError:
                raise ConfigError(f"vpcd port {port!r} is not a number") from None
            if not 0 < value < 65536:
                raise ConfigError(f"vpcd port {value} is out of range")
            return value
    raise ConfigError("no DEVICENAME line in the vpcd reader configuration")


@runtime_checkable
class Card(Protocol):
    """What the bridge needs from a card: one way in, a command APDU to a response APDU.

    A card may also offer ``reset() -> None`` (a warm reset: deselect the applet, close the
    secure channel); the bridge calls it on power off and on reset when it exists.
    """

    def transmit(self, command: bytes) -> bytes: ...


class Control(IntEnum):
    """The 1-byte control messages vpcd sends."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


def encode_frame(payload: bytes) -> bytes:
    """Frame a payload for the vpcd socket: 2-byte big-endian length, then the payload."""
    if len(payload) > _MAX_PAYLOAD:
        raise EncodingError(f"vpcd payload of {len(payload)} bytes exceeds {_MAX_PAYLOAD}")
    return _FRAME_HEADER.pack(len(payload)) + payload


def decode_frame_length(header: bytes) -> int:
    """Read the length of a vpcd frame from its 2-byte header."""
    if len(header) != _FRAME_HEADER.size:
        raise EncodingError("a vpcd frame header is exactly 2 bytes")
    (length,) = _FRAME_HEADER.unpack(header)
    return int(length)


@dataclass(frozen=True, kw_only=True)
class _Counters:
    power_on: int = 0
    power_off: int = 0
    reset: int = 0
    apdus: int = 0


class VpcdSession:
    """The card end of the vpcd protocol, without I/O: one payload in, an optional reply out."""

    def __init__(self, card: Card, *, atr: bytes = FLEETID_ATR) -> None:
        self._card = card
        self._atr = atr
        self._powered = False
        self.counters = _Counters()

    @property
    def powered(self) -> bool:
        return self._powered

    def handle(self, payload: bytes) -> bytes | None:
        """Process one payload from the reader; return the payload to send back, if any."""
        if len(payload) == 1:
            _log.debug("vpcd control %02X", payload[0])
            return self._control(payload[0])
        if not payload:
            raise EncodingError("empty vpcd payload")
        self.counters = replace(self.counters, apdus=self.counters.apdus + 1)
        return self._card.transmit(payload)

    def _control(self, code: int) -> bytes | None:
        try:
            control = Control(code)
        except ValueError:
            raise EncodingError(f"unknown vpcd control message {code:02X}") from None
        c = self.counters
        if control is Control.GET_ATR:
            return self._atr
        if control is Control.POWER_ON:
            self._powered = True
            self.counters = replace(c, power_on=c.power_on + 1)
        elif control is Control.POWER_OFF:
            # Power off loses volatile state (selected applet, secure channel), as a cold reset.
            self._powered = False
            self._warm_reset()
            self.counters = replace(c, power_off=c.power_off + 1)
        else:
            self._warm_reset()
            self.counters = replace(c, reset=c.reset + 1)
        return None

    def _warm_reset(self) -> None:
        reset = getattr(self._card, "reset", None)
        if callable(reset):
            reset()


class VpcdBridge:
    """Serve a card to a vpcd reader over TCP, in a background thread.

    ``start()`` returns at once; the thread connects to vpcd (retrying every
    ``retry_interval`` seconds until ``stop()``), serves the card, and reconnects when the
    connection drops (for example when ``pcscd`` restarts). ``connected`` is set while a
    connection is up and ``powered`` while the reader holds the card powered. ``stop()`` closes
    the connection: to pcscd the card is removed.
    """

    def __init__(
        self,
        card: Card,
        *,
        host: str = VPCD_DEFAULT_HOST,
        port: int = VPCD_DEFAULT_PORT,
        atr: bytes = FLEETID_ATR,
        retry_interval: float = 0.1,
    ) -> None:
        if not 0 < port < 65536:
            raise ConfigError(f"vpcd port {port} is out of range")
        self._session = VpcdSession(card, atr=atr)
        self._address = (host, port)
        self._retry_interval = retry_interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.error: BaseException | None = None

    @property
    def session(self) -> VpcdSession:
        return self._session

    def start(self) -> None:
        if self._thread is not None:
            raise ConfigError("the vpcd bridge is already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vpcd-bridge", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect from vpcd (the card is removed) and end the thread."""
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_connected(self, timeout: float) -> None:
        """Block until vpcd accepted the connection; raise ``ConfigError`` after ``timeout``."""
        if not self.connected.wait(timeout):
            host, port = self._address
            raise ConfigError(f"no vpcd reader accepted a connection on {host}:{port}")

    def __enter__(self) -> VpcdBridge:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another thread."""
        self._stop.clear()
        self._run()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection(self._address, timeout=self._retry_interval)
            except OSError:
                self._stop.wait(self._retry_interval)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stop.is_set():
                    sock.close()
                    break
                self._sock = sock
            self.connected.set()
            _log.info("connected to vpcd at %s:%d", *self._address)
            try:
                self._serve(sock)
            except (OSError, EncodingError) as exc:
                if not self._stop.is_set():
                    _log.warning("vpcd connection lost: %s", exc)
            except BaseException as exc:  # a bug in the card: record it, then drop the link
                self.error = exc
                _log.exception("card raised across the vpcd bridge")
                self._stop.set()
            finally:
                self.connected.clear()
                with self._lock:
                    self._sock = None
                sock.close()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            header = _recv_exact(sock, _FRAME_HEADER.size)
            if header is None:
                return  # vpcd closed the connection
            payload = _recv_exact(sock, decode_frame_length(header))
            if payload is None:
                raise EncodingError("vpcd closed the connection inside a frame")
            reply = self._session.handle(payload)
            if reply is not None:
                sock.sendall(encode_frame(reply))


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Read exactly ``size`` bytes; ``None`` on a clean end of stream before the first byte."""
    chunks = bytearray()
    while len(chunks) < size:
        _quick_ack(sock)
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            if chunks:
                raise EncodingError("vpcd connection ended inside a frame")
            return None
        chunks += chunk
    return bytes(chunks)


def _quick_ack(sock: socket.socket) -> None:
    """Acknowledge at once instead of delaying the ACK (Linux ``TCP_QUICKACK``).

    The reader writes a frame's length and its payload as two segments; with Nagle on its side
    and delayed ACKs on ours every APDU would wait ~40 ms for the second segment. The option is
    not sticky, so it is set before every read.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    if option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
