"""V2X policy: the ITS-AIDs (psids) and SSPs we grant, and the curve families of ETSI TS 103 097.

Frozen data shared by the authorities that issue V2X certificates and the stations that use and
check them (``fleetid.authority.v2x``, ``fleetid.device.v2x``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CAM_SSP",
    "EC_SSP",
    "FAMILIES",
    "PSID_CAM",
    "PSID_CRL",
    "PSID_CTL",
    "PSID_DENM",
    "CurveFamily",
]

#: ITS-AID of the Cooperative Awareness basic service (ETSI TS 102 965).
PSID_CAM = 36
#: ITS-AID of the DEN basic service.
PSID_DENM = 37
#: CRL service and CTL service ITS-AIDs (ETSI TS 102 965), on the Root CA certificate.
PSID_CRL = 622
PSID_CTL = 624
#: CAM SSP: version 1, no special-vehicle permission bits set (EN 302 637-2 Annex).
CAM_SSP = b"\x01\x00\x00"
#: The EC's permission to request ATs: SSP version 1, "certificate request" bits (TS 102 941).
EC_SSP = b"\x01\xc0"


@dataclass(frozen=True, kw_only=True)
class CurveFamily:
    """The end-entity and CA curves of one family (ETSI TS 103 097 §7)."""

    name: Literal["nist", "brainpool"]
    end_entity: str
    ca: str


FAMILIES: dict[str, CurveFamily] = {
    "nist": CurveFamily(name="nist", end_entity="nistP256", ca="nistP384"),
    "brainpool": CurveFamily(name="brainpool", end_entity="brainpoolP256r1", ca="brainpoolP384r1"),
}
