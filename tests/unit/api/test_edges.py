"""The HTTP edge's own rules, over the ASGI app: body limits, HEAD, canonical CRL names, bounded
problem details, 503 for what this authority is not configured for."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from tests.asgi_app import asgi_request

from fleetid.api.body_limits import LIMITS
from fleetid.api.errors import MAX_DETAIL
from fleetid.authority.fleet_ca import FleetCa

EST = "/.well-known/est"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert len(body["detail"]) <= MAX_DETAIL
    return body


# --- body limits ---------------------------------------------------------------------------------


def test_declared_length_over_the_limit_is_413_before_the_body_is_read(app: Any) -> None:
    pulled: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        # Finite, so that an app reading it all fails the test instead of filling memory.
        message = {"type": "http.request", "body": b"A" * 1024, "more_body": len(pulled) < 99}
        pulled.append(message)
        return message

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    limit = LIMITS[f"{EST}/simpleenroll"]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{EST}/simpleenroll",
        "raw_path": f"{EST}/simpleenroll".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"fleet.test"),
            (b"content-type", b"application/pkcs10"),
            (b"content-length", str(limit + 1).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert pulled == []


def test_a_streamed_body_is_cut_off_at_the_limit(app: Any) -> None:
    # No Content-Length (chunked): the app stops reading once the limit is passed.
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"A" * 1024, "more_body": pulled < 100}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/enrol/challenge",
        "raw_path": b"/enrol/challenge",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"fleet.test"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert pulled == LIMITS["/enrol/challenge"] // 1024 + 1


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        (f"{EST}/simpleenroll", "application/pkcs10"),
        (f"{EST}/simplereenroll", "application/pkcs10"),
        ("/enrol/challenge", "application/json"),
        ("/enrol/release", "text/plain"),
        ("/ocsp", "application/ocsp-request"),
    ],
)
def test_each_post_route_answers_413_over_its_limit(app: Any, path: str, content_type: str) -> None:
    body = b"A" * (LIMITS[path] + 1)
    response = asgi_request(app, "POST", path, content=body, headers={"Content-Type": content_type})
    assert f"limit of {LIMITS[path]} octets" in _problem(response, 413)["detail"]


def test_a_content_length_that_is_not_a_number_is_400(app: Any) -> None:
    response = asgi_request(app, "POST", "/ocsp", content=b"", headers={"Content-Length": "-1"})
    _problem(response, 400)


# --- HEAD ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{EST}/cacerts", f"{EST}/csrattrs", "/health", "/openapi.json"])
def test_head_answers_like_get_without_content(app: Any, path: str) -> None:
    got = asgi_request(app, "GET", path)
    head = asgi_request(app, "HEAD", path)
    assert (head.status_code, got.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


def test_head_on_a_crl_answers_like_get(app: Any) -> None:
    got = asgi_request(app, "GET", "/crl/issuing-1/0.crl")
    head = asgi_request(app, "HEAD", "/crl/issuing-1/0.crl")
    assert (head.status_code, head.content) == (got.status_code, b"")
    assert head.headers["etag"] == got.headers["etag"]


def test_head_on_a_post_route_is_405(app: Any) -> None:
    assert asgi_request(app, "HEAD", f"{EST}/simpleenroll").status_code == 405


# --- CRL names -----------------------------------------------------------------------------------


def test_the_canonical_crl_name_is_served(app: Any) -> None:
    assert asgi_request(app, "GET", "/crl/issuing-1/0.crl").status_code == 200
    assert asgi_request(app, "GET", "/crl/issuing-1/0-delta.crl").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/crl/issuing-1/00.crl",
        "/crl/issuing-1/01.crl",
        "/crl/issuing-1/00-delta.crl",
        "/crl/issuing-01/0.crl",
        "/crl/issuing-+1/0.crl",
        "/crl/issuing-0/0.crl",
        "/crl/issuing-1/+0.crl",
        "/crl/issuing-1/0.crl%0A",
    ],
)
def test_non_canonical_crl_names_are_404(app: Any, path: str) -> None:
    _problem(asgi_request(app, "GET", path), 404)


# --- problem details -----------------------------------------------------------------------------


def test_a_csr_that_does_not_parse_names_no_library_internals(app: Any, ca: FleetCa) -> None:
    response = asgi_request(
        app,
        "POST",
        f"{EST}/simpleenroll",
        content=base64.encodebytes(b"\x30\x03\x02\x01\x00"),
        headers={"Content-Type": "application/pkcs10"},
        auth=("t-0", "x"),
    )
    detail = _problem(response, 400)["detail"]
    assert detail == "the body is not a DER PKCS#10 CertificationRequest"


@pytest.mark.parametrize(
    "path",
    [
        "/crl/issuing-1/" + "9" * 3000 + ".crl",
        "/crl/issuing-" + "x" * 3000 + "/0.crl",
        "/revocation/filter/" + "z" * 3000,
    ],
)
def test_a_long_path_is_not_echoed(app: Any, path: str) -> None:
    response = asgi_request(app, "GET", path)
    assert response.status_code in {400, 404}
    body = _problem(response, response.status_code)
    assert "999999" not in body["detail"]
    assert "xxxxxx" not in body["detail"]
    assert "zzzzzz" not in body["detail"]
    assert len(response.content) < 500


def test_a_validation_error_is_a_sentence_not_a_repr(app: Any) -> None:
    body = _problem(asgi_request(app, "GET", "/revocation/filter/" + "z" * 50), 400)
    assert body["detail"].startswith("path.kind: ")
    for leak in ("{", "'input'", "'type'", "ctx"):
        assert leak not in body["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "v2; serial=00; nonce=AA; sig=AA",
        "v1; serial=00; nonce=" + "!" * 2000 + "; sig=AA",
        "v1; " + "x" * 3000,
        "v1; serial=00; nonce=AA; sig=AA; extra=" + "y" * 3000,
    ],
)
def test_a_malformed_proof_header_is_a_bounded_sentence(app: Any, header: str) -> None:
    response = asgi_request(
        app,
        "POST",
        "/enrol/release",
        content=b"transfer",
        headers={"Fleetid-Proof": header, "Content-Type": "text/plain"},
    )
    body = _problem(response, 400)
    assert "Fleetid-Proof" in body["detail"]
    for echoed in ("!!!!", "xxxx", "yyyy"):
        assert echoed not in body["detail"]


# --- not configured ------------------------------------------------------------------------------


def test_the_challenge_route_is_503_when_attestation_is_not_configured(app: Any) -> None:
    response = asgi_request(app, "POST", "/enrol/challenge", json={"device_id": "gw-1"})
    body = _problem(response, 503)
    assert body["type"] == "urn:fleetid:problem:not-configured"
    assert "no manufacturer root is trusted" in body["detail"]


# --- OpenAPI -------------------------------------------------------------------------------------

# Every non-2xx status each route can answer (400, 413 and 500 on every route: a malformed
# Content-Length, a body over the route's limit, an internal error).
_STATUSES: dict[tuple[str, str], set[str]] = {
    ("get", f"{EST}/cacerts"): set(),
    ("get", f"{EST}/csrattrs"): set(),
    ("post", f"{EST}/simpleenroll"): {"401", "403", "409", "415", "503"},
    ("post", f"{EST}/simplereenroll"): {"401", "403", "409", "415", "503"},
    ("post", "/enrol/challenge"): {"409", "429", "503"},
    ("post", "/enrol/release"): {"401", "403", "409", "503"},
    ("post", "/ocsp"): set(),
    ("get", "/ocsp/{encoded}"): set(),
    ("get", "/crl/issuing-{generation}/{name}"): {"304", "404", "503"},
    ("get", "/crl/root-{generation}.crl"): {"304", "404", "503"},
    ("get", "/ca/{role}-{generation}.crt"): {"404"},
    ("get", "/revocation/filter/{kind}"): {"304", "404"},
    ("get", "/health"): set(),
    ("post", "/preparation/initiate-authentication"): {"403", "409", "503"},
    ("post", "/preparation/authenticate-client"): {"401", "403", "409", "503"},
    ("post", "/preparation/get-bound-package"): {"401", "403", "409", "503"},
    ("post", "/preparation/handle-notification"): {"401", "403", "409"},
    ("post", "/discovery/initiate-authentication"): {"409"},
    ("post", "/discovery/authenticate-client"): {"401", "409"},
    # The admin API: every route refuses without an operator certificate (401) or role (403).
    ("get", "/admin/whoami"): {"401", "403"},
    ("get", "/admin/certificates"): {"401", "403"},
    ("get", "/admin/certificates/{serial}"): {"401", "403", "404"},
    ("get", "/admin/certificates/{serial}/pem"): {"401", "403", "404"},
    ("get", "/admin/devices"): {"401", "403"},
    ("get", "/admin/devices/{device_id}"): {"401", "403", "404"},
    ("get", "/admin/tokens"): {"401", "403"},
    ("get", "/admin/manufacturers"): {"401", "403"},
    ("get", "/admin/operators"): {"401", "403"},
    ("post", "/admin/certificates/{serial}/revocation"): {"401", "403", "404", "409"},
    ("post", "/admin/devices/{device_id}/revocation"): {"401", "403", "404", "409"},
    ("post", "/admin/tokens"): {"401", "403", "409"},
    ("delete", "/admin/tokens/{username}"): {"401", "403", "404"},
    ("post", "/admin/crls"): {"401", "403", "503"},
    ("post", "/admin/manufacturers"): {"401", "403", "415"},
    ("delete", "/admin/manufacturers/{fingerprint}"): {"401", "403"},
    ("post", "/admin/operators/{serial}/revocation"): {"401", "403", "404"},
    ("get", "/renewal-info/{cert_id}"): {"404"},
}


def test_openapi_lists_every_status_of_every_route_as_problem_details(app: Any) -> None:
    document = asgi_request(app, "GET", "/openapi.json").json()
    assert document["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    seen = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            seen.add((method, path))
            responses = operation["responses"]
            errors = {s for s in responses if not s.startswith("2")}
            common = {"400", "413", "429", "500", "503"}
            assert errors == _STATUSES[(method, path)] | common, (method, path)
            for status in errors - {"304"}:
                content = responses[status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                schema = content["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
    assert seen == set(_STATUSES)


@pytest.mark.parametrize(("method", "path"), sorted(_STATUSES))
def test_a_route_answers_only_statuses_it_documents(app: Any, method: str, path: str) -> None:
    document = asgi_request(app, "GET", "/openapi.json").json()
    documented = {int(s) for s in document["paths"][path][method]["responses"]}
    concrete = (
        path.replace("{encoded}", "MAo=")
        .replace("{generation}", "1")
        .replace("{name}", "0.crl")
        .replace("{kind}", "full")
        .replace("{role}", "root")
        .replace("{cert_id}", "AA.AQ")
    )
    attempts = [
        {"content": b"", "headers": {"Content-Type": "application/pkcs10"}},
        {"content": b"garbage", "headers": {"Content-Type": "text/plain"}},
        {"content": b"A" * 70_000, "headers": {"Content-Type": "application/pkcs10"}},
        {"json": {"device_id": "gw-1"}},
    ]
    for attempt in attempts:
        response = asgi_request(app, method.upper(), concrete, **attempt)
        assert response.status_code in documented, (attempt, response.text)
        if response.status_code >= 400:
            _problem(response, response.status_code)
