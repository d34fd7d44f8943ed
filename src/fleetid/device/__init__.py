"""Device-side host code: what runs on the device beside its secure element.

The public surface: ``DeviceAgent`` (one device's lifecycle: enrol, refresh, re-key, transfer;
``DeviceAgent.for_card``), ``PeerVerifier`` (a peer's certificate and its revocation status under a
connectivity profile; ``PeerVerifier.for_profile``), ``TrustStore`` (the X.509 anchors a device
holds and their rollover), the transports to an authority, the CRL client, the boot routine and
the V2X station. Everything else under ``fleetid.device`` is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetid._lazy import lazy_exports

if TYPE_CHECKING:
    from fleetid.device.agent import AgentState, Credential, DeviceAgent
    from fleetid.device.boot import BootedImage, boot
    from fleetid.device.crl_client import CrlClient
    from fleetid.device.transport import AuthorityTransport, HttpTransport
    from fleetid.device.truststore import TrustStore
    from fleetid.device.v2x import CamReceiver, ItsStation
    from fleetid.device.verifier import PeerStatus, PeerVerdict, PeerVerifier

__all__ = [
    "AgentState",
    "AuthorityTransport",
    "BootedImage",
    "CamReceiver",
    "Credential",
    "CrlClient",
    "DeviceAgent",
    "HttpTransport",
    "ItsStation",
    "PeerStatus",
    "PeerVerdict",
    "PeerVerifier",
    "TrustStore",
    "boot",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "fleetid.device.agent": ("AgentState", "Credential", "DeviceAgent"),
        "fleetid.device.verifier": ("PeerStatus", "PeerVerdict", "PeerVerifier"),
        "fleetid.device.truststore": ("TrustStore",),
        "fleetid.device.transport": ("AuthorityTransport", "HttpTransport"),
        "fleetid.device.crl_client": ("CrlClient",),
        "fleetid.device.boot": ("BootedImage", "boot"),
        "fleetid.device.v2x": ("CamReceiver", "ItsStation"),
    },
)
