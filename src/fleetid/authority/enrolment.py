"""The EST operations as the authority performs them, free of HTTP (RFC 7030 §4).

``fleetid.api.est`` decodes the wire format and calls these; they take DER and return
certificates. Every check that can be made without the database (the CSR parses, its signature
verifies, its key is acceptable, the provisioner's own ``examine``: attestation evidence) is made
before the transaction (``examine``); the credential is spent and the certificate recorded in one
transaction (``enrol``). The EST route runs the first on the group-commit writer before it opens
a batch's transaction, and the second inside it.

Re-enrolment (§4.2.2) is authenticated here by the CSR's own signature: the CSR must be signed by
the key of the device's current certificate, which must be valid, unexpired and unrevoked. The
old certificate is then revoked as ``superseded`` and linked to its successor. Binding that
signature to a fresh challenge (and re-key under an attested new key) is the refresh/re-key work
that builds on this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.csr import load_csr, public_key_sha256
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners import BasicCredentials, EnrolmentRequest, Provisioner
from fleetid.authority.provisioners.token import TokenProvisioner
from fleetid.errors import AuthenticationError, PolicyError
from fleetid.policy import CredentialType
from fleetid.store.schema import CertificateStatus, DeviceStatus

__all__ = ["EnrolmentService", "Examined"]


@dataclass(frozen=True, kw_only=True)
class Examined:
    """An enrolment request checked as far as it can be without the database."""

    request: EnrolmentRequest
    provisioner: Provisioner


class EnrolmentService:
    """``cacerts``, ``simpleenroll`` and ``simplereenroll`` over one fleet CA."""

    def __init__(self, ca: FleetCa, provisioners: Mapping[str, Provisioner] | None = None) -> None:
        self.ca = ca
        # Asked in order; the first that accepts a request's kind decides it.
        self.provisioners: dict[str, Provisioner] = dict(
            provisioners or {TokenProvisioner.type_key: TokenProvisioner(ca.clock)}
        )

    def cacerts(self) -> list[x509.Certificate]:
        """The current CA certificates, issuing CA first (RFC 7030 §4.1.3)."""
        return self.ca.chain()

    def simple_enroll(
        self, credentials: BasicCredentials | None, csr_der: bytes
    ) -> x509.Certificate:
        """Enrol a device: a provisioner authorises, the CA issues, one transaction."""
        return self.enrol(self.examine(credentials, csr_der))

    def examine(self, credentials: BasicCredentials | None, csr_der: bytes) -> Examined:
        """``simple_enroll``'s checks that need no database: the CSR, which provisioner, and
        what that provisioner can check alone (``Provisioner.examine``)."""
        csr = load_csr(csr_der)
        request = EnrolmentRequest(csr=csr, basic=credentials)
        provisioner = next((p for p in self.provisioners.values() if p.accepts(request)), None)
        if provisioner is None:
            kinds = ", ".join(self.provisioners)
            raise AuthenticationError(
                "simpleenroll needs a credential: HTTP Basic with a one-time token"
                + (" or attestation evidence in the CSR" if "attestation" in kinds else "")
                + f" (provisioners here: {kinds})"
            )
        return Examined(request=provisioner.examine(request), provisioner=provisioner)

    def enrol(self, examined: Examined) -> x509.Certificate:
        """The rest of ``simple_enroll``, in one transaction: authorise, issue, record."""
        provisioner, request = examined.provisioner, examined.request
        public_key = request.csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)  # noqa: S101 - load_csr checked
        now = self.ca.clock.now()
        with self.ca.store.transaction() as tx:
            grant = provisioner.authorise(tx, request)
            previous = (
                [
                    c
                    for c in tx.certificates.for_device(grant.device_id)
                    if c.status == CertificateStatus.VALID
                ]
                if grant.supersedes_previous
                else []
            )
            certificate, record = self.ca.issue(
                tx,
                public_key=public_key,
                credential_type=grant.credential_type,
                common_name=grant.device_id,
                device_id=grant.device_id,
            )
            if grant.token_username is not None:
                tx.tokens.bind_certificate(grant.token_username, record.id)
            for old in previous:
                tx.certificates.revoke(old.serial, "superseded", now, superseded_by=record.id)
            tx.devices.set_status(
                grant.device_id, DeviceStatus.ENROLLED, now, provisioner=grant.provisioner
            )
        return certificate

    def simple_reenroll(self, csr_der: bytes, proof: str | None = None) -> x509.Certificate:
        """Renew under the current credential; the old certificate is superseded (revoked).

        ``proof`` is a ``Fleetid-Proof`` header, which ``fleetid.authority.lifecycle`` verifies;
        this base service does not take one.
        """
        if proof is not None:
            raise AuthenticationError("this authority does not accept a Fleetid-Proof header")
        csr = load_csr(csr_der)
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)  # noqa: S101 - load_csr checked
        now = self.ca.clock.now()
        with self.ca.store.transaction() as tx:
            issued = tx.certificates.for_public_key(public_key_sha256(public_key))
            if not issued:
                raise AuthenticationError("no certificate of this authority holds the CSR's key")
            current = issued[0]
            if current.status != CertificateStatus.VALID:
                raise AuthenticationError(
                    f"the current credential {current.serial} is revoked"
                    f" ({current.revocation_reason})"
                )
            if now >= current.not_after:
                raise AuthenticationError(
                    f"the current credential {current.serial} expired at"
                    f" {current.not_after.isoformat()}"
                )
            if current.device_id is None or current.profile == CredentialType.TLS_SERVER:
                raise PolicyError("only device credentials are re-enrolled over EST")
            device = tx.devices.require(current.device_id)
            if device.status != DeviceStatus.ENROLLED:
                raise PolicyError(f"device {device.device_id!r} is {device.status}")
            certificate, record = self.ca.issue(
                tx,
                public_key=public_key,
                credential_type=CredentialType(current.profile),
                common_name=current.device_id,
                device_id=current.device_id,
            )
            tx.certificates.revoke(current.serial, "superseded", now, superseded_by=record.id)
        return certificate
