"""A misbehaviour authority's signed report revokes the vehicle behind one pseudonym: the linked
CRL is published and refuses its pseudonyms, the RA refuses its next batch; and a report from
anyone else, replayed, for a certificate this CA did not issue or of a period not begun, is
refused with nothing revoked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.butterfly_fixtures import BatchPki, new_batch_pki

from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hops import HopReceiver, MemorySeen, check_answers, sign_hop
from fleetid.authority.v2x.misbehaviour_reports import (
    MisbehaviourDesk,
    issue_misbehaviour_authority,
    sign_report,
)
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import (
    AuthorityHopError,
    BatchRefusedError,
    CertificateRevokedError,
    EncodingError,
    NotFoundError,
    PolicyError,
)
from fleetid.revocation.linked_crl_channel import (
    LINKED_CRL_FULL_FILE,
    LinkedCrlPublisher,
    LinkedCrlReceiver,
)

PER_PERIOD = 4


@dataclass
class Desk:
    batch: BatchPki
    ma: AuthorityKeys
    desk: MisbehaviourDesk
    directory: Path

    def report(self, certificate: bytes, ma: AuthorityKeys | None = None) -> dict[str, object]:
        message = sign_report(ma or self.ma, certificate, self.batch.pki.clock)
        answer = self.desk.handle(message)
        ca = self.batch.authorities.ca.keys.certificate
        receiver = HopReceiver(sender=ca, seen=MemorySeen(), clock=self.batch.pki.clock)
        value, _ = receiver.open(answer, "MaReportResponse")
        result: dict[str, object] = check_answers(value, message)
        return result

    def receiver(self) -> LinkedCrlReceiver:
        receiver = LinkedCrlReceiver(self.batch.authorities.ca.keys.certificate)
        receiver.load((self.directory / LINKED_CRL_FULL_FILE).read_bytes())
        return receiver


def _ma(batch: BatchPki) -> AuthorityKeys:
    family = batch.pki.hierarchy.family
    return issue_misbehaviour_authority(
        batch.pki.hierarchy,
        signer=SoftwareSigner(generate_key(family.ca)),
        decryption_key=generate_key(family.end_entity),
    )


def _publisher(batch: BatchPki, directory: Path) -> LinkedCrlPublisher:
    ca = batch.authorities.ca
    return LinkedCrlPublisher(
        signer=ca.keys.signer, craca_certificate=ca.keys.certificate, directory=directory
    )


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    batch = new_batch_pki(per_period=PER_PERIOD)
    ma = _ma(batch)
    clock = batch.pki.clock
    service = MisbehaviourDesk(
        authorities=batch.authorities,
        from_ma=HopReceiver(sender=ma.certificate, seen=MemorySeen(), clock=clock),
        publisher=_publisher(batch, tmp_path),
        certificates_per_period=PER_PERIOD,
        clock=clock,
    )
    return Desk(batch=batch, ma=ma, desk=service, directory=tmp_path)


def test_a_report_revokes_the_vehicle_and_only_it(desk: Desk) -> None:
    batch = desk.batch
    bad, good = batch.vehicle(b"VIN-BAD"), batch.vehicle(b"VIN-GOOD")
    bad_week, good_week = batch.week(bad), batch.week(good)
    answer = desk.report(bad_week[1].certificate.encoded)
    assert answer["iRev"] == 0 and answer["newlyRevoked"] is True
    receiver = desk.receiver()
    for pseudonym in bad_week:
        with pytest.raises(CertificateRevokedError):
            receiver.check(0, pseudonym.i, pseudonym.linkage_value)
    for pseudonym in good_week:
        receiver.check(0, pseudonym.i, pseudonym.linkage_value)
    with pytest.raises(BatchRefusedError) as refused:
        batch.request(bad, 1)
    assert refused.value.code == "revoked"
    batch.request(good, 1)
    # Another pseudonym of the same vehicle: nothing new to revoke, the CRL is unchanged.
    before = (desk.directory / LINKED_CRL_FULL_FILE).read_bytes()
    again = desk.report(bad_week[3].certificate.encoded)
    assert again["newlyRevoked"] is False
    assert (desk.directory / LINKED_CRL_FULL_FILE).read_bytes() == before


def test_a_restarted_craca_republishes_what_it_revoked_with_a_newer_watermark(desk: Desk) -> None:
    batch = desk.batch
    bad_week = batch.week(batch.vehicle(b"VIN-BAD"))
    desk.report(bad_week[0].certificate.encoded)
    receiver = desk.receiver()
    publisher = _publisher(batch, desk.directory)
    assert publisher.restore() == 1
    receiver.load(publisher.publish(batch.pki.clock.now(), current_period=0))  # newer: accepted
    with pytest.raises(CertificateRevokedError):
        receiver.check(0, bad_week[2].i, bad_week[2].linkage_value)


def test_a_report_from_another_signer_is_refused(desk: Desk) -> None:
    batch = desk.batch
    vehicle = batch.vehicle(b"VIN-X")
    certificate = batch.week(vehicle)[0].certificate.encoded
    with pytest.raises(AuthorityHopError):
        desk.report(certificate, ma=_ma(batch))  # certified by the same root, not registered
    ra = batch.authorities.ra.keys
    message = sign_hop(ra, "MaReport", {"reportedCertificate": certificate}, batch.pki.clock)
    with pytest.raises(AuthorityHopError):
        desk.desk.handle(message)
    assert not (desk.directory / LINKED_CRL_FULL_FILE).exists()
    batch.request(vehicle, 1)  # not blocked


def test_a_replayed_or_malformed_report_is_refused(desk: Desk) -> None:
    batch = desk.batch
    certificate = batch.week(batch.vehicle(b"VIN-R"))[0].certificate.encoded
    message = sign_report(desk.ma, certificate, batch.pki.clock)
    desk.desk.handle(message)
    with pytest.raises(BatchRefusedError) as replay:
        desk.desk.handle(message)
    assert replay.value.code == "replay"
    with pytest.raises(EncodingError):
        desk.desk.handle(b"\x03\x81not a report")
    with pytest.raises(EncodingError):
        desk.report(b"\x00\x01\x02")  # signed, but no certificate inside


def test_a_certificate_this_ca_did_not_issue_is_not_found(desk: Desk) -> None:
    with pytest.raises(NotFoundError):
        desk.report(desk.ma.certificate.encoded)
    assert not (desk.directory / LINKED_CRL_FULL_FILE).exists()


def test_a_certificate_of_a_period_not_begun_is_refused_and_revokes_nothing(desk: Desk) -> None:
    batch = desk.batch
    vehicle = batch.vehicle(b"VIN-FUTURE")
    later = batch.week(vehicle, 2)
    with pytest.raises(PolicyError, match="not yet begun"):
        desk.report(later[0].certificate.encoded)
    assert not (desk.directory / LINKED_CRL_FULL_FILE).exists()
    batch.request(vehicle, 3)  # not blocked
