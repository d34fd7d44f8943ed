"""The EST operations as the authority performs them, free of HTTP (RFC 7030 §4).

``fleetid.api.est`` decodes the wire format and calls these; they take DER and return
certificates. Every check that can be made without the database (the CSR parses, its signature
verifies, its key is acceptable, the provisioner's own ``examine``: attestation evidence) is made
before the transaction (``examine``); the credential is spent and the certificate recorded in one
transaction (``enrol``). The EST route runs the first on the group-commit writer before it opens
a batch's transaction, and the second inside it.

Re-enrolment (§4.2.2) is ``fleetid.authority.lifecycle``'s: it always proves possession of the
current credential freshly, by TLS client authentication with it (§3.3.2) or by a signed fresh
challenge. A CSR's own signature proves nothing fresh (a copied CSR replays), so it never
authenticates a re-enrolment. The rules on the current credential itself live here
(``current_credential``, ``client_credential``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.csr import load_csr
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.issuance_events import record_issuance
from fleetid.authority.provisioners import BasicCredentials, EnrolmentRequest, Provisioner
from fleetid.authority.provisioners.token import TokenProvisioner
from fleetid.authority.revoke import revoke_device_certificates
from fleetid.errors import AuthenticationError, NotFoundError, PolicyError
from fleetid.policy import CredentialType
from fleetid.store.repositories import CertificateRecord, Repositories
from fleetid.store.schema import CertificateStatus, DeviceStatus, RevocationReason
from fleetid.structured_logs import annotate

__all__ = ["EnrolmentService", "Examined"]


@dataclass(frozen=True, kw_only=True)
class Examined:
    """An enrolment request checked as far as it can be without the database."""

    request: EnrolmentRequest
    provisioner: Provisioner
    started: float  # time.perf_counter() when the checks began (the issuance latency metric)


class EnrolmentService:
    """``cacerts`` and ``simpleenroll`` over one fleet CA, and the rules on a current credential."""

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
        started = time.perf_counter()
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
        annotate(provisioner=provisioner.type_key)
        return Examined(
            request=provisioner.examine(request), provisioner=provisioner, started=started
        )

    def enrol(self, examined: Examined) -> x509.Certificate:
        """The rest of ``simple_enroll``, in one transaction: authorise, issue, record."""
        provisioner, request = examined.provisioner, examined.request
        public_key = request.csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)  # noqa: S101 - load_csr checked
        now = self.ca.clock.now()
        with self.ca.store.transaction() as tx:
            grant = provisioner.authorise(tx, request)
            certificate, record = self.ca.issue(
                tx,
                public_key=public_key,
                credential_type=grant.credential_type,
                common_name=grant.device_id,
                device_id=grant.device_id,
            )
            if grant.token_username is not None:
                tx.tokens.bind_certificate(grant.token_username, record.id)
            if grant.supersedes_previous:
                revoke_device_certificates(
                    tx, grant.device_id, RevocationReason.SUPERSEDED, now, successor=record
                )
            tx.devices.set_status(
                grant.device_id, DeviceStatus.ENROLLED, now, provisioner=grant.provisioner
            )
        record_issuance(
            certificate,
            provisioner=grant.provisioner,
            credential_type=grant.credential_type,
            device_id=grant.device_id,
            started=examined.started,
        )
        return certificate

    def current_credential(self, tx: Repositories, serial: str) -> CertificateRecord:
        """The credential a re-enrolment or release is made under, by serial: this authority's,
        valid (unrevoked), not superseded by a refresh, unexpired, a device's, and its device
        enrolled. The one place these
        rules live; how possession of its key is proven is the caller's."""
        now = self.ca.clock.now()
        try:
            current = tx.certificates.by_serial(serial)
        except NotFoundError as exc:  # unknown, or not a serial at all
            raise AuthenticationError(f"no credential {serial[:40]!r} here") from exc
        if current.status != CertificateStatus.VALID:
            raise AuthenticationError(
                f"the credential {current.serial} is revoked ({current.revocation_reason})"
            )
        if current.superseded_by is not None:
            raise AuthenticationError(
                f"the credential {current.serial} was superseded by a refresh: use its successor"
            )
        if now >= current.not_after:
            raise AuthenticationError(
                f"the credential {current.serial} expired at {current.not_after.isoformat()}"
            )
        if current.device_id is None or current.profile == CredentialType.TLS_SERVER:
            raise PolicyError("only device credentials re-enrol")
        device = tx.devices.require(current.device_id)
        if device.status != DeviceStatus.ENROLLED:
            raise AuthenticationError(f"device {device.device_id} is {device.status}")
        return current

    def client_credential(
        self, tx: Repositories, certificate: x509.Certificate, csr: x509.CertificateSigningRequest
    ) -> CertificateRecord:
        """The credential a TLS client authenticated with (RFC 7030 §3.3.2), for a re-enrolment
        of ``csr``: the very certificate this authority recorded, current (``current_credential``),
        and the CSR's subject identical to its subject (§4.2.2)."""
        current = self.current_credential(tx, f"{certificate.serial_number:x}")
        if current.der != certificate.public_bytes(serialization.Encoding.DER):
            raise AuthenticationError("the TLS client certificate is not one this authority issued")
        if csr.subject != certificate.subject:
            raise AuthenticationError(
                "the CSR's subject differs from the TLS client certificate's (RFC 7030 §4.2.2)"
            )
        return current
