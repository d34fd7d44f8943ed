"""How a device reaches its authority: EST and the lifecycle routes over HTTP(S), or in process.

``HttpTransport`` wraps an ``httpx.Client``: over the network (HTTPS with the authority's chain
as CA bundle, or plain HTTP on loopback), or in process through the ASGI app (``in_process``:
Starlette's test client, an ``httpx.Client`` whose transport calls the app directly; no socket).
Bodies are as RFC 7030 §4 writes them: base64 DER PKCS#10 in, base64 DER certs-only CMS out.

Refusals come back as RFC 9457 problem documents and are raised as the matching
``fleetid.errors`` family, carrying the authority's ``detail``; an authority that cannot be
reached (refused, timed out, TLS handshake failed) raises ``UnreachableError``.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import anyio.from_thread
import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from fleetid import errors
from fleetid.formats.proof import CHALLENGE_PATH, PROOF_HEADER, RELEASE_PATH, CredentialProof
from fleetid.formats.renewal_info import RenewalWindow, cert_id, window_from_json

__all__ = ["AuthorityTransport", "HttpTransport", "RenewalInfoSource"]

RENEWAL_INFO_PATH: Final = "/renewal-info"  # fleetid.api.routes.renewal_info

_EST: Final = "/.well-known/est"
_PKCS10: Final = "application/pkcs10"

_BY_STATUS: Final[dict[int, type[errors.FleetIdError]]] = {
    400: errors.VerificationError,
    401: errors.AuthenticationError,
    403: errors.PolicyError,
    404: errors.NotFoundError,
    409: errors.StoreError,
    413: errors.BodyTooLargeError,
    415: errors.UnsupportedMediaTypeError,
    429: errors.LimitExceededError,
}


class AuthorityTransport(Protocol):
    """What the device agent needs from an authority."""

    def challenge(self, device_id: str) -> bytes: ...

    def cacerts(self) -> list[x509.Certificate]: ...

    def simple_enroll(self, csr_der: bytes) -> x509.Certificate: ...

    def simple_reenroll(
        self, csr_der: bytes, proof: CredentialProof | None = None
    ) -> x509.Certificate: ...

    def release(self, body: bytes, proof: CredentialProof) -> list[str]: ...


@runtime_checkable
class RenewalInfoSource(Protocol):
    """An authority that says when to renew (RFC 9773); the agent asks it when it can."""

    def renewal_info(self, certificate: x509.Certificate) -> RenewalWindow: ...


def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    detail = response.text
    kind = ""
    try:
        problem: Any = response.json()
        detail = str(problem.get("detail", detail))
        kind = str(problem.get("type", ""))
        if isinstance(problem.get("reason"), str):  # fleetid's extension member (RFC 9457 §3.2)
            detail += f" [{problem['reason']}]"
    except ValueError:
        pass
    family = _BY_STATUS.get(response.status_code, errors.FleetIdError)
    if kind.endswith(":bad-encoding"):
        family = errors.EncodingError
    raise family(f"{response.status_code} {response.request.url.path}: {detail}")


def _certificates(body: bytes) -> list[x509.Certificate]:
    try:
        return pkcs7.load_der_pkcs7_certificates(base64.b64decode(b"".join(body.split())))
    except ValueError as exc:
        raise errors.EncodingError(f"the authority's answer is not certs-only CMS: {exc}") from exc


class _InProcessTransport(httpx.BaseTransport):
    """A synchronous face on ``httpx.ASGITransport``: each request runs the ASGI app on an event
    loop in a helper thread (an anyio blocking portal), as a server's worker would."""

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, httpx.Headers, bytes]:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._asgi.handle_async_request(inner)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        self._portal_cm.__exit__(None, None, None)


def in_process_client(app: Any, base_url: str = "http://fleetid.invalid") -> httpx.Client:
    """An ``httpx.Client`` whose requests run the ASGI ``app`` in this process (no socket)."""
    return httpx.Client(base_url=base_url, transport=_InProcessTransport(app))


class HttpTransport:
    """``AuthorityTransport`` over an ``httpx.Client``."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    @classmethod
    def connect(
        cls, base_url: str, *, ca_bundle: Path | None = None, timeout: float = 10.0
    ) -> HttpTransport:
        """Over the network; HTTPS is verified against ``ca_bundle`` (the authority's chain)."""
        verify: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca_bundle))
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise errors.ConfigError(
                    f"cannot use {ca_bundle} as the authority's CA bundle: {exc}"
                ) from exc
        try:
            return cls(httpx.Client(base_url=base_url, verify=verify, timeout=timeout))
        except httpx.InvalidURL as exc:
            raise errors.ConfigError(f"{base_url!r} is not a URL: {exc}") from exc

    @classmethod
    def in_process(cls, app: Any, base_url: str = "http://fleetid.invalid") -> HttpTransport:
        """Through the ASGI app in this process (demo, tests): no socket is opened."""
        return cls(in_process_client(app, base_url))

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            url = self._client.base_url.join(path)
            raise errors.UnreachableError(f"cannot reach {url}: {exc}") from exc

    def challenge(self, device_id: str) -> bytes:
        response = self._send("POST", CHALLENGE_PATH, json={"device_id": device_id})
        _raise_for_problem(response)
        text = str(response.json()["nonce"])
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    def cacerts(self) -> list[x509.Certificate]:
        response = self._send("GET", f"{_EST}/cacerts")
        _raise_for_problem(response)
        return _certificates(response.content)

    def _post_csr(
        self, operation: str, csr_der: bytes, headers: dict[str, str]
    ) -> x509.Certificate:
        response = self._send(
            "POST",
            f"{_EST}/{operation}",
            content=base64.encodebytes(csr_der),
            headers={"Content-Type": _PKCS10, "Content-Transfer-Encoding": "base64", **headers},
        )
        _raise_for_problem(response)
        (certificate, *_) = _certificates(response.content)
        return certificate

    def simple_enroll(self, csr_der: bytes) -> x509.Certificate:
        return self._post_csr("simpleenroll", csr_der, {})

    def simple_reenroll(
        self, csr_der: bytes, proof: CredentialProof | None = None
    ) -> x509.Certificate:
        headers = {} if proof is None else {PROOF_HEADER: proof.header()}
        return self._post_csr("simplereenroll", csr_der, headers)

    def renewal_info(self, certificate: x509.Certificate) -> RenewalWindow:
        """The authority's renewal window for ``certificate`` (RFC 9773 §4.2)."""
        response = self._send("GET", f"{RENEWAL_INFO_PATH}/{cert_id(certificate)}")
        _raise_for_problem(response)
        try:
            document: object = response.json()
        except ValueError as exc:
            raise errors.EncodingError("the renewal-info answer is not JSON") from exc
        return window_from_json(document)

    def release(self, body: bytes, proof: CredentialProof) -> list[str]:
        response = self._send(
            "POST",
            RELEASE_PATH,
            content=body,
            headers={PROOF_HEADER: proof.header(), "Content-Type": "text/plain"},
        )
        _raise_for_problem(response)
        revoked: Sequence[str] = response.json()["revoked"]
        return list(revoked)
