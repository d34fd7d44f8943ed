"""TS 102 941 over HTTP through the FastAPI app: EA, AA (reaching the EA over HTTP), CTL, CRL.

Bodies are raw COER with ``application/x-its-request`` / ``application/x-its-response``; the EA and
AA tables live in the parametrised database (SQLite, and PostgreSQL where one answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.v2x_fixtures import FAMILY_NAMES, response_code

from fleetid.api import create_app
from fleetid.api.routes.etsi import ITS_REQUEST, ITS_RESPONSE, V2xServices, install
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.v2x import FAMILIES, V2xTrustStore
from fleetid.authority.v2x.hierarchy import V2xHierarchy, build_hierarchy
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.device.v2x import CamReceiver, ItsStation, SoftwareV2xKeys
from fleetid.store.engine import open_engine

BASE = "http://fleet.test"


class AsgiClient:
    """A synchronous face on httpx's in-process ASGI transport (no sockets)."""

    def __init__(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=self._transport, base_url=BASE) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def its(self, path: str, body: bytes, content_type: str = ITS_REQUEST) -> httpx.Response:
        return self.request("POST", path, content=body, headers={"Content-Type": content_type})

    def poster(self, path: str) -> Callable[[bytes], bytes]:
        def post(body: bytes) -> bytes:
            response = self.its(path, body)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == ITS_RESPONSE
            return response.content

        return post


@pytest.fixture(params=FAMILY_NAMES)
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, db_url: str
) -> Iterator[tuple[AsgiClient, V2xHierarchy, ManualClock]]:
    clock = ManualClock()
    settings = Settings.load(
        tmp_path, environ={"FLEETID_DATABASE_URL": db_url, "FLEETID_PUBLIC_URL": BASE}
    )
    ca = FleetCa.init(settings, clock=clock, name="Test Fleet")
    ea_engine, aa_engine = open_engine(db_url), open_engine(db_url)
    hierarchy = build_hierarchy(
        family=FAMILIES[request.param], clock=clock, ea_engine=ea_engine, aa_engine=aa_engine
    )
    app = create_app(settings, clock=clock, ca=ca)
    install(
        app,
        V2xServices(
            ea=hierarchy.ea,
            aa=hierarchy.aa,
            ctl=lambda: hierarchy.ctl,
            crl=lambda: hierarchy.crl,
        ),
    )
    client = AsgiClient(app)
    # The AA reaches the EA over HTTP too, at the EA's access point from the CTL.
    to_ea = client.poster("/v2x/ea/authorization-validation")
    hierarchy.aa._ea_transport = lambda _url, body: to_ea(body)
    yield client, hierarchy, clock
    ca.close()
    ea_engine.dispose()
    aa_engine.dispose()


def station_from_http(
    client: AsgiClient, hierarchy: V2xHierarchy, clock: ManualClock, its_id: bytes
) -> ItsStation:
    ctl = client.request("GET", "/v2x/ctl")
    crl = client.request("GET", "/v2x/crl")
    assert ctl.headers["content-type"] == "application/x-its-ctl"
    assert crl.headers["content-type"] == "application/x-its-crl"
    trust = V2xTrustStore(hierarchy.root.certificate.encoded, clock=clock)
    trust.apply_ctl(ctl.content)
    trust.apply_crl(crl.content)
    canonical = SoftwareSigner(generate_key(hierarchy.family.end_entity))
    hierarchy.ea.register_canonical_key(its_id, canonical.public_key())
    return ItsStation(
        its_id=its_id,
        canonical_key=canonical,
        keys=SoftwareV2xKeys(),
        family=hierarchy.family,
        trust=trust,
        clock=clock,
    )


def test_enrol_authorize_and_exchange_cams_over_http(
    setup: tuple[AsgiClient, V2xHierarchy, ManualClock],
) -> None:
    client, hierarchy, clock = setup
    a = station_from_http(client, hierarchy, clock, b"VIN-A")
    b = station_from_http(client, hierarchy, clock, b"VIN-B")
    for station in (a, b):
        station.enrol(client.poster("/v2x/ea/enrolment"))
        station.request_tickets(2, client.poster("/v2x/aa/authorization"))
    received = CamReceiver(b.trust, clock).verify(a.sign_cam(b"hello from A"))
    assert received.payload == b"hello from A"
    assert hierarchy.ea.counters.all() == {"enrolment.ok": 2, "validation.ok": 4}
    assert hierarchy.aa.counters.all() == {"authorization.ok": 4}


def test_replay_over_http_is_answered_with_a_refusal(
    setup: tuple[AsgiClient, V2xHierarchy, ManualClock],
) -> None:
    client, hierarchy, clock = setup
    station = station_from_http(client, hierarchy, clock, b"VIN-R")
    pending = station.enrolment_request()
    first = client.its("/v2x/ea/enrolment", pending.encoded)
    second = client.its("/v2x/ea/enrolment", pending.encoded)
    assert (first.status_code, second.status_code) == (200, 200)
    assert response_code(pending, first.content) == "ok"
    assert response_code(pending, second.content) == "deniedrequest"


def test_wrong_media_type_is_refused(setup: tuple[AsgiClient, V2xHierarchy, ManualClock]) -> None:
    client, hierarchy, clock = setup
    pending = station_from_http(client, hierarchy, clock, b"VIN-M").enrolment_request()
    response = client.its("/v2x/ea/enrolment", pending.encoded, "application/octet-stream")
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert ITS_REQUEST in response.json()["detail"]


def test_request_to_the_wrong_authority_is_a_400(
    setup: tuple[AsgiClient, V2xHierarchy, ManualClock],
) -> None:
    client, hierarchy, clock = setup
    station = station_from_http(client, hierarchy, clock, b"VIN-W")
    pending = station.enrolment_request()  # encrypted to the EA
    response = client.its("/v2x/aa/authorization", pending.encoded)
    assert response.status_code == 400
    assert "not addressed" in response.json()["detail"]


def test_garbage_and_empty_bodies_are_400(
    setup: tuple[AsgiClient, V2xHierarchy, ManualClock],
) -> None:
    client, _, _ = setup
    assert client.its("/v2x/ea/enrolment", b"").status_code == 400
    assert client.its("/v2x/ea/enrolment", b"\x03\x82\x01").status_code == 400
    assert client.its("/v2x/ea/authorization-validation", b"\x00" * 40).status_code == 400


def test_openapi_lists_the_v2x_statuses_as_problem_details(
    setup: tuple[AsgiClient, V2xHierarchy, ManualClock],
) -> None:
    client, _, _ = setup
    paths = client.request("GET", "/openapi.json").json()["paths"]
    expected = {
        # 503: the hierarchy's key store is locked (served without the V2X passphrase).
        ("post", "/v2x/ea/enrolment"): {"404", "415"},
        ("post", "/v2x/ea/authorization-validation"): {"404", "415"},
        ("post", "/v2x/aa/authorization"): {"404", "415"},
        ("get", "/v2x/ctl"): {"404"},
        ("get", "/v2x/crl"): {"404"},
    }
    # Every route's: a bad Content-Length or body (400, 413), a rate (429), 500, a timeout (503).
    expected = {key: value | {"400", "413", "429", "500", "503"} for key, value in expected.items()}
    for (method, path), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert {s for s in responses if not s.startswith("2")} == statuses, path
        for status in statuses:
            assert list(responses[status]["content"]) == ["application/problem+json"]
