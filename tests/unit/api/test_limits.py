"""The HTTP edge's limits: a body limit for every route, request rates (429 with Retry-After),
the request timeout (503) and the database statement timeout."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from tests.asgi_app import BASE, asgi_request

from fleetid.api import create_app
from fleetid.api.body_limits import LIMITS, limit_for
from fleetid.api.rate_limits import MAX_CLIENTS, RateLimit
from fleetid.api.request_timeout import RequestTimeout
from fleetid.api.routes import butterfly, etsi, fido
from fleetid.authority.fleet_ca import FleetCa
from fleetid.config import Settings
from fleetid.errors import ConfigError, StoreError
from fleetid.request_limits import RequestLimits
from fleetid.store.engine import database_errors, open_engine

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _operations(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, with those of the optional parts
    (V2X, butterfly, FIDO), as the OpenAPI documents list them (no route is hidden from them)."""
    optional = FastAPI()
    for router in (etsi.router, butterfly.router, fido.router):
        optional.include_router(router)
    return [
        (method.upper(), path)
        for document in (app.openapi(), optional.openapi())
        for path, item in document["paths"].items()
        for method in item
    ]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# --- body limits on every route ------------------------------------------------------------------


def _template(path: str) -> re.Pattern[str]:
    """A route's path as a pattern: each ``{parameter}`` one path segment."""
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)))


def test_every_route_that_takes_a_body_has_its_own_limit(app: FastAPI) -> None:
    with_body = [_template(path) for method, path in _operations(app) if method in _BODY_METHODS]
    assert len(with_body) > 15, "the walk missed the routes that take a body"
    uncovered = [p.pattern for p in with_body if not any(p.fullmatch(k) for k in LIMITS)]
    assert uncovered == []
    # And the table names no route that does not exist (a renamed route keeps its limit).
    assert [k for k in LIMITS if not any(p.fullmatch(k) for p in with_body)] == []


def test_every_route_refuses_a_body_over_its_limit(app: FastAPI) -> None:
    served = [
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    ]
    assert len(served) > 10
    for method, template in served:
        path = template.replace("{", "").replace("}", "")  # any value fills a parameter
        limit = limit_for(path)
        response = asgi_request(
            app, method, path, content=b"0" * (limit + 1), headers={"Content-Type": "x/y"}
        )
        _problem(response, 413)


def test_a_body_at_the_limit_is_read(app: FastAPI) -> None:
    # The limit's own size passes the middleware: the route answers, about the content.
    path = "/.well-known/est/simpleenroll"
    response = asgi_request(
        app,
        "POST",
        path,
        content=b"A" * LIMITS[path],
        headers={"Content-Type": "application/pkcs10"},
    )
    assert response.status_code not in (413, 500)


# --- rates ---------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(app: Any, path: str = "/health", client: str = "192.0.2.1", **headers: str) -> Any:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 1234))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            return await http.post(path, headers=headers)

    return asyncio.run(send())


def test_a_client_over_its_rate_gets_429_with_retry_after() -> None:
    clock = _Clock()
    limited = RateLimit(_ok, RequestLimits(client_rate=2, client_burst=3), clock=clock)
    assert [_call(limited).status_code for _ in range(3)] == [200, 200, 200]
    refused = _call(limited)
    body = _problem(refused, 429)
    assert body["type"] == "urn:fleetid:problem:too-many"
    assert refused.headers["Retry-After"] == "1"  # half a second to the next token, rounded up
    # Another client has its own bucket; time refills the first one.
    assert _call(limited, client="192.0.2.2").status_code == 200
    clock.now += 0.5
    assert _call(limited).status_code == 200
    assert _call(limited).status_code == 429


def test_retry_after_says_when_a_slow_bucket_refills() -> None:
    clock = _Clock()
    limited = RateLimit(_ok, RequestLimits(client_rate=0.1, client_burst=1), clock=clock)
    assert _call(limited).status_code == 200
    assert _call(limited).headers["Retry-After"] == "10"
    clock.now += 9
    assert _call(limited).headers["Retry-After"] == "1"
    clock.now += 1.1
    assert _call(limited).status_code == 200


def test_a_provisioner_has_one_rate_for_all_clients() -> None:
    clock = _Clock()
    limits = RequestLimits(provisioner_rate=1, provisioner_burst=2)
    limited = RateLimit(_ok, limits, clock=clock)
    enrol = "/.well-known/est/simpleenroll"
    basic = {"Authorization": "Basic dTpw"}
    codes = [_call(limited, enrol, client=f"192.0.2.{i}", **basic).status_code for i in range(3)]
    assert codes == [200, 200, 429]
    # The attestation provisioner has a bucket of its own; other routes are not enrolments.
    assert _call(limited, enrol, client="192.0.2.9").status_code == 200
    assert _call(limited, "/ocsp").status_code == 200


def test_no_rate_set_means_no_limit() -> None:
    limited = RateLimit(_ok, RequestLimits(), clock=_Clock())
    assert {_call(limited).status_code for _ in range(50)} == {200}


def test_the_client_table_is_bounded() -> None:
    limited = RateLimit(_ok, RequestLimits(client_rate=1), clock=_Clock())
    scope = {"type": "http", "path": "/", "headers": []}
    for i in range(MAX_CLIENTS + 10):
        limited._wait({**scope, "client": (f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", 1)})
    assert len(limited.clients) == MAX_CLIENTS


def test_the_app_takes_its_rates_from_the_config_file(ca: FleetCa, tmp_path: Path) -> None:
    (tmp_path / "fleetid.toml").write_text("[rate_limits]\nclient_rate = 1\nclient_burst = 2\n")
    settings = Settings.load(tmp_path, environ={"FLEETID_PUBLIC_URL": BASE})
    assert settings.limits.client_rate == 1
    app = create_app(replace(ca.settings, limits=settings.limits), clock=ca.clock, ca=ca)
    codes = [asgi_request(app, "GET", "/health").status_code for _ in range(4)]
    assert codes[:2] == [200, 200]
    assert 429 in codes[2:]


def test_rates_and_timeouts_come_from_the_environment_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "fleetid.toml").write_text(
        '[rate_limits]\nclient_rate = 5\n[timeouts]\nrequest = "20s"\nstatement = "2s"\n'
    )
    from_file = Settings.load(tmp_path, environ={})
    assert from_file.limits.client_rate == 5
    assert from_file.limits.request_timeout == timedelta(seconds=20)
    assert from_file.statement_timeout_s == 2
    env = {"FLEETID_CLIENT_RATE": "7.5", "FLEETID_REQUEST_TIMEOUT": "3s"}
    overridden = Settings.load(tmp_path, environ=env)
    assert overridden.limits.client_rate == 7.5
    assert overridden.limits.request_timeout == timedelta(seconds=3)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[rate_limits]\nclient_rate = -1\n", "client_rate"),
        ('[rate_limits]\nprovisioner_rate = "fast"\n', "provisioner_rate"),
        ("[rate_limits]\nclient_burst = 0\n", "client_burst"),
        ('[timeouts]\nrequest = "soon"\n', "timeouts.request"),
        ("[timeouts]\nquery = 5\n", "query"),
    ],
)
def test_bad_limits_in_the_file_are_refused(tmp_path: Path, text: str, named: str) -> None:
    (tmp_path / "fleetid.toml").write_text(text)
    with pytest.raises(ConfigError, match=named):
        Settings.load(tmp_path, environ={})


def test_a_bad_rate_in_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FLEETID_CLIENT_RATE"):
        Settings.load(tmp_path, environ={"FLEETID_CLIENT_RATE": "nan"})


# --- request timeout -----------------------------------------------------------------------------


def test_a_request_past_its_timeout_is_503_with_retry_after() -> None:
    release = asyncio.Event()  # never set: the route would wait for ever

    async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()

    response = _call(RequestTimeout(stuck, 0.05))
    body = _problem(response, 503)
    assert body["type"] == "urn:fleetid:problem:timeout"
    assert response.headers["Retry-After"] == "1"


def test_a_request_within_its_timeout_is_answered() -> None:
    assert _call(RequestTimeout(_ok, 30)).text == "ok"
    assert _call(RequestTimeout(_ok, None)).text == "ok"


def test_an_answer_that_started_in_time_runs_to_its_end() -> None:
    async def slow_body(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.2)
        await send({"type": "http.response.body", "body": b"late but whole"})

    assert _call(RequestTimeout(slow_body, 0.05)).text == "late but whole"


# --- statement timeout ---------------------------------------------------------------------------

_SLOW_SQLITE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
)


def _slow_statement(backend: str) -> str:
    return "SELECT pg_sleep(5)" if backend == "postgresql" else _SLOW_SQLITE


def test_a_statement_over_the_timeout_is_a_store_error(db_url: str, backend: str) -> None:
    engine = open_engine(db_url, statement_timeout_s=0.2)
    try:
        with (
            # PostgreSQL cancels the statement (SQLSTATE 57014): unavailable for now, a 503.
            pytest.raises(StoreError, match=r"database (error|unavailable)"),
            database_errors(),
            engine.connect() as connection,
        ):
            connection.exec_driver_sql(_slow_statement(backend))
        # The connection is usable again: short statements run.
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 41 + 1").scalar() == 42
    finally:
        engine.dispose()


def test_a_statement_within_the_timeout_runs(db_url: str) -> None:
    engine = open_engine(db_url, statement_timeout_s=30)
    try:
        with engine.connect() as connection:
            count = connection.exec_driver_sql(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)"
                " SELECT count(*) FROM c"
            ).scalar()
        assert count == 20000
    finally:
        engine.dispose()
