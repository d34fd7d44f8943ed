"""Demo stage: the V2X privacy PKI (issue 6).

For each curve family (brainpool, as deployed ETSI stations default to, and NIST) a Root CA, an
EA and an AA are set up, each authority with its own database. A cohort of vehicles, their
canonical keys registered as the provisioning line does, enrol with the EA and fetch a batch of
ATs from the AA, one request per AT. They broadcast signed CAMs that every neighbour verifies,
rotate pseudonyms every five minutes, and after the Root CA revokes the AA in its CRL the
neighbours refuse CAMs signed under it. The NIST cohort keeps every key in its secure element,
and the EA accepts its canonical keys only on the SE's attestation.
"""

from __future__ import annotations

import os
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from fleetid.authority.v2x import FAMILIES, CurveFamily, EnrolmentAuthority
from fleetid.authority.v2x.hierarchy import build_hierarchy
from fleetid.clock import ManualClock
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.device.v2x import (
    CamReceiver,
    ItsStation,
    SecureElementV2xKeys,
    SoftwareV2xKeys,
    V2xKeyStore,
)
from fleetid.errors import VerificationError
from fleetid.formats.attestation import KeyUsage
from fleetid.se.card import manufacture_test_card
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.sim.demo import DemoContext

__all__ = ["stage_v2x"]

TICKETS_PER_VEHICLE = 3


def _engine() -> Engine:
    return create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )


def _vehicle_keys(
    family: CurveFamily, ea: EnrolmentAuthority, its_id: bytes
) -> tuple[Signer, V2xKeyStore, str]:
    """The canonical key registered at manufacture, and where the V2X keys will live.

    NIST: every key in the vehicle's SE; the EA registers the canonical key only on the SE's
    attestation (chain to the manufacturer root, generated on card, fresh challenge). brainpool:
    software keys (the emulated SE has no brainpool curves), registered directly.
    """
    if family.name == "nist":
        made = manufacture_test_card()
        client = SecureElementClient(made.card)
        client.select_identity()
        client.open_secure_channel(made.keys, 0x33, key_version=made.key_version)
        handle = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN).handle
        challenge = os.urandom(32)
        ea.register_attested_canonical_key(
            its_id,
            client.attest(handle, challenge),
            client.attestation_chain(),
            trusted_roots=[made.manufacturer.root_certificate],
            challenge=challenge,
        )
        return SecureElementSigner(client, handle), SecureElementV2xKeys(client), "secure element"
    canonical = SoftwareSigner(generate_key(family.end_entity))
    ea.register_canonical_key(its_id, canonical.public_key())
    return canonical, SoftwareV2xKeys(), "software"


def _cohort(ctx: DemoContext, family: CurveFamily) -> None:
    console = ctx.console
    clock = ManualClock()
    pki = build_hierarchy(family=family, clock=clock, ea_engine=_engine(), aa_engine=_engine())
    console.print(
        f"{family.name}: root {pki.root.certificate.hashed_id8.hex()} ({family.ca}), "
        f"EA {pki.ea.certificate.hashed_id8.hex()}, AA {pki.aa.certificate.hashed_id8.hex()}"
    )
    stations: list[ItsStation] = []
    where = "software"
    for i in range(ctx.devices):
        its_id = f"{family.name.upper()}-VIN-{i:04d}".encode()
        canonical, keys, where = _vehicle_keys(family, pki.ea, its_id)
        station = ItsStation(
            its_id=its_id,
            canonical_key=canonical,
            keys=keys,
            family=family,
            trust=pki.trust_store(),
            clock=clock,
        )
        station.enrol(pki.ea.handle_enrolment)
        station.request_tickets(TICKETS_PER_VEHICLE, pki.aa.handle_authorization)
        stations.append(station)
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
        f"{family.name}: {len(stations)} vehicles (keys in {where}): "
        f"{ea_stats.get('enrolment.ok', 0)} ECs, {aa_stats.get('authorization.ok', 0)} ATs, "
        f"{verified} CAM verifications by neighbours over {len(pseudonyms)} pseudonyms, "
        f"{rejected}/{len(stations)} CAMs refused once the AA is on the CA CRL"
    )
    ctx.record(f"v2x {family.name}: ECs issued by the EA", str(ea_stats.get("enrolment.ok", 0)))
    ctx.record(
        f"v2x {family.name}: ATs issued (no device id)", str(aa_stats.get("authorization.ok", 0))
    )
    ctx.record(f"v2x {family.name}: CAMs verified by neighbours", str(verified))
    ctx.record(
        f"v2x {family.name}: CAMs refused after AA revocation", f"{rejected}/{len(stations)}"
    )


def stage_v2x(ctx: DemoContext) -> None:
    for name in ("brainpool", "nist"):
        _cohort(ctx, FAMILIES[name])
