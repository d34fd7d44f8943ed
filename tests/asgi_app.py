"""One request to an ASGI app in this process (httpx's ASGI transport, no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

__all__ = ["BASE", "asgi_request"]

BASE = "http://fleet.test"


def asgi_request(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(send())
