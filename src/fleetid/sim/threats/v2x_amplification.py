"""V2X amplification: one vehicle's pseudonym used from two places at once.

Two vehicles get a week of butterfly pseudonyms (``fleetid.sim.demo_pseudonyms`` wiring): one
keeps every key in its secure element (caterpillar and pseudonym keys derived on card), one in
software. The attacker runs a second transmitter three kilometres from each vehicle and sends
hazard warnings under the vehicle's current pseudonym: relayed to the SE vehicle's card (they
hold the vehicle: its SE is their signing oracle) or signed with the software vehicle's copied
key. A receiver between the two places verifies every message (pseudonym certificate by the
pseudonym CA, message signature, linked CRL) and runs the plausibility checks
(``fleetid.device.v2x_plausibility``); the first flag becomes a misbehaviour report, the CA,
both LAs and the RA reveal the vehicle's chain (``revoke_reported_pseudonym``), and the linked
CRL reaches the receiver: the vehicle's pseudonyms are refused from then on, and the RA refuses
its next batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from fleetid.authority.v2x import FAMILIES
from fleetid.authority.v2x.batch_pki import ButterflyAuthorities, build_butterfly_authorities
from fleetid.authority.v2x.hierarchy import V2xHierarchy, build_hierarchy
from fleetid.authority.v2x.manufactured import import_manufactured, its_id_of
from fleetid.authority.v2x.misbehaviour import (
    RevealedChain,
    publish_revealed_chain,
    revoke_reported_pseudonym,
)
from fleetid.clock import ManualClock
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.crypto.v2xkeys import CURVES, generate_key
from fleetid.device.pseudonyms import Pseudonym, PseudonymRequester, SecureElementCaterpillar
from fleetid.device.v2x import ItsStation, SecureElementV2xKeys, SoftwareV2xKeys
from fleetid.device.v2x_plausibility import Flag, PlausibilityMonitor, PositionReport
from fleetid.errors import BatchRefusedError, CertificateRevokedError, FleetIdError
from fleetid.factory.line import CANONICAL_KEY_HANDLE
from fleetid.formats.ieee1609 import (
    Certificate,
    decode_certificate,
    encode,
    open_signed_data,
    sign_data,
    time64,
    unsecured,
    verify_certificate_signature,
    verify_signed_data,
)
from fleetid.policy.v2x import PSID_CAM
from fleetid.revocation.channels import BroadcastChannel
from fleetid.revocation.linked_crl_channel import (
    LinkedCrlPublisher,
    LinkedCrlReceiver,
    linked_crl_kind,
)
from fleetid.se.client import SecureElementSigner
from fleetid.se.state import Curve
from fleetid.sim.demo_pseudonyms import batch_request, pseudonym_requester
from fleetid.sim.software_line import SoftwareLine
from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict
from fleetid.store.engine import memory_engine

__all__ = ["CONTROL", "run"]

CONTROL = "receivers' plausibility checks, misbehaviour report, linked CRL"
_PER_WEEK = 6  # a short week: the attack needs one pseudonym, the revocation shows the rest
_INTERVAL = timedelta(milliseconds=100)  # each transmitter's CAM rate: 10 Hz
_HOME = PositionReport(latitude=48.1000, longitude=11.5000, hazard=0)
_ELSEWHERE = PositionReport(latitude=48.1270, longitude=11.5000, hazard=3)  # 3 km north


@dataclass
class _Vehicle:
    requester: PseudonymRequester
    pseudonyms: list[Pseudonym]


def run(_target: object = None) -> ThreatResult:
    clock = ManualClock()
    pki = build_hierarchy(
        family=FAMILIES["nist"], clock=clock, ea_engine=memory_engine(), aa_engine=memory_engine()
    )
    authorities = build_butterfly_authorities(pki, certificates_per_period=_PER_WEEK)
    se_vehicle = _se_requester(pki, authorities)
    software_vehicle = _software_requester(pki, authorities)
    vehicles = _week(authorities, clock, [se_vehicle, software_vehicle])
    ca_certificate = decode_certificate(authorities.ca.certificate)
    publisher = LinkedCrlPublisher(
        signer=authorities.ca.keys.signer,  # the CRACA is the pseudonym CA here
        craca_certificate=ca_certificate,
    )
    # One receiver between the places, holding the linked CRLs the channel brings.
    crl = LinkedCrlReceiver(ca_certificate)
    channel = BroadcastChannel(kind_of=linked_crl_kind)
    channel.subscribe(crl.load)
    receive = _receiver(ca_certificate, crl, PlausibilityMonitor())

    def amplify(vehicle: _Vehicle) -> Outcome:
        return _amplify(
            vehicle,
            authorities,
            receive,
            clock,
            revoke=lambda chain: channel.publish(_publish(publisher, chain, clock)),
        )

    return ThreatResult(
        name="v2x-amplification",
        threat="V2X amplification",
        capability="a vehicle's pseudonym used from a second place (relay to its SE, or a copy)",
        control=CONTROL,
        se_device=amplify(vehicles[0]),
        software_device=amplify(vehicles[1]),
    )


def _se_requester(pki: V2xHierarchy, authorities: ButterflyAuthorities) -> PseudonymRequester:
    line = SoftwareLine(clock=pki.clock, organization="fleetid TEST V2X maker (threats)")
    device = line.make_device(canonical_curve=Curve.P256)
    import_manufactured(
        pki.ea, [device.manifest_entry()], intermediates=[line.line_ca], trusted_roots=[line.root]
    )
    client = device.client()
    station = ItsStation(
        its_id=its_id_of(device.serial),
        canonical_key=SecureElementSigner(client, CANONICAL_KEY_HANDLE),
        keys=SecureElementV2xKeys(client),
        family=pki.family,
        trust=pki.trust_store(),
        clock=pki.clock,
    )
    station.enrol(pki.ea.handle_enrolment)
    curve = CURVES[pki.family.end_entity]
    return pseudonym_requester(
        station, authorities, caterpillar=SecureElementCaterpillar(client, curve)
    )


def _software_requester(pki: V2xHierarchy, authorities: ButterflyAuthorities) -> PseudonymRequester:
    canonical = SoftwareSigner(generate_key("nistP256"))
    its_id = b"THREATS-SW-0001"
    pki.ea.register_canonical_key(its_id, canonical.public_key())
    station = ItsStation(
        its_id=its_id,
        canonical_key=canonical,
        keys=SoftwareV2xKeys(),
        family=pki.family,
        trust=pki.trust_store(),
        clock=pki.clock,
    )
    station.enrol(pki.ea.handle_enrolment)
    return pseudonym_requester(station, authorities)


def _week(
    authorities: ButterflyAuthorities, clock: ManualClock, who: list[PseudonymRequester]
) -> list[_Vehicle]:
    ra = authorities.ra
    pendings = []
    for requester in who:
        pending = batch_request(requester, authorities, 0, clock.now())
        requester.read_ack(pending, ra.handle_batch_request(pending.message))
        pendings.append(pending)
    ra.accept_responses(authorities.ca.issue_batch(ra.forward(), clock.now()))
    return [
        _Vehicle(requester=r, pseudonyms=r.reconstruct(p, ra.download(p.batch_id)))
        for r, p in zip(who, pendings, strict=True)
    ]


def _send(pseudonym: Pseudonym, key: Signer, report: PositionReport, clock: ManualClock) -> bytes:
    certificate = pseudonym.certificate
    return sign_data(
        {"data": unsecured(report.encode())},
        {"psid": PSID_CAM, "generationTime": time64(clock.now())},
        key,
        signer_identifier=("certificate", [certificate.value]),
        signer_certificate=certificate.encoded,
    )


def _receiver(
    ca: Certificate, crl: LinkedCrlReceiver, monitor: PlausibilityMonitor
) -> Callable[[bytes], Flag | None]:
    def receive(message: bytes) -> Flag | None:
        signed = open_signed_data(message)
        kind, value = signed.signer
        if kind != "certificate":
            raise FleetIdError("the receiver needs the signer's certificate")
        certificate = decode_certificate(encode("Certificate", value[0]))
        verify_certificate_signature(certificate, ca)
        verify_signed_data(signed, certificate.verification_key(), certificate.encoded)
        linkage = certificate.tbs["id"][1]
        crl.check(0, int(linkage["iCert"]), bytes(linkage["linkage-value"]))
        report = PositionReport.decode(signed.unsecured_payload())
        return monitor.observe(
            certificate.hashed_id8, report, int(signed.header_info["generationTime"])
        )

    return receive


def _publish(publisher: LinkedCrlPublisher, chain: RevealedChain, clock: ManualClock) -> bytes:
    publish_revealed_chain(publisher, chain, j_max=_PER_WEEK)
    return publisher.publish(clock.now(), current_period=0)


def _amplify(
    vehicle: _Vehicle,
    authorities: ButterflyAuthorities,
    receive: Callable[[bytes], Flag | None],
    clock: ManualClock,
    *,
    revoke: Callable[[RevealedChain], None],
) -> Outcome:
    current = vehicle.pseudonyms[0]
    # The attacker's transmitter: the same key, reached by relay (SE) or copied (software).
    accepted_elsewhere = 0
    flag: Flag | None = None
    for _ in range(10):
        flag = receive(_send(current, current.key, _HOME, clock))
        if flag is not None:
            break
        clock.advance(_INTERVAL / 2)
        flag = receive(_send(current, current.key, _ELSEWHERE, clock))
        if flag is not None:
            break
        accepted_elsewhere += 1
        clock.advance(_INTERVAL / 2)
    if flag is None:
        return Outcome(
            verdict=Verdict.COMPROMISED,
            control=CONTROL,
            evidence=(f"{accepted_elsewhere} hazard warnings accepted from a place it is not",),
        )
    chain = revoke_reported_pseudonym(
        current.certificate.encoded,
        ca=authorities.ca,
        la1=authorities.la1,
        la2=authorities.la2,
        ra=authorities.ra,
    )
    revoke(chain)
    refused = 0
    for pseudonym in vehicle.pseudonyms:
        try:
            clock.advance(_INTERVAL)
            receive(_send(pseudonym, pseudonym.key, _ELSEWHERE, clock))
        except CertificateRevokedError:
            refused += 1
    try:
        authorities.ra.handle_batch_request(
            batch_request(vehicle.requester, authorities, 1, clock.now()).message
        )
        next_batch = "issued"
    except BatchRefusedError:
        next_batch = "refused (BatchRefusedError)"
    revoked = refused == len(vehicle.pseudonyms)
    return Outcome(
        verdict=Verdict.STOPPED if revoked else Verdict.COMPROMISED,
        control=CONTROL,
        evidence=(
            f"flagged by the receiver: {flag.reason} ({flag.detail}) after "
            f"{accepted_elsewhere} warning(s) from the other place",
            f"linked CRL (iRev {chain.i}): {refused}/{len(vehicle.pseudonyms)} of its "
            "pseudonyms refused (CertificateRevokedError)",
            f"its next batch request: {next_batch}",
        ),
    )
