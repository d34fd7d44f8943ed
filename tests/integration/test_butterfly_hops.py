"""The butterfly authorities reach each other over HTTP routes of one app: the RA asks both
LAs for chains and pre-linkage values, the CA fetches the LA-CA keys, the RA forwards its
shuffled batch to the CA; each hop is signed by the calling authority and refused otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from tests.butterfly_fixtures import BatchPki, new_batch_pki
from tests.revocation_fixtures import AsgiClient

from fleetid.api import create_app
from fleetid.api.routes.butterfly import ButterflyServices, install
from fleetid.api.routes.etsi import ITS_REQUEST
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.v2x.batch_pki import LA1_ID, LA2_ID
from fleetid.authority.v2x.hop_services import (
    ACA_BATCH_PATH,
    CaHop,
    LaHop,
    LinkageClient,
    fetch_la_key,
    forward_to_ca,
    la_path,
)
from fleetid.authority.v2x.hops import HopReceiver, MemorySeen, sign_hop
from fleetid.authority.v2x.pseudonym_ca import PseudonymCa
from fleetid.authority.v2x.ra import RegistrationAuthority
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.errors import (
    AuthorityHopError,
    EncodingError,
    UnreachableError,
    VerificationError,
)
from fleetid.formats.butterfly_messages import encode_message
from fleetid.formats.ieee1609 import Certificate, time64
from fleetid.formats.ieee1609.signed_data import sign_data, unsecured


@dataclass
class Hops:
    client: AsgiClient
    batch: BatchPki
    ra: RegistrationAuthority
    ca: PseudonymCa
    clock: ManualClock

    def transport(self, path: str, body: bytes) -> bytes:
        answer = self.client.post(path, content=body, headers={"content-type": ITS_REQUEST})
        if answer.status_code != 200:
            raise UnreachableError(f"{answer.status_code} {answer.json()['detail']}")
        return answer.content

    def fetch_la_keys(self) -> None:
        """The CA fetches both LA-CA keys over HTTP, each answer checked under its LA."""
        for number in (1, 2):
            fetch_la_key(
                self.ca,
                self.transport,
                number=number,
                la_certificate=self.la_certificate(number),
                clock=self.clock,
            )

    def la_certificate(self, number: int) -> Certificate:
        la_keys = self.batch.authorities.la_keys
        assert la_keys is not None
        return la_keys[number - 1].certificate

    def post(self, path: str, body: bytes) -> tuple[int, dict[str, object]]:
        answer = self.client.post(path, content=body, headers={"content-type": ITS_REQUEST})
        assert answer.headers["content-type"] == "application/problem+json"
        return answer.status_code, answer.json()


@pytest.fixture
def hops(tmp_path: Path) -> Iterator[Hops]:
    settings = Settings.load(tmp_path, environ={})
    fleet = FleetCa.init(settings, clock=ManualClock(), name="Test Fleet")
    batch = new_batch_pki("nist", per_period=4)
    clock = batch.pki.clock
    a = batch.authorities
    assert a.la_keys is not None
    la_keys = a.la_keys
    ra_certificate = a.ra.certificate
    ca_certificate = a.ca.keys.certificate

    def receiver(sender: object) -> HopReceiver:
        return HopReceiver(sender=sender, seen=MemorySeen(), clock=clock)  # type: ignore[arg-type]

    # A CA that holds no LA key yet: it fetches them over HTTP below.
    fresh_ca = PseudonymCa(keys=a.ca.keys, schedule=a.schedule)
    services = ButterflyServices(
        ca=CaHop(ca=fresh_ca, from_ra=receiver(ra_certificate), clock=clock),
        las={
            number: LaHop(
                la=la,
                from_ra=receiver(ra_certificate),
                from_ca=receiver(ca_certificate),
                ca_certificate=a.ca.certificate,
                keys=la_keys[number - 1],
                clock=clock,
            )
            for number, la in ((1, a.la1), (2, a.la2))
        },
    )
    app = create_app(settings, clock=clock, ca=fleet)
    found = Hops(client=AsgiClient(app), batch=batch, ra=a.ra, ca=fresh_ca, clock=clock)
    linkage = tuple(
        LinkageClient(
            la_id=la_id,
            number=n,
            keys=a.ra.keys,
            la_certificate=la_keys[n - 1].certificate,
            transport=found.transport,
            clock=clock,
        )
        for n, la_id in ((1, LA1_ID), (2, LA2_ID))
    )
    found.ra = RegistrationAuthority(
        keys=a.ra.keys,
        ec_lookup=batch.pki.hierarchy.ea.current_enrolment_credential,
        linkage=linkage,  # type: ignore[arg-type]
        schedule=a.schedule,
        clock=clock,
        certificates_per_period=4,
    )
    install(app, services)
    yield found
    fleet.close()


def test_a_batch_crosses_every_hop_over_http(hops: Hops) -> None:
    hops.fetch_la_keys()
    assert hops.ca.knows_la(LA1_ID) and hops.ca.knows_la(LA2_ID)
    vehicle = hops.batch.vehicle()
    pending = hops.batch.prepare(vehicle)
    vehicle.read_ack(pending, hops.ra.handle_batch_request(pending.message))
    assert hops.batch.authorities.la1.chain_count() == 1
    answered = forward_to_ca(
        hops.ra, hops.transport, ca_certificate=hops.ca.keys.certificate, clock=hops.clock
    )
    assert answered == 4
    pseudonyms = vehicle.reconstruct(pending, hops.ra.download(pending.batch_id))
    assert len({p.linkage_value for p in pseudonyms}) == 4


def test_a_hop_signed_by_another_authority_is_401(hops: Hops) -> None:
    a = hops.batch.authorities
    by_ca = sign_hop(a.ca.keys, "RaLaRequest", ("newChain", None), hops.clock)
    status, problem = hops.post(la_path(1, "request"), by_ca)
    assert status == 401
    assert "expected authority" in str(problem["detail"])
    by_ra = sign_hop(a.ra.keys, "AcaLaRequest", ("laCaKey", None), hops.clock)
    assert hops.post(la_path(2, "ca-key"), by_ra)[0] == 401
    assert (
        hops.post(ACA_BATCH_PATH, sign_hop(a.ca.keys, "RaAcaCertRequestBatch", [], hops.clock))[0]
        == 401
    )
    assert a.la1.chain_count() == 0


def test_a_tampered_hop_is_refused(hops: Hops) -> None:
    message = bytearray(sign_hop(hops.ra.keys, "RaLaRequest", ("newChain", None), hops.clock))
    message[-1] ^= 1
    assert hops.post(la_path(1, "request"), bytes(message))[0] == 401
    assert hops.post(la_path(1, "request"), b"\x03\x81garbage")[0] == 400


def test_a_replayed_or_stale_hop_is_403(hops: Hops) -> None:
    message = sign_hop(hops.ra.keys, "RaLaRequest", ("newChain", None), hops.clock)
    assert len(hops.transport(la_path(1, "request"), message)) > 8
    status, problem = hops.post(la_path(1, "request"), message)
    assert (status, "replay") == (403, str(problem["detail"]).split(":")[0])
    old = sign_hop(hops.ra.keys, "RaLaRequest", ("newChain", None), hops.clock)
    hops.clock.advance(timedelta(minutes=6))
    status, problem = hops.post(la_path(2, "request"), old)
    assert (status, "stale") == (403, str(problem["detail"]).split(":")[0])
    assert hops.batch.authorities.la1.chain_count() == 1
    assert hops.batch.authorities.la2.chain_count() == 0


def test_an_unknown_la_and_another_media_type(hops: Hops) -> None:
    message = sign_hop(hops.ra.keys, "RaLaRequest", ("newChain", None), hops.clock)
    assert hops.post(la_path(3, "request"), message)[0] == 404
    answer = hops.client.post(
        la_path(1, "request"), content=message, headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 415


def test_a_failed_forward_keeps_the_items_pending(hops: Hops) -> None:
    hops.fetch_la_keys()
    vehicle = hops.batch.vehicle()
    pending = hops.batch.prepare(vehicle)
    hops.ra.handle_batch_request(pending.message)

    def down(path: str, body: bytes) -> bytes:
        raise UnreachableError("the CA is down")

    with pytest.raises(UnreachableError):
        forward_to_ca(hops.ra, down, ca_certificate=hops.ca.keys.certificate, clock=hops.clock)
    assert hops.ra.pending_count() == 4

    def elsewhere(path: str, body: bytes) -> bytes:
        other = sign_hop(hops.ra.keys, "RaAcaCertRequestBatch", [], hops.clock)
        return hops.transport(path, other)  # a genuine CA answer, to another request

    with pytest.raises(VerificationError):
        forward_to_ca(hops.ra, elsewhere, ca_certificate=hops.ca.keys.certificate, clock=hops.clock)
    assert hops.ra.pending_count() == 4
    assert (
        forward_to_ca(
            hops.ra, hops.transport, ca_certificate=hops.ca.keys.certificate, clock=hops.clock
        )
        == 4
    )
    assert len(vehicle.reconstruct(pending, hops.ra.download(pending.batch_id))) == 4


def test_a_hop_signed_as_self_or_with_another_psid_is_refused(hops: Hops) -> None:
    body = {"data": unsecured(encode_message("RaLaRequest", ("newChain", None)))}
    keys = hops.ra.keys
    as_self = sign_data(body, {"psid": 35, "generationTime": time64(hops.clock.now())}, keys.signer)
    assert hops.post(la_path(1, "request"), as_self)[0] == 401
    other_psid = sign_data(
        body,
        {"psid": 623, "generationTime": time64(hops.clock.now())},
        keys.signer,
        signer_identifier=("digest", keys.certificate.hashed_id8),
        signer_certificate=keys.certificate.encoded,
    )
    assert hops.post(la_path(1, "request"), other_psid)[0] == 400
    assert hops.batch.authorities.la1.chain_count() == 0


def test_an_la_answer_not_signed_by_that_la_is_refused(hops: Hops) -> None:
    """The RA and the CA take an LA's answer only under that LA's certificate: an answer
    re-signed by another authority, or sent unsigned, is refused and changes nothing."""
    a = hops.batch.authorities

    def resigned(path: str, body: bytes) -> bytes:
        value, _ = HopReceiver(
            sender=hops.la_certificate(1), seen=MemorySeen(), clock=hops.clock
        ).open(hops.transport(path, body), "LaAcaResponse")
        return sign_hop(a.ra.keys, "LaAcaResponse", value, hops.clock)  # the RA's, not LA1's

    def unsigned(path: str, body: bytes) -> bytes:
        value, _ = HopReceiver(
            sender=hops.la_certificate(2), seen=MemorySeen(), clock=hops.clock
        ).open(hops.transport(path, body), "LaAcaResponse")
        return encode_message("LaAcaResponse", value)

    with pytest.raises(AuthorityHopError):
        fetch_la_key(
            hops.ca, resigned, number=1, la_certificate=hops.la_certificate(1), clock=hops.clock
        )
    with pytest.raises(EncodingError):
        fetch_la_key(
            hops.ca, unsigned, number=2, la_certificate=hops.la_certificate(2), clock=hops.clock
        )
    # LA2's genuine answer is not LA1's.
    with pytest.raises(AuthorityHopError):
        fetch_la_key(
            hops.ca,
            hops.transport,
            number=2,
            la_certificate=hops.la_certificate(1),
            clock=hops.clock,
        )
    assert not hops.ca.knows_la(LA1_ID) and not hops.ca.knows_la(LA2_ID)
    client = LinkageClient(
        la_id=LA1_ID,
        number=1,
        keys=a.ra.keys,
        la_certificate=hops.la_certificate(2),  # expects LA2's signature from LA1's route
        transport=hops.transport,
        clock=hops.clock,
    )
    with pytest.raises(AuthorityHopError):
        client.new_chain()
