"""A card behind a real PC/SC stack: Debian ``pcscd`` + ``vsmartcard-vpcd``, driven with pyscard.

The session fixture uses a running pcscd (systemd socket activation on a desktop) or, when none
runs and we are root (CI), starts ``pcscd --foreground`` itself and stops it afterwards. Without
the packages the tests skip with the reason; under ``CI=true`` they fail instead.

All PC/SC tests share the one vpcd port, so they run in one xdist group and hold a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from tests.optional import PCSC_EXTRA, unavailable

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import SecureElementError
from fleetid.formats.apdu import parse_command
from fleetid.formats.attestation import KeyUsage
from fleetid.se.applet_management import AppletManagement, StatusScope, sign_load_file
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.packages import IDENTITY_LOAD_FILE_AID, IDENTITY_V2
from fleetid.se.pcsc import FLEETID_ATR, VpcdBridge, vpcd_port_from_config
from fleetid.se.scp03 import HostSession, StaticKeys
from fleetid.se.wire import IDENTITY_AID, ISD_AID
from fleetid.sim.test_card import manufacture_test_card

pytestmark = [pytest.mark.pcsc, pytest.mark.xdist_group("pcsc")]

# pcsc-lite's standard reader configuration directory; Debian's vsmartcard-vpcd installs `vpcd`.
READER_CONF = Path("/etc/reader.conf.d/vpcd")
READY_TIMEOUT = 20.0


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
except ImportError:  # pragma: no cover - pyscard is the optional pcsc extra
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


# Module scope, not session: the lock below is held while the fixture lives, and pytest-xdist
# may hand some of this module's tests to a second worker, which must wait only until the first
# is done with them, not until its whole session ends.
@pytest.fixture(scope="module")
def pcsc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscStack]:
    if not HAVE_PYSCARD:
        unavailable(f"pyscard is not installed: {PCSC_EXTRA}")
    if not READER_CONF.is_file():
        unavailable("vsmartcard-vpcd is not installed (apt-get install pcscd vsmartcard-vpcd)")
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
    lock_path = Path(tempfile.gettempdir()) / f"fleetid-pcsc-tests-{os.getuid()}.lock"
    with lock_path.open("w") as lock:
        # One user of the vpcd port at a time, across xdist workers and concurrent runs.
        fcntl.flock(lock, fcntl.LOCK_EX)
        names = _list_readers()
        if names is None:
            yield from _own_pcscd(tmp_path_factory, friendly, port)
            return
        # A pcscd answers (a system daemon, perhaps just socket-activated): give it a moment to
        # load its readers, then use it.
        deadline = time.monotonic() + READY_TIMEOUT
        reader = _vpcd_reader(names, friendly)
        while reader is None and time.monotonic() < deadline:
            threading.Event().wait(0.05)  # poll interval
            reader = _vpcd_reader(_list_readers(), friendly)
        if reader is None:
            unavailable("the running pcscd has no vpcd reader: restart it after installing vpcd")
        yield PcscStack(reader=reader, port=port, log=None)


def _own_pcscd(
    tmp_path_factory: pytest.TempPathFactory, friendly: str, port: int
) -> Iterator[PcscStack]:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    pcscd = shutil.which("pcscd", path=search)
    if pcscd is None:
        unavailable("pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)")
    if os.geteuid() != 0:
        unavailable("pcscd is not running and only root can start it (systemctl start pcscd)")
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


@contextlib.contextmanager
def connected(reader: str) -> Iterator[Any]:
    """A pyscard connection to the card in ``reader``; its PC/SC context is always released."""
    connection = next(r for r in pcsc_readers() if str(r) == reader).createConnection()
    try:
        connection.connect()
        yield connection
    finally:
        # After a card removal SCardDisconnect reports the removal; the context still goes.
        with contextlib.suppress(CardConnectionException):
            connection.disconnect()
        connection.release()


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
        with connected(pcsc_stack.reader) as connection:
            assert bytes(connection.getATR()) == FLEETID_ATR
            assert transmit(connection, bytes.fromhex("00A4040005F000000001")) == (b"", 0x9000)
            assert transmit(connection, bytes.fromhex("8010000003AABBCC")) == (
                b"\xaa\xbb\xcc",
                0x9000,
            )
            assert transmit(connection, bytes.fromhex("80FE0000")) == (b"", 0x6D00)


def test_extended_length_apdus_cross_pcscd(pcsc_stack: PcscStack) -> None:
    with Inserted(pcsc_stack, EchoCard()), connected(pcsc_stack.reader) as connection:
        payload = bytes(range(256)) * 16  # 4096 bytes: extended Lc
        command = bytes.fromhex("8010000000") + len(payload).to_bytes(2, "big") + payload
        assert transmit(connection, command + b"\x00\x00") == (payload, 0x9000)
        data, sw = transmit(connection, bytes.fromhex("80200000000800"))  # extended Le 2048
        assert (len(data), sw) == (2048, 0x9000)


def test_reset_through_pcscd_warm_resets_the_card(pcsc_stack: PcscStack) -> None:
    card = EchoCard()
    with Inserted(pcsc_stack, card) as bridge, connected(pcsc_stack.reader) as connection:
        before = card.resets
        connection.reconnect(disposition=1)  # SCARD_RESET_CARD
        assert card.resets > before
        assert bridge.session.counters.reset + bridge.session.counters.power_off >= 1
        assert transmit(connection, bytes.fromhex("00A4040005F000000001"))[1] == 0x9000


def test_reader_present_without_card(pcsc_stack: PcscStack) -> None:
    assert pcsc_stack.reader in [str(r) for r in pcsc_readers()]
    assert wait_for_card(pcsc_stack.reader, present=False) == b""
    with pytest.raises(NoCardException), connected(pcsc_stack.reader):
        pass


def test_card_removed_when_bridge_stops(pcsc_stack: PcscStack) -> None:
    inserted = Inserted(pcsc_stack, EchoCard())
    with inserted, connected(pcsc_stack.reader) as connection:
        assert transmit(connection, bytes.fromhex("00A4040005F000000001"))[1] == 0x9000
        inserted.bridge.stop()  # pull the card out
        wait_for_card(pcsc_stack.reader, present=False)
        with pytest.raises(CardConnectionException):
            transmit(connection, bytes.fromhex("00A4040005F000000001"))
        with pytest.raises(NoCardException), connected(pcsc_stack.reader):
            pass


# --- the emulated secure element through PC/SC ------------------------------------------------

SCP03_KVN = 0x30
SCP03_KEYS = StaticKeys(
    bytes.fromhex("404142434445464748494A4B4C4D4E4F"),
    bytes.fromhex("505152535455565758595A5B5C5D5E5F"),
    bytes.fromhex("606162636465666768696A6B6C6D6E6F"),
)


def select_identity_apdu() -> bytes:
    return bytes.fromhex("00A40400") + bytes([len(IDENTITY_AID)]) + IDENTITY_AID + b"\x00"


def open_scp03(connection: Any, level: int = 0x33) -> HostSession:
    """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE over pyscard (Amd D §7.1)."""
    host = HostSession(SCP03_KEYS, level)
    data, sw = transmit(connection, host.initialize_update(SCP03_KVN))
    assert sw == 0x9000, f"INITIALIZE UPDATE {sw:04X}"
    assert data[10] == SCP03_KVN and data[11] == 0x03  # KDD(10) ‖ KVN ‖ SCP id (Table 7-4)
    assert transmit(connection, host.external_authenticate(data)) == (b"", 0x9000)
    return host


def wrapped(connection: Any, host: HostSession, command: bytes) -> tuple[bytes, int]:
    data, sw = transmit(connection, host.wrap(command))
    plain = host.unwrap(data + sw.to_bytes(2, "big"))
    return plain[:-2], int.from_bytes(plain[-2:], "big")


@pytest.fixture
def secure_element() -> SecureElement:
    return SecureElement.fabricate(keysets={SCP03_KVN: SCP03_KEYS})


def test_select_scp03_wrapped_command_and_signature_by_handle(
    pcsc_stack: PcscStack, secure_element: SecureElement
) -> None:
    with Inserted(pcsc_stack, secure_element), connected(pcsc_stack.reader) as connection:
        fci, sw = transmit(connection, select_identity_apdu())
        assert sw == 0x9000
        assert IDENTITY_AID in fci
        host = open_scp03(connection)  # C-MAC, C-DEC, R-MAC, R-ENC
        # GENERATE KEY P-256 (P1 01) into the first free handle, policy "sign" (01).
        data, sw = wrapped(connection, host, bytes.fromhex("804601000101") + b"\x00")
        assert sw == 0x9000
        handle, point = data[0], data[1:]
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        message = b"fleetid over PC/SC"
        digest = hashlib.sha256(message).digest()
        sign = bytes([0x80, 0x48, 0x00, handle, len(digest)]) + digest + b"\x00"
        signature, sw = wrapped(connection, host, sign)
        assert sw == 0x9000
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))  # pyca
        with pytest.raises(InvalidSignature):
            public_key.verify(signature, message + b"!", ec.ECDSA(hashes.SHA256()))


def test_corrupted_mac_through_pcsc_gets_6982_and_ends_the_session(
    pcsc_stack: PcscStack, secure_element: SecureElement
) -> None:
    with Inserted(pcsc_stack, secure_element), connected(pcsc_stack.reader) as connection:
        assert transmit(connection, select_identity_apdu())[1] == 0x9000
        host = open_scp03(connection)
        command = bytearray(host.wrap(bytes.fromhex("805C000000")))  # LIST KEYS
        command[-2] ^= 0x01  # last C-MAC byte (before Le)
        assert transmit(connection, bytes(command)) == (b"", 0x6982)
        # The card aborted the session (Amd D §5.6): a correct wrap is refused as well.
        assert transmit(connection, host.wrap(bytes.fromhex("805C000000")))[1] == 0x6982


def test_plain_command_inside_a_mac_session_is_refused(
    pcsc_stack: PcscStack, secure_element: SecureElement
) -> None:
    with Inserted(pcsc_stack, secure_element), connected(pcsc_stack.reader) as connection:
        assert transmit(connection, select_identity_apdu())[1] == 0x9000
        open_scp03(connection, level=0x01)
        assert transmit(connection, bytes.fromhex("805C000000")) == (b"", 0x6982)


def test_reader_reset_closes_the_secure_channel(
    pcsc_stack: PcscStack, secure_element: SecureElement
) -> None:
    with Inserted(pcsc_stack, secure_element), connected(pcsc_stack.reader) as connection:
        assert transmit(connection, select_identity_apdu())[1] == 0x9000
        host = open_scp03(connection)
        assert wrapped(connection, host, bytes.fromhex("805C000000"))[1] == 0x9000
        connection.reconnect(disposition=1)  # SCARD_RESET_CARD: vpcd power-cycles the card
        # The session is gone: a wrapped command has no session to verify it.
        assert transmit(connection, host.wrap(bytes.fromhex("805C000000"))) == (b"", 0x6985)


class PcscTransport:
    """``fleetid.se.client.Transport`` over a pyscard connection."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def transmit(self, command: bytes) -> bytes:
        data, sw = transmit(self.connection, command)
        return data + sw.to_bytes(2, "big")


def test_typed_client_over_pcsc(pcsc_stack: PcscStack, secure_element: SecureElement) -> None:
    with Inserted(pcsc_stack, secure_element), connected(pcsc_stack.reader) as connection:
        client = SecureElementClient(PcscTransport(connection))
        client.select_identity()
        assert client.chip_serial() == secure_element.chip_serial
        client.open_secure_channel(SCP03_KEYS, 0x33, key_version=SCP03_KVN)
        info = client.generate_key(ec.SECP384R1(), KeyUsage.SIGN)
        digest = hashlib.sha384(b"p-384 through pcscd").digest()
        signature = client.sign(info.handle, digest)
        info.public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
        with pytest.raises(SecureElementError) as refused:
            client.sign(0x7E, digest)  # empty slot
        assert refused.value.sw == 0x6A88


def test_applet_upgrade_through_pcscd(pcsc_stack: PcscStack) -> None:
    """Card content management across the real PC/SC stack under SCP03 0x33: GET STATUS,
    INSTALL [for load], LOAD blocks, INSTALL [for install], and DELETE of the ISD refused."""
    signer = SoftwareSigner(new_private_key())
    made = manufacture_test_card(
        keys=SCP03_KEYS, key_version=SCP03_KVN, applet_signing_key=signer.public_key()
    )
    with Inserted(pcsc_stack, made.card), connected(pcsc_stack.reader) as connection:
        client = SecureElementClient(PcscTransport(connection))
        client.select_isd()
        client.open_secure_channel(SCP03_KEYS, 0x33, key_version=SCP03_KVN)
        manager = AppletManagement(client)

        def identity_version() -> int | None:
            files = manager.get_status(StatusScope.LOAD_FILES_AND_MODULES)
            return next(e.version for e in files if e.aid == IDENTITY_LOAD_FILE_AID)

        assert identity_version() == 1
        manager.load_and_install(IDENTITY_V2, sign_load_file(IDENTITY_V2, signer))
        assert identity_version() == 2
        with pytest.raises(SecureElementError) as refused:
            manager.delete(ISD_AID)
        assert refused.value.sw == 0x6985


def test_cli_serves_a_persisted_card_until_interrupted(
    pcsc_stack: PcscStack, tmp_path: Path
) -> None:
    silicon = Silicon.fabricate()
    silicon.save(tmp_path / "chip.bin")
    card = SecureElement.fabricate(
        silicon=silicon,
        flash=SealedFlash(tmp_path / "flash.bin"),
        keysets={SCP03_KVN: SCP03_KEYS},
    )
    serial = card.chip_serial
    fleetid = Path(sys.executable).with_name("fleetid")
    command = [str(fleetid), "se", "pcsc", "--silicon", str(tmp_path / "chip.bin")]
    command += ["--flash", str(tmp_path / "flash.bin"), "--port", str(pcsc_stack.port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_card(pcsc_stack.reader, present=True) == FLEETID_ATR
        with connected(pcsc_stack.reader) as connection:
            client = SecureElementClient(PcscTransport(connection))
            client.select_identity()
            assert client.chip_serial() == serial
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=READY_TIMEOUT)
        assert proc.returncode == 0, err
        assert serial.hex().upper() in out
        wait_for_card(pcsc_stack.reader, present=False)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_missing_card_files(tmp_path: Path) -> None:
    fleetid = Path(sys.executable).with_name("fleetid")
    result = subprocess.run(
        [str(fleetid), "se", "pcsc", "--silicon", str(tmp_path / "a"), "--flash", "b"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "does not exist" in result.stderr
