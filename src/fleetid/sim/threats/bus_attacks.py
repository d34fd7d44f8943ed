"""Bus attacks: the attacker sits on the host-SE bus and replays, reorders and tampers APDUs of
an SCP03 session, and drives the card manager's commands without keys.

A legitimate management host (the HSM-derived session keys, ``DemoLine.session_keys``) opens
SCP03 at level 33 (C-MAC, C-DEC, R-MAC, R-ENC) and sends commands; the attacker sees every byte
and injects its own. Each injection must be refused with the status word GP Amendment D and
docs/se-apdu.md give, and must change nothing the card keeps (compared in the chip's unsealed
state, key sequence counters aside, which INITIALIZE UPDATE moves by design).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fleetid.factory.line import DEVICE_KVN
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.formats.attestation import KeyUsage
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import HostSession
from fleetid.se.wire import (
    CLA_GP,
    INS_EXTERNAL_AUTHENTICATE,
    INS_GENERATE_KEY,
    INS_INITIALIZE_UPDATE,
    INS_LIST_KEYS,
    INS_PUT_KEY,
    INS_SELECT,
    INS_SET_STATUS,
    ISD_AID,
    POLICY_REQUIRES_SESSION,
    CardLifeCycle,
    Curve,
)
from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict
from fleetid.sim.threats.target_fleet import SeDevice, TargetFleet

__all__ = ["CONTROL", "Injection", "run"]

CONTROL = "SCP03 C-MAC chaining and encryption; card management only in an authenticated session"
_LEVEL = 0x33


@dataclass(frozen=True, kw_only=True)
class Injection:
    """One attack on the bus: what was sent, the status word expected and the one seen."""

    attack: str
    expected: int
    observed: int
    state_unchanged: bool

    @property
    def refused(self) -> bool:
        return self.observed == self.expected and self.state_unchanged


def run(target: TargetFleet) -> ThreatResult:
    injections = attack_bus(target, target.se_device())
    refused = all(i.refused for i in injections)
    evidence = tuple(
        f"{i.attack}: SW {i.observed:04X} (expected {i.expected:04X})"
        + ("" if i.state_unchanged else ", card state CHANGED")
        for i in injections
    )
    return ThreatResult(
        name="bus-attacks",
        threat="Bus attacks",
        capability="read and inject APDUs on the host-SE bus, no SCP03 keys",
        control=CONTROL,
        se_device=Outcome(
            verdict=Verdict.STOPPED if refused else Verdict.COMPROMISED,
            control=CONTROL,
            evidence=evidence,
        ),
        software_device=None,  # a software device has no SE bus
    )


def _sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def _generate(session: HostSession) -> bytes:
    policy = int(KeyUsage.SIGN) | POLICY_REQUIRES_SESSION
    return session.wrap_apdu(
        CommandApdu(CLA_GP, INS_GENERATE_KEY, int(Curve.P256), 0, bytes((policy,)), 256)
    )


def attack_bus(target: TargetFleet, device: SeDevice) -> list[Injection]:
    """Every injection of the module docstring against ``device``'s card."""
    card = device.card
    host = SecureElementClient(card)
    keys = target.factory.session_keys(device.entry)

    def session() -> HostSession:
        host.select_identity()
        return host.open_secure_channel(keys, _LEVEL, key_version=DEVICE_KVN)

    def state() -> object:
        current = target.referee_state(device)
        keysets = {kvn: (k.enc, k.mac, k.dek) for kvn, k in current.keysets.items()}
        return (current.keys, keysets, current.life_cycle, current.attestation_chain, current.boot)

    def inject(attack: str, expected: int, command: bytes) -> Injection:
        before = state()
        observed = _sw(card.transmit(command))
        return Injection(
            attack=attack, expected=expected, observed=observed, state_unchanged=state() == before
        )

    found: list[Injection] = []
    # Replay: a command the host sent in this session, sent again.
    legit = session()
    recorded = _generate(legit)
    legit.unwrap(card.transmit(recorded))
    found.append(inject("replayed GENERATE KEY", SW.SECURITY_STATUS_NOT_SATISFIED, recorded))
    # Reorder: the host's second command delivered before its first.
    legit = session()
    first = legit.wrap_apdu(CommandApdu(CLA_GP, INS_LIST_KEYS, 0, 0, b"", 256))
    second = _generate(legit)
    found.append(inject("reordered commands", SW.SECURITY_STATUS_NOT_SATISFIED, second))
    _ = first
    # Tamper: one bit of the encrypted command data flipped.
    legit = session()
    tampered = bytearray(_generate(legit))
    tampered[5] ^= 0x01
    found.append(inject("tampered command", SW.SECURITY_STATUS_NOT_SATISFIED, bytes(tampered)))
    # Card management without keys, from the card manager.
    card.transmit(CommandApdu(0x00, INS_SELECT, 0x04, 0x00, ISD_AID, 256).encode())
    put_key = CommandApdu(CLA_GP, INS_PUT_KEY, 0x00, 0x81, bytes((0x31,)) + os.urandom(57))
    found.append(
        inject("PUT KEY without a session", SW.SECURITY_STATUS_NOT_SATISFIED, put_key.encode())
    )
    terminate = CommandApdu(CLA_GP, INS_SET_STATUS, 0x80, int(CardLifeCycle.TERMINATED))
    found.append(
        inject("SET STATUS without a session", SW.SECURITY_STATUS_NOT_SATISFIED, terminate.encode())
    )
    forged_sm = CommandApdu(
        0x84, INS_SET_STATUS, 0x80, int(CardLifeCycle.CARD_LOCKED), os.urandom(8)
    )
    found.append(
        inject("SET STATUS with a forged C-MAC", SW.CONDITIONS_NOT_SATISFIED, forged_sm.encode())
    )
    card.transmit(
        CommandApdu(CLA_GP, INS_INITIALIZE_UPDATE, DEVICE_KVN, 0, os.urandom(8), 256).encode()
    )
    guess = CommandApdu(0x84, INS_EXTERNAL_AUTHENTICATE, _LEVEL, 0, os.urandom(16))
    found.append(inject("EXTERNAL AUTHENTICATE, guessed", SW.VERIFICATION_FAILED, guess.encode()))
    device.client.select_identity()
    return found
