"""Butterfly batches end to end: a vehicle asks the RA once, the RA expands and shuffles, the
pseudonym CA issues, the vehicle downloads and rebuilds its keys; and every way that can break."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA384
from fastecdsa import curve as fastecdsa_curve
from fastecdsa.point import Point
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.butterfly_fixtures import CAM_PERMISSIONS, BatchPki, new_batch_pki

from fleetid.authority.v2x.ra import RegistrationAuthority
from fleetid.crypto.ecqv import certificate_hash_integer
from fleetid.crypto.linkage import linkage_seed_at, linkage_value, pre_linkage_value
from fleetid.crypto.v2xkeys import compressed_point
from fleetid.errors import (
    BatchPendingError,
    BatchRefusedError,
    EncodingError,
    VerificationError,
)
from fleetid.formats.butterfly_messages import (
    PseudonymTemplate,
    decode_message,
    encode_message,
    open_from_key,
    seal_to_key,
)
from fleetid.formats.ieee1609 import decode, encode
from fleetid.formats.ieee1609.keys import rs_from_signature


@pytest.fixture(scope="module")
def nist() -> BatchPki:
    return new_batch_pki("nist")


@pytest.mark.parametrize(
    ("family", "implicit", "unified"),
    [
        ("nist", False, True),
        ("nist", True, False),
        ("brainpool", False, False),
        ("brainpool", True, True),
    ],
)
def test_a_vehicle_gets_a_week_of_pseudonyms(family: str, implicit: bool, unified: bool) -> None:
    batch = new_batch_pki(family, implicit=implicit, per_period=4)
    vehicle = batch.vehicle(unified=unified)
    pseudonyms = batch.week(vehicle)
    assert [(p.i, p.j) for p in pseudonyms] == [(0, j) for j in range(4)]
    for pseudonym in pseudonyms:
        assert pseudonym.certificate.value["type"] == ("implicit" if implicit else "explicit")
        assert pseudonym.certificate.tbs["id"][0] == "linkageData"
        assert "encryptionKey" not in pseudonym.certificate.tbs
    assert len({p.linkage_value for p in pseudonyms}) == 4
    assert len({p.certificate.encoded for p in pseudonyms}) == 4


def test_an_explicit_certificate_verifies_with_pyca_alone(nist: BatchPki) -> None:
    """The CA's signature, checked from the 1609.2 rule with hashlib and pyca directly."""
    pseudonym = nist.week(nist.vehicle(b"VIN-PYCA"))[0]
    issuer = nist.authorities.ca.certificate
    tbs = pseudonym.certificate.tbs_encoded
    assert pseudonym.certificate.encoded.find(tbs) > 0
    digest = hashlib.sha384(hashlib.sha384(tbs).digest() + hashlib.sha384(issuer).digest())
    r, s = rs_from_signature(pseudonym.certificate.value["signature"])
    choice, (kind, x) = decode("Certificate", issuer)["toBeSigned"]["verifyKeyIndicator"][1]
    assert choice == "ecdsaNistP384"
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP384R1(), (b"\x02" if kind == "compressed-y-0" else b"\x03") + bytes(x)
    )
    public.verify(encode_dss_signature(r, s), digest.digest(), ec.ECDSA(Prehashed(SHA384())))
    signed_key = pseudonym.certificate.verification_key().public_numbers()
    assert pseudonym.key.public_key().public_numbers() == signed_key


def test_an_implicit_key_matches_fastecdsa_reconstruction() -> None:
    """Q_U = e·P_U + Q_CA with fastecdsa's arithmetic, against the device's d_U·G (pyca)."""
    batch = new_batch_pki("nist", implicit=True, per_period=2)
    pseudonym = batch.week(batch.vehicle())[1]
    issuer = batch.authorities.ca.certificate
    tbs = pseudonym.certificate.tbs_encoded
    kind, x = pseudonym.certificate.tbs["verifyKeyIndicator"][1]
    reconstruction = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), (b"\x02" if kind == "compressed-y-0" else b"\x03") + bytes(x)
    ).public_numbers()
    ca = decode("Certificate", issuer)["toBeSigned"]["verifyKeyIndicator"][1][1]
    ca_point = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), (b"\x02" if ca[0] == "compressed-y-0" else b"\x03") + bytes(ca[1])
    ).public_numbers()
    e = certificate_hash_integer(tbs, issuer, ec.SECP256R1())
    p256 = fastecdsa_curve.P256
    q = e * Point(reconstruction.x, reconstruction.y, curve=p256) + Point(
        ca_point.x, ca_point.y, curve=p256
    )
    mine = pseudonym.key.public_key().public_numbers()
    assert (q.x, q.y) == (mine.x, mine.y)


def test_each_certificate_carries_plv1_xor_plv2_of_the_vehicle_chain(nist: BatchPki) -> None:
    vehicle = nist.vehicle(b"VIN-LV")
    pseudonyms = nist.week(vehicle)
    record = nist.authorities.ca.record_for(pseudonyms[0].certificate.encoded)
    la1, la2 = nist.authorities.la1, nist.authorities.la2
    seed1, token1 = la1.reveal(la2.peel(record.chain_references[0]), 0)
    seed2, _ = la2.reveal(la1.peel(record.chain_references[1]), 0)
    for pseudonym in pseudonyms:
        expected = linkage_value(
            pre_linkage_value(seed1, la1.la_id, pseudonym.j),
            pre_linkage_value(seed2, la2.la_id, pseudonym.j),
        )
        assert pseudonym.linkage_value == expected
    assert la1.reveal_seed(token1, 3) == linkage_seed_at(seed1, la1.la_id, 3)


def test_a_chain_reference_takes_both_las_and_is_fresh_per_certificate(nist: BatchPki) -> None:
    pseudonyms = nist.week(nist.vehicle(b"VIN-ONION"))
    records = [nist.authorities.ca.record_for(p.certificate.encoded) for p in pseudonyms]
    la1, la2 = nist.authorities.la1, nist.authorities.la2
    first = records[0].chain_references[0]
    with pytest.raises(VerificationError):
        la1.peel(first)  # LA1's reference is encrypted to LA2
    with pytest.raises(VerificationError):
        la1.reveal(first, 0)  # and LA1 cannot open it as it is
    with pytest.raises(VerificationError):
        la2.reveal(la2.peel(first), 0)  # LA2 peels it, but the inner one is LA1's
    inner = [la1.peel(r.chain_references[1]) for r in records]  # LA1 peels LA2's references
    assert len(set(inner)) == len(records)  # fresh each time: nothing to group them by
    with pytest.raises(VerificationError):
        la1.reveal(inner[0], 0)  # ... which only LA2 opens


@settings(max_examples=40, deadline=None)
@given(
    i=st.integers(0, 0xFFFF),
    lv=st.binary(min_size=9, max_size=9),
    start=st.integers(0, 0xFFFFFFFF),
    point=st.tuples(st.sampled_from([b"\x02", b"\x03"]), st.binary(min_size=32, max_size=32)),
    r=st.integers(0, 2**384 - 1),
    s=st.integers(0, 2**384 - 1),
    implicit=st.booleans(),
)
def test_the_template_writes_what_the_codec_writes(
    i: int, lv: bytes, start: int, point: tuple[bytes, bytes], r: int, s: int, implicit: bool
) -> None:
    issuer = _issuer()
    template = _template(issuer, implicit)
    tbs = template.tbs(i, lv, start, point[0] + point[1])
    certificate = template.certificate(tbs, r, s)
    value = decode("Certificate", certificate)  # strict: canonical, nothing left over
    assert value["toBeSigned"]["id"] == ("linkageData", {"iCert": i, "linkage-value": lv})
    assert value["toBeSigned"]["validityPeriod"]["start"] == start
    assert encode("Certificate", value) == certificate
    if not implicit:
        assert rs_from_signature(value["signature"]) == (r, s)


def test_the_template_refuses_what_it_cannot_place() -> None:
    template = _template(_issuer(), False)
    with pytest.raises(EncodingError):
        template.tbs(1, bytes(8), 0, b"\x02" + bytes(32))
    with pytest.raises(EncodingError):
        template.tbs(1, bytes(9), 0, b"\x04" + bytes(64))


_ISSUER: list[bytes] = []


def _issuer() -> bytes:
    if not _ISSUER:
        _ISSUER.append(new_batch_pki("nist", per_period=1).authorities.ca.certificate)
    return _ISSUER[0]


def _template(issuer: bytes, implicit: bool) -> PseudonymTemplate:
    return PseudonymTemplate(
        issuer_certificate=issuer,
        issuer_curve="nistP384",
        implicit=implicit,
        app_permissions=CAM_PERMISSIONS,
        duration=("hours", 168),
    )


# -------------------------------------------------------------------------------- the split


def test_the_ra_forwards_no_device_and_shuffles_devices_together(nist: BatchPki) -> None:
    vehicles = [nist.vehicle(f"VIN-S{n}".encode()) for n in range(4)]
    pendings = [nist.request(v) for v in vehicles]
    forwarded = nist.authorities.ra.forward()
    caterpillars = [v.caterpillar.public_key() for v in vehicles]
    for key in caterpillars:
        assert compressed_point(key)[1:] not in forwarded
        assert b"VIN-S" not in forwarded
    requests = decode_message("RaAcaCertRequestBatch", forwarded)
    assert len(requests) == 80
    # The batch is not in request order: the first 20 items are not all one device's.
    in_flight = nist.authorities.ra._in_flight
    first = {in_flight[bytes(r["requestId"])].batch_id for r in requests[:20]}
    assert len(first) > 1
    assert {r["generationTime"] for r in requests} == {nist.authorities.schedule.start(0)}
    answers = nist.authorities.ca.issue_batch(forwarded, nist.pki.clock.now())
    nist.authorities.ra.accept_responses(answers)
    for vehicle, pending in zip(vehicles, pendings, strict=True):
        download = nist.authorities.ra.download(pending.batch_id)
        assert len(vehicle.reconstruct(pending, download)) == 20


def test_the_ra_cannot_read_what_the_ca_answers(nist: BatchPki) -> None:
    vehicle = nist.vehicle(b"VIN-RA-READS")
    pseudonyms = nist.week(vehicle)
    batches = nist.authorities.ra._batches.values()
    stored = b"".join(entry for batch in batches for entry in batch.entries.values())
    for pseudonym in pseudonyms:
        assert pseudonym.certificate.encoded not in stored
        assert pseudonym.certificate.tbs_encoded[-32:] not in stored
        assert pseudonym.linkage_value not in stored


# -------------------------------------------------------------------------------- negatives


def test_a_download_under_a_wrong_cocoon_key_does_not_open(nist: BatchPki) -> None:
    """The RA expanded with another expansion key: the vehicle cannot open its responses."""
    vehicle = nist.vehicle(b"VIN-WRONG-K")
    pending = nist.request(vehicle)
    ra = nist.authorities.ra
    for item in ra._pending:
        body = decode_message("EeRaCertRequest", item.caterpillar)
        body["additionalParams"] = ("unified", ("aes128", bytes(16)))
        object.__setattr__(item, "caterpillar", encode_message("EeRaCertRequest", body))
    nist.issue_pending()
    with pytest.raises(VerificationError):
        vehicle.reconstruct(pending, ra.download(pending.batch_id))


def test_a_response_for_another_device_is_refused(nist: BatchPki) -> None:
    alice, bob = nist.vehicle(b"VIN-ALICE"), nist.vehicle(b"VIN-BOB")
    pending_a, pending_b = nist.request(alice), nist.request(bob)
    nist.issue_pending()
    ra = nist.authorities.ra
    bobs = decode_message("RaEeCertBatch", ra.download(pending_b.batch_id))
    bobs["requestHash"] = pending_a.batch_id
    with pytest.raises(VerificationError):
        alice.reconstruct(pending_a, encode_message("RaEeCertBatch", bobs))
    with pytest.raises(VerificationError):
        alice.reconstruct(pending_a, ra.download(pending_b.batch_id))


def test_a_tampered_pre_linkage_value_is_refused_by_the_ca(nist: BatchPki) -> None:
    nist.request(nist.vehicle(b"VIN-PLV"))
    requests = decode_message("RaAcaCertRequestBatch", nist.authorities.ra.forward())
    ciphertext = bytearray(requests[0]["linkageInfo"][1]["ccmCiphertext"])
    ciphertext[3] ^= 0x01
    requests[0]["linkageInfo"][1]["ccmCiphertext"] = bytes(ciphertext)
    with pytest.raises(VerificationError):
        nist.authorities.ca.issue(requests[0], nist.pki.clock.now())


def test_pre_linkage_values_of_two_certificates_are_not_combined(nist: BatchPki) -> None:
    nist.request(nist.vehicle(b"VIN-PLV-J"))
    requests = decode_message("RaAcaCertRequestBatch", nist.authorities.ra.forward())
    requests[0]["linkageInfo"][1] = requests[1]["linkageInfo"][1]
    with pytest.raises(VerificationError, match="different certificates"):
        nist.authorities.ca.issue(requests[0], nist.pki.clock.now())
    requests[2]["linkageInfo"][1] = requests[2]["linkageInfo"][0]
    with pytest.raises(VerificationError, match="one linkage authority"):
        nist.authorities.ca.issue(requests[2], nist.pki.clock.now())


def test_a_pre_linkage_value_of_another_period_is_refused(nist: BatchPki) -> None:
    nist.request(nist.vehicle(b"VIN-PLV-I"))
    requests = decode_message("RaAcaCertRequestBatch", nist.authorities.ra.forward())
    request = requests[0]
    request["iCert"] = 1
    request["tbsCert"]["validityPeriod"]["start"] = nist.authorities.schedule.start(1)
    with pytest.raises(VerificationError, match="period 0, not 1"):
        nist.authorities.ca.issue(request, nist.pki.clock.now())


def test_a_replayed_batch_request_is_refused(nist: BatchPki) -> None:
    vehicle = nist.vehicle(b"VIN-REPLAY")
    pending = nist.request(vehicle)
    with pytest.raises(BatchRefusedError, match="replay"):
        nist.authorities.ra.handle_batch_request(pending.message)


def test_a_stale_batch_request_is_refused() -> None:
    batch = new_batch_pki("nist", per_period=1)
    pending = batch.prepare(batch.vehicle())
    batch.pki.clock.advance(timedelta(minutes=6))
    with pytest.raises(BatchRefusedError, match="stale"):
        batch.authorities.ra.handle_batch_request(pending.message)


def test_a_validity_that_is_not_a_period_is_refused(nist: BatchPki) -> None:
    vehicle = nist.vehicle(b"VIN-VALIDITY")
    schedule = nist.authorities.schedule
    for start, duration in (
        (schedule.start(0) + 60, schedule.duration),
        (schedule.start(0), ("hours", 1)),
    ):
        pending = vehicle.batch_request(
            period_start=start,
            duration=duration,
            app_permissions=CAM_PERMISSIONS,
            now=nist.pki.clock.now(),
        )
        with pytest.raises(BatchRefusedError, match="validity"):
            nist.authorities.ra.handle_batch_request(pending.message)


def test_a_request_signed_by_a_revoked_ec_is_refused() -> None:
    batch = new_batch_pki("nist", per_period=1)
    station_vehicle = batch.vehicle(b"VIN-OTHER")
    batch.pki.ea.revoke_vehicle(b"VIN-OTHER")
    with pytest.raises(VerificationError, match="not current"):
        batch.request(station_vehicle)


def test_permissions_beyond_the_ca_are_refused(nist: BatchPki) -> None:
    nist.request(nist.vehicle(b"VIN-PSID"))
    requests = decode_message("RaAcaCertRequestBatch", nist.authorities.ra.forward())
    requests[0]["tbsCert"]["appPermissions"] = [{"psid": 623}]
    with pytest.raises(BatchRefusedError, match="psids"):
        nist.authorities.ca.issue(requests[0], nist.pki.clock.now())


def test_a_download_before_the_batch_is_issued_is_pending(nist: BatchPki) -> None:
    pending = nist.request(nist.vehicle(b"VIN-EARLY"))
    with pytest.raises(BatchPendingError):
        nist.authorities.ra.download(pending.batch_id)
    nist.issue_pending()
    nist.authorities.ra.download(pending.batch_id)


def test_responses_swapped_within_a_batch_do_not_open(nist: BatchPki) -> None:
    """Each response is sealed to the cocoon key of its own (i, j)."""
    vehicle = nist.vehicle(b"VIN-SWAP")
    pending = nist.request(vehicle)
    nist.issue_pending()
    download = decode_message("RaEeCertBatch", nist.authorities.ra.download(pending.batch_id))
    entries = download["entries"]
    entries[0]["acaResponse"], entries[1]["acaResponse"] = (
        entries[1]["acaResponse"],
        entries[0]["acaResponse"],
    )
    with pytest.raises(VerificationError):
        vehicle.reconstruct(pending, encode_message("RaEeCertBatch", download))


def test_a_batch_request_is_coer_with_the_standard_preamble(nist: BatchPki) -> None:
    """1609.2.1's EeRaCertRequest is extensible with additionalParams OPTIONAL: its COER
    encoding opens with a preamble octet, extension bit clear and the optional bit set."""
    vehicle = nist.vehicle(b"VIN-PREAMBLE")
    nist.request(vehicle)
    (item, *_) = nist.authorities.ra._pending
    assert item.caterpillar[0] == 0b0100_0000
    body = decode_message("EeRaCertRequest", item.caterpillar)
    del body["additionalParams"]
    bare = encode_message("EeRaCertRequest", body)
    assert bare[0] == 0 and bare[1:] == item.caterpillar[1 : len(bare)]


def test_a_batch_request_without_butterfly_parameters_is_refused(nist: BatchPki) -> None:
    vehicle = nist.vehicle(b"VIN-NO-PARAMS")
    nist.request(vehicle)
    (item, *_) = nist.authorities.ra._pending
    body = decode_message("EeRaCertRequest", item.caterpillar)
    del body["additionalParams"]
    with pytest.raises(EncodingError, match="butterfly parameters"):
        RegistrationAuthority._check_caterpillar(body)


def test_a_response_without_private_key_info_is_refused(nist: BatchPki) -> None:
    """1609.2.1 makes privateKeyInfo OPTIONAL; a butterfly response without it (c or r) gives
    the vehicle no key, so it is refused, not reconstructed from the wrong bytes."""
    vehicle = nist.vehicle(b"VIN-NO-INFO")
    pending = nist.request(vehicle)
    nist.issue_pending()
    download = decode_message("RaEeCertBatch", nist.authorities.ra.download(pending.batch_id))
    entry = download["entries"][0]
    cocoon = vehicle.caterpillar.cocoon_key(entry["i"], entry["j"])
    public = cocoon.public_key()
    response = decode_message(
        "AcaEeCertResponse", open_from_key(bytes(entry["acaResponse"]), cocoon, public)
    )
    del response["privateKeyInfo"]
    entry["acaResponse"] = seal_to_key(encode_message("AcaEeCertResponse", response), public)
    with pytest.raises(VerificationError, match="privateKeyInfo"):
        vehicle.reconstruct(pending, encode_message("RaEeCertBatch", download))


def test_the_ack_carries_first_i_under_the_standard_preamble(nist: BatchPki) -> None:
    vehicle = nist.vehicle(b"VIN-ACK")
    pending = nist.prepare(vehicle, 2)
    answer = nist.authorities.ra.handle_batch_request(pending.message)
    ack = vehicle.read_ack(pending, answer)
    assert ack["firstI"] == 2 and bytes(ack["requestHash"]) == pending.batch_id
    assert encode_message("RaEeCertAck", ack)[0] == 0b0100_0000
