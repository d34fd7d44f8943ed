"""The one-time token provisioner: HTTP Basic credentials for EST (RFC 7030 §3.2.3).

For devices without a secure element (gateways, lab rigs, legacy hardware) whose threat model the
operator accepts. ``fleetid token create`` prints ``user:password``:

* ``user`` is ``t-`` and 16 random hex digits; it names the token row and is not secret.
* ``password`` is 32 random bytes, base64url (RFC 4648 §5) without padding. Only its SHA-256 is
  stored: at 256 bits of entropy a slow KDF adds nothing.

The token is bound to one device id, expires after the policy's ``token_ttl``, and is spent by the
enrolment that uses it (a conditional ``UPDATE``, in the issuance transaction). Each refusal is
its own ``AuthenticationError``: unknown user, wrong password, used, expired.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetid.authority.provisioners import EnrolmentRequest, Grant, register
from fleetid.clock import Clock
from fleetid.errors import AuthenticationError, ConfigError, PolicyError
from fleetid.policy import CredentialType
from fleetid.store.repositories import Repositories, TokenRecord
from fleetid.store.schema import DeviceStatus

__all__ = ["TOKEN_TTL_MAX", "IssuedToken", "TokenProvisioner", "create_token"]

_USER_PREFIX = "t-"
_DEVICE_ID_MAX = 128
# A one-time secret waits for its device at most this long; issue a new one for a later shipment.
TOKEN_TTL_MAX = timedelta(days=365)


@dataclass(frozen=True, kw_only=True)
class IssuedToken:
    """A new one-time credential; ``password`` exists only here, never in the store."""

    username: str
    password: str
    device_id: str
    expires_at: datetime

    def __str__(self) -> str:
        return f"{self.username}:{self.password}"


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode()).digest()


def create_token(tx: Repositories, *, device_id: str, clock: Clock, ttl: timedelta) -> IssuedToken:
    """Store a new one-time token for ``device_id``; the device row is created if new."""
    if not device_id or len(device_id) > _DEVICE_ID_MAX or not device_id.isprintable():
        raise ConfigError(f"a device id is 1-{_DEVICE_ID_MAX} printable characters")
    if ":" in device_id:
        raise ConfigError("a device id has no ':'")
    if not timedelta(0) < ttl <= TOKEN_TTL_MAX:
        raise ConfigError(
            f"a token's lifetime is positive and at most {TOKEN_TTL_MAX.days} days "
            f"({int(TOKEN_TTL_MAX.total_seconds())} s)"
        )
    now = clock.now()
    device = tx.devices.get(device_id)
    if device is None:
        tx.devices.add(device_id, DeviceStatus.PENDING, now, provisioner=TokenProvisioner.type_key)
    elif device.status in (DeviceStatus.REVOKED, DeviceStatus.TRANSFERRED):
        raise PolicyError(f"device {device_id!r} is {device.status}; it does not enrol again")
    username = _USER_PREFIX + secrets.token_hex(8)
    password = secrets.token_urlsafe(32)
    tx.tokens.add(
        TokenRecord(
            username=username,
            device_id=device_id,
            secret_sha256=_digest(password),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return IssuedToken(
        username=username, password=password, device_id=device_id, expires_at=now + ttl
    )


@register
class TokenProvisioner:
    """Authorise an EST enrolment presenting a one-time token, and spend the token."""

    type_key = "token"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def accepts(self, request: EnrolmentRequest) -> bool:
        return request.basic is not None

    def examine(self, request: EnrolmentRequest) -> EnrolmentRequest:
        return request  # a token is checked against its row, in the transaction

    def authorise(self, tx: Repositories, request: EnrolmentRequest) -> Grant:
        credentials = request.basic
        if credentials is None:
            raise AuthenticationError("the token provisioner needs HTTP Basic credentials")
        now = self._clock.now()
        token = tx.tokens.get(credentials.username)
        # Compare against a dummy digest for unknown users so both paths cost the same.
        expected = token.secret_sha256 if token is not None else bytes(32)
        password_ok = hmac.compare_digest(_digest(credentials.password), expected)
        if token is None:
            raise AuthenticationError("unknown enrolment token")
        if not password_ok:
            raise AuthenticationError("wrong password for this enrolment token")
        if token.used_at is not None:
            raise AuthenticationError("this enrolment token has been used already")
        if now >= token.expires_at:
            raise AuthenticationError(
                f"this enrolment token expired at {token.expires_at.isoformat()}"
            )
        device = tx.devices.require(token.device_id)
        if device.status in (DeviceStatus.REVOKED, DeviceStatus.TRANSFERRED):
            raise PolicyError(f"device {device.device_id!r} is {device.status}")
        if not tx.tokens.consume(token.username, now):
            raise AuthenticationError("this enrolment token has been used already")
        return Grant(
            provisioner=self.type_key,
            device_id=token.device_id,
            credential_type=CredentialType.TOKEN_DEVICE,
            token_username=token.username,
        )
