"""Misbehaviour reports in: a misbehaviour authority (MA) names one pseudonym certificate, and
the butterfly authorities revoke the vehicle behind it (IEEE 1609.2.1 §4, the SCMS MA role).

The MA holds a 1609.2 certificate the V2X root issues at ``fleetid v2x init``
(``issue_misbehaviour_authority``: app permission psid 35, no issue permissions) and signs each
report (``MaReport``) as the authorities sign their hops (``fleetid.authority.v2x.hops``). The
route's ``MisbehaviourDesk`` accepts a report only from that certificate (``AuthorityHopError``,
HTTP 401), fresh and once (``BatchRefusedError`` stale or replay, 403), for a certificate this
pseudonym CA issued (``NotFoundError``, 404) of a period that has begun (``PolicyError``, 403),
and then runs the cooperative de-linking of ``misbehaviour.revoke_reported_pseudonym``: the
CA's record, both LAs' reveals, the RA blocking the device. The chain goes on the linked CRL,
which is published at once (full and delta files, served at ``/v2x/linked-crl/...``). A second
report of the same vehicle revokes nothing new (``newlyRevoked`` false). The answer is signed
by the pseudonym CA, the CRACA of the linked CRL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final

from fleetid.authority.v2x.batch_pki import ButterflyAuthorities, issue_hop_authority
from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hierarchy import V2xHierarchy
from fleetid.authority.v2x.hops import HopReceiver, sign_hop
from fleetid.authority.v2x.misbehaviour import publish_revealed_chain, revoke_reported_pseudonym
from fleetid.clock import Clock
from fleetid.crypto.signer import Signer
from fleetid.crypto.v2xkeys import PrivateKey
from fleetid.errors import PolicyError
from fleetid.formats.ieee1609 import decode_certificate, time32
from fleetid.revocation.linked_crl_channel import LinkedCrlPublisher

__all__ = ["MA_REPORT_PATH", "MisbehaviourDesk", "issue_misbehaviour_authority", "sign_report"]

MA_REPORT_PATH: Final = "/v2x/ma/report"
_MA_NAME: Final = "fleetid-v2x-misbehaviour-authority"


def issue_misbehaviour_authority(
    hierarchy: V2xHierarchy, *, signer: Signer, decryption_key: PrivateKey
) -> AuthorityKeys:
    """The MA's keys with a certificate from the hierarchy's root (psid 35, no issue
    permissions, an encryption key for reports sent to it)."""
    return issue_hop_authority(
        hierarchy, name=_MA_NAME, signer=signer, decryption_key=decryption_key
    )


def sign_report(ma: AuthorityKeys, certificate: bytes, clock: Clock) -> bytes:
    """The MA's signed report of one pseudonym certificate (its COER)."""
    return sign_hop(ma, "MaReport", {"reportedCertificate": certificate}, clock)


@dataclass(kw_only=True)
class MisbehaviourDesk:
    """The report route's service: from a signed report to a revoked vehicle and a new CRL."""

    authorities: ButterflyAuthorities
    from_ma: HopReceiver
    publisher: LinkedCrlPublisher
    certificates_per_period: int
    clock: Clock
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def handle(self, message: bytes) -> bytes:
        report, request_hash = self.from_ma.open(message, "MaReport")
        certificate = bytes(report["reportedCertificate"])
        decode_certificate(certificate)  # EncodingError for bytes that are no certificate
        a = self.authorities
        now = self.clock.now()
        current = a.schedule.period_at(time32(now))
        record = a.ca.record_for(certificate)  # NotFoundError if this CA did not issue it
        if record.i > current:
            raise PolicyError(f"the certificate is of period {record.i}, not yet begun")
        with self._lock:  # one revocation and publication at a time
            chain = revoke_reported_pseudonym(
                certificate, ca=a.ca, la1=a.la1, la2=a.la2, ra=a.ra, record_for=lambda _: record
            )
            fresh = not self.publisher.revokes(
                i=chain.i, la1_id=chain.la1_id, la2_id=chain.la2_id, seed1=chain.seed1
            )
            if fresh:
                publish_revealed_chain(self.publisher, chain, j_max=self.certificates_per_period)
                self.publisher.publish(now, current_period=current)
        answer = {"requestHash": request_hash, "iRev": chain.i, "newlyRevoked": fresh}
        return sign_hop(a.ca.keys, "MaReportResponse", answer, self.clock)
