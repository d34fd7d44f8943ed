"""The applet interface of the emulated card, as Java Card's ``javacard.framework.Applet`` is.

The card (``fleetid.se.card.SecureElement``) owns the ISO 7816-4 transport: APDU parsing, class
byte checks, logical channels, GET RESPONSE, command chaining assembly, and the GlobalPlatform
secure channel (an applet that sets ``secure_channel`` has INITIALIZE UPDATE and EXTERNAL
AUTHENTICATE answered for it, as a Java Card applet forwards them to its security domain through
``GPSystem.getSecureChannel()``; every other command reaches it already unwrapped). An applet
sees only plain commands, with a ``CommandContext`` telling it the security level of the session
the command arrived in, and answers with a ``Reply`` or raises ``SecureElementError(sw)``.

Applets share one ``CardState`` (one chip, one flash); after changing it they call
``ctx.persist()`` so the change reaches sealed flash before the response leaves the card.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from fleetid.errors import SecureElementError
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.se.state import CardLifeCycle, CardState

__all__ = [
    "Applet",
    "CommandContext",
    "Reply",
    "SecurityLevel",
    "refuse",
]


class SecurityLevel:
    """GP Amd D Table 7-6 security level bits (the P1 of EXTERNAL AUTHENTICATE)."""

    C_MAC = 0x01
    C_DECRYPTION = 0x02
    R_MAC = 0x10
    R_ENCRYPTION = 0x20


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """An applet's answer: response data and status word."""

    data: bytes = b""
    sw: int = SW.OK


def refuse(sw: int, reason: str) -> SecureElementError:
    """The error an applet raises to answer ``sw``; ``reason`` goes to the debug log only."""
    return SecureElementError(sw, reason)


@dataclass(kw_only=True)
class CommandContext:
    """What an applet may use while processing one command.

    ``authenticated`` / ``level`` describe the secure channel session the command came in
    (level 0 when none); ``proprietary`` is whether the class byte is GP proprietary (``8x``).
    ``decrypt_sensitive`` decrypts key data under the session's static Key-DEK (PUT KEY).
    """

    state: CardState
    persist: Callable[[], None]
    authenticated: bool = False
    level: int = 0
    proprietary: bool = False
    decrypt_sensitive: Callable[[bytes], bytes] | None = None
    random: Callable[[int], bytes] = field(default=os.urandom)
    #: The selected applet's own persistent state (GPCS §5.3.2 application data), when the card
    #: content registry holds it; change it in place, then ``persist()``.
    applet_data: dict[str, object] | None = None

    def require_session(self, level_bits: int = SecurityLevel.C_MAC) -> None:
        """Refuse (6982) unless an authenticated session covers ``level_bits``."""
        if not self.authenticated or self.level & level_bits != level_bits:
            raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "secure channel session required")

    def require_proprietary(self) -> None:
        """GP commands use the proprietary class (``80``/``84``); anything else is 6E00."""
        if not self.proprietary:
            raise refuse(SW.CLA_NOT_SUPPORTED, "GlobalPlatform command in interindustry class")

    def require_before(self, life_cycle: CardLifeCycle) -> None:
        """Refuse (6985) once the card life cycle has reached ``life_cycle``."""
        if self.state.life_cycle >= life_cycle:
            raise refuse(
                SW.CONDITIONS_NOT_SATISFIED, f"not allowed in {self.state.life_cycle.name}"
            )


class Applet:
    """Base class of the card's applets. Subclasses set ``aid`` and implement ``process``."""

    aid: ClassVar[bytes]
    #: INITIALIZE UPDATE / EXTERNAL AUTHENTICATE are answered by the card's SCP03 channel.
    secure_channel: ClassVar[bool] = False
    #: Applets that a CARD_LOCKED card still lets be selected (GP §5.1.1.4: only the ISD).
    selectable_when_locked: ClassVar[bool] = False

    def select(self, state: CardState) -> bytes:
        """The FCI returned by SELECT; also the place to reset per-selection state."""
        return b""

    def deselect(self) -> None:
        """Called when another applet is selected or the card is reset."""

    def zeroise(self) -> None:
        """Forget anything derived from keys (caches); called on tamper and termination."""

    @classmethod
    def migrate_state(cls, previous: dict[str, object], from_version: int) -> dict[str, object]:
        """This version's persistent state made from an older version's (card content upgrade,
        ``fleetid.se.applets.card_content``). Keys by handle stay on the card untouched; the
        default keeps the state as it is."""
        return dict(previous)

    def accepts_chaining(self, ins: int) -> bool:
        """Whether the card may assemble ISO 7816-4 command chains (CLA b5) for ``ins``."""
        return False

    def implied_ne(self, apdu: CommandApdu) -> int | None:
        """Ne for a command that came without Le (ISO 7816-4: none expected, so any data waits
        behind 61xx); an applet whose clients omit Le yet expect the answer says how much."""
        return None

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        raise refuse(SW.INS_NOT_SUPPORTED, f"INS {apdu.ins:02X}")
