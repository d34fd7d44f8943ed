"""The V2X privacy PKI of ETSI TS 102 941: Root CA, Enrolment Authority, Authorization Authority.

``RootCa`` signs the EA and AA certificates, the CTL, the CA CRL and link certificates;
``V2xTrustStore`` is what every relying party builds from them; ``EnrolmentAuthority`` enrols
vehicles and validates authorization requests; ``AuthorizationAuthority`` issues pseudonymous
ATs. Flows: docs/v2x.md; what links and what does not: docs/privacy.md.
"""

from __future__ import annotations

from fleetid.authority.v2x.aa import AuthorizationAuthority, EaTransport
from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.ea import EnrolmentAuthority
from fleetid.authority.v2x.root_ca import RootCa
from fleetid.errors import RequestRefusedError
from fleetid.formats.ieee1609.validity import check_validity, validity_bounds
from fleetid.policy.v2x import CAM_SSP, FAMILIES, PSID_CAM, PSID_DENM, CurveFamily
from fleetid.trust.v2x import CaEntry, V2xTrustStore

__all__ = [
    "CAM_SSP",
    "FAMILIES",
    "PSID_CAM",
    "PSID_DENM",
    "AuthorityKeys",
    "AuthorizationAuthority",
    "CaEntry",
    "CurveFamily",
    "EaTransport",
    "EnrolmentAuthority",
    "RequestRefusedError",
    "RootCa",
    "V2xTrustStore",
    "check_validity",
    "validity_bounds",
]
