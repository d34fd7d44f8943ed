"""python-fido2's own PC/SC framing, in process: ``CtapPcscDevice`` over a connection object that
hands its APDUs straight to the card. Short APDUs chained with CLA 90 (250-byte pieces), Le 00,
61xx and GET RESPONSE are the library's; the same device also tries extended APDUs."""

from __future__ import annotations

from typing import Any

from fido2.ctap2 import Ctap2
from tests.optional import PCSC_EXTRA, require_module

from fleetid.se.card import SecureElement
from fleetid.sim.fido_card import TEST_FIDO_MODEL, manufacture_fido_card

fido2_pcsc = require_module("fido2.pcsc", install=PCSC_EXTRA)


class CardConnection:
    """The part of a pyscard connection ``CtapPcscDevice`` uses, logging what crosses."""

    def __init__(self, card: SecureElement) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def connect(self) -> None:
        self.card.reset()

    def disconnect(self) -> None:
        pass

    def getATR(self) -> list[int]:
        return []

    def transmit(self, apdu: list[int], protocol: Any = None) -> tuple[list[int], int, int]:
        self.sent.append(bytes(apdu))
        response = self.card.transmit(bytes(apdu))
        return list(response[:-2]), response[-2], response[-1]


def test_chained_short_apdus_and_get_response() -> None:
    made = manufacture_fido_card()
    connection = CardConnection(made.card)
    device = fido2_pcsc.CtapPcscDevice(connection, "in process")
    ctap = Ctap2(device)
    assert bytes(ctap.info.aaguid) == TEST_FIDO_MODEL.aaguid.bytes
    user = {"id": b"u" * 64, "name": "n" * 64, "displayName": "d" * 64}
    exclude = [{"type": "public-key", "id": bytes([i]) * 61} for i in range(4)]
    made_credential = ctap.make_credential(
        bytes(32),
        {"id": "example.com"},
        user,
        [{"type": "public-key", "alg": -7}],
        exclude_list=exclude,
        options={"rk": True},
    )
    # The request was over 250 bytes (chained with CLA 90), the response with its x5c over 256
    # (fetched with GET RESPONSE after 61xx).
    assert any(a[0] == 0x90 and a[1] == 0x10 for a in connection.sent)
    assert any(a[:2] == b"\x00\xc0" for a in connection.sent)
    assert len(made_credential.att_stmt["x5c"]) == 2
    descriptor = {
        "type": "public-key",
        "id": made_credential.auth_data.credential_data.credential_id,
    }
    assert ctap.get_assertion("example.com", bytes(32), [descriptor]).user is None
    # python-fido2's extended mode: one extended APDU without Le, the answer expected whole.
    device.use_ext_apdu = True
    sent = len(connection.sent)
    made_again = ctap.make_credential(
        bytes(32),
        {"id": "example.com"},
        user,
        [{"type": "public-key", "alg": -7}],
        exclude_list=exclude,
    )
    assert len(made_again.att_stmt["x5c"]) == 2
    assert len(connection.sent) == sent + 1
    assert connection.sent[-1][:5] == b"\x80\x10\x80\x00\x00"
    # ... and a card that is not told (a case 3 short APDU) still answers by ISO rules: 61xx.
    response = made.card.transmit(b"\x80\x10\x00\x00\x01\x04")
    assert response[-2] == 0x61 and len(response) == 2
