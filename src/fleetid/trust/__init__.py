"""What relying parties trust, shared by devices and authorities (below both in the layers).

``fleetid.trust.v2x``: the V2X trust store (ETSI TS 102 941 §6.3 RCA CTL, CA CRL, link
certificates) that every ITS-S and every EA/AA builds from what a Root CA publishes.
"""

from __future__ import annotations

from fleetid.trust.v2x import CaEntry, V2xTrustStore

__all__ = ["CaEntry", "V2xTrustStore"]
