"""A card behind a real PC/SC stack: Debian ``pcscd`` + ``vsmartcard-vpcd``, driven with pyscard.

The session fixture uses a running pcscd (systemd socket activation on a desktop) or, when none
runs and we are root (CI), starts ``pcscd --foreground`` itself and stops it afterwards. Without
the packages the tests skip with the reason; under ``CI=true`` they fail instead.

All PC/SC tests share the one vpcd port, so they run in one xdist group and hold a lock file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from fleetid.formats.apdu import parse_command
from fleetid.se.pcsc import FLEETID_ATR, VpcdBridge, vpcd_port_from_config

pytestmark = [pytest.mark.pcsc, pytest.mark.xdist_group("pcsc")]

# pcsc-lite's standard reader configuration directory; Debian's vsmartcard-vpcd installs `vpcd`.
READER_CONF = Path("/etc/reader.conf.d/vpcd")
READY_TIMEOUT = 20.0


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PC/SC stack required under CI=true: {reason}")
    pytest.skip(reason)


try:
    from smartcard.Exceptions import CardConnectionException, NoCardException
    from smartcard.scard import (
        SCARD_E_NO_READERS_AVAILABLE,
        SCARD_E_NO_SERVICE,
        SCARD_E_TIMEOUT,
        SCARD_S_SUCCESS,
        SCARD_SCOPE_USER,
        SCARD_STATE_CHANGED,
        SCARD_STATE_PRESENT,
        SCARD_STATE_UNAWARE,
        SCardEstablishContext,
        SCardGetStatusChange,
        SCardListReaders,
        SCardReleaseContext,
    )
    from smartcard.System import readers as pcsc_readers

    HAVE_PYSCARD = True
except ImportError:  # pragma: no cover - pyscard is in the test extra
    HAVE_PYSCARD = False


# --- pcscd -----------------------------------------------------------------------------------


def _list_readers() -> list[str] | None:
    """Reader names, or None when no pcscd answers."""
    hresult, context = SCardEstablishContext(SCARD_SCOPE_USER)
    if hresult == SCARD_E_NO_SERVICE:
        return None
    assert hresult == SCARD_S_SUCCESS, hresult
    try:
        hresult, names = SCardListReaders(context, [])
        if hresult == SCARD_E_NO_READERS_AVAILABLE:
            return []
        assert hresult == SCARD_S_SUCCESS, hresult
        return list(names)
    finally:
        SCardReleaseContext(context)


def _vpcd_reader(names: list[str] | None, friendly: str) -> str | None:
    # The first slot of the driver (" 00 00") listens on the configured port.
    matches = sorted(n for n in names or [] if n.startswith(friendly))
    return matches[0] if matches else None


@dataclass(frozen=True, kw_only=True)
class PcscStack:
    reader: str
    port: int
    log: Path | None


@pytest.fixture(scope="session")
def pcsc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscStack]:
    if not HAVE_PYSCARD:
        _unavailable("pyscard is not installed (pip install -e '.[test]')")
    if not READER_CONF.is_file():
        _unavailable("vsmartcard-vpcd is not installed (apt-get install pcscd vsmartcard-vpcd)")
    conf = READER_CONF.read_text()
    port = vpcd_port_from_config(conf)
    friendly = next(
        (
            line.split(None, 1)[1].strip().strip('"')
            for line in conf.splitlines()
            if line.startswith("FRIENDLYNAME")
        ),
        "Virtual PCD",
    )
    lock_path = Path(tempfile.gettempdir()) / "fleetid-pcsc-tests.lock"
    with lock_path.open("w") as lock:
        # One user of the vpcd port at a time, across xdist workers and concurrent runs.
        fcntl.flock(lock, fcntl.LOCK_EX)
        reader = _vpcd_reader(_list_readers(), friendly)
        if reader is not None:
            yield PcscStack(reader=reader, port=port, log=None)
            return
        yield from _own_pcscd(tmp_path_factory, friendly, port)


def _own_pcscd(
    tmp_path_factory: pytest.TempPathFactory, friendly: str, port: int
) -> Iterator[PcscStack]:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    pcscd = shutil.which("pcscd", path=search)
    if pcscd is None:
        _unavailable("pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)")
    if os.geteuid() != 0:
        _unavailable("pcscd is not running and only root can start it (systemctl start pcscd)")
    log = tmp_path_factory.mktemp("pcscd") / "pcscd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([pcscd, "--foreground", "--info"], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        reader = None
        while reader is None:
            try:
                code = proc.wait(timeout=0.05)  # doubles as the poll interval
            except subprocess.TimeoutExpired:
                reader = _vpcd_reader(_list_readers(), friendly)
            else:
                pytest.fail(f"pcscd exited with {code}: {log.read_text(errors='replace')}")
            if reader is None and time.monotonic() > deadline:
                pytest.fail(f"no vpcd reader after {READY_TIMEOUT}s: {log.read_text()}")
        yield PcscStack(reader=reader, port=port, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_card(reader: str, *, present: bool, timeout: float = READY_TIMEOUT) -> bytes:
    """Block on SCardGetStatusChange until the reader's card is (or is not) present.

    Returns the ATR pcscd reports (empty when absent). Event driven: no sleeps.
    """
    hresult, context = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hresult == SCARD_S_SUCCESS, hresult
    try:
        deadline = time.monotonic() + timeout
        known = SCARD_STATE_UNAWARE
        while True:
            remaining = int((deadline - time.monotonic()) * 1000)
            if remaining <= 0:
                pytest.fail(f"card in {reader!r} did not become present={present}")
            hresult, states = SCardGetStatusChange(context, remaining, [(reader, known)])
            if hresult == SCARD_E_TIMEOUT:
                continue
            assert hresult == SCARD_S_SUCCESS, hresult
            _, event_state, atr = states[0]
            if bool(event_state & SCARD_STATE_PRESENT) == present:
                return bytes(atr)
            known = event_state & ~SCARD_STATE_CHANGED
    finally:
        SCardReleaseContext(context)


class Inserted:
    """A card inserted into the vpcd reader for the length of a ``with`` block."""

    def __init__(self, stack: PcscStack, card: Any) -> None:
        self.stack = stack
        self.bridge = VpcdBridge(card, port=stack.port)

    def __enter__(self) -> VpcdBridge:
        self.bridge.start()
        self.bridge.wait_connected(READY_TIMEOUT)
        wait_for_card(self.stack.reader, present=True)
        return self.bridge

    def __exit__(self, *exc: object) -> None:
        self.bridge.stop()
        wait_for_card(self.stack.reader, present=False)
        assert self.bridge.error is None, self.bridge.error


def connect(reader: str) -> Any:
    connection = next(r for r in pcsc_readers() if str(r) == reader).createConnection()
    connection.connect()
    return connection


def transmit(connection: Any, apdu: bytes) -> tuple[bytes, int]:
    data, sw1, sw2 = connection.transmit(list(apdu))
    return bytes(data), sw1 << 8 | sw2


# --- a tiny card to test the bridge itself ----------------------------------------------------


class EchoCard:
    """SELECT answers 9000; INS 10 echoes its data field; INS 20 returns Ne bytes; others 6D00."""

    def __init__(self) -> None:
        self.resets = 0

    def transmit(self, command: bytes) -> bytes:
        apdu = parse_command(command)
        if apdu.ins == 0xA4:
            return b"\x90\x00"
        if apdu.ins == 0x10:
            return apdu.data + b"\x90\x00"
        if apdu.ins == 0x20:
            return bytes(i & 0xFF for i in range(apdu.ne or 0)) + b"\x90\x00"
        return b"\x6d\x00"

    def reset(self) -> None:
        self.resets += 1


def test_pcscd_sees_our_atr_and_the_card_answers(pcsc_stack: PcscStack) -> None:
    with Inserted(pcsc_stack, EchoCard()):
        assert wait_for_card(pcsc_stack.reader, present=True) == FLEETID_ATR
        connection = connect(pcsc_stack.reader)
        try:
            assert bytes(connection.getATR()) == FLEETID_ATR
            assert transmit(connection, bytes.fromhex("00A4040005F000000001")) == (b"", 0x9000)
            assert transmit(connection, bytes.fromhex("8010000003AABBCC")) == (
                b"\xaa\xbb\xcc",
                0x9000,
            )
            assert transmit(connection, bytes.fromhex("80FE0000")) == (b"", 0x6D00)
        finally:
            connection.disconnect()


def test_extended_length_apdus_cross_pcscd(pcsc_stack: PcscStack) -> None:
    with Inserted(pcsc_stack, EchoCard()):
        connection = connect(pcsc_stack.reader)
        try:
            payload = bytes(range(256)) * 16  # 4096 bytes: extended Lc
            command = bytes.fromhex("8010000000") + len(payload).to_bytes(2, "big") + payload
            assert transmit(connection, command + b"\x00\x00") == (payload, 0x9000)
            data, sw = transmit(connection, bytes.fromhex("80200000000800"))  # extended Le 2048
            assert (len(data), sw) == (2048, 0x9000)
        finally:
            connection.disconnect()


def test_reset_through_pcscd_warm_resets_the_card(pcsc_stack: PcscStack) -> None:
    card = EchoCard()
    with Inserted(pcsc_stack, card) as bridge:
        connection = connect(pcsc_stack.reader)
        try:
            before = card.resets
            connection.reconnect(disposition=1)  # SCARD_RESET_CARD
            assert card.resets > before
            assert bridge.session.counters.reset + bridge.session.counters.power_off >= 1
            assert transmit(connection, bytes.fromhex("00A4040005F000000001"))[1] == 0x9000
        finally:
            connection.disconnect()


def test_reader_present_without_card(pcsc_stack: PcscStack) -> None:
    assert pcsc_stack.reader in [str(r) for r in pcsc_readers()]
    assert wait_for_card(pcsc_stack.reader, present=False) == b""
    with pytest.raises(NoCardException):
        connect(pcsc_stack.reader)


def test_card_removed_when_bridge_stops(pcsc_stack: PcscStack) -> None:
    inserted = Inserted(pcsc_stack, EchoCard())
    with inserted:
        connection = connect(pcsc_stack.reader)
        assert transmit(connection, bytes.fromhex("00A4040005F000000001"))[1] == 0x9000
        inserted.bridge.stop()  # pull the card out
        wait_for_card(pcsc_stack.reader, present=False)
        with pytest.raises(CardConnectionException):
            transmit(connection, bytes.fromhex("00A4040005F000000001"))
        with pytest.raises(NoCardException):
            connect(pcsc_stack.reader)
