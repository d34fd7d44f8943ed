"""Demo stage: the card as a FIDO2 authenticator that a stock client uses.

A card leaves the (software) line with its model's attestation key; python-fido2's ``Fido2Client``
sets a PIN, registers a resident credential and authenticates with it, and python-fido2's
``Fido2Server`` and fleetid's verifiers check the packed attestation and the assertion (a
replayed one is refused). The client reaches the card through the real PC/SC stack when a
``pcscd`` with the vpcd reader answers (python-fido2's ``CtapPcscDevice`` over the vpcd bridge)
and in process otherwise (``ApduCtapDevice``); the output line says which.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapDevice
from fido2.ctap2.base import Ctap2
from fido2.ctap2.pin import ClientPin
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from fleetid.authority.attestation.fido import verify_attestation
from fleetid.authority.fido_assertion import verify_assertion
from fleetid.errors import AssertionCounterError, ConfigError, VerificationError
from fleetid.se.card import SecureElement
from fleetid.se.ctap_device import ApduCtapDevice
from fleetid.se.pcsc import VpcdBridge, vpcd_port_from_config
from fleetid.sim.demo import DemoContext, drill
from fleetid.sim.fido_card import manufacture_fido_card

__all__ = ["ctap_device", "stage_fido_card"]

_READER_CONF = Path("/etc/reader.conf.d/vpcd")  # Debian vsmartcard-vpcd's reader configuration
_READY = 10.0
_PIN = "demo-4711"
_RP_ID = "operators.fleetid.example"
_RP = PublicKeyCredentialRpEntity(id=_RP_ID, name="fleetid operators")


class _PinEntry(UserInteraction):
    def request_pin(self, permissions: Any, rp_id: str | None) -> str | None:
        return _PIN


@contextlib.contextmanager
def ctap_device(
    card: SecureElement, *, pcsc: bool = True, lock: bool = True
) -> Iterator[tuple[CtapDevice, str]]:
    """A CTAP device for ``card`` and how it is reached: python-fido2's ``CtapPcscDevice``
    through pcscd and vpcd when they answer (and ``pcsc``), else ``ApduCtapDevice`` in process.
    ``lock`` False: the caller already holds the vpcd reader's lock."""
    reason = "PC/SC not asked for"
    if pcsc:
        with _pcsc_device(card, lock) as found:
            if isinstance(found, tuple):
                yield found
                return
            reason = found
    yield ApduCtapDevice(card), f"in process ({reason})"


@contextlib.contextmanager
def _pcsc_device(card: SecureElement, take_lock: bool) -> Iterator[tuple[CtapDevice, str] | str]:
    try:
        system = importlib.import_module("smartcard.System")
        fido2_pcsc = importlib.import_module("fido2.pcsc")
    except ImportError:
        yield "pyscard is not installed"
        return
    if not _READER_CONF.is_file():
        yield "vsmartcard-vpcd is not installed"
        return
    conf = _READER_CONF.read_text()
    friendly = next(
        (
            line.split(None, 1)[1].strip().strip('"')
            for line in conf.splitlines()
            if line.startswith("FRIENDLYNAME")
        ),
        "Virtual PCD",
    )
    try:
        readers = [r for r in system.readers() if str(r).startswith(friendly)]
    except Exception:
        readers = []
    if not readers:
        yield "no pcscd with a vpcd reader answers"
        return
    lock_path = Path(tempfile.gettempdir()) / f"fleetid-pcsc-tests-{os.getuid()}.lock"
    with lock_path.open("w") as lock:
        try:  # the vpcd port has one user at a time (the PC/SC tests take the same lock)
            if take_lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield "the vpcd reader is in use"
            return
        bridge = VpcdBridge(card, port=vpcd_port_from_config(conf))
        bridge.start()
        try:
            bridge.wait_connected(_READY)
            reader = sorted(readers, key=str)[0]
            connection = _connect(reader)
        except (ConfigError, TimeoutError) as exc:
            bridge.stop()
            yield f"the vpcd reader did not take the card: {exc}"
            return
        try:
            device = fido2_pcsc.CtapPcscDevice(connection, str(reader))
            yield device, f"through PC/SC: pcscd, reader {reader}"
        finally:
            with contextlib.suppress(Exception):
                connection.disconnect()
            bridge.stop()
            _wait_removed(reader)  # the next user of the reader must not see this card


def _wait_removed(reader: Any) -> None:
    """Until pcscd no longer lets a connection reach a card in ``reader`` (or a deadline)."""
    deadline = time.monotonic() + _READY
    while time.monotonic() < deadline:
        connection = reader.createConnection()
        try:
            connection.connect()
        except Exception:
            return
        connection.disconnect()
        threading.Event().wait(0.05)  # poll interval


def _connect(reader: Any) -> Any:
    """A connection to the card in ``reader``, once pcscd has seen it (polled with a deadline)."""
    deadline = time.monotonic() + _READY
    while True:
        connection = reader.createConnection()
        try:
            connection.connect()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no card in {reader} after {_READY}s") from exc
            threading.Event().wait(0.05)  # poll interval
            continue
        connection.disconnect()  # CtapPcscDevice connects (and selects) itself
        return connection


def stage_fido_card(ctx: DemoContext, *, pcsc: bool = True) -> None:
    made = manufacture_fido_card()
    server = Fido2Server(_RP, attestation=AttestationConveyancePreference.DIRECT)
    user = PublicKeyCredentialUserEntity(id=b"operator-1", name="operator-1")
    collector = DefaultClientDataCollector(f"https://{_RP_ID}")
    with ctap_device(made.card, pcsc=pcsc) as (device, how):
        ClientPin(Ctap2(device)).set_pin(_PIN)
        client = Fido2Client(device, collector, _PinEntry())
        creation, state = server.register_begin(
            user,
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        registration = client.make_credential(creation.public_key)
        credential = server.register_complete(state, registration).credential_data
        if credential is None:
            raise VerificationError("the registration holds no credential")
        request, state = server.authenticate_begin(
            user_verification=UserVerificationRequirement.REQUIRED
        )
        assertion = client.get_assertion(request.public_key).get_response(0)
        server.authenticate_complete(state, [credential], assertion)
    client_data_hash = hashlib.sha256(bytes(registration.response.client_data)).digest()
    attested = verify_attestation(bytes(registration.response.attestation_object), client_data_hash)
    response = assertion.response
    check: dict[str, Any] = {
        "credential_public_key": credential.public_key,
        "rp_id": _RP_ID,
        "auth_data": bytes(response.authenticator_data),
        "client_data_hash": hashlib.sha256(bytes(response.client_data)).digest(),
        "signature": response.signature,
        "require_user_verification": True,
    }
    count = verify_assertion(stored_sign_count=attested.sign_count, **check)
    try:
        verify_assertion(stored_sign_count=count, **check)
    except AssertionCounterError:
        replay = drill("a replayed assertion refused (counter not above the one held)")
    else:
        raise VerificationError("a replayed assertion was accepted")
    ctx.console.print(
        f"FIDO2 applet {how}: PIN set, resident credential registered (packed attestation,"
        f" model {attested.aaguid}), authenticated with UV, counter {count}; {replay}"
    )
    ctx.record("FIDO2 applet", f"register + authenticate {how.split(':')[0]}")
