"""The operator CA and its credentials: who may use the admin API, and in which role.

Operators authenticate with a TLS client certificate (RFC 8446 §4.4.2, §4.3.2) that the operator
CA issued. That CA is not the fleet's: its key sits in the CA's HSM beside the fleet keys
(``OPERATOR_CA_LABEL``, P-256, non-exportable) and its self-signed certificate in
``<data-dir>/ca/operator-ca.pem``, so no device credential can ever pass as an operator's.
``fleetid serve --https`` adds it to the TLS client trust anchors; the admin API then checks the
certificate again (``authenticate``): signed by the operator CA, within its validity (RFC 5280
§4.1.2.5), on record and not revoked. The role is the record's, not the certificate's: a
security officer can revoke a credential at once, with no CRL to wait for.

Roles rank ``viewer`` < ``operator`` < ``security-officer``; each may do what the roles below it
may (``Action`` names the least role of each action).

The credential's key is a software P-256 key made here and handed to the operator once (the
operator's TLS stack needs it in process, as the server's own does); only its certificate is
kept.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetid.authority.ca_init import CA_DIR, CA_KEY_USAGE, new_serial
from fleetid.clock import Clock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.pkix import issued_by
from fleetid.errors import ConfigError, OperatorAuthenticationError, OperatorRoleError
from fleetid.formats.ca_profile import CaProfile
from fleetid.formats.x509_sign import key_usage, sign_certificate
from fleetid.hsm import Hsm
from fleetid.store.operator_credentials import OperatorCredential, find_credential
from fleetid.store.repositories import Store

__all__ = [
    "OPERATOR_CA_FILE",
    "OPERATOR_CA_LABEL",
    "Action",
    "IssuedCredential",
    "Operator",
    "OperatorCa",
    "Role",
    "missing_certificate",
]

OPERATOR_CA_LABEL: Final = "operator-ca-1"
OPERATOR_CA_FILE: Final = "operator-ca.pem"
_CURVE: Final = "P-256"
_CA_LIFETIME: Final = timedelta(days=3652)
_BACKDATE: Final = timedelta(minutes=5)  # clock skew between the authority and its operators
MAX_VALIDITY: Final = timedelta(days=825)


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    SECURITY_OFFICER = "security-officer"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class Action(enum.Enum):
    """What the admin API does, each with the least role allowed to."""

    READ = ("read", Role.VIEWER)  # certificates, devices, tokens, manufacturers, operators
    REVOKE = ("revoke", Role.OPERATOR)  # certificates and devices
    TOKENS = ("manage tokens", Role.OPERATOR)  # create and revoke enrolment tokens
    PUBLISH = ("publish", Role.OPERATOR)  # CRLs on demand
    MANUFACTURERS = ("manage manufacturers", Role.SECURITY_OFFICER)  # trust, distrust roots
    OPERATORS = ("manage operators", Role.SECURITY_OFFICER)  # revoke operator credentials

    def __init__(self, verb: str, least: Role) -> None:
        self.verb = verb
        self.least = least


@dataclass(frozen=True, kw_only=True)
class Operator:
    """An authenticated operator: who, in which role, by which credential."""

    name: str
    role: Role
    credential: str  # the certificate's serial, hex

    def require(self, action: Action) -> None:
        """Refuse ``action`` unless this operator's role allows it."""
        if self.role.rank < action.least.rank:
            raise OperatorRoleError(
                f"operator {self.name} ({self.role}) may not {action.verb}:"
                f" it needs the role {action.least} or above"
            )

    def identity(self) -> dict[str, str]:
        """How the audit log names the operator."""
        return {"name": self.name, "role": str(self.role), "credential": self.credential}


@dataclass(frozen=True, kw_only=True)
class IssuedCredential:
    """A new operator credential: the record, and the key and certificate as PEM for the
    operator (the key is never stored)."""

    record: OperatorCredential
    key_pem: bytes
    certificate_pem: bytes


class OperatorCa:
    """The operator CA of one authority (its key in the CA's HSM)."""

    def __init__(self, certificate: x509.Certificate, hsm: Hsm, store: Store, clock: Clock):
        self.certificate = certificate
        self._hsm = hsm
        self._store = store
        self._clock = clock

    @classmethod
    def ensure(cls, data_dir: Path, hsm: Hsm, store: Store, clock: Clock) -> OperatorCa:
        """The operator CA, made on first use (key in the HSM, certificate in the data dir)."""
        path = certificate_path(data_dir)
        if OPERATOR_CA_LABEL not in hsm.labels():
            hsm.generate_ec_key(OPERATOR_CA_LABEL, _CURVE)
            path.unlink(missing_ok=True)  # a certificate for a key that is gone
        public = hsm.signer(OPERATOR_CA_LABEL).public_key()
        if path.is_file():
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
            if certificate.public_key() != public:
                raise ConfigError(f"{path} does not certify the operator CA key in the HSM")
            return cls(certificate, hsm, store, clock)
        now = clock.now()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetid operator CA")])
        profile = CaProfile(
            subject=subject,
            issuer=subject,
            public_key=public,
            serial_number=new_serial(),
            not_before=now - _BACKDATE,
            not_after=now + _CA_LIFETIME,
            path_length=0,
            key_usage=CA_KEY_USAGE,
            authority_key=None,
        )
        certificate = profile.issue(hsm.signer(OPERATOR_CA_LABEL))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(certificate, hsm, store, clock)

    def issue(self, name: str, role: Role, validity: timedelta) -> IssuedCredential:
        """A TLS client certificate for operator ``name`` in ``role``, valid for ``validity``
        (capped by the operator CA's own), with a new key; recorded, not yet audited (the
        caller records it in its transaction, ``record_credential``)."""
        if not name or len(name) > 64 or not name.isprintable():
            raise ConfigError("an operator name is 1 to 64 printable characters")
        if not timedelta(0) < validity <= MAX_VALIDITY:
            raise ConfigError(f"an operator credential is valid for 1 to {MAX_VALIDITY.days} days")
        now = self._clock.now()
        not_after = min(now + validity, self.certificate.not_valid_after_utc)
        key = new_private_key()
        serial = new_serial()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(_ec(self.certificate)),
                critical=False,
            )
        )
        certificate = sign_certificate(builder, self._hsm.signer(OPERATOR_CA_LABEL))
        record = OperatorCredential(
            serial=f"{serial:040x}",
            name=name,
            role=str(role),
            certificate=certificate.public_bytes(serialization.Encoding.DER),
            issued_at=now,
            not_after=certificate.not_valid_after_utc,
            revoked_at=None,
            revoked_by=None,
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return IssuedCredential(
            record=record,
            key_pem=key_pem,
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        )

    def authenticate(self, certificate: x509.Certificate | None, now: datetime) -> Operator:
        """The operator ``certificate`` (the TLS client certificate) names; refused with the
        precise reason (``OperatorAuthenticationError.reason``)."""
        if certificate is None:
            raise missing_certificate()
        if not issued_by(certificate, self.certificate):
            raise OperatorAuthenticationError(
                "foreign", "the client certificate was not issued by this authority's operator CA"
            )
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise OperatorAuthenticationError(
                "expired",
                "the operator certificate is not valid now (valid"
                f" {certificate.not_valid_before_utc.isoformat()} to"
                f" {certificate.not_valid_after_utc.isoformat()})",
            )
        record = find_credential(self._store.engine, f"{certificate.serial_number:040x}")
        if record is None:
            raise OperatorAuthenticationError(
                "unknown", "the operator CA has no record of this certificate"
            )
        if record.revoked_at is not None:
            raise OperatorAuthenticationError(
                "revoked",
                f"operator credential {record.serial} was revoked at"
                f" {record.revoked_at.isoformat()}",
            )
        return Operator(name=record.name, role=Role(record.role), credential=record.serial)


def missing_certificate() -> OperatorAuthenticationError:
    return OperatorAuthenticationError(
        "missing", "the admin API needs an operator certificate (TLS client certificate)"
    )


def certificate_path(data_dir: Path) -> Path:
    return data_dir / CA_DIR / OPERATOR_CA_FILE


def _ec(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):  # pragma: no cover - made P-256 above
        raise ConfigError("the operator CA key is not an EC key")
    return key
