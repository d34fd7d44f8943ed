"""The request timeout: an answer that has not started within the limit is a 503.

``RequestTimeout`` (ASGI middleware) gives the route ``request_timeout``
(``fleetid.request_limits``) to start its answer. Past it, the client gets 503 problem details
with ``Retry-After`` (RFC 9110 §15.6.4, §10.2.3) and the route's task is cancelled. Work already
handed to a thread (a database transaction) runs to its end, committed or rolled back whole, so
a timed-out enrolment is either recorded or not, never half; the database's own statement
timeout bounds that work. An answer that has started streams on unbounded.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetid.api.errors import problem_response

__all__ = ["RETRY_AFTER_S", "RequestTimeout"]

RETRY_AFTER_S = 1


class RequestTimeout:
    """ASGI middleware: 503 when the app has not started its answer within ``seconds``."""

    def __init__(self, app: ASGIApp, seconds: float | None) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds is None:
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, watched))
        waiter = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait(
                {task, waiter}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if started.is_set() or task.done():
            await task  # the answer runs to its end (or raises as it would have)
            return
        task.cancel()
        response = problem_response(
            503,
            "timeout",
            "Request timed out",
            f"the request took over this authority's limit of {self.seconds:g} s",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        await response(scope, receive, send)
