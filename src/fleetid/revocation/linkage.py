"""Linked revocation: checking pseudonym certificates against linkage-seed CRL entries.

A pseudonym certificate carries no device identity, only its period i (``iCert``) and a linkage
value ``lv(i, j)`` (``fleetid.crypto.linkage``). To revoke a whole vehicle, the misbehaviour
authority has LA1 and LA2 reveal that vehicle's linkage seeds ls1(i_rev), ls2(i_rev), and a
linked CRL carries them (IEEE 1609.2 §7.3, IndividualRevocation inside its LA group and jMax
group; about 32 bytes a vehicle). A receiver then walks each seed pair forward to the period of
a certificate it checks, computes ``lv(i, j)`` for j = 0 .. jMax - 1, and refuses a certificate
whose linkage value is among them. Certificates of periods before i_rev are not affected: the
seed chain runs one way, so the CRL reveals nothing about the vehicle's past.

The expansion is done once per period for all entries together (a set of linkage values), so
checking a certificate is one set lookup. The period comes from the sender: a certificate that
claims a period far ahead would make a receiver walk every chain that far, so the walk is capped
(``max_forward`` periods past the receiver's current one), and an entry revealing seeds of a
period after the current one is refused as malformed (no authority can have revoked in the
future).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from fleetid.crypto.linkage import (
    LINKAGE_SEED_SIZE,
    LINKAGE_VALUE_SIZE,
    linkage_seed_at,
    linkage_value,
    pre_linkage_value,
)
from fleetid.errors import CertificateRevokedError, EncodingError, VerificationError

__all__ = ["DEFAULT_MAX_FORWARD", "LinkedRevocation", "LinkedRevocationSet"]

#: How many periods past the receiver's current one a sender's period may claim.
DEFAULT_MAX_FORWARD: Final = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkedRevocation:
    """One vehicle in a linked CRL: its two linkage seeds of period ``i_rev``.

    ``j_max`` is the number of certificates per period (the jMax group it sits in); the entry
    expires after period ``i_max`` (the IMaxGroup's iMax), when the vehicle's certificates do.
    """

    i_rev: int
    la1_id: bytes
    la2_id: bytes
    seed1: bytes
    seed2: bytes
    j_max: int
    i_max: int

    def __post_init__(self) -> None:
        if len(self.seed1) != LINKAGE_SEED_SIZE or len(self.seed2) != LINKAGE_SEED_SIZE:
            raise EncodingError(f"linkage seeds are {LINKAGE_SEED_SIZE} bytes")
        if len(self.la1_id) != 2 or len(self.la2_id) != 2 or self.la1_id == self.la2_id:
            raise EncodingError("an entry names two distinct 2-byte LA identifiers")
        if not 1 <= self.j_max <= 255:  # Uint8 in 1609.2
            raise EncodingError(f"jMax is 1..255, got {self.j_max}")
        if not 0 <= self.i_rev <= self.i_max <= 0xFFFF:  # IValue and iMax are Uint16
            raise EncodingError(f"0 <= iRev <= iMax <= 65535, got {self.i_rev} and {self.i_max}")

    def linkage_values(self, i: int) -> frozenset[bytes]:
        """lv(i, j) for every j of period ``i`` (none before i_rev or after i_max)."""
        if not self.i_rev <= i <= self.i_max:
            return frozenset()
        seed1 = linkage_seed_at(self.seed1, self.la1_id, i - self.i_rev)
        seed2 = linkage_seed_at(self.seed2, self.la2_id, i - self.i_rev)
        return frozenset(
            linkage_value(
                pre_linkage_value(seed1, self.la1_id, j), pre_linkage_value(seed2, self.la2_id, j)
            )
            for j in range(self.j_max)
        )


class LinkedRevocationSet:
    """A receiver's view of the linked CRL entries it holds, expanded once per period."""

    def __init__(
        self,
        entries: Iterable[LinkedRevocation],
        *,
        current_period: int,
        max_forward: int = DEFAULT_MAX_FORWARD,
    ) -> None:
        self._entries = tuple(entries)
        for entry in self._entries:
            if entry.i_rev > current_period:
                raise EncodingError(
                    f"a linked CRL entry reveals seeds of period {entry.i_rev}, after the "
                    f"current period {current_period}"
                )
        self._current = current_period
        self._max_forward = max_forward
        self._by_period: dict[int, frozenset[bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def linkage_values(self, i: int) -> frozenset[bytes]:
        """Every revoked linkage value of period ``i`` (computed once, then kept)."""
        if i > self._current + self._max_forward:
            raise VerificationError(
                f"period {i} is more than {self._max_forward} past the current period "
                f"{self._current}: not expanded"
            )
        if i not in self._by_period:
            values: set[bytes] = set()
            for entry in self._entries:
                values |= entry.linkage_values(i)
            self._by_period[i] = frozenset(values)
        return self._by_period[i]

    def check(self, i: int, value: bytes) -> None:
        """Raise ``CertificateRevokedError`` if the certificate (i, lv) is revoked."""
        if len(value) != LINKAGE_VALUE_SIZE:
            raise EncodingError(f"a linkage value is {LINKAGE_VALUE_SIZE} bytes, got {len(value)}")
        if value in self.linkage_values(i):
            raise CertificateRevokedError(f"linkage value {value.hex()} of period {i} is revoked")
