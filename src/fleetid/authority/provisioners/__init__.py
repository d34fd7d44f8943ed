"""Enrolment provisioners: pluggable policies that decide who may enrol, one module each.

A provisioner is found by its type key (``PROVISIONERS``). The EST edge hands it the request's
credentials; it answers with a ``Grant`` (which device, which credential type) or raises
``AuthenticationError`` / ``PolicyError``. It runs inside the issuance transaction, so a
single-use credential is spent only if the certificate is recorded.

Provisioners:

* ``token`` (``fleetid.authority.provisioners.token``): one-time HTTP Basic credentials,
  RFC 7030 §3.2.3, for devices without a secure element.
* ``attestation``: SE key attestation bound to a challenge; a later module registers here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fleetid.errors import ConfigError
from fleetid.policy import CredentialType
from fleetid.store.repositories import Repositories

__all__ = ["PROVISIONERS", "BasicCredentials", "Grant", "Provisioner", "provisioner", "register"]


@dataclass(frozen=True, kw_only=True)
class BasicCredentials:
    """An HTTP Basic ``user:password`` pair as the EST client sent it (RFC 7617)."""

    username: str
    password: str


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What a provisioner allows: a certificate of ``credential_type`` for ``device_id``."""

    provisioner: str
    device_id: str
    credential_type: CredentialType
    # Called with the new certificate's row id once it is recorded (same transaction).
    token_username: str | None = None


class Provisioner(Protocol):
    """An enrolment policy; ``authorise`` raises unless the request may enrol."""

    type_key: str

    def authorise(self, tx: Repositories, credentials: BasicCredentials) -> Grant: ...


PROVISIONERS: dict[str, type[Provisioner]] = {}


def register(cls: type[Provisioner]) -> type[Provisioner]:
    """Class decorator: make a provisioner findable by its ``type_key``."""
    if cls.type_key in PROVISIONERS:
        raise ConfigError(f"provisioner type {cls.type_key!r} is registered twice")
    PROVISIONERS[cls.type_key] = cls
    return cls


def provisioner(type_key: str) -> type[Provisioner]:
    try:
        return PROVISIONERS[type_key]
    except KeyError:
        raise ConfigError(f"no provisioner of type {type_key!r}") from None
