"""The line's steps for a TPM-rooted device: EK certificate, credential activation, AK certificate.

A TPM vendor certifies each TPM's endorsement key; a device maker then certifies an attestation
key (the TCG's IAK) only after proving it sits in the TPM of that EK (TCG TPM 2.0 Keys for Device
Identity and Attestation: credential activation). The line does both, in this order:

1. read the EK's public area and issue its certificate under the line CA, to the TCG EK
   Credential Profile: an empty subject with the TPM's manufacturer, model and version
   as a critical subjectAltName directoryName, basicConstraints cA FALSE (critical), keyUsage
   keyAgreement (critical: an ECC EK decrypts by ECDH), extKeyUsage tcg-kp-EKCertificate, and
   the key identifiers RFC 5280 §4.2.1.1-2 asks of every certificate;
2. read the AK's public area and check it is a restricted signing key that cannot leave the
   TPM (fixedTPM, fixedParent, sensitiveDataOrigin);
3. TPM2_MakeCredential of a fresh secret to the EK and the AK's Name; the TPM must give the
   secret back (TPM2_ActivateCredential), which it does only if both keys are in it;
4. issue the AK certificate: the line's IEEE 802.1AR IDevID profile (``IdevidIssuer``, the same
   template as a secure element's), its HardwareModuleName of type ``TPM_HW_TYPE`` naming the
   EK (``endorsement_id``: SHA-256 of the EK's SubjectPublicKeyInfo). A verifier reads the
   EK → AK binding from it;
5. store both certificates in the TPM's NV (``TpmDevice.store_certificates``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import Signer
from fleetid.errors import VerificationError
from fleetid.factory.line import UnitState
from fleetid.factory.manufacturer import IdevidIssuer, certificate_fingerprint
from fleetid.formats.x509_sign import key_usage, sign_certificate
from fleetid.store.repositories import ManifestRecord
from fleetid.tpm.credential import make_credential
from fleetid.tpm.device import TpmDevice
from fleetid.tpm.evidence import object_attributes, object_name, public_key_of

__all__ = [
    "TCG_KP_EK_CERTIFICATE",
    "TPM_HW_TYPE",
    "TpmIdentity",
    "TpmModel",
    "ek_certificate_builder",
    "endorsement_id",
    "provision_tpm",
]

# hwType of a TPM-rooted fleetid device, beside the secure element's SE_HW_TYPE (…32473.1.1)
# under IANA's documentation enterprise number: a manufacturer replaces it with its own arc.
TPM_HW_TYPE: Final = x509.ObjectIdentifier("1.3.6.1.4.1.32473.1.2")
# TCG EK Credential Profile and the TCG OID registry: tcg-kp-EKCertificate.
TCG_KP_EK_CERTIFICATE: Final = x509.ObjectIdentifier("2.23.133.8.1")
# The same: tcg-at-tpmManufacturer, tcg-at-tpmModel, tcg-at-tpmVersion.
_TPM_MANUFACTURER: Final = x509.ObjectIdentifier("2.23.133.2.1")
_TPM_MODEL: Final = x509.ObjectIdentifier("2.23.133.2.2")
_TPM_VERSION: Final = x509.ObjectIdentifier("2.23.133.2.3")
_EK_LIFETIME: Final = timedelta(days=20 * 365)
_BACKDATE: Final = timedelta(minutes=5)
_SECRET_BYTES: Final = 32


@dataclass(frozen=True, kw_only=True)
class TpmModel:
    """What the EK certificate says of the TPM (EK Credential Profile): the vendor ID
    ("id:" and eight hex digits of the TCG vendor registry), the part and the firmware."""

    manufacturer: str = "id:49424D00"  # "IBM": libtpms, which swtpm runs
    model: str = "swtpm"
    version: str = "id:20191023"


def endorsement_id(ek_public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the EK's DER SubjectPublicKeyInfo: the TPM's name in its AK certificate."""
    return hashlib.sha256(
        ek_public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()


def ek_certificate_builder(
    *,
    issuer: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    model: TpmModel,
    now: datetime,
) -> x509.CertificateBuilder:
    """An EK certificate (see the module docstring, step 1)."""
    tpm_name = x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(_TPM_MANUFACTURER, model.manufacturer),
                    x509.NameAttribute(_TPM_MODEL, model.model),
                    x509.NameAttribute(_TPM_VERSION, model.version),
                ]
            )
        ]
    )
    issuer_key = issuer.public_key()
    if not isinstance(issuer_key, ec.EllipticCurvePublicKey):
        raise VerificationError("the line CA's key is not ECDSA")
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + _EK_LIFETIME, issuer.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(key_agreement=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([TCG_KP_EK_CERTIFICATE]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(tpm_name)]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


@dataclass(frozen=True, kw_only=True)
class TpmIdentity:
    """What the line made of one TPM: its device serial and the two certificates."""

    serial: str
    ek_certificate: x509.Certificate
    ak_certificate: x509.Certificate

    def manifest_record(self, unit: str, state: UnitState = UnitState.SECURED) -> ManifestRecord:
        """The line-manifest row an authority checks the device against (the AK is its
        attestation key, the AK certificate its IDevID)."""
        return ManifestRecord(
            unit=unit,
            serial=self.serial,
            state=state,
            idevid_fingerprint=certificate_fingerprint(self.ak_certificate),
            attestation_public_key=self.ak_certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            idevid=self.ak_certificate.public_bytes(serialization.Encoding.DER),
        )


def provision_tpm(
    tpm: TpmDevice,
    *,
    line_ca: x509.Certificate,
    line_ca_signer: Signer,
    organization: str,
    now: datetime,
    model: TpmModel | None = None,
    serial: str | None = None,
    random: Callable[[int], bytes] = secrets.token_bytes,
) -> TpmIdentity:
    """Certify the TPM's EK and, once credential activation proved it beside the EK, its AK;
    store both certificates in the TPM (module docstring). ``serial`` defaults to ``TPM-`` and
    the first 8 bytes of the endorsement ID in hex."""
    ek_public = tpm.endorsement_public()
    ek_key = public_key_of(ek_public)
    ek_certificate = sign_certificate(
        ek_certificate_builder(
            issuer=line_ca, public_key=ek_key, model=model or TpmModel(), now=now
        ),
        line_ca_signer,
    )
    ak_public = tpm.attestation_public()
    attributes = object_attributes(ak_public)
    if not (
        attributes.restricted
        and attributes.sign
        and not attributes.decrypt
        and attributes.fixed_tpm
        and attributes.fixed_parent
        and attributes.sensitive_data_origin
    ):
        raise VerificationError(f"the AK is not a restricted TPM-bound signing key: {attributes}")
    secret = random(_SECRET_BYTES)
    challenge = make_credential(ek_public, object_name(ak_public), secret)
    recovered = tpm.activate_credential(challenge.credential_blob, challenge.encrypted_secret)
    if not hmac.compare_digest(recovered, secret):
        raise VerificationError("credential activation failed: the AK is not beside this EK")
    tpm_id = endorsement_id(ek_key)
    device_serial = serial or f"TPM-{tpm_id[:8].hex().upper()}"
    ak_certificate = IdevidIssuer(
        line_ca=line_ca,
        line_ca_signer=line_ca_signer,
        organization=organization,
        hw_type=TPM_HW_TYPE,
    ).issue(
        public_key=public_key_of(ak_public),
        device_serial=device_serial,
        chip_serial=tpm_id,
        now=now,
    )
    tpm.store_certificates(ek_certificate=ek_certificate, ak_chain=[ak_certificate, line_ca])
    return TpmIdentity(
        serial=device_serial, ek_certificate=ek_certificate, ak_certificate=ak_certificate
    )
