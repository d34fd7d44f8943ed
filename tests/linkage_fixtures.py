"""A vehicle as two linkage authorities see it, for the linked-revocation tests.

Each LA holds one random initial seed for the vehicle's chain; the pseudonym of period i and
index j carries lv(i, j) = plv1(i, j) ⊕ plv2(i, j) (``fleetid.crypto.linkage``), as the pseudonym
CA builds it.
"""

from __future__ import annotations

import secrets

from fleetid.crypto.linkage import linkage_seed_at, linkage_value, pre_linkage_value

__all__ = ["LA1", "LA2", "Vehicle"]

LA1, LA2 = bytes.fromhex("8E09"), bytes.fromhex("59CE")  # the CAMP vectors' LA identifiers


class Vehicle:
    """Two initial seeds, one per LA; its pseudonym of (i, j) carries lv(i, j)."""

    def __init__(self) -> None:
        self.ls1, self.ls2 = secrets.token_bytes(16), secrets.token_bytes(16)

    def seeds(self, i: int) -> tuple[bytes, bytes]:
        """What LA1 and LA2 reveal to revoke the vehicle from period i on: ls1(i), ls2(i)."""
        return linkage_seed_at(self.ls1, LA1, i), linkage_seed_at(self.ls2, LA2, i)

    def lv(self, i: int, j: int) -> bytes:
        seed1, seed2 = self.seeds(i)
        return linkage_value(pre_linkage_value(seed1, LA1, j), pre_linkage_value(seed2, LA2, j))
