"""Misbehaviour to revocation: one reported pseudonym, the CA + both LAs + the RA, a linked CRL
(full and delta) on the offline channel, receivers refusing the vehicle's later pseudonyms."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.butterfly_fixtures import BatchPki, new_batch_pki

from fleetid.authority.v2x.misbehaviour import RevealedChain, revoke_reported_pseudonym
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.device.pseudonyms import Pseudonym
from fleetid.errors import (
    BatchRefusedError,
    CertificateRevokedError,
    EncodingError,
    NotFoundError,
    VerificationError,
)
from fleetid.formats.ieee1609 import decode_certificate
from fleetid.revocation.channels import BroadcastChannel
from fleetid.revocation.linked_crl_channel import (
    LINKED_CRL_DELTA_FILE,
    LINKED_CRL_FULL_FILE,
    LinkedCrlPublisher,
    LinkedCrlReceiver,
    linked_crl_kind,
)

_PER_PERIOD = 5


class _World:
    """Three vehicles with pseudonyms of periods 0, 1 and 2; a CRACA publishing linked CRLs."""

    def __init__(self, directory: Path | None = None) -> None:
        self.batch: BatchPki = new_batch_pki("nist", per_period=_PER_PERIOD)
        self.vehicles = [self.batch.vehicle(f"VIN-M{n}".encode()) for n in range(3)]
        self.pseudonyms: list[dict[int, list[Pseudonym]]] = [
            {i: self.batch.week(vehicle, i) for i in range(3)} for vehicle in self.vehicles
        ]
        hierarchy = self.batch.pki.hierarchy
        self.craca = decode_certificate(self.batch.authorities.ca.certificate)
        self.publisher = LinkedCrlPublisher(
            signer=self.batch.authorities.ca.keys.signer,
            craca_certificate=self.craca,
            directory=directory,
        )
        self.root = hierarchy.root

    def report(self, vehicle: int, i: int) -> RevealedChain:
        a = self.batch.authorities
        certificate = self.pseudonyms[vehicle][i][2].certificate.encoded
        return revoke_reported_pseudonym(certificate, ca=a.ca, la1=a.la1, la2=a.la2, ra=a.ra)

    def revoke(self, chain: RevealedChain) -> None:
        self.publisher.revoke(
            i=chain.i,
            la1_id=chain.la1_id,
            la2_id=chain.la2_id,
            seed1=chain.seed1,
            seed2=chain.seed2,
            j_max=_PER_PERIOD,
            i_max=100,
        )


def _refused(receiver: LinkedCrlReceiver, current: int, pseudonym: Pseudonym) -> bool:
    try:
        receiver.check(current, pseudonym.i, pseudonym.linkage_value)
    except CertificateRevokedError:
        return True
    return False


def test_one_report_revokes_every_later_pseudonym_and_no_earlier_one() -> None:
    world = _World()
    world.revoke(world.report(0, 1))
    receiver = LinkedCrlReceiver(world.craca)
    receiver.load(world.publisher.publish(world.batch.pki.clock.now(), current_period=1))
    bad, good = world.pseudonyms[0], world.pseudonyms[1]
    assert all(_refused(receiver, 2, p) for i in (1, 2) for p in bad[i])
    assert not any(_refused(receiver, 2, p) for p in bad[0])  # earlier: unlinked, valid
    assert not any(_refused(receiver, 2, p) for i in range(3) for p in good[i])


def test_the_ra_refuses_the_reported_vehicle_its_next_batch() -> None:
    world = _World()
    world.report(0, 1)
    with pytest.raises(BatchRefusedError, match="revoked"):
        world.batch.request(world.vehicles[0], 3)
    world.batch.request(world.vehicles[1], 3)  # the others go on


def test_the_crl_reveals_no_seed_older_than_its_period() -> None:
    """Published at period 2, the seeds revealed at period 1 are walked forward first."""
    world = _World()
    chain = world.report(0, 1)
    world.revoke(chain)
    receiver = LinkedCrlReceiver(world.craca)
    contents = receiver.load(world.publisher.publish(world.batch.pki.clock.now(), 2))
    assert contents.body.i_rev == 2  # type: ignore[union-attr]
    seeds = contents.body.individual[0].la_groups[0].i_max_groups[0].revocations[0]  # type: ignore[union-attr]
    assert seeds.seed1 != chain.seed1
    assert not any(_refused(receiver, 2, p) for p in world.pseudonyms[0][1])
    assert all(_refused(receiver, 2, p) for p in world.pseudonyms[0][2])


def test_a_delta_adds_a_vehicle_and_keeps_the_full_entries() -> None:
    world = _World()
    now = world.batch.pki.clock.now()
    world.revoke(world.report(0, 1))
    full = world.publisher.publish(now, 1)
    world.revoke(world.report(1, 1))
    delta = world.publisher.publish(now, 1)
    assert linked_crl_kind(full).name == "FULL" and linked_crl_kind(delta).name == "DELTA"
    receiver = LinkedCrlReceiver(world.craca)
    receiver.load(full)
    assert not _refused(receiver, 1, world.pseudonyms[1][1][0])
    receiver.load(delta)
    assert _refused(receiver, 1, world.pseudonyms[0][1][0])
    assert _refused(receiver, 1, world.pseudonyms[1][1][0])
    assert not _refused(receiver, 1, world.pseudonyms[2][1][0])
    assert len(delta) < len(full) + 40  # one more vehicle costs about 33 bytes


def test_rollbacks_and_orphan_deltas_are_refused() -> None:
    world = _World()
    now = world.batch.pki.clock.now()
    world.revoke(world.report(0, 1))
    first = world.publisher.publish(now, 1)
    world.revoke(world.report(1, 1))
    delta = world.publisher.publish(now, 1)
    receiver = LinkedCrlReceiver(world.craca)
    with pytest.raises(VerificationError, match="full CRL"):
        receiver.load(delta)  # no full CRL yet
    receiver.load(first)
    receiver.load(delta)
    with pytest.raises(VerificationError):
        receiver.load(delta)  # the same watermark again
    with pytest.raises(VerificationError):
        receiver.load(first)  # an older full CRL
    second = world.publisher.publish(now, 2)
    receiver.load(second)
    with pytest.raises(VerificationError):
        receiver.load(delta)  # a delta of the previous period


def test_a_crl_of_another_craca_is_refused() -> None:
    world = _World()
    world.revoke(world.report(0, 1))
    forged = LinkedCrlPublisher(
        signer=SoftwareSigner(generate_key("nistP384")), craca_certificate=world.craca
    )
    forged.revoke(
        i=1,
        la1_id=b"\x8e\x09",
        la2_id=b"\x59\xce",
        seed1=bytes(16),
        seed2=bytes(16),
        j_max=5,
        i_max=9,
    )
    with pytest.raises(VerificationError):
        LinkedCrlReceiver(world.craca).load(forged.publish(world.batch.pki.clock.now(), 1))


def test_an_entry_from_a_future_period_is_refused() -> None:
    world = _World()
    world.revoke(world.report(0, 2))
    with pytest.raises(VerificationError, match="after the current"):
        world.publisher.publish(world.batch.pki.clock.now(), 1)
    receiver = LinkedCrlReceiver(world.craca)
    receiver.load(world.publisher.publish(world.batch.pki.clock.now(), 2))
    with pytest.raises(EncodingError, match="after the current period"):
        receiver.check(1, 1, world.pseudonyms[0][1][0].linkage_value)


def test_the_forward_walk_is_capped_by_the_receiver() -> None:
    world = _World()
    world.revoke(world.report(0, 1))
    receiver = LinkedCrlReceiver(world.craca, max_forward=2)
    receiver.load(world.publisher.publish(world.batch.pki.clock.now(), 1))
    receiver.check(1, 3, bytes(9))  # two periods ahead: walked
    with pytest.raises(VerificationError, match="past the current period"):
        receiver.check(1, 4, bytes(9))  # the sender's claimed period is not believed


def test_a_certificate_the_ca_did_not_issue_cannot_be_reported() -> None:
    world = _World()
    other = new_batch_pki("nist", per_period=1)
    stranger = other.week(other.vehicle())[0].certificate.encoded
    a = world.batch.authorities
    with pytest.raises(NotFoundError):
        revoke_reported_pseudonym(stranger, ca=a.ca, la1=a.la1, la2=a.la2, ra=a.ra)
    record = a.ca.record_for(world.pseudonyms[0][0][0].certificate.encoded)
    with pytest.raises(VerificationError):
        a.la1.reveal(a.la1.peel(record.chain_references[1]), 0)  # LA2's chain: only LA2 opens
    with pytest.raises(NotFoundError):
        a.ra.block_chain((b"x" * 44, b"y" * 44))


def test_linked_crls_travel_on_the_broadcast_channel_and_as_files(tmp_path: Path) -> None:
    world = _World(tmp_path)
    now = world.batch.pki.clock.now()
    channel = BroadcastChannel(kind_of=linked_crl_kind)
    world.revoke(world.report(0, 1))
    channel.publish(world.publisher.publish(now, 1))
    world.revoke(world.report(1, 1))
    channel.publish(world.publisher.publish(now, 1))
    late = LinkedCrlReceiver(world.craca)
    channel.subscribe(late.load)  # a receiver joining now gets the retained full and delta
    assert _refused(late, 1, world.pseudonyms[0][1][0])
    assert _refused(late, 1, world.pseudonyms[1][1][0])
    from_files = LinkedCrlReceiver(world.craca)
    for name in (LINKED_CRL_FULL_FILE, LINKED_CRL_DELTA_FILE):
        from_files.load((tmp_path / name).read_bytes())
    assert _refused(from_files, 1, world.pseudonyms[1][1][0])
    channel.publish(world.publisher.publish(now, 2))  # a new period: full again, delta gone
    assert not (tmp_path / LINKED_CRL_DELTA_FILE).exists()
