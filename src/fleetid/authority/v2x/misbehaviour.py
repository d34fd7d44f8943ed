"""From one reported pseudonym certificate to the vehicle's linkage seeds (IEEE 1609.2.1 §4,
the SCMS misbehaviour process).

Four authorities must each do their part, and each only sees its own:

1. the pseudonym CA finds its record of the reported certificate (by HashedId8): the period i,
   the two LAs' sealed chain references and the RA's sealed device reference, none of which it
   can open;
2. LA1 opens its chain reference and reveals ls1(i); LA2 likewise ls2(i). Neither learns the
   device, the other's seed or the certificate;
3. the RA opens its device reference and blocks the device: its next batch request is refused.

The seeds go into a linked CRL (``fleetid.revocation.linked_crl_channel``): every receiver then
refuses the vehicle's pseudonyms of period i and later; the earlier ones stay unlinkable (the
seed chain runs forward only). No smaller set can do it: without the CA nobody can go from the
certificate to the references; without one LA its plv stays unknown and lv = plv1 ⊕ plv2 cannot
be recomputed; without the RA the vehicle keeps getting batches (docs/privacy.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fleetid.authority.v2x.la import LinkageAuthority
from fleetid.authority.v2x.pseudonym_ca import PseudonymCa
from fleetid.authority.v2x.ra import RegistrationAuthority

__all__ = ["RevealedChain", "revoke_reported_pseudonym"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RevealedChain:
    """The two linkage seeds of a reported vehicle's chain for period ``i``."""

    i: int
    la1_id: bytes
    la2_id: bytes
    seed1: bytes = field(repr=False)
    seed2: bytes = field(repr=False)


def revoke_reported_pseudonym(
    certificate: bytes,
    *,
    ca: PseudonymCa,
    la1: LinkageAuthority,
    la2: LinkageAuthority,
    ra: RegistrationAuthority,
) -> RevealedChain:
    """The seeds of the vehicle behind ``certificate`` (COER), its RA account blocked.

    Raises ``NotFoundError`` if the CA did not issue the certificate and
    ``VerificationError`` if a reference does not open at its authority.
    """
    record = ca.record_for(certificate)
    seed1 = la1.reveal_seed(record.chain_references[0], record.i)
    seed2 = la2.reveal_seed(record.chain_references[1], record.i)
    ra.block_device(record.device_reference)
    _log.info("misbehaviour: chain seeds of period %d revealed, device blocked at the RA", record.i)
    return RevealedChain(i=record.i, la1_id=la1.la_id, la2_id=la2.la_id, seed1=seed1, seed2=seed2)
