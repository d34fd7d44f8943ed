"""``POST /enrol/challenge`` over the ASGI app: only known devices get one, each holds a bounded
number, expired ones are pruned, and a refusal writes nothing (B5)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.attestation_fixtures import Authority, make_authority

from fleetid.clock import ManualClock
from fleetid.sim.software_line import LineDevice, SoftwareLine
from fleetid.store.schema import enrolment_challenges

BASE = "http://fleet-a.test"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def line(clock: ManualClock) -> SoftwareLine:
    return SoftwareLine(clock=clock)


@pytest.fixture
def authority(
    tmp_path: Path, db_url: str, clock: ManualClock, line: SoftwareLine
) -> Iterator[Authority]:
    made = make_authority(tmp_path / "a", db_url, clock, [line.root], base_url=BASE)
    yield made
    made.close()


@pytest.fixture
def device(authority: Authority, line: SoftwareLine) -> LineDevice:
    made = line.make_device()
    authority.import_devices(made)
    return made


def _post(authority: Authority, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=authority.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.post("/enrol/challenge", **kwargs)

    return asyncio.run(send())


def _rows(authority: Authority) -> int:
    with authority.ca.store.engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(enrolment_challenges)).scalar_one()
        )


def _problem(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


def test_a_known_device_gets_a_challenge(authority: Authority, device: LineDevice) -> None:
    response = _post(authority, json={"device_id": device.serial})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"nonce", "expires_at"}
    assert _rows(authority) == 1


def test_an_unknown_device_is_refused_and_nothing_is_written(authority: Authority) -> None:
    response = _post(authority, json={"device_id": "NOBODY-1"})
    _problem(response, 400, "not on a manifest trusted here")
    assert response.json()["reason"] == "not-on-manifest"
    assert _rows(authority) == 0


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{}", b'{"device_id": null}', b'{"device_id": ""}', b"not json",
     b'{"device_id": 7}', b'["x"]', b'{"device_id": "' + b"x" * 129 + b'"}'],
)  # fmt: skip
def test_a_malformed_body_is_400_and_nothing_is_written(
    authority: Authority, device: LineDevice, body: bytes
) -> None:
    response = _post(authority, content=body, headers={"Content-Type": "application/json"})
    _problem(response, 400, 'a challenge request is JSON {"device_id"')
    assert _rows(authority) == 0


def test_outstanding_challenges_are_bounded_per_device(
    authority: Authority, device: LineDevice, line: SoftwareLine, clock: ManualClock
) -> None:
    bound = authority.ca.settings.policy.outstanding_challenges
    assert bound == 8
    for _ in range(bound):
        assert _post(authority, json={"device_id": device.serial}).status_code == 200
    response = _post(authority, json={"device_id": device.serial})
    _problem(response, 429, f"holds {bound} unused challenges")
    assert response.json()["type"] == "urn:fleetid:problem:too-many"
    assert _rows(authority) == bound
    # Another device is not held back by this one.
    other = line.make_device()
    authority.import_devices(other)
    assert _post(authority, json={"device_id": other.serial}).status_code == 200
    # Once they expire, the device gets challenges again and the expired rows are gone.
    clock.advance(authority.ca.settings.policy.challenge_ttl + timedelta(seconds=1))
    assert _post(authority, json={"device_id": device.serial}).status_code == 200
    assert _rows(authority) == 1


def test_a_spent_challenge_frees_its_place(authority: Authority, device: LineDevice) -> None:
    bound = authority.ca.settings.policy.outstanding_challenges
    nonces = [
        _post(authority, json={"device_id": device.serial}).json()["nonce"] for _ in range(bound)
    ]
    first = base64.urlsafe_b64decode(nonces[0] + "=" * (-len(nonces[0]) % 4))
    with authority.ca.store.transaction() as tx:
        assert tx.challenges.consume(first, authority.ca.clock.now())
    assert _post(authority, json={"device_id": device.serial}).status_code == 200
