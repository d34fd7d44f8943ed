"""CRL distribution points: ``GET /crl/issuing-{generation}/{shard}.crl`` and
``…/{shard}-delta.crl``, the URLs written into certificates (``fleetid.authority.fleet_ca``), and
``GET /crl/root-{generation}.crl``, the root's CRL that issuing CAs name; and the CA
certificates themselves, ``GET /ca/root-{generation}.crt`` and ``/ca/issuing-{generation}.crt``.

Answers ``application/pkix-crl`` (RFC 2585 §4.2) DER with RFC 9111 caching headers (ETag,
Last-Modified, Expires, ``Cache-Control: public, max-age`` never past nextUpdate); a matching
``If-None-Match`` gets 304. ``fleetid.revocation.crl.CrlPublisher`` decides what is current.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from fleetid.api.openapi import problem_responses
from fleetid.clock import Clock
from fleetid.errors import NotFoundError
from fleetid.revocation.crl import (
    CRL_MEDIA_TYPE,
    CrlKind,
    CrlPublisher,
    Publication,
    http_headers,
)

__all__ = ["install", "router", "scheduled"]

CERT_MEDIA_TYPE: Final = "application/pkix-cert"  # RFC 2585 §4.1
# Canonical decimal only (no leading zero, no sign): one name per CRL, as certificates write it.
_NAME: Final = re.compile(r"^(?P<shard>0|[1-9][0-9]{0,3})(?P<delta>-delta)?\.crl$")
_GENERATION: Final = re.compile(r"^[1-9][0-9]{0,5}$")
_CRL_ANSWER: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {CRL_MEDIA_TYPE: {}}},
    304: {"description": "Not Modified (If-None-Match)"},
    **problem_responses(404, 503),
}

router = APIRouter(tags=["revocation: CRLs (RFC 5280)"])


def _generation(text: str, what: str) -> int:
    if _GENERATION.fullmatch(text) is None:
        raise NotFoundError(f"no such {what}")
    return int(text)


@router.get("/crl/issuing-{generation}/{name}", response_class=Response, responses=_CRL_ANSWER)
async def get_crl(generation: str, name: str, request: Request) -> Response:
    """A shard's full CRL (``{shard}.crl``) or delta CRL (``{shard}-delta.crl``)."""
    match = _NAME.fullmatch(name)
    if match is None or _GENERATION.fullmatch(generation) is None:
        raise NotFoundError("no such CRL: /crl/issuing-{generation}/{shard}[-delta].crl")
    kind = CrlKind.DELTA if match["delta"] else CrlKind.FULL
    publisher: CrlPublisher = request.app.state.crl_publisher
    clock: Clock = request.app.state.crl_clock
    publication = await run_in_threadpool(
        publisher.current, int(generation), int(match["shard"]), kind
    )
    return _answer(publication, request, clock.now(), publisher)


@router.get("/crl/root-{generation}.crl", response_class=Response, responses=_CRL_ANSWER)
async def get_root_crl(generation: str, request: Request) -> Response:
    """The CRL a fleet root signs over its issuing CAs (named in their cRLDistributionPoints)."""
    number = _generation(generation, "root CRL: /crl/root-{generation}.crl")
    publisher: CrlPublisher = request.app.state.crl_publisher
    clock: Clock = request.app.state.crl_clock
    publication = await run_in_threadpool(publisher.current_root, number)
    return _answer(publication, request, clock.now(), publisher)


@router.get(
    "/ca/{role}-{generation}.crt",
    response_class=Response,
    responses={200: {"content": {CERT_MEDIA_TYPE: {}}}, **problem_responses(404)},
)
async def get_ca_certificate(role: str, generation: str, request: Request) -> Response:
    """A fleet root's or issuing CA's certificate, DER (RFC 2585 §4.1 ``application/pkix-cert``,
    what RFC 5280 §4.2.2.1 caIssuers points at), for relying parties building the chain."""
    number = _generation(generation, "CA certificate: /ca/{root|issuing}-{generation}.crt")
    publisher: CrlPublisher = request.app.state.crl_publisher
    records = {"root": publisher.roots, "issuing": publisher.issuers}.get(role)
    found = (
        None
        if records is None
        else next((r for r in await run_in_threadpool(records) if r.generation == number), None)
    )
    if found is None:
        raise NotFoundError(f"no {role} CA of generation {number}")
    return Response(
        found.certificate_der,
        media_type=CERT_MEDIA_TYPE,
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _answer(
    publication: Publication, request: Request, now: datetime, publisher: CrlPublisher
) -> Response:
    headers = http_headers(publication, now, publisher.policy)
    if publication.etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(publication.der, media_type=CRL_MEDIA_TYPE, headers=headers)


def scheduled(publisher: CrlPublisher, every: float = 30.0) -> Callable[[], None]:
    """A callable for a background loop: ``publisher.publish()`` at most every ``every`` s."""
    last = [-every]

    def tick() -> None:
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            publisher.publish()

    return tick


def install(app: FastAPI, publisher: CrlPublisher, clock: Clock) -> None:
    """Serve ``publisher``'s CRLs from ``app``."""
    app.state.crl_publisher = publisher
    app.state.crl_clock = clock
    app.include_router(router)
