"""From one reported pseudonym certificate to the vehicle's linkage seeds (IEEE 1609.2.1 §4,
the SCMS misbehaviour process).

Four authorities must each do their part, and each only sees its own:

1. the pseudonym CA finds its record of the reported certificate (by HashedId8): the period i
   and the two chain references, which it cannot open;
2. LA2 peels the outer layer of LA1's reference (encrypted to LA2) and LA1 of LA2's;
3. LA1 opens its inner reference and reveals ls1(i) and the token the RA holds for the chain;
   LA2 likewise ls2(i). Neither learns the device or the certificate;
4. the RA finds the device holding both tokens and blocks it: its next batch request is
   refused.

The seeds go into a linked CRL (``fleetid.revocation.linked_crl_channel``): every receiver then
refuses the vehicle's pseudonyms of period i and later; the earlier ones stay unlinkable (the
seed chain runs forward only). No smaller set can do it: without the CA nobody can go from the
certificate to the references; without either LA neither reference opens (each is sealed by one
LA and encrypted to the other) and neither seed is known; without the RA the vehicle keeps
getting batches (docs/privacy.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetid.authority.v2x.la import LinkageAuthority
from fleetid.authority.v2x.pseudonym_ca import IssuanceRecord, PseudonymCa
from fleetid.authority.v2x.ra import RegistrationAuthority
from fleetid.revocation.linked_crl_channel import LinkedCrlPublisher

__all__ = ["RevealedChain", "publish_revealed_chain", "revoke_reported_pseudonym"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RevealedChain:
    """The two linkage seeds of a reported vehicle's chain for period ``i``."""

    i: int
    la1_id: bytes
    la2_id: bytes
    seed1: bytes = field(repr=False)
    seed2: bytes = field(repr=False)


def publish_revealed_chain(
    publisher: LinkedCrlPublisher, chain: RevealedChain, *, j_max: int, periods: int = 52
) -> None:
    """Put ``chain`` on the linked CRL: its seeds from period ``chain.i``, ``j_max``
    certificates a period, for ``periods`` periods (1609.2 IndividualRevocation)."""
    publisher.revoke(
        i=chain.i,
        la1_id=chain.la1_id,
        la2_id=chain.la2_id,
        seed1=chain.seed1,
        seed2=chain.seed2,
        j_max=j_max,
        i_max=chain.i + periods,
    )


def revoke_reported_pseudonym(
    certificate: bytes,
    *,
    ca: PseudonymCa,
    la1: LinkageAuthority,
    la2: LinkageAuthority,
    ra: RegistrationAuthority,
    record_for: Callable[[bytes], IssuanceRecord] | None = None,
) -> RevealedChain:
    """The seeds of the vehicle behind ``certificate`` (COER), its RA account blocked.

    ``record_for`` finds the CA's record where the CA keeps it: its own memory by default, the
    shared store for certificates issued by queue workers (``batch_jobs.record_from_queue``).
    Raises ``NotFoundError`` if the CA did not issue the certificate and
    ``VerificationError`` if a reference does not open at its authority.
    """
    record = (record_for or ca.record_for)(certificate)
    seed1, token1 = la1.reveal(la2.peel(record.chain_references[0]), record.i)
    seed2, token2 = la2.reveal(la1.peel(record.chain_references[1]), record.i)
    ra.block_chain((token1, token2))
    _log.info("misbehaviour: chain seeds of period %d revealed, device blocked at the RA", record.i)
    return RevealedChain(i=record.i, la1_id=la1.la_id, la2_id=la2.la_id, seed1=seed1, seed2=seed2)
