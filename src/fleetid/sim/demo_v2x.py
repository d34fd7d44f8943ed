"""Demo stage: the V2X privacy PKI.

For each curve family (brainpool, as deployed ETSI stations default to, and NIST) a Root CA, an
EA and an AA are set up, each authority with its own database. A cohort of vehicles comes off a
(test) provisioning line, which generates each vehicle's canonical key in its secure element and
records it, attested by the card, in the line manifest; the EA imports the manifest, checking
every attestation to the manufacturer root. The vehicles enrol with the EA and fetch a batch of
ATs from the AA, one request per AT. They broadcast signed CAMs that every neighbour verifies,
rotate pseudonyms every five minutes, and after the Root CA revokes the AA in its CRL the
neighbours refuse CAMs signed under it. Both cohorts keep every key (canonical, EC, AT) in their
secure elements: P-256 for NIST, brainpoolP256r1 for brainpool.
"""

from __future__ import annotations

from datetime import timedelta

from fleetid.authority.v2x import FAMILIES, CurveFamily
from fleetid.authority.v2x.hierarchy import build_hierarchy
from fleetid.authority.v2x.manufactured import import_manufactured, its_id_of
from fleetid.clock import ManualClock
from fleetid.device.v2x import CamReceiver, ItsStation, SecureElementV2xKeys
from fleetid.errors import VerificationError
from fleetid.factory.line import CANONICAL_KEY_HANDLE
from fleetid.se.client import SecureElementSigner
from fleetid.se.state import Curve
from fleetid.sim.demo import DemoContext, drill
from fleetid.sim.software_line import SoftwareLine
from fleetid.store.engine import memory_engine

__all__ = ["stage_v2x"]

TICKETS_PER_VEHICLE = 3
_CANONICAL_CURVE = {"nist": Curve.P256, "brainpool": Curve.BRAINPOOL_P256}


def _cohort(ctx: DemoContext, family: CurveFamily) -> None:
    console = ctx.console
    clock = ManualClock()
    pki = build_hierarchy(
        family=family, clock=clock, ea_engine=memory_engine(), aa_engine=memory_engine()
    )
    console.print(
        f"{family.name}: root {pki.root.certificate.hashed_id8.hex()} ({family.ca}), "
        f"EA {pki.ea.certificate.hashed_id8.hex()}, AA {pki.aa.certificate.hashed_id8.hex()}"
    )
    line = SoftwareLine(clock=clock, organization=f"fleetid TEST V2X maker ({family.name})")
    devices = [
        line.make_device(canonical_curve=_CANONICAL_CURVE[family.name]) for _ in range(ctx.devices)
    ]
    imported = import_manufactured(
        pki.ea,
        [device.manifest_entry() for device in devices],
        intermediates=[line.line_ca],
        trusted_roots=[line.root],
    )
    if imported.refused:
        raise VerificationError(f"the EA refused manufactured vehicles: {imported.refused}")
    stations: list[ItsStation] = []
    clients = []
    for device in devices:
        client = device.client()
        clients.append(client)
        station = ItsStation(
            its_id=its_id_of(device.serial),
            canonical_key=SecureElementSigner(client, CANONICAL_KEY_HANDLE),
            keys=SecureElementV2xKeys(client),
            family=family,
            trust=pki.trust_store(),
            clock=clock,
        )
        station.enrol(pki.ea.handle_enrolment)
        station.request_tickets(TICKETS_PER_VEHICLE, pki.aa.handle_authorization)
        stations.append(station)
    ctx.state[f"v2x.{family.name}"] = (pki, stations, clients)  # the pseudonym stage's cohort
    receivers = [CamReceiver(pki.trust_store(), clock) for _ in stations]

    verified = 0
    pseudonyms: set[bytes] = set()
    for _period in range(TICKETS_PER_VEHICLE):
        for sender_index, sender in enumerate(stations):
            cam = sender.sign_cam(f"CAM from vehicle {sender_index}".encode())
            for receiver_index, receiver in enumerate(receivers):
                if receiver_index != sender_index:
                    pseudonyms.add(receiver.verify(cam).signer_id)
                    verified += 1
            clock.advance(timedelta(milliseconds=50))
        clock.advance(timedelta(minutes=5))

    crl = pki.revoke_ca(pki.aa.certificate.hashed_id8)
    for receiver in receivers:
        receiver.trust.apply_crl(crl)
    rejected = 0
    for sender in stations:
        cam = sender.sign_cam(b"CAM after the AA was revoked")
        try:
            receivers[0].verify(cam)
        except VerificationError:
            rejected += 1

    ea_stats, aa_stats = pki.ea.counters.all(), pki.aa.counters.all()
    console.print(
        f"{family.name}: {len(stations)} vehicles (keys in secure element, "
        f"{len(imported.imported)} canonical keys imported from the line manifest): "
        f"{ea_stats.get('enrolment.ok', 0)} ECs, {aa_stats.get('authorization.ok', 0)} ATs, "
        f"{verified} CAM verifications by neighbours over {len(pseudonyms)} pseudonyms, "
        f"{drill(f'{rejected}/{len(stations)} CAMs refused once the AA is on the CA CRL')}"
    )
    ctx.record(
        f"v2x {family.name}: canonical keys imported from the line manifest (SE-attested)",
        str(len(imported.imported)),
    )
    ctx.record(f"v2x {family.name}: ECs issued by the EA", str(ea_stats.get("enrolment.ok", 0)))
    ctx.record(
        f"v2x {family.name}: ATs issued (no device id)", str(aa_stats.get("authorization.ok", 0))
    )
    ctx.record(f"v2x {family.name}: CAMs verified by neighbours", str(verified))
    ctx.record(
        drill(f"v2x {family.name}: CAMs refused after AA revocation"),
        f"{rejected}/{len(stations)}",
    )


def stage_v2x(ctx: DemoContext) -> None:
    for name in ("brainpool", "nist"):
        _cohort(ctx, FAMILIES[name])
