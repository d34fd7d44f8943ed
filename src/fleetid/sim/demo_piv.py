"""Demo stage: the card's PIV applet signs through the real PC/SC stack, or in process.

When pcscd runs with Debian's vpcd reader and pyscard is installed, the emulated card is
inserted into the virtual reader (``fleetid.se.pcsc.VpcdBridge``) and the host speaks to it
through pcscd, as OpenSC or yubico-piv-tool would; otherwise the same commands go to the card
object in this process. The output line says which. The host proves the administration key,
generates the PIV authentication key (9A) on the card, is refused signing before the PIN and
with a wrong PIN (drills), then signs; the signature verifies with the card's public key.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetid.crypto.signer import verify_signature
from fleetid.errors import ConfigError, SecureElementError
from fleetid.se.card import SecureElement
from fleetid.se.client import Transport
from fleetid.se.pcsc import VpcdBridge, vpcd_port_from_config
from fleetid.se.piv_client import PivClient, PivSigner
from fleetid.se.piv_wire import DEFAULT_MANAGEMENT_KEY, SLOT_AUTHENTICATION
from fleetid.se.wire import Curve
from fleetid.sim.demo import DemoContext, drill

__all__ = ["stage_piv"]

_READER_CONF = Path("/etc/reader.conf.d/vpcd")  # what Debian's vsmartcard-vpcd installs
_READY_TIMEOUT = 5.0
_POLL = 0.05


class _PyscardTransport:
    """``Transport`` over a pyscard connection."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def transmit(self, command: bytes) -> bytes:
        data, sw1, sw2 = self._connection.transmit(list(command))
        return bytes(data) + bytes((sw1, sw2))


@contextlib.contextmanager
def _vpcd_lock() -> Iterator[bool]:
    """The vpcd reader's lock, shared with the PC/SC tests: True when this process holds it."""
    path = Path(tempfile.gettempdir()) / f"fleetid-pcsc-tests-{os.getuid()}.lock"
    with path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True


@contextlib.contextmanager
def _card_transport(card: SecureElement) -> Iterator[tuple[Transport, str]]:
    """The card behind pcscd and vpcd when both are there, else the card itself."""
    try:
        system = importlib.import_module("smartcard.System")
        exceptions = importlib.import_module("smartcard.Exceptions")
    except ImportError:
        yield card, "in process (pyscard is not installed)"
        return
    if not _READER_CONF.is_file():
        yield card, "in process (no vpcd reader: Debian vsmartcard-vpcd)"
        return
    try:
        readers = sorted(str(r) for r in system.readers() if str(r).startswith("Virtual PCD"))
    except Exception:  # pyscard raises its own types when pcscd does not answer
        readers = []
    if not readers:
        yield card, "in process (pcscd with the vpcd reader is not running)"
        return
    with _vpcd_lock() as held:
        if not held:
            yield card, "in process (the vpcd reader is in use)"
            return
        bridge = VpcdBridge(card, port=vpcd_port_from_config(_READER_CONF.read_text()))
        bridge.start()
        try:
            bridge.wait_connected(_READY_TIMEOUT)
            reader = next(r for r in system.readers() if str(r) == readers[0])
            connection = reader.createConnection()
            deadline = time.monotonic() + _READY_TIMEOUT
            while True:  # pcscd reports the inserted card within its polling interval
                try:
                    connection.connect()
                    break
                except (exceptions.NoCardException, exceptions.CardConnectionException):
                    if time.monotonic() > deadline:
                        raise ConfigError("the card did not appear in the vpcd reader") from None
                    time.sleep(_POLL)
            try:
                yield _PyscardTransport(connection), f"through pcscd and vpcd ({readers[0]})"
            finally:
                with contextlib.suppress(exceptions.CardConnectionException):
                    connection.disconnect()
        finally:
            bridge.stop()


def stage_piv(ctx: DemoContext) -> None:
    console = ctx.console
    card = SecureElement.fabricate()
    message = b"fleetid PIV demo"
    refused = 0
    with _card_transport(card) as (transport, where):
        piv = PivClient(transport)
        piv.select()
        piv.authenticate(DEFAULT_MANAGEMENT_KEY)
        public = piv.generate(SLOT_AUTHENTICATION, Curve.P256)
        signer = PivSigner(piv, SLOT_AUTHENTICATION)
        for what, attempt in (
            ("signing before VERIFY", lambda: signer.sign(message)),
            ("a wrong PIN", lambda: piv.verify_pin("000000")),
        ):
            try:
                attempt()
            except SecureElementError as exc:
                refused += 1
                console.print(f"{drill(what)}: refused, SW {exc.sw:04X}")
        piv.verify_pin("123456")
        signature = signer.sign(message)
        verify_signature(public, signature, message)
    console.print(f"PIV slot 9A (P-256, generated on the card) signed {where}; it verifies")
    ctx.record("PIV applet", f"signed {where}; drill: {refused} refusals")
    console.print()
