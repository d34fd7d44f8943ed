"""Butterfly batches in the ETSI TS 102 941 V2 wrapping (V2.2.1 EtsiTs102941MessagesCa): the
request is EtsiTs102941Data{butterflyAuthorizationRequest EeRaCertRequest} signed by the EC and
encrypted to the RA (the EA role), the answer RaEeCertInfo signed by the RA, the download an
EeRaDownloadRequest. The expected octets of each EtsiTs102941Data are written by hand from X.696:
version v1, then the CHOICE extension alternative's tag (context class, its index: [13], [15],
[18]) and its value as an open type (length determinant, then the value's own COER)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.butterfly_fixtures import BatchPki, new_batch_pki

from fleetid.authority.v2x.common import open_request
from fleetid.device.pseudonyms import PendingBatch, PseudonymRequester
from fleetid.errors import (
    BatchRefusedError,
    EncodingError,
    NotFoundError,
    ProfileError,
    VerificationError,
)
from fleetid.formats.butterfly_messages import encode_message
from fleetid.formats.etsi102941 import (
    decode_etsi102941_data,
    encode_etsi102941_data,
    encrypt,
    sign_pki_data,
)
from fleetid.formats.ieee1609 import open_signed_data, time32, time64

PER_PERIOD = 4


@pytest.fixture(scope="module")
def batch() -> BatchPki:
    return new_batch_pki(per_period=PER_PERIOD)


def _etsi_request(batch: BatchPki, vehicle: PseudonymRequester) -> PendingBatch:
    """The vehicle's ButterflyAuthorizationRequestMessage for period 0."""
    return vehicle.batch_request(
        period_start=batch.authorities.schedule.start(0),
        duration=batch.authorities.schedule.duration,
        app_permissions=[{"psid": 36}],
        now=batch.pki.clock.now(),
        etsi=True,
    )


def _length(n: int) -> bytes:
    """X.696 §8.6 length determinant: short form below 128, else 0x80|k and k octets."""
    if n < 128:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def test_a_week_of_pseudonyms_through_the_etsi_messages(batch: BatchPki) -> None:
    vehicle = batch.vehicle(b"VIN-ETSI")
    ra = batch.authorities.ra
    pending = vehicle.batch_request(
        period_start=batch.authorities.schedule.start(0),
        duration=batch.authorities.schedule.duration,
        app_permissions=[{"psid": 36, "ssp": ("bitmapSsp", bytes.fromhex("01fffc"))}],
        now=batch.pki.clock.now(),
        etsi=True,
    )
    answer = ra.handle_batch_request(pending.message)
    info = vehicle.read_ack(pending, answer)
    assert info["currentI"] == 0 and bytes(info["requestHash"]) == pending.batch_id
    # The answer is EtsiTs103097Data-Signed, not encrypted: the RaEeCertInfo is in the clear.
    payload = open_signed_data(answer).unsecured_payload()
    inner = bytes.fromhex("0002") + time32(batch.pki.clock.now()).to_bytes(4, "big")
    inner += b"\x00\x00" + pending.batch_id + time32(batch.pki.clock.now()).to_bytes(4, "big")
    assert payload == b"\x01\x8f" + _length(len(inner)) + inner
    batch.issue_pending()
    message, aes_key = vehicle.download_request(pending, batch.pki.clock.now())
    download = vehicle.open_download(ra.handle_download_request(message), aes_key)
    assert len(vehicle.reconstruct(pending, download)) == PER_PERIOD
    with pytest.raises(BatchRefusedError) as replay:
        ra.handle_batch_request(pending.message)
    assert replay.value.code == "replay"


def test_the_request_is_the_ieee_request_under_tag_13(batch: BatchPki) -> None:
    vehicle = batch.vehicle(b"VIN-ETSI-BYTES")
    pending = _etsi_request(batch, vehicle)
    opened = open_request(batch.authorities.ra.keys, pending.message)
    payload = open_signed_data(opened.plaintext).unsecured_payload()
    kind, body = decode_etsi102941_data(payload)
    assert kind == "butterflyAuthorizationRequest"
    raw = encode_message("EeRaCertRequest", body)
    assert payload == b"\x01\x8d" + _length(len(raw)) + raw
    assert raw[:2] == b"\x40\x02"  # additionalParams present, version 2


def test_the_download_request_is_tag_18() -> None:
    body = {"generationTime": 0x01020304, "filename": "0011223344556677"}
    inner = bytes.fromhex("000102030410") + b"0011223344556677"
    encoded = encode_etsi102941_data(("butterflyAtDownloadRequest", body))
    assert encoded == b"\x01\x92" + _length(len(inner)) + inner


def test_alternatives_outside_the_subset_keep_their_tags_and_are_refused() -> None:
    for tag in (0x8E, 0x90, 0x91):  # x509Signed request, EA-AA request and response
        with pytest.raises(EncodingError, match="outside"):
            decode_etsi102941_data(bytes([0x01, tag, 0x02, 0x01, 0x00]))


def _sealed(batch: BatchPki, vehicle: PseudonymRequester, content: tuple[str, Any]) -> bytes:
    """``content`` signed by the vehicle's EC and encrypted to the RA, as a vehicle would."""
    signed = sign_pki_data(
        content,
        vehicle._ec_signer,
        generation_time=time64(batch.pki.clock.now()),
        signer_certificate=vehicle._ec_certificate,
    )
    return encrypt(signed, batch.authorities.ra.certificate.encoded).encoded


def test_another_etsi_content_on_the_batch_route_is_refused(batch: BatchPki) -> None:
    vehicle = batch.vehicle(b"VIN-ETSI-WRONG")
    body = {"generationTime": time32(batch.pki.clock.now()), "filename": "00" * 8}
    message = _sealed(batch, vehicle, ("butterflyAtDownloadRequest", body))
    with pytest.raises(ProfileError):
        batch.authorities.ra.handle_batch_request(message)


def test_an_answer_not_signed_by_the_ra_is_refused(batch: BatchPki) -> None:
    vehicle = batch.vehicle(b"VIN-ETSI-FORGED")
    pending = _etsi_request(batch, vehicle)
    info = vehicle.read_ack(pending, batch.authorities.ra.handle_batch_request(pending.message))
    ca = batch.authorities.ca.keys
    forged = sign_pki_data(
        ("butterflyAuthorizationResponse", info),
        ca.signer,
        generation_time=time64(batch.pki.clock.now()),
        signer_certificate=ca.certificate.encoded,
    )
    with pytest.raises(VerificationError):
        vehicle.read_ack(pending, forged)


def test_refused_download_requests(batch: BatchPki) -> None:
    vehicle = batch.vehicle(b"VIN-ETSI-DL")
    ra = batch.authorities.ra
    now = time32(batch.pki.clock.now())
    stale = _sealed(
        batch,
        vehicle,
        ("butterflyAtDownloadRequest", {"generationTime": now - 3600, "filename": "00" * 8}),
    )
    with pytest.raises(BatchRefusedError) as refused:
        ra.handle_download_request(stale)
    assert refused.value.code == "stale"
    bad_name = _sealed(
        batch, vehicle, ("butterflyAtDownloadRequest", {"generationTime": now, "filename": "batch"})
    )
    with pytest.raises(EncodingError):
        ra.handle_download_request(bad_name)
    unknown = _sealed(
        batch,
        vehicle,
        ("butterflyAtDownloadRequest", {"generationTime": now, "filename": "ab" * 8}),
    )
    with pytest.raises(NotFoundError):
        ra.handle_download_request(unknown)
    # A download answer opens only under its request's key.
    pending = batch.request(vehicle)
    batch.issue_pending()
    message, _ = vehicle.download_request(pending, batch.pki.clock.now())
    _, other_key = vehicle.download_request(pending, batch.pki.clock.now() + timedelta(seconds=1))
    with pytest.raises(VerificationError):
        vehicle.open_download(ra.handle_download_request(message), other_key)
