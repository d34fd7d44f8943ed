"""Request rates: per client address and per provisioner, 429 problem details with Retry-After.

Two token buckets decide (``fleetid.request_limits`` sets their rates): one per client address
for every request, and one per provisioner for the enrolment routes, shared by all clients, so
that one flooding client, or a flood of enrolments from many, cannot starve the others. A request
over either answers 429 (RFC 6585 §4) as problem details (RFC 9457) with ``Retry-After`` in
seconds (RFC 9110 §10.2.3): when the bucket holds a token again.

The buckets live in the process: under ``fleetid serve --workers N`` each worker holds its own,
so a client may send up to N times the rate. The per-address table is bounded (least recently
seen addresses are forgotten first), so that spoofed or many addresses cannot fill memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from fleetid.api.errors import problem_response
from fleetid.formats.proof import CHALLENGE_PATH, REENROLL_PATH
from fleetid.request_limits import RequestLimits

__all__ = ["MAX_CLIENTS", "RateLimit", "TokenBucket", "provisioner_of"]

MAX_CLIENTS: Final = 65_536
_EST_ENROL: Final = "/.well-known/est/simpleenroll"


@dataclass
class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` a second; a request takes one."""

    rate: float
    burst: int
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one is there."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def provisioner_of(scope: Scope) -> str | None:
    """The provisioner an enrolment request goes to: HTTP Basic EST is ``token``; EST without
    it, and the challenge and re-enrolment routes, ``attestation``; other routes none."""
    path = scope["path"]
    if path == _EST_ENROL:
        basic = any(
            name == b"authorization" and value[:6].lower() == b"basic "
            for name, value in scope["headers"]
        )
        return "token" if basic else "attestation"
    if path in (CHALLENGE_PATH, REENROLL_PATH):
        return "attestation"
    return None


class RateLimit:
    """ASGI middleware: the client's bucket, then the provisioner's, or 429."""

    def __init__(
        self,
        app: ASGIApp,
        limits: RequestLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limits = limits
        self.clock = clock
        self.clients: OrderedDict[str, TokenBucket] = OrderedDict()
        self.provisioners: dict[str, TokenBucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            wait = self._wait(scope)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                response = problem_response(
                    429,
                    "too-many",
                    "Too many requests",
                    f"over this authority's request rate: retry in {retry} s",
                    headers={"Retry-After": str(retry)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _wait(self, scope: Scope) -> float:
        now = self.clock()
        limits = self.limits
        if limits.client_rate > 0:
            client = scope.get("client")
            address = client[0] if client else "-"
            bucket = self.clients.pop(address, None) or self._bucket(
                limits.client_rate, limits.burst(limits.client_rate, limits.client_burst), now
            )
            self.clients[address] = bucket  # most recently seen last
            if len(self.clients) > MAX_CLIENTS:
                self.clients.popitem(last=False)
            wait = bucket.take(now)
            if wait > 0:
                return wait
        provisioner = provisioner_of(scope) if limits.provisioner_rate > 0 else None
        if provisioner is None:
            return 0.0
        rate, burst = limits.provisioner_rate, limits.provisioner_burst
        bucket = self.provisioners.setdefault(
            provisioner, self._bucket(rate, limits.burst(rate, burst), now)
        )
        return bucket.take(now)

    @staticmethod
    def _bucket(rate: float, burst: int, now: float) -> TokenBucket:
        return TokenBucket(rate=rate, burst=burst, tokens=float(burst), stamp=now)
