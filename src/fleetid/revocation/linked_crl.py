"""From a received IEEE 1609.2 linked CRL to the receiver's revocation set.

Each IndividualRevocation of a linked CRL becomes one ``LinkedRevocation``: iRev from the CRL,
jMax from its JMaxGroup, the two LA identifiers from its LAGroup, iMax from its IMaxGroup and
its two seeds (IEEE 1609.2 §5.1.3.4, §7.3). An IMaxGroup whose iMax is before iRev revokes
nothing from iRev on (its certificates have expired) and is skipped. Group entries
(GroupCrlEntry) are not expanded here.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetid.errors import EncodingError
from fleetid.formats.ieee1609.certificate import Certificate
from fleetid.formats.ieee1609.crl import CrlContents, LinkedCrl, open_secured_crl
from fleetid.revocation.linkage import DEFAULT_MAX_FORWARD, LinkedRevocation, LinkedRevocationSet

__all__ = ["linked_revocations", "revocation_set_from_crls"]


def linked_revocations(contents: CrlContents) -> tuple[LinkedRevocation, ...]:
    """The individual entries of a linked CRL; ``EncodingError`` for a hash-based CRL."""
    body = contents.body
    if not isinstance(body, LinkedCrl):
        raise EncodingError("a hash-based CRL carries no linkage seeds")
    return tuple(
        LinkedRevocation(
            i_rev=body.i_rev,
            la1_id=la_group.la1_id,
            la2_id=la_group.la2_id,
            seed1=revocation.seed1,
            seed2=revocation.seed2,
            j_max=j_group.j_max,
            i_max=i_group.i_max,
        )
        for j_group in body.individual or ()
        for la_group in j_group.la_groups
        for i_group in la_group.i_max_groups
        if i_group.i_max >= body.i_rev
        for revocation in i_group.revocations
    )


def revocation_set_from_crls(
    secured_crls: Iterable[bytes],
    craca_certificate: Certificate,
    *,
    current_period: int,
    max_forward: int = DEFAULT_MAX_FORWARD,
) -> LinkedRevocationSet:
    """Verify each SecuredCrl against the CRACA's certificate and expand its individual entries.

    A CRL that does not decode raises ``EncodingError``; one that does not verify (another
    signer, another CRACA, a bad signature) raises ``VerificationError``. Hash-based CRLs are
    refused: they belong to a HashedId10 check, not to this set.
    """
    entries: list[LinkedRevocation] = []
    for data in secured_crls:
        contents = open_secured_crl(data).verify(craca_certificate)
        entries.extend(linked_revocations(contents))
    return LinkedRevocationSet(entries, current_period=current_period, max_forward=max_forward)
