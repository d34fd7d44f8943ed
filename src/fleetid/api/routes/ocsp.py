"""OCSP over HTTP (RFC 6960 App. A): ``POST /ocsp`` and ``GET /ocsp/{base64 request}``.

HTTP status is 200 whenever an OCSPResponse is returned, including ``malformedRequest`` and
``unauthorized`` ones (the OCSP status is in the body); caching headers follow RFC 5019 §6.2.
``fleetid.revocation.ocsp.OcspResponder`` decides. ``install`` also wraps the app's lifespan
with a background loop that polls the registry watermark (re-signing revoked certificates at
once), refreshes due responses and publishes due CRLs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from fleetid.api.openapi import problem_responses
from fleetid.clock import Clock
from fleetid.errors import EncodingError
from fleetid.revocation.ocsp import (
    OCSP_REQUEST_TYPE,
    OCSP_RESPONSE_TYPE,
    OcspAnswer,
    OcspResponder,
    decode_get_path,
)

__all__ = ["install", "router"]

_MAX_GET_PATH: Final = 8192  # twice the POST body limit (fleetid.api.body_limits): base64 + %XX

router = APIRouter(tags=["revocation: OCSP (RFC 6960)"])


def _reply(request: Request, answer: OcspAnswer) -> Response:
    responder: OcspResponder = request.app.state.ocsp_responder
    clock: Clock = request.app.state.ocsp_clock
    headers = answer.http_headers(clock.now(), responder.policy)
    return Response(answer.der, media_type=OCSP_RESPONSE_TYPE, headers=headers)


@router.post(
    "/ocsp",
    response_class=Response,
    responses={200: {"content": {OCSP_RESPONSE_TYPE: {}}}, **problem_responses()},
)
async def post_ocsp(request: Request) -> Response:
    """A DER OCSPRequest in the body (``Content-Type: application/ocsp-request``)."""
    body = await request.body()
    responder: OcspResponder = request.app.state.ocsp_responder
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in {OCSP_REQUEST_TYPE, ""}:  # the size is bounded by body_limits
        body = b""  # answered as malformedRequest
    answer = await run_in_threadpool(responder.respond, body)
    return _reply(request, answer)


@router.get(
    "/ocsp/{encoded:path}",
    response_class=Response,
    responses={200: {"content": {OCSP_RESPONSE_TYPE: {}}}, **problem_responses()},
)
async def get_ocsp(encoded: str, request: Request) -> Response:
    """The request, DER then base64 then URL-encoded, as the last path segment(s)."""
    responder: OcspResponder = request.app.state.ocsp_responder
    try:
        der = decode_get_path(encoded) if len(encoded) <= _MAX_GET_PATH else b""
    except EncodingError:
        der = b""
    answer = await run_in_threadpool(responder.respond, der)
    return _reply(request, answer)


def install(
    app: FastAPI,
    responder: OcspResponder,
    clock: Clock,
    *,
    background: Callable[[], object] | None = None,
) -> None:
    """Serve ``responder`` from ``app``; under a server that runs lifespans, poll in the
    background every ``poll_interval`` (``responder.sync``, ``refresh`` and ``background``).
    """
    app.state.ocsp_responder = responder
    app.state.ocsp_clock = clock
    app.include_router(router)
    previous = app.router.lifespan_context

    def tick() -> None:
        responder.sync()
        responder.refresh()
        if background is not None:
            background()

    async def loop() -> None:
        while True:
            await asyncio.sleep(responder.policy.poll_interval)
            with contextlib.suppress(Exception):  # a failed tick is retried at the next one
                await run_in_threadpool(tick)

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        task = asyncio.create_task(loop())
        try:
            async with previous(app_) as state:
                yield state
        finally:
            task.cancel()

    app.router.lifespan_context = lifespan
