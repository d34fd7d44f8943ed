"""Demo stage: butterfly pseudonyms for the V2X cohort, a misbehaving vehicle, a linked CRL.

The NIST cohort of the V2X stage (or, run alone, a cohort of its own) gets an RA, a pseudonym
CA and two linkage authorities. Each vehicle asks the RA once per week for its 20 pseudonyms
(signed by its EC); the RA shuffles every vehicle's requests together before the CA sees them;
the vehicles download and rebuild their keys, and rotate through them. In the V2X stage's
cohort every key is in the vehicle's secure element: the EC, the caterpillar key, and the
cocoon and pseudonym keys the card derives from it (DERIVE PSEUDONYM KEY). In the second week a
neighbour reports one vehicle's pseudonym: the CA, both LAs and the RA together reveal its chain
seeds and block it; the CRACA's linked CRL reaches every neighbour over the broadcast channel,
and they refuse its later pseudonyms while its first week's stay unlinked and valid. Its next
batch request is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fleetid.authority.v2x import FAMILIES
from fleetid.authority.v2x.batch_pki import ButterflyAuthorities, build_butterfly_authorities
from fleetid.authority.v2x.hierarchy import V2xHierarchy, build_hierarchy
from fleetid.authority.v2x.misbehaviour import publish_revealed_chain, revoke_reported_pseudonym
from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import CURVES, generate_key
from fleetid.device.pseudonyms import (
    Caterpillar,
    PendingBatch,
    Pseudonym,
    PseudonymRequester,
    PseudonymWallet,
    SecureElementCaterpillar,
)
from fleetid.device.v2x import ItsStation, SoftwareV2xKeys
from fleetid.errors import BatchRefusedError, CertificateRevokedError, PolicyError
from fleetid.formats.ieee1609 import decode_certificate, verify_certificate_signature
from fleetid.policy.v2x import CAM_SSP, PSID_CAM
from fleetid.revocation.channels import BroadcastChannel
from fleetid.revocation.linked_crl_channel import (
    LinkedCrlPublisher,
    LinkedCrlReceiver,
    linked_crl_kind,
)
from fleetid.sim.demo import DemoContext, drill
from fleetid.store.engine import memory_engine

__all__ = [
    "PSEUDONYMS_PER_WEEK",
    "batch_request",
    "pseudonym_requester",
    "software_cohort",
    "stage_pseudonyms",
]

PSEUDONYMS_PER_WEEK = 20
_PERMISSIONS = [{"psid": PSID_CAM, "ssp": ("bitmapSsp", CAM_SSP)}]


def software_cohort(devices: int) -> tuple[V2xHierarchy, list[ItsStation]]:
    """A NIST hierarchy and ``devices`` enrolled vehicles with software keys (no secure element:
    the stage run alone, and the benchmark)."""
    clock = ManualClock()
    pki = build_hierarchy(
        family=FAMILIES["nist"],
        clock=clock,
        ea_engine=memory_engine(),
        aa_engine=memory_engine(),
    )
    stations = []
    for n in range(devices):
        canonical = SoftwareSigner(generate_key("nistP256"))
        its_id = f"DEMO-{n:04d}".encode()
        pki.ea.register_canonical_key(its_id, canonical.public_key())
        station = ItsStation(
            its_id=its_id,
            canonical_key=canonical,
            keys=SoftwareV2xKeys(),
            family=pki.family,
            trust=pki.trust_store(),
            clock=clock,
        )
        station.enrol(pki.ea.handle_enrolment)
        stations.append(station)
    return pki, stations


def pseudonym_requester(
    station: ItsStation,
    authorities: ButterflyAuthorities,
    *,
    implicit: bool = False,
    caterpillar: Caterpillar | None = None,
) -> PseudonymRequester:
    """The batch side of an enrolled station (its EC signs the requests)."""
    if station.enrolment_credential is None:
        raise PolicyError("the station is not enrolled")
    return PseudonymRequester(
        ec_signer=station.enrolment_signer(),
        ec_certificate=station.enrolment_credential.encoded,
        ra_certificate=authorities.ra.certificate.encoded,
        ca_certificate=authorities.ca.certificate,
        curve=CURVES[station.family.end_entity],
        implicit=implicit,
        caterpillar=caterpillar,
    )


def batch_request(
    vehicle: PseudonymRequester, authorities: ButterflyAuthorities, i: int, now: datetime
) -> PendingBatch:
    """The vehicle's CAM pseudonyms request for period i."""
    schedule = authorities.schedule
    return vehicle.batch_request(
        period_start=schedule.start(i),
        duration=schedule.duration,
        app_permissions=_PERMISSIONS,
        now=now,
    )


def stage_pseudonyms(ctx: DemoContext) -> None:
    console = ctx.console
    cohort: Any = ctx.state.get("v2x.nist")
    if cohort is not None:
        pki, stations, clients = cohort  # keys in each vehicle's secure element
    else:
        (pki, stations), clients = software_cohort(ctx.devices), None
    clock = pki.clock
    authorities = build_butterfly_authorities(pki, certificates_per_period=PSEUDONYMS_PER_WEEK)
    ra, ca = authorities.ra, authorities.ca
    ca_certificate = decode_certificate(ca.certificate)
    curve = CURVES[pki.family.end_entity]
    vehicles = [
        pseudonym_requester(
            station,
            authorities,
            # On the card: the caterpillar key made there, the pseudonym keys derived there.
            caterpillar=None if client is None else SecureElementCaterpillar(client, curve),
        )
        for station, client in zip(stations, clients or [None] * len(stations), strict=True)
    ]

    def week(i: int, who: list[PseudonymRequester]) -> list[list[Pseudonym]]:
        pendings = []
        for vehicle in who:
            pending = batch_request(vehicle, authorities, i, clock.now())
            vehicle.read_ack(pending, ra.handle_batch_request(pending.message))
            pendings.append(pending)
        ra.accept_responses(ca.issue_batch(ra.forward(), clock.now()))  # shuffled, all at once
        return [
            v.reconstruct(p, ra.download(p.batch_id)) for v, p in zip(who, pendings, strict=True)
        ]

    where = "keys in software" if clients is None else "every key in the secure element"
    weeks = [week(0, vehicles)]
    used = 0
    for held in weeks[0]:  # rotation: each pseudonym serves 1/20 of the week, then retires
        for pseudonym in held:
            verify_certificate_signature(pseudonym.certificate, ca_certificate)
            used += 1
    weeks.append(week(1, vehicles))
    wallets = [PseudonymWallet(vehicle.caterpillar) for vehicle in vehicles]
    for wallet, first, second in zip(wallets, weeks[0], weeks[1], strict=True):
        wallet.add(first)
        wallet.add(second)
        wallet.for_period(1)  # week 2 begins: week 1's keys are deleted (from the card)
    issued = sum(len(held) for w in weeks for held in w)
    console.print(
        f"{len(vehicles)} vehicles ({where}), {issued} pseudonyms in butterfly batches over "
        f"2 weeks ({PSEUDONYMS_PER_WEEK} a week each, one request a week, every vehicle's requests "
        f"shuffled together at the RA); {used} rotated through in week 1, their "
        f"{sum(w.retired for w in wallets)} keys deleted when week 2 began"
    )

    # In week 2 a neighbour reports the pseudonym vehicle 0 has in use.
    misbehaving = 0
    reported = weeks[1][misbehaving][6]
    chain = revoke_reported_pseudonym(
        reported.certificate.encoded,
        ca=ca,
        la1=authorities.la1,
        la2=authorities.la2,
        ra=ra,
    )
    publisher = LinkedCrlPublisher(
        signer=ca.keys.signer,
        craca_certificate=ca_certificate,
    )
    publish_revealed_chain(publisher, chain, j_max=PSEUDONYMS_PER_WEEK)
    channel = BroadcastChannel(kind_of=linked_crl_kind)
    neighbours = [LinkedCrlReceiver(ca_certificate) for _ in vehicles[1:]]
    for neighbour in neighbours:
        channel.subscribe(neighbour.load)
    crl = publisher.publish(clock.now(), current_period=1)
    channel.publish(crl)

    def refused(pseudonym: Pseudonym) -> int:
        count = 0
        for neighbour in neighbours:
            try:
                neighbour.check(1, pseudonym.i, pseudonym.linkage_value)
            except CertificateRevokedError:
                count += 1
        return count

    later = weeks[1][misbehaving][7:]
    later_refusals = sum(refused(p) for p in later)
    earlier_refusals = sum(refused(p) for p in weeks[0][misbehaving])
    others = sum(refused(p) for w in weeks for held in w[1:] for p in held)
    try:
        ra.handle_batch_request(
            batch_request(vehicles[misbehaving], authorities, 2, clock.now()).message
        )
        next_batch = "issued (unexpected)"
    except BatchRefusedError:
        next_batch = "refused"
    expected = len(later) * len(neighbours)
    console.print(
        f"{drill('vehicle 0 reported')}: linked CRL of {len(crl)} bytes (iRev {chain.i}) to "
        f"{len(neighbours)} neighbours; {later_refusals}/{expected} checks of its later "
        f"pseudonyms refused, {earlier_refusals} of its week-1 ones (unlinked), {others} of "
        f"the others'; its next batch request {next_batch}"
    )
    ctx.record("v2x pseudonyms issued in butterfly batches", str(issued))
    ctx.record(
        drill("v2x later pseudonyms of the reported vehicle refused by neighbours"),
        f"{later_refusals}/{expected}",
    )
    ctx.record(
        "v2x earlier pseudonyms of the reported vehicle still unlinked",
        "yes" if earlier_refusals == 0 else "no",
    )
    ctx.record(drill("v2x reported vehicle's next batch request"), next_batch)
