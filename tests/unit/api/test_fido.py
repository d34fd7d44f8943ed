"""The FIDO registration routes over HTTP: refusals are problem details with their reason."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fido_fixtures import NOW, makers
from tests.revocation_fixtures import AsgiClient

from fleetid.api import create_app
from fleetid.api.routes.fido import CHALLENGE_ROUTE, REGISTER_ROUTE
from fleetid.authority.fido_metadata import FidoMetadataStore, FidoPolicy
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_keys import save_relying_party
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.formats.webauthn import b64url_decode, b64url_encode, encode_attestation_object
from fleetid.sim.demo_fido import (
    SoftwareAuthenticator,
    client_data,
    new_authenticator,
)
from fleetid.store.fido_repository import FidoRepository

RP_ID = "operators.example.org"
ORIGIN = f"https://{RP_ID}"
PROBLEM = "application/problem+json"


@dataclass
class World:
    http: Any
    certified: SoftwareAuthenticator
    revoked: SoftwareAuthenticator


def _authority(root: Path, clock: ManualClock) -> tuple[Settings, FleetCa]:
    settings = Settings.load(root, environ={"FLEETID_PUBLIC_URL": "http://authority.invalid"})
    return settings, FleetCa.init(settings, clock=clock, name="Fleet T")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("authority")
    clock = ManualClock(NOW)
    settings, ca = _authority(root, clock)
    made = makers()
    save_relying_party(root, RP_ID, [ORIGIN], made.mds.root)
    policy = FidoPolicy(metadata_root=made.mds.root)
    FidoMetadataStore(FidoRepository(ca.store.engine), policy).load_blob(made.blob(), NOW)
    certified, revoked = made.certified, made.revoked
    yield World(AsgiClient(create_app(settings, clock=clock, ca=ca)), certified, revoked)
    ca.close()


def _register(
    world: World, authenticator: SoftwareAuthenticator
) -> tuple[httpx.Response, dict[str, str]]:
    issued = world.http.post(CHALLENGE_ROUTE, json={"operator": "alice"})
    assert issued.status_code == 200, issued.text
    assert issued.json()["rp_id"] == RP_ID
    challenge = b64url_decode(issued.json()["challenge"])
    data = client_data(challenge, ORIGIN)
    body = {
        "attestation_object": b64url_encode(authenticator.make_credential(RP_ID, data)),
        "client_data_json": b64url_encode(data),
    }
    return world.http.post(REGISTER_ROUTE, json=body), body


def _refused(response: httpx.Response, reason: str | None) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json().get("reason") == reason


def test_registration_then_its_replay(world: World) -> None:
    accepted, body = _register(world, world.certified)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["aaguid"] == str(world.certified.aaguid)
    assert accepted.json()["operator"] == "alice"
    _refused(world.http.post(REGISTER_ROUTE, json=body), "challenge-replayed")


def test_a_revoked_model_is_refused(world: World) -> None:
    response, _ = _register(world, world.revoked)
    _refused(response, "authenticator-status")
    assert "REVOKED" in response.json()["detail"]


def test_an_unknown_model_is_refused(world: World) -> None:
    response, _ = _register(world, new_authenticator("Cobalt Key", NOW))
    _refused(response, "authenticator-unknown")


def test_none_attestation_is_refused(world: World) -> None:
    from fido2 import cbor

    issued = world.http.post(CHALLENGE_ROUTE, json={"operator": "alice"}).json()
    data = client_data(b64url_decode(issued["challenge"]), ORIGIN)
    packed = cbor.decode(world.certified.make_credential(RP_ID, data))
    assert isinstance(packed, dict)
    none = encode_attestation_object("none", {}, packed["authData"])
    body = {"attestation_object": b64url_encode(none), "client_data_json": b64url_encode(data)}
    _refused(world.http.post(REGISTER_ROUTE, json=body), "attestation-type-refused")


@pytest.mark.parametrize(
    "body",
    [b"{}", b"not json", b'{"attestation_object": "***", "client_data_json": "e30"}'],
)
def test_a_malformed_registration_is_400(world: World, body: bytes) -> None:
    response = world.http.post(REGISTER_ROUTE, content=body)
    _refused(response, None)


def test_a_challenge_needs_an_operator(world: World) -> None:
    response = world.http.post(CHALLENGE_ROUTE, json={"operator": ""})
    _refused(response, None)


def test_routes_are_absent_without_fido_configuration(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    settings, ca = _authority(tmp_path, clock)
    try:
        http = AsgiClient(create_app(settings, clock=clock, ca=ca))
        response = http.post(CHALLENGE_ROUTE, json={"operator": "alice"})
        assert response.status_code == 404
    finally:
        ca.close()
