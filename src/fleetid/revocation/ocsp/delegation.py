"""The delegated OCSP responders of a fleet CA (RFC 6960 §4.2.2.2), and the files that keep them.

Each unexpired issuing-CA generation delegates to a responder certificate it signs from its HSM
key: extendedKeyUsage id-kp-OCSPSigning, keyUsage digitalSignature, id-pkix-ocsp-nocheck
(§4.2.2.2.1) and a life of ``OcspPolicy.responder_lifetime``. The responder's key is a software key
the service holds, kept beside its certificate in ``DATA_DIR/ca/ocsp/issuing-<generation>.key``
(mode 0600, through ``fleetid.private_file.write_private_key``) and ``.crt``; the next process
reuses the pair until two thirds of the certificate's life are gone, then issues a new one.
:func:`responder_for` assembles the fleet CA's ``OcspResponder`` from them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetid.authority.fleet_ca import CA_DIR, FleetCa, new_serial
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import Signer
from fleetid.formats.x509_sign import key_usage, sign_certificate
from fleetid.private_file import write_private_key
from fleetid.revocation.ocsp.responder import DelegatedResponder, OcspPolicy, OcspResponder
from fleetid.revocation.registry import RevocationRegistry, issuer_certificate

__all__ = ["issue_responder", "responder_for"]


def issue_responder(
    issuer: x509.Certificate, signer: Signer, *, now: datetime, lifetime: timedelta
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A fresh responder key and its certificate under ``issuer`` (RFC 6960 §4.2.2.2)."""
    key = new_private_key()
    not_after = min(now + lifetime, issuer.not_valid_after_utc)
    common_name = issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    label = str(common_name[0].value) if common_name else "fleetid"
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{label} OCSP")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(new_serial())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage(digital_signature=True),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)  # RFC 6960 §4.2.2.2.1
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
    )
    return sign_certificate(builder, signer), key


def _load_or_issue(
    directory: Path,
    generation: int,
    issuer: x509.Certificate,
    signer: Signer,
    now: datetime,
    lifetime: timedelta,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path = directory / f"issuing-{generation}.crt"
    key_path = directory / f"issuing-{generation}.key"
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        life = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        fresh = now < certificate.not_valid_before_utc + life * 2 / 3
        if (
            isinstance(key, ec.EllipticCurvePrivateKey)
            and fresh
            and certificate.issuer == issuer.subject
            and key.public_key() == certificate.public_key()
        ):
            return certificate, key
    except (FileNotFoundError, ValueError):
        pass
    certificate, key = issue_responder(issuer, signer, now=now, lifetime=lifetime)
    write_private_key(key_path, key)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def responder_for(
    ca: FleetCa,
    *,
    registry: RevocationRegistry | None = None,
    policy: OcspPolicy | None = None,
) -> OcspResponder:
    """The OCSP responder of a fleet CA: one delegated responder per unexpired issuing CA."""
    policy = policy or OcspPolicy()
    registry = registry or RevocationRegistry(ca.store)
    now = ca.clock.now()
    directory = ca.settings.data_dir / CA_DIR / "ocsp"
    responders: dict[int, DelegatedResponder] = {}
    with ca.store.transaction() as tx:
        labels = {r.id: r.hsm_label for r in tx.ca_keys.all()}
    for issuer in registry.issuers():
        certificate = issuer_certificate(issuer)
        if certificate.not_valid_after_utc <= now:
            continue
        responder_cert, key = _load_or_issue(
            directory,
            issuer.generation,
            certificate,
            ca.hsm.signer(labels[issuer.id]),
            now,
            policy.responder_lifetime,
        )
        responders[issuer.id] = DelegatedResponder(
            issuer_id=issuer.id,
            issuer=certificate,
            certificate=responder_cert,
            private_key=key,
        )
    return OcspResponder(registry=registry, responders=responders, clock=ca.clock, policy=policy)
