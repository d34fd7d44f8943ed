"""The device's side of remote card content management: its SE's ISD, relayed to the authority.

The authority opens an SCP03 session with the card's ISD and sends card content management
commands (``fleetid.authority.applet_rollout``); the device carries them to its SE and the
answers back, unread: the session keys are not on the device, and the load files are signed by
the fleet's applet-signing key, which the card checks (GPCS §9.2). The relay lets through only
SELECT of the ISD and GlobalPlatform-class commands (``80`` / ``84``) with GET RESPONSE, so the
relayed session reaches no applet but the ISD; anything else is answered ``6D00`` (SELECT of
another AID ``6A82``) without reaching the card.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetid.se.client import Transport
from fleetid.se.wire import INS_GET_RESPONSE, INS_SELECT, ISD_AID

__all__ = ["CardRelay"]

_SELECT_ISD = bytes((0x00, INS_SELECT, 0x04, 0x00, len(ISD_AID))) + ISD_AID


@dataclass
class CardRelay:
    """A ``Transport`` over the device's SE that reaches only its ISD."""

    card: Transport
    relayed: int = 0

    def transmit(self, command: bytes) -> bytes:
        if len(command) < 4:
            return bytes.fromhex("6700")
        cla, ins = command[0], command[1]
        if ins == INS_SELECT and cla & 0x80 == 0:
            if not command.startswith(_SELECT_ISD):
                return bytes.fromhex("6A82")
        elif not (cla in (0x80, 0x84) or (cla == 0x00 and ins == INS_GET_RESPONSE)):
            return bytes.fromhex("6D00")
        self.relayed += 1
        return self.card.transmit(command)
