"""The emulated secure element and the host's way to it.

Host code needs ``SecureElementClient`` (APDUs over any ``Transport``: the card in process, or a
PC/SC reader), ``SecureElementSigner`` (a card key as a ``Signer``) and ``HostSession`` (the SCP03
host side). The chip itself is ``SecureElement``: one way in, ``transmit(apdu) -> response``;
``VpcdBridge`` puts it in a PC/SC reader. Everything else under ``fleetid.se`` is internal (the
card's applets and state live behind the tamper boundary, and import-linter keeps them there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetid._lazy import lazy_exports

if TYPE_CHECKING:
    from fleetid.formats.attestation import KeyUsage
    from fleetid.se.card import SecureElement, TamperEvent
    from fleetid.se.client import KeyInfo, SecureElementClient, SecureElementSigner, Transport
    from fleetid.se.pcsc import VpcdBridge
    from fleetid.se.scp03 import HostSession, StaticKeys

__all__ = [
    "HostSession",
    "KeyInfo",
    "KeyUsage",
    "SecureElement",
    "SecureElementClient",
    "SecureElementSigner",
    "StaticKeys",
    "TamperEvent",
    "Transport",
    "VpcdBridge",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "fleetid.se.client": ("KeyInfo", "SecureElementClient", "SecureElementSigner", "Transport"),
        "fleetid.se.scp03": ("HostSession", "StaticKeys"),
        "fleetid.se.card": ("SecureElement", "TamperEvent"),
        "fleetid.se.pcsc": ("VpcdBridge",),
        "fleetid.formats.attestation": ("KeyUsage",),
    },
)
