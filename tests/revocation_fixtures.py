"""Shared set-up for the revocation tests: a store with cheap certificate rows."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from fleetid.store.repositories import NewCaKey, NewCertificate, Store
from fleetid.store.schema import CaRole

__all__ = ["NOW", "add_certificates", "add_issuer"]

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
