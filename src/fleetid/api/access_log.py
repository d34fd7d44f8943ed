"""The access log and the request ID: one line and one metric update per HTTP request.

Each request gets an ID: the client's ``X-Request-ID`` when it is a plausible one (1 to 64
characters of ``[A-Za-z0-9._:-]``; anything else could forge log lines or smuggle data), else a
fresh random one. The ID comes back in the response's ``X-Request-ID``. When the answer is
sent, the ``fleetid.access`` logger writes one line (``fleetid.structured_logs``): request ID,
method, path, status, latency in milliseconds, and the provisioner and device when the handling
code named them (``annotate``). The query string and the body are never logged (a GET OCSP
request or a token could ride there). ``fleetid_http_requests_total`` and
``fleetid_http_request_seconds`` count the same by route template, so that a path's variable
parts (an OCSP request, a serial) do not become labels.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetid import metrics
from fleetid.structured_logs import bind_request, release_request

__all__ = ["REQUEST_ID_HEADER", "AccessLog"]

REQUEST_ID_HEADER: Final = "X-Request-ID"
_HEADER_KEY: Final = REQUEST_ID_HEADER.lower().encode()
_PLAUSIBLE_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_UNMATCHED: Final = "unmatched"

_log = logging.getLogger("fleetid.access")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == _HEADER_KEY and _PLAUSIBLE_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return secrets.token_hex(8)


def _route(scope: Scope) -> str:
    """The matched route's path template (FastAPI puts the route in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else _UNMATCHED


class AccessLog:
    """ASGI middleware: request ID in and out, one access-log line, the HTTP metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self._logged if scope["type"] == "http" else self.app
        await answer(scope, receive, send)

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope)
        fields: dict[str, Any] = {
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
        }
        status = 500  # unless the app starts an answer
        header = (_HEADER_KEY, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = bind_request(fields)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            release_request(token)
            route = _route(scope)
            metrics.HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(route).observe(elapsed)
            fields["status"] = status
            fields["latency_ms"] = round(elapsed * 1000, 3)
            _log.info("request", extra={"fields": fields})
