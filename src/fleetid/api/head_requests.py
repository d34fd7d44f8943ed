"""HEAD on every GET route (RFC 9110 §9.3.2): the GET's status and header fields, no content.

FastAPI routes declared with ``@router.get`` answer only GET; ``HeadAsGet`` runs a HEAD request
as the GET it mirrors and drops the body it would send (``Content-Length`` stays the GET's, as
§9.3.2 allows). A route without GET still answers 405.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGet"]


class HeadAsGet:
    """ASGI middleware: HEAD is served by the GET handler, without a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        body_sent = False

        async def headers_only(message: Message) -> None:
            nonlocal body_sent
            if message["type"] == "http.response.body":
                if body_sent:
                    return
                body_sent = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server still sees HEAD in its own scope and sends no content either.
        await self.app({**scope, "method": "GET"}, receive, headers_only)
