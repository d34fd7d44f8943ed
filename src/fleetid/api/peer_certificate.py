"""The TLS client certificate of a request, as the server verified it.

The app reads it from the ASGI TLS extension (``scope["extensions"]["tls"]``, ASGI spec "TLS
Extension": ``client_cert_chain``, PEM, the client's own certificate first). Only the server
sets a scope, so no request header can pretend to one.

uvicorn does not fill that extension itself; ``PeerCertificateProtocol`` is its HTTP/1.1 protocol
(httptools) with one addition: when the connection's TLS handshake verified a client certificate,
each request of that connection carries it in the extension. ``fleetid serve --https`` asks for a
client certificate optionally (``ssl.CERT_OPTIONAL``) with the fleet's CA certificates as client
trust anchors (``client_trust_pem``), so a device can re-enrol with its current credential as
RFC 7030 §3.3.2 describes (``curl --cert``), and clients without one connect as before.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "PeerCertificateProtocol",
    "client_trust_pem",
    "peer_certificate",
    "with_client_certificate",
]


def peer_certificate(request: Request) -> x509.Certificate | None:
    """The verified TLS client certificate of ``request``'s connection, if it presented one."""
    tls = (request.scope.get("extensions") or {}).get("tls")
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    if not chain:
        return None
    return x509.load_pem_x509_certificate(str(chain[0]).encode())


def client_trust_pem(certificates: list[x509.Certificate]) -> bytes:
    """The client trust anchors' PEM file content (every CA generation of the fleet)."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def with_client_certificate(app: ASGIApp, pem: str) -> ASGIApp:
    """``app`` with ``pem`` as the TLS client certificate of every HTTP request (one connection)."""

    async def with_tls(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = scope.setdefault("extensions", {})
            extensions["tls"] = {
                "client_cert_chain": [pem],
                "client_cert_name": None,
                "client_cert_error": None,
            }
        await app(scope, receive, send)

    return with_tls


class PeerCertificateProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, handing the verified client certificate to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object: Any = transport.get_extra_info("ssl_object")
        # asyncio calls connection_made after the handshake: the certificate is verified here
        # (CERT_OPTIONAL refuses the handshake on a certificate that does not verify).
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.app = with_client_certificate(self.app, ssl.DER_cert_to_PEM_cert(der))
