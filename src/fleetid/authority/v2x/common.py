"""What the EA and the AA share: their keys, refusals (``fleetid.errors.RequestRefusedError``),
replay and freshness, and how they open a request and seal a response (TS 102 941 §6.2.3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fleetid.clock import Clock
from fleetid.crypto.ecies import EcdhKey
from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError, ProfileError, RequestRefusedError
from fleetid.formats.etsi102941 import (
    decrypt_for_certificate,
    encrypt_with_key,
    request_hash,
    sign_pki_data,
)
from fleetid.formats.ieee1609 import Certificate, sign_certificate, time32, time64
from fleetid.store.v2x_repository import SeenRequests

__all__ = [
    "Authority",
    "AuthorityKeys",
    "OpenedRequest",
    "ReplayGuard",
    "issue_end_entity",
    "open_request",
    "refuse_malformed",
    "seal_response",
    "sign_as",
]


@dataclass(frozen=True, kw_only=True)
class AuthorityKeys:
    """A CA's signing key, its ECIES decryption key (both by reference) and its certificate."""

    signer: Signer = field(repr=False)
    decryption_key: EcdhKey = field(repr=False)
    certificate: Certificate


class Authority:
    """What every V2X authority holds: its keys (by reference) and its clock."""

    def __init__(self, *, keys: AuthorityKeys, clock: Clock) -> None:
        self._keys = keys
        self._clock = clock

    @property
    def certificate(self) -> Certificate:
        return self._keys.certificate

    @property
    def keys(self) -> AuthorityKeys:
        return self._keys


@contextmanager
def refuse_malformed(badcontenttype: str, cantparse: str) -> Iterator[None]:
    """Answer a ``ProfileError`` with the ``badcontenttype`` code and any other
    ``EncodingError`` with the ``cantparse`` code (each authority names them its own way)."""
    try:
        yield
    except ProfileError as exc:
        raise RequestRefusedError(badcontenttype, str(exc)) from None
    except EncodingError as exc:
        raise RequestRefusedError(cantparse, str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class OpenedRequest:
    """A request decrypted by the authority it was encrypted to."""

    plaintext: bytes
    aes_key: bytes = field(repr=False)
    request_hash: bytes


def open_request(keys: AuthorityKeys, message: bytes) -> OpenedRequest:
    """Decrypt a unicast request to ``keys``' certificate; its requestHash is over ``message``.

    Raises ``EncodingError``/``ProfileError`` for a message that is not encrypted data and
    ``VerificationError`` if it is not addressed to this authority or does not decrypt.
    """
    plaintext, aes_key = decrypt_for_certificate(
        message, keys.decryption_key, keys.certificate.encoded, unicast=True
    )
    return OpenedRequest(plaintext=plaintext, aes_key=aes_key, request_hash=request_hash(message))


def sign_as(keys: AuthorityKeys, content: tuple[str, Any], now: datetime) -> bytes:
    """EtsiTs102941Data ``content`` signed by the authority, naming its certificate by digest."""
    return sign_pki_data(
        content,
        keys.signer,
        generation_time=time64(now),
        signer_certificate=keys.certificate.encoded,
    )


def seal_response(
    keys: AuthorityKeys, content: tuple[str, Any], aes_key: bytes, now: datetime
) -> bytes:
    """A response: ``content`` signed by the authority, encrypted with the request's AES key."""
    return encrypt_with_key(sign_as(keys, content, now), aes_key)


def issue_end_entity(
    keys: AuthorityKeys,
    *,
    validity_period: dict[str, Any],
    app_permissions: list[Any],
    verification_key: Any,
    encryption_key: Any | None,
) -> Certificate:
    """An EC or AT (TS 103 097 §7.2.1, §7.2.2) signed by the authority: explicit, id none,
    cracaId 000000h and crlSeries 0 (TS 103 097 §6); the keys are given as their
    PublicVerificationKey / PublicEncryptionKey values."""
    tbs: dict[str, Any] = {
        "id": ("none", None),
        "cracaId": b"\x00\x00\x00",
        "crlSeries": 0,
        "validityPeriod": validity_period,
        "appPermissions": app_permissions,
        "verifyKeyIndicator": ("verificationKey", verification_key),
    }
    if encryption_key is not None:
        tbs["encryptionKey"] = encryption_key
    return sign_certificate(tbs, keys.signer, issuer_certificate=keys.certificate.encoded)


class ReplayGuard:
    """Freshness of generationTime and single use of each request (by its requestHash).

    A request is accepted once, and only while its generationTime is within ``window`` of now;
    seen hashes are kept until they could no longer pass the freshness check, then dropped.
    """

    def __init__(self, seen: SeenRequests, clock: Clock, window: timedelta) -> None:
        self._seen = seen
        self._clock = clock
        self._window = window

    def check_fresh(self, generation_time: int, code: str) -> None:
        now = time64(self._clock.now())
        window = int(self._window.total_seconds() * 1_000_000)
        if abs(now - generation_time) > window:
            raise RequestRefusedError(code, "generationTime outside the freshness window")

    def remember(self, request_hash: bytes, code: str) -> None:
        now = time32(self._clock.now())
        expires = now + int(self._window.total_seconds()) + 1
        if not self._seen.remember(request_hash, now=now, expires=expires):
            raise RequestRefusedError(code, "replayed request")
