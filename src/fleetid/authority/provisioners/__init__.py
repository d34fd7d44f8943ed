"""Enrolment provisioners: pluggable policies that decide who may enrol, one module each.

A provisioner is found by its type key (``PROVISIONERS``). The EST edge hands the enrolment
service an ``EnrolmentRequest``: the parsed CSR and whatever credential came with it. The first
provisioner that ``accepts`` the request's kind (a Basic credential, attestation evidence)
``examine``s it without the database, then is asked to ``authorise`` it; it answers with a
``Grant`` (which device, which credential type) or raises ``AuthenticationError`` /
``PolicyError`` / a ``VerificationError``. ``authorise`` runs inside the issuance transaction,
so a single-use credential (token, challenge) is spent only if the certificate is recorded.

Provisioners:

* ``token`` (``fleetid.authority.provisioners.token``): one-time HTTP Basic credentials,
  RFC 7030 §3.2.3, for devices without a secure element.
* ``attestation`` (``fleetid.authority.provisioners.attestation``): secure-element key
  attestation in the CSR, bound to a challenge from this authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography import x509

from fleetid.errors import ConfigError
from fleetid.policy import CredentialType
from fleetid.store.repositories import Repositories

__all__ = [
    "PROVISIONERS",
    "BasicCredentials",
    "EnrolmentRequest",
    "Grant",
    "Provisioner",
    "provisioner",
    "register",
]


@dataclass(frozen=True, kw_only=True)
class BasicCredentials:
    """An HTTP Basic ``user:password`` pair as the EST client sent it (RFC 7617)."""

    username: str
    password: str


@dataclass(frozen=True, kw_only=True)
class EnrolmentRequest:
    """An enrolment as the authority received it: the CSR (its self-signature checked) and the
    HTTP Basic credential, if the client sent one; ``evidence`` is what the provisioner's
    ``examine`` established before the transaction (its own type; ``None`` until then)."""

    csr: x509.CertificateSigningRequest
    basic: BasicCredentials | None = None
    evidence: object | None = None


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What a provisioner allows: a certificate of ``credential_type`` for ``device_id``."""

    provisioner: str
    device_id: str
    credential_type: CredentialType
    # The token spent, bound to the new certificate's row once it is recorded (same transaction).
    token_username: str | None = None
    # The device's earlier valid credentials end as ``superseded`` by the new one (re-enrolment
    # with the factory identity is the recovery path of a device whose credential lapsed).
    supersedes_previous: bool = False


class Provisioner(Protocol):
    """An enrolment policy; ``authorise`` raises unless the request may enrol."""

    type_key: str

    def accepts(self, request: EnrolmentRequest) -> bool:
        """Whether the request is of this provisioner's kind (no verification, no database)."""
        ...

    def examine(self, request: EnrolmentRequest) -> EnrolmentRequest:
        """The checks that need no database, made before the issuance transaction (so that a
        writer holds the database only for what needs it); the request with their result."""
        ...

    def authorise(self, tx: Repositories, request: EnrolmentRequest) -> Grant:
        """The rest, inside the transaction (after ``examine``, which it runs if nobody has)."""
        ...


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
