"""Requests to an ASGI app in this process (httpx's ASGI transport, no sockets)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.authority.provisioners.token import IssuedToken

__all__ = ["BASE", "asgi_request", "enrol_with_token"]

BASE = "http://fleet.test"


def asgi_request(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(send())


def enrol_with_token(app: Any, token: IssuedToken, **headers: str) -> httpx.Response:
    """``simpleenroll`` with a fresh P-256 key, authorised by ``token`` (HTTP Basic)."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return asgi_request(
        app,
        "POST",
        "/.well-known/est/simpleenroll",
        content=base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)),
        headers={"Content-Type": "application/pkcs10", **headers},
        auth=(token.username, token.password),
    )
