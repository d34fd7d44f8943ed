"""The TPM 2.0 key-attestation format (``tcg-tpm-certify``): a TPM2_Certify by the device's AK.

The statement (``TCG_ATTEST_CERTIFY_OID``, ``TcgAttestCertify``) carries the ``TPMS_ATTEST`` the
TPM made, the AK's signature over it and the certified key's ``TPMT_PUBLIC``; the bundle's
``certs`` carry the AK certificate (the line's IDevID profile, ``fleetid.factory.tpm_line``), the
line CA and the EK certificate. The rules, in the order they are checked (each failure its own
``AttestationError``):

1. the statement is a DER ``TcgAttestCertify`` whose TPM structures unmarshal exactly, with the
   certified key's public area;
2. an AK certificate in the bundle holds the key that signed the ``TPMS_ATTEST`` (a key the TPM
   did not certify, such as a software key with a certify forged around it, fails here);
3. the AK certificate chains to a configured manufacturer root (the SE format's rule 3);
4. the EK → AK binding: the EK certificate in the bundle chains to a configured manufacturer root
   with extKeyUsage tcg-kp-EKCertificate, and the AK certificate's HardwareModuleName names that
   EK (hwType ``TPM_HW_TYPE``, hwSerialNum its ``endorsement_id``). The line issued the AK
   certificate only after credential activation proved the AK sits beside that EK;
5. the ``TPMS_ATTEST`` is the TPM's (magic ``TPM_GENERATED_VALUE``: a restricted AK signs no
   outside data that begins so) and a certification (type ``TPM_ST_ATTEST_CERTIFY``);
6. the certified Name is the Name of the public area carried, and that key is the CSR's;
7. the key cannot leave the TPM (fixedTPM and fixedParent), the TPM generated it
   (sensitiveDataOrigin), and it signs only (sign set; decrypt and restricted clear);
8. the records, as for the SE format (rules 7-10 of ``fleetid_se``): the line manifest lists the
   device with this AK certificate and key, the device is not revoked or transferred, and the
   qualifying data (``extraData``) is a challenge issued here, unexpired, unused, spent now.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.attestation.base import (
    AttestedDevice,
    VerificationPolicy,
    register,
)
from fleetid.authority.attestation.fleetid_se import FleetIdSeVerifier, spki_sha256
from fleetid.crypto.pkix import Criticality, ExtensionPolicy, PathValidationError, path_verifier
from fleetid.errors import (
    AttestationSignatureError,
    ChipSerialMismatchError,
    EncodingError,
    EvidenceFormatUnsupportedError,
    EvidenceMalformedError,
    KeyExportableError,
    KeyMismatchError,
    KeyNotGeneratedOnCardError,
    KeyUsageError,
    TpmError,
    UnknownManufacturerError,
    VerificationError,
)
from fleetid.factory.manufacturer import hardware_module_name_of
from fleetid.factory.tpm_line import TCG_KP_EK_CERTIFICATE, TPM_HW_TYPE, endorsement_id
from fleetid.formats.attestation import KeyOrigin, KeyProperties, KeyUsage
from fleetid.formats.csr_attestation import AttestationBundle, AttestationStatement
from fleetid.formats.tcg_attest_certify import (
    TCG_ATTEST_CERTIFY_OID,
    decode_tcg_attest_certify,
)
from fleetid.tpm.evidence import CertifiedKey, read_certify, verify_certify_signature

__all__ = ["TpmCertifyVerifier"]

_P256_OID = "1.2.840.10045.3.1.7"


def _require_ek_purpose(
    _policy: object, _certificate: x509.Certificate, extension: x509.ExtendedKeyUsage | None
) -> None:
    if extension is None or TCG_KP_EK_CERTIFICATE not in extension:
        raise ValueError("an EK certificate has extKeyUsage tcg-kp-EKCertificate")


# TCG EK Credential Profile: the EK certificate names its purpose; anything else is the
# vendor's (an empty subject, a critical directoryName subjectAltName).
_EK_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_ek_purpose
)


def _is_ek_certificate(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return TCG_KP_EK_CERTIFICATE in usage


@register
class TpmCertifyVerifier(FleetIdSeVerifier):
    """Verifies ``tcg-tpm-certify`` evidence (see the module docstring). The IDevID-path and
    records rules are the SE format's, inherited: the AK certificate stands as the IDevID."""

    type_key: ClassVar[str] = "tcg-tpm-certify"
    statement_type: ClassVar[str] = TCG_ATTEST_CERTIFY_OID

    def examine(
        self,
        *,
        csr: x509.CertificateSigningRequest,
        bundle: AttestationBundle,
        statement: AttestationStatement,
        policy: VerificationPolicy,
        now: datetime,
    ) -> AttestedDevice:
        """Rules 1-7: the evidence itself."""
        certified = self._read(statement)
        ak_certificate = self._signing_ak(certified, bundle)
        self._chain_to_manufacturer(ak_certificate, bundle, policy, now)
        device_id = self._device_serial(ak_certificate)
        tpm_id = self._endorsed(ak_certificate, bundle, policy, now)
        self._structure(certified)
        self._same_key(csr, self._certified_key(certified))
        self._attributes(certified)
        return AttestedDevice(
            format=self.type_key,
            device_id=device_id,
            chip_serial=tpm_id,
            idevid=ak_certificate,
            idevid_key_sha256=spki_sha256(self._ec_key(ak_certificate)),
            public_key=certified.public_key,
            key_properties=KeyProperties(
                chip_serial=tpm_id,
                key_handle=0,
                curve_oid=_P256_OID,
                usage=KeyUsage.SIGN,
                challenge=certified.extra_data,
                origin=KeyOrigin.GENERATED_ON_CARD,
                exportable=False,
            ),
            tcb_info=None,
            challenge=certified.extra_data,
        )

    # --- 1: parse -------------------------------------------------------------------------------

    @staticmethod
    def _read(statement: AttestationStatement) -> CertifiedKey:
        try:
            return read_certify(decode_tcg_attest_certify(statement.statement))
        except EncodingError as exc:
            raise EvidenceMalformedError(f"TPM evidence: {exc}") from exc
        except TpmError as exc:  # this authority has no TPM stack to read the structures
            raise EvidenceFormatUnsupportedError(
                f"TPM evidence cannot be read here: {exc}"
            ) from exc

    # --- 2: the AK's signature ------------------------------------------------------------------

    @staticmethod
    def _ec_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise EvidenceMalformedError("the AK certificate does not hold an EC key")
        return key

    @classmethod
    def _signing_ak(cls, certified: CertifiedKey, bundle: AttestationBundle) -> x509.Certificate:
        for candidate in bundle.certificates:
            key = candidate.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey) or _is_ek_certificate(candidate):
                continue
            try:
                verify_certify_signature(key, certified)
            except VerificationError:
                continue
            return candidate
        raise AttestationSignatureError(
            "no AK certificate in the bundle holds the key that signed the TPM2_Certify: the "
            "key was not certified by a TPM of this fleet"
        )

    # --- 4: the EK behind the AK ----------------------------------------------------------------

    @staticmethod
    def _endorsed(
        ak_certificate: x509.Certificate,
        bundle: AttestationBundle,
        policy: VerificationPolicy,
        now: datetime,
    ) -> bytes:
        try:
            hw = hardware_module_name_of(ak_certificate)
        except (VerificationError, EncodingError) as exc:
            raise EvidenceMalformedError(f"AK certificate HardwareModuleName: {exc}") from exc
        if hw.hw_type != TPM_HW_TYPE:
            raise EvidenceMalformedError(
                f"the AK certificate names hardware of type {hw.hw_type.dotted_string}, not a TPM"
            )
        endorsements = [c for c in bundle.certificates if _is_ek_certificate(c)]
        if not endorsements:
            raise EvidenceMalformedError("the bundle carries no EK certificate")
        intermediates = [c for c in bundle.certificates if c not in endorsements]
        for ek_certificate in endorsements:
            ek_key = ek_certificate.public_key()
            if not isinstance(ek_key, ec.EllipticCurvePublicKey):
                continue
            if endorsement_id(ek_key) != hw.hw_serial:
                continue
            try:
                path_verifier(policy.manufacturer_roots, now, ee_policy=_EK_POLICY).verify(
                    ek_certificate, intermediates
                )
            except PathValidationError as exc:
                raise UnknownManufacturerError(
                    f"the EK certificate does not chain to a configured manufacturer root: {exc}"
                ) from exc
            return hw.hw_serial
        raise ChipSerialMismatchError(
            f"the AK certificate names TPM {hw.hw_serial.hex()}, whose EK certificate is not in "
            "the bundle"
        )

    # --- 5-7: what the TPM says about the key ---------------------------------------------------

    @staticmethod
    def _structure(certified: CertifiedKey) -> None:
        if not certified.generated_by_tpm:
            raise EvidenceMalformedError(
                f"the TPMS_ATTEST magic is 0x{certified.magic:08X}, not TPM_GENERATED_VALUE"
            )
        if not certified.is_certify:
            raise EvidenceMalformedError(
                f"the TPMS_ATTEST type is 0x{certified.attest_type:04X}, not TPM_ST_ATTEST_CERTIFY"
            )

    @staticmethod
    def _certified_key(certified: CertifiedKey) -> ec.EllipticCurvePublicKey:
        if certified.certified_name != certified.key_name:
            raise KeyMismatchError(
                "the TPM certified another object than the public area carried (Names differ)"
            )
        return certified.public_key

    @staticmethod
    def _attributes(certified: CertifiedKey) -> None:
        attributes = certified.attributes
        if not attributes.fixed_tpm or not attributes.fixed_parent:
            raise KeyExportableError(
                "the key's fixedTPM or fixedParent is clear: it can be duplicated out of the TPM"
            )
        if not attributes.sensitive_data_origin:
            raise KeyNotGeneratedOnCardError(
                "the key's sensitiveDataOrigin is clear: it was imported, not made in the TPM"
            )
        if not attributes.sign or attributes.decrypt or attributes.restricted:
            raise KeyUsageError(
                f"the key is not an unrestricted sign-only key: {attributes}; this credential "
                "needs SIGN"
            )
