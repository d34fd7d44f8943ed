"""Butterfly batches and linked CRLs through ``create_app``: the vehicle posts its batch request,
downloads the batch by id, rebuilds its keys; every refusal is a problem document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.butterfly_fixtures import BatchPki, new_batch_pki
from tests.revocation_fixtures import AsgiClient

from fleetid.api import create_app
from fleetid.api.routes.butterfly import ButterflyServices, install
from fleetid.api.routes.etsi import ITS_REQUEST, ITS_RESPONSE
from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.device.pseudonyms import PendingBatch, PseudonymRequester
from fleetid.formats.ieee1609 import decode_certificate
from fleetid.revocation.linked_crl_channel import LinkedCrlPublisher, LinkedCrlReceiver


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[AsgiClient, BatchPki, Path]]:
    settings = Settings.load(tmp_path, environ={})
    clock = ManualClock()
    ca = FleetCa.init(settings, clock=clock, name="Test Fleet")
    batch = new_batch_pki("nist", per_period=4)
    app = create_app(settings, clock=clock, ca=ca)
    crl_directory = tmp_path / "linked-crl"
    install(app, ButterflyServices(ra=batch.authorities.ra, linked_crl_directory=crl_directory))
    yield AsgiClient(app), batch, crl_directory
    ca.close()


def _ask(client: AsgiClient, batch: BatchPki, vehicle: PseudonymRequester) -> PendingBatch:
    pending = batch.prepare(vehicle)
    answer = client.post(
        "/v2x/ra/batch", content=pending.message, headers={"content-type": ITS_REQUEST}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == ITS_RESPONSE
    vehicle.read_ack(pending, answer.content)
    return pending


def test_a_batch_over_http(served: tuple[AsgiClient, BatchPki, Path]) -> None:
    client, batch, _ = served
    vehicle = batch.vehicle()
    pending = _ask(client, batch, vehicle)
    early = client.get(f"/v2x/ra/batch/{pending.batch_id.hex()}")
    assert early.status_code == 404
    assert early.headers["content-type"] == "application/problem+json"
    assert "0 of 4 issued" in early.json()["detail"]
    batch.issue_pending()
    download = client.get(f"/v2x/ra/batch/{pending.batch_id.hex()}")
    assert download.status_code == 200
    assert len(vehicle.reconstruct(pending, download.content)) == 4


def test_refusals_are_problem_documents(served: tuple[AsgiClient, BatchPki, Path]) -> None:
    client, batch, _ = served
    vehicle = batch.vehicle()
    pending = _ask(client, batch, vehicle)
    replay = client.post(
        "/v2x/ra/batch", content=pending.message, headers={"content-type": ITS_REQUEST}
    )
    assert replay.status_code == 403
    assert "replay" in replay.json()["detail"]
    garbage = client.post(
        "/v2x/ra/batch", content=b"\x03\x82", headers={"content-type": ITS_REQUEST}
    )
    assert garbage.status_code == 400
    assert garbage.headers["content-type"] == "application/problem+json"
    wrong_type = client.post(
        "/v2x/ra/batch", content=pending.message, headers={"content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert client.get("/v2x/ra/batch/zz").status_code == 400
    assert client.get(f"/v2x/ra/batch/{bytes(8).hex()}").status_code == 404


def test_linked_crls_over_http(served: tuple[AsgiClient, BatchPki, Path]) -> None:
    client, batch, directory = served
    assert client.get("/v2x/linked-crl/full").status_code == 404
    ca_certificate = batch.authorities.ca.certificate
    craca = decode_certificate(ca_certificate)
    publisher = LinkedCrlPublisher(
        signer=batch.authorities.ca.keys.signer,
        craca_certificate=craca,
        directory=directory,
    )
    publisher.revoke(
        i=0,
        la1_id=b"\x8e\x09",
        la2_id=b"\x59\xce",
        seed1=bytes(16),
        seed2=bytes(16),
        j_max=4,
        i_max=9,
    )
    publisher.publish(batch.pki.clock.now(), 0)
    full = client.get("/v2x/linked-crl/full")
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/x-its-crl"
    LinkedCrlReceiver(craca).load(full.content)
    assert client.get("/v2x/linked-crl/delta").status_code == 404
    assert client.get("/v2x/linked-crl/other").status_code == 400


def test_the_etsi_butterfly_messages_over_http(served: tuple[AsgiClient, BatchPki, Path]) -> None:
    client, batch, _ = served
    vehicle = batch.vehicle(b"VIN-ETSI-HTTP")
    schedule = batch.authorities.schedule
    pending = vehicle.batch_request(
        period_start=schedule.start(0),
        duration=schedule.duration,
        app_permissions=[{"psid": 36}],
        now=batch.pki.clock.now(),
        etsi=True,
    )
    its = {"content-type": ITS_REQUEST}
    answer = client.post("/v2x/ra/batch", content=pending.message, headers=its)
    assert answer.status_code == 200, answer.text
    assert vehicle.read_ack(pending, answer.content)["currentI"] == 0
    message, aes_key = vehicle.download_request(pending, batch.pki.clock.now())
    early = client.post("/v2x/ra/download", content=message, headers=its)
    assert early.status_code == 404
    assert early.headers["content-type"] == "application/problem+json"
    batch.issue_pending()
    message, aes_key = vehicle.download_request(pending, batch.pki.clock.now())
    download = client.post("/v2x/ra/download", content=message, headers=its)
    assert download.status_code == 200, download.text
    assert len(vehicle.reconstruct(pending, vehicle.open_download(download.content, aes_key))) == 4
    garbage = client.post("/v2x/ra/download", content=b"\x03\x82", headers=its)
    assert garbage.status_code == 400
    assert garbage.headers["content-type"] == "application/problem+json"
