"""An applet upgrade pushed to a cohort through each device's card relay, audited per card."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.applet_rollout import (
    RolloutOutcome,
    RolloutResult,
    push_applet,
    read_status,
)
from fleetid.clock import ManualClock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.device.card_relay import CardRelay
from fleetid.factory.auditlog import AuditLog
from fleetid.formats.attestation import KeyUsage
from fleetid.se.client import SecureElementClient
from fleetid.se.packages import IDENTITY_LOAD_FILE_AID, IDENTITY_V1, IDENTITY_V2, AppletPackage
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.test_card import ManufacturedCard, manufacture_test_card

SIGNER = SoftwareSigner(new_private_key())
ORIGIN = "fleetid.example/authority"


class _Crash(Exception):
    pass


def _cohort(n: int, *, signing_key: bool = True) -> dict[str, ManufacturedCard]:
    return {
        f"device-{i}": manufacture_test_card(
            keys=StaticKeys(bytes([i]) * 16, bytes([i + 1]) * 16, bytes([i + 2]) * 16),
            applet_signing_key=SIGNER.public_key() if signing_key else None,
        )
        for i in range(n)
    }


def _keys(cards: dict[str, ManufacturedCard]) -> dict[bytes, StaticKeys]:
    return {made.card.chip_serial: made.keys for made in cards.values()}


def _relays(cards: dict[str, ManufacturedCard]) -> dict[str, CardRelay]:
    return {name: CardRelay(made.card) for name, made in cards.items()}


def _push(
    package: AppletPackage,
    cards: dict[str, ManufacturedCard],
    *,
    signer: Signer = SIGNER,
    audit: AuditLog | None = None,
    crash: Callable[[str], None] = lambda step: None,
) -> list[RolloutResult]:
    return push_applet(
        package,
        _relays(cards),
        signer=signer,
        card_keys=_keys(cards).__getitem__,
        audit=audit,
        key_version=0x30,
        crash=crash,
    )


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog.open(tmp_path, SoftwareSigner(new_private_key()), ORIGIN, ManualClock())


def test_push_upgrades_every_card_and_logs_before_and_after(audit: AuditLog) -> None:
    cards = _cohort(3)
    results = _push(IDENTITY_V2, cards, audit=audit)
    assert [(r.outcome, r.before, r.after) for r in results] == [
        (RolloutOutcome.UPGRADED, 1, 2)
    ] * 3
    entries = audit.entries()
    assert [e.kind for e in entries] == ["ca.applet-upgrade"] * 3
    body = json.loads(entries[0].body_json)
    versions = {
        phase: {f["aid"]: f["version"] for f in body[phase]["load_files"]}
        for phase in ("before", "after")
    }
    lf = IDENTITY_LOAD_FILE_AID.hex().upper()
    assert (versions["before"][lf], versions["after"][lf]) == (1, 2)
    assert entries[0].serial == results[0].serial
    # Pushing again changes nothing: every card is current.
    again = _push(IDENTITY_V2, cards)
    assert {r.outcome for r in again} == {RolloutOutcome.CURRENT}


def test_refusals_are_reported_and_the_cohort_goes_on(audit: AuditLog) -> None:
    cards = {**_cohort(1, signing_key=False), "device-ok": _cohort(1)["device-0"]}
    results = _push(IDENTITY_V2, cards, audit=audit)
    assert [(r.outcome, r.status_word) for r in results] == [
        (RolloutOutcome.REFUSED, "6985"),  # no applet-signing key on that card
        (RolloutOutcome.UPGRADED, None),
    ]
    # A downgrade pushed to the upgraded card is refused by the card, and logged.
    down = _push(IDENTITY_V1, {"device-ok": cards["device-ok"]}, audit=audit)
    assert (down[0].outcome, down[0].status_word, down[0].after) == (
        RolloutOutcome.REFUSED,
        "6985",
        2,
    )
    assert json.loads(audit.entries()[-1].body_json)["outcome"] == "refused"


def test_a_package_signed_by_another_key_is_refused() -> None:
    results = _push(IDENTITY_V2, _cohort(1), signer=SoftwareSigner(new_private_key()))
    assert (results[0].outcome, results[0].status_word, results[0].after) == (
        RolloutOutcome.REFUSED,
        "6982",
        1,
    )


def test_a_push_cut_between_load_and_install_completes_on_the_next_push() -> None:
    cards = _cohort(1)
    keys = _keys(cards)
    made = cards["device-0"]
    client = SecureElementClient(made.card)
    client.select_identity()
    client.open_secure_channel(made.keys, 0x33, key_version=0x30)
    key = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=0x09)

    def crash(step: str) -> None:
        raise _Crash(step)

    with pytest.raises(_Crash):
        _push(IDENTITY_V2, cards, crash=crash)
    made.card.reset()
    status = read_status(CardRelay(made.card), keys.__getitem__, key_version=0x30)
    assert status.version_of(IDENTITY_LOAD_FILE_AID) == 1
    (result,) = _push(IDENTITY_V2, cards)
    assert (result.before, result.after) == (1, 2)
    client = SecureElementClient(made.card)
    client.select_identity()
    assert client.get_public_key(0x09).public_key == key.public_key


def test_the_relay_reaches_only_the_isd() -> None:
    made = _cohort(1)["device-0"]
    relay = CardRelay(made.card)
    assert relay.transmit(bytes.fromhex("00A404000AF0464C45455449440101")) == bytes.fromhex("6A82")
    assert relay.transmit(bytes.fromhex("0048000000")) == bytes.fromhex("6D00")
    assert relay.transmit(bytes.fromhex("00A4040008A00000015100000000"))[-2:] == bytes.fromhex(
        "9000"
    )
    assert relay.relayed == 1
