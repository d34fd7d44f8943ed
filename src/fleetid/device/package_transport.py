"""The device's side of ES11 (discovery) and ES9+ (package download) over HTTP.

One ``httpx.Client`` per service origin: the discovery service's, and each preparation service's
address as the event records name it (``clients``), falling back to ``default`` (the network).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import httpx

from fleetid import errors
from fleetid.device.transport import _InProcessTransport, _raise_for_problem

__all__ = ["HttpPackageTransport", "in_process_client"]


def in_process_client(app: Any, base_url: str) -> httpx.Client:
    """A client that reaches ``app`` in this process (demo, tests)."""
    return httpx.Client(base_url=base_url, transport=_InProcessTransport(app))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class HttpPackageTransport:
    """ES11 to one discovery service, ES9+ to whichever preparation service an event names."""

    def __init__(
        self,
        discovery: httpx.Client,
        clients: Mapping[str, httpx.Client] | None = None,
        default: httpx.Client | None = None,
    ) -> None:
        self._discovery = discovery
        self._clients = dict(clients or {})
        self._default = default

    def _client(self, address: str) -> httpx.Client:
        for prefix, client in self._clients.items():
            if address.startswith(prefix):
                return client
        if self._default is None:
            raise errors.UnreachableError(f"no route to the preparation service at {address}")
        return self._default

    @staticmethod
    def _post(client: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = client.post(url, json=body)
        except httpx.TransportError as exc:
            raise errors.UnreachableError(f"cannot reach {url}: {exc}") from exc
        _raise_for_problem(response)
        answer: dict[str, Any] = response.json()
        return answer

    # --- ES11 -----------------------------------------------------------------------------------

    def discovery_initiate(self) -> dict[str, Any]:
        return self._post(self._discovery, "/discovery/initiate-authentication", {})

    def discovery_authenticate(
        self, transaction_id: str, attestation: bytes, chain: list[bytes]
    ) -> dict[str, Any]:
        body = {
            "transactionId": transaction_id,
            "attestation": _b64(attestation),
            "chain": [_b64(c) for c in chain],
        }
        return self._post(self._discovery, "/discovery/authenticate-client", body)

    # --- ES9+ -----------------------------------------------------------------------------------

    def initiate_authentication(self, address: str, euicc_challenge: bytes) -> dict[str, Any]:
        return self._post(
            self._client(address),
            f"{address}/initiate-authentication",
            {"euiccChallenge": _b64(euicc_challenge)},
        )

    def authenticate_client(
        self,
        address: str,
        transaction_id: str,
        event_id: str,
        attestation: bytes,
        chain: list[bytes],
    ) -> dict[str, Any]:
        body = {
            "transactionId": transaction_id,
            "eventId": event_id,
            "attestation": _b64(attestation),
            "chain": [_b64(c) for c in chain],
        }
        return self._post(self._client(address), f"{address}/authenticate-client", body)

    def get_bound_package(
        self,
        address: str,
        transaction_id: str,
        attestation: bytes,
        chain: list[bytes],
        hash_cc: bytes | None,
    ) -> bytes:
        body: dict[str, Any] = {
            "transactionId": transaction_id,
            "attestation": _b64(attestation),
            "chain": [_b64(c) for c in chain],
        }
        if hash_cc is not None:
            body["hashCc"] = _b64(hash_cc)
        answer = self._post(self._client(address), f"{address}/get-bound-package", body)
        return base64.b64decode(answer["boundPackage"])

    def handle_notification(self, address: str, notification: bytes) -> str:
        answer = self._post(
            self._client(address),
            f"{address}/handle-notification",
            {"notification": _b64(notification)},
        )
        return str(answer["state"])
