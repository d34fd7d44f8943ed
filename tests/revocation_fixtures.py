"""Shared set-up for the revocation tests: cheap certificate rows, or a real fleet CA."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.fleet_ca import CRL_SHARDS, FleetCa
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.policy import CredentialType
from fleetid.revocation.registry import RevocationRegistry
from fleetid.store.repositories import NewCaKey, NewCertificate, Store
from fleetid.store.schema import CaRole

__all__ = [
    "BASE",
    "NOW",
    "AsgiClient",
    "add_certificates",
    "add_issuer",
    "crl_shard_of",
    "issue",
    "open_fleet",
    "revoke",
    "same_shard",
]

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def add_issuer(store: Store, generation: int = 1) -> tuple[int, bytes]:
    """An issuing-CA row with a random key id (no real certificate behind it): (id, key id)."""
    key_id = secrets.token_bytes(20)
    with store.transaction() as tx:
        record = tx.ca_keys.add(
            NewCaKey(
                role=CaRole.ISSUING,
                generation=generation,
                hsm_label=f"test-issuing-{generation}",
                subject=f"CN=test issuing {generation}",
                subject_key_id=key_id,
                not_before=NOW - timedelta(days=1),
                not_after=NOW + timedelta(days=3650),
                active=True,
                certificate=b"\x30\x00",
                created_at=NOW,
            )
        )
    return record.id, key_id


def add_certificates(
    store: Store,
    issuer_id: int,
    count: int,
    *,
    issued_at: datetime = NOW,
    lifetime: timedelta = timedelta(days=365),
) -> list[int]:
    """``count`` certificate rows with random serials; returns the serial numbers."""
    serials = [int.from_bytes(secrets.token_bytes(20), "big") >> 1 for _ in range(count)]
    with store.transaction() as tx:
        for serial in serials:
            tx.certificates.add(
                NewCertificate(
                    serial=f"{serial:040x}",
                    issuer_id=issuer_id,
                    device_id=None,
                    profile="token-device",
                    subject="CN=dev",
                    public_key_sha256=hashlib.sha256(serial.to_bytes(20, "big")).digest(),
                    not_before=issued_at,
                    not_after=issued_at + lifetime,
                    issued_at=issued_at,
                    der=b"\x30\x00",
                )
            )
    return serials


BASE = "http://fleet.test"


def open_fleet(data_dir: Path, db_url: str, clock: ManualClock) -> FleetCa:
    """A fleet CA (HSM-held keys) on ``db_url`` whose certificates name ``BASE``."""
    settings = Settings.load(
        data_dir, environ={"FLEETID_DATABASE_URL": db_url, "FLEETID_PUBLIC_URL": BASE}
    )
    return FleetCa.init(settings, clock=clock, name="Revocation Fleet")


def issue(ca: FleetCa, count: int) -> list[x509.Certificate]:
    """``count`` operational certificates under the active issuing CA."""
    issued = []
    with ca.store.transaction() as tx:
        for i in range(count):
            certificate, _ = ca.issue(
                tx,
                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                credential_type=CredentialType.OPERATIONAL,
                common_name=f"device-{i}",
                device_id=None,
            )
            issued.append(certificate)
    return issued


def crl_shard_of(certificate: x509.Certificate) -> int:
    """The CRL shard a fleet certificate names (``fleetid.authority.fleet_ca.crl_shard``)."""
    return certificate.serial_number % CRL_SHARDS


def same_shard(ca: FleetCa, count: int) -> list[x509.Certificate]:
    """``count`` certificates of one shard (issued until one shard has that many)."""
    by_shard: dict[int, list[x509.Certificate]] = {}
    while True:
        for certificate in issue(ca, 16):
            by_shard.setdefault(crl_shard_of(certificate), []).append(certificate)
        for group in by_shard.values():
            if len(group) >= count:
                return group[:count]


def revoke(ca: FleetCa, certificate: x509.Certificate, reason: str = "keyCompromise") -> int:
    """Revoke one certificate through the registry; returns its revocation sequence number."""
    registry = RevocationRegistry(ca.store)
    return registry.revoke(f"{certificate.serial_number:x}", reason, now=ca.clock.now()).sequence


class AsgiClient:
    """A synchronous face on httpx's in-process ASGI transport (no sockets)."""

    def __init__(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=self._transport, base_url=BASE) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)
