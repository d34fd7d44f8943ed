"""The fleetid secure-element key-attestation format (``fleetid-se``).

The statement (``FLEETID_SE_KEY_ATTESTATION_OID``) is the X.509 certificate the card's ATTEST
command returns for an operational key: signed by the card's attestation key, whose IEEE 802.1AR
IDevID the provisioning line issued; the bundle's ``certs`` carry that IDevID and its line CA.
Its key-properties extension (``fleetid.formats.attestation``) states the chip serial, where the
key was made, that it cannot leave, its usage and the verifier's challenge.

The rules, in the order they are checked (each failure is its own ``AttestationError``):

1. the statement is a DER certificate with a decodable key-properties extension;
2. it is signed by the attestation key of an IDevID in the bundle (``crypto.pkix.issued_by``;
   the IDevID is an end entity, so this last link is outside RFC 5280 path validation);
3. the IDevID chains to a configured manufacturer root: pyca's RFC 5280 path validation
   (``crypto.pkix.path_verifier``) at ``now``, with the bundle's other certificates as intermediates
   (``fleetid.authority.attestation.paths``, which also says how a line CA already validated
   is remembered). The CA certificates are held to the Web PKI CA profile; the IDevID must
   carry keyUsage digitalSignature and may carry anything else (an 802.1AR identity has no EKU,
   and its only name is an RFC 4108 HardwareModuleName);
4. the chip serial in the key properties is the IDevID's hwSerialNum;
5. the CSR's public key is the attested key;
6. the key was generated on the card, is not exportable, and has exactly the required usage;
7. the line manifest lists the IDevID's device serial here, secured, not quarantined;
8. the device is not revoked or transferred here, and not enrolled with another IDevID key;
9. the IDevID and its attestation key are the ones the manifest recorded;
10. the challenge was issued here, is unexpired, unused and (if issued for a device) for this
    one; it is spent in the caller's transaction.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.authority.attestation.base import (
    AttestedDevice,
    EnrolmentLedger,
    VerificationPolicy,
    register,
)
from fleetid.authority.attestation.paths import IdevidPaths
from fleetid.crypto.pkix import PathValidationError, issued_by
from fleetid.errors import (
    AttestationSignatureError,
    ChallengeExpiredError,
    ChallengeNotBoundError,
    ChallengeReplayedError,
    ChallengeUnknownError,
    ChipSerialMismatchError,
    CloneSuspectedError,
    DeviceRevokedError,
    DeviceTransferredError,
    EncodingError,
    EvidenceMalformedError,
    IdevidMismatchError,
    KeyExportableError,
    KeyMismatchError,
    KeyNotGeneratedOnCardError,
    KeyUsageError,
    NotOnManifestError,
    QuarantinedDeviceError,
    UnknownManufacturerError,
    VerificationError,
)
from fleetid.factory.manufacturer import certificate_fingerprint, hardware_module_name_of
from fleetid.formats import x509_tbs
from fleetid.formats.attestation import (
    KEY_PROPERTIES_OID,
    TCG_DICE_TCB_INFO_OID,
    KeyOrigin,
    KeyProperties,
    TcbInfo,
    decode_key_properties,
    decode_tcb_info,
)
from fleetid.formats.csr_attestation import (
    FLEETID_SE_KEY_ATTESTATION_OID,
    AttestationBundle,
    AttestationStatement,
)
from fleetid.store.line_manifest_rows import UnitState
from fleetid.store.schema import DeviceStatus

__all__ = ["FleetIdSeVerifier", "spki_sha256"]

_SERIAL_NUMBER_DER = x509_tbs.oid(NameOID.SERIAL_NUMBER)


def spki_sha256(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of a key's DER SubjectPublicKeyInfo."""
    return hashlib.sha256(_spki(public_key)).digest()


def _spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _ec_key(certificate: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EvidenceMalformedError(f"the {what} does not hold an EC key")
    return key


def _extension_value(certificate: x509.Certificate, oid: str) -> bytes | None:
    try:
        ext = certificate.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise EvidenceMalformedError(f"extension {oid} is not opaque to pyca")
    return value.value


@register
class FleetIdSeVerifier:
    """Verifies ``fleetid-se`` key-attestation evidence (see the module docstring)."""

    type_key: ClassVar[str] = "fleetid-se"
    statement_type: ClassVar[str] = FLEETID_SE_KEY_ATTESTATION_OID

    def __init__(self) -> None:
        self._paths = IdevidPaths()

    def examine(
        self,
        *,
        csr: x509.CertificateSigningRequest,
        bundle: AttestationBundle,
        statement: AttestationStatement,
        policy: VerificationPolicy,
        now: datetime,
    ) -> AttestedDevice:
        """Rules 1-6: the evidence itself."""
        attested = self.examine_key(bundle=bundle, statement=statement, policy=policy, now=now)
        self._same_key(csr, attested.public_key)
        return attested

    def examine_key(
        self,
        *,
        bundle: AttestationBundle,
        statement: AttestationStatement,
        policy: VerificationPolicy,
        now: datetime,
    ) -> AttestedDevice:
        """Rules 1-4 and 6, for a key that comes with no CSR (a key-agreement key, or a proof
        of the SE's identity bound to a session's challenge)."""
        attestation, props, tcb = self._parse(statement)
        idevid = self._attesting_idevid(attestation, bundle)
        self._chain_to_manufacturer(idevid, bundle, policy, now)
        device_id = self._device_serial(idevid)
        self._same_chip(idevid, props)
        attested_key = _ec_key(attestation, "key-attestation certificate")
        self._key_properties(props, policy)
        return AttestedDevice(
            format=self.type_key,
            device_id=device_id,
            chip_serial=props.chip_serial,
            idevid=idevid,
            idevid_key_sha256=spki_sha256(_ec_key(idevid, "IDevID")),
            public_key=attested_key,
            key_properties=props,
            tcb_info=tcb,
            challenge=props.challenge,
        )

    def check_records(
        self, attested: AttestedDevice, ledger: EnrolmentLedger, now: datetime
    ) -> None:
        """Rules 7-10: what this authority's records say of the device and the challenge."""
        device_id = attested.device_id
        self._manifest(ledger, device_id, attested.idevid, attested.idevid_key_sha256)
        self._challenge(ledger, attested.challenge, device_id, now)

    # --- 1: parse -------------------------------------------------------------------------------

    @staticmethod
    def _parse(
        statement: AttestationStatement,
    ) -> tuple[x509.Certificate, KeyProperties, TcbInfo | None]:
        try:
            attestation = x509.load_der_x509_certificate(statement.statement)
        except ValueError as exc:
            raise EvidenceMalformedError(f"the statement is not a DER certificate: {exc}") from exc
        raw = _extension_value(attestation, KEY_PROPERTIES_OID)
        if raw is None:
            raise EvidenceMalformedError("the key-attestation certificate has no key properties")
        try:
            props = decode_key_properties(raw)
            tcb_raw = _extension_value(attestation, TCG_DICE_TCB_INFO_OID)
            tcb = None if tcb_raw is None else decode_tcb_info(tcb_raw)
        except EncodingError as exc:
            raise EvidenceMalformedError(str(exc)) from exc
        return attestation, props, tcb

    # --- 2, 3: signatures and the path to the manufacturer -------------------------------------

    @staticmethod
    def _attesting_idevid(
        attestation: x509.Certificate, bundle: AttestationBundle
    ) -> x509.Certificate:
        for candidate in bundle.certificates:
            if x509_tbs.names_issuer(attestation, candidate) and issued_by(attestation, candidate):
                return candidate
        raise AttestationSignatureError(
            "no certificate in the bundle holds the key that signed the key attestation"
        )

    def _chain_to_manufacturer(
        self,
        idevid: x509.Certificate,
        bundle: AttestationBundle,
        policy: VerificationPolicy,
        now: datetime,
    ) -> None:
        intermediates = [c for c in bundle.certificates if c != idevid]
        try:
            self._paths.validate(idevid, intermediates, policy.manufacturer_roots, now)
        except PathValidationError as exc:
            raise UnknownManufacturerError(
                f"the IDevID does not chain to a configured manufacturer root: {exc}"
            ) from exc

    # --- 4-6: what the card says about the key ---------------------------------------------------

    @staticmethod
    def _device_serial(idevid: x509.Certificate) -> str:
        serial = x509_tbs.printable_subject_attribute(idevid, _SERIAL_NUMBER_DER)
        if serial is not None:  # the usual PrintableString, read without building the Name
            return serial
        names = idevid.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        if len(names) != 1 or not isinstance(names[0].value, str) or not names[0].value:
            raise EvidenceMalformedError("the IDevID subject has no single serialNumber (802.1AR)")
        return names[0].value

    @staticmethod
    def _same_chip(idevid: x509.Certificate, props: KeyProperties) -> None:
        try:
            hw = hardware_module_name_of(idevid)
        except (VerificationError, EncodingError) as exc:
            raise EvidenceMalformedError(f"IDevID HardwareModuleName: {exc}") from exc
        if hw.hw_serial != props.chip_serial:
            raise ChipSerialMismatchError(
                f"key properties name chip {props.chip_serial.hex()}, the IDevID names "
                f"{hw.hw_serial.hex()}"
            )

    @staticmethod
    def _same_key(csr: x509.CertificateSigningRequest, attested: ec.EllipticCurvePublicKey) -> None:
        requested = csr.public_key()
        if not isinstance(requested, ec.EllipticCurvePublicKey) or _spki(requested) != _spki(
            attested
        ):
            raise KeyMismatchError("the CSR's public key is not the attested key")

    @staticmethod
    def _key_properties(props: KeyProperties, policy: VerificationPolicy) -> None:
        if props.origin != KeyOrigin.GENERATED_ON_CARD:
            raise KeyNotGeneratedOnCardError(f"the key's origin is {props.origin}")
        if props.exportable:
            raise KeyExportableError("the key is exportable")
        if props.usage != policy.required_usage:
            raise KeyUsageError(
                f"the key's usage is {props.usage!r}; this credential needs "
                f"{policy.required_usage!r}"
            )

    # --- 7-9: the authority's records ----------------------------------------------------------

    @staticmethod
    def _manifest(
        ledger: EnrolmentLedger, device_id: str, idevid: x509.Certificate, idevid_key: bytes
    ) -> None:
        entry = ledger.manifest_entry(device_id)
        if entry is None:
            raise NotOnManifestError(f"device {device_id} is not on a manifest trusted here")
        if entry.state == UnitState.QUARANTINED:
            raise QuarantinedDeviceError(f"device {device_id} is quarantined: {entry.state}")
        if entry.state != UnitState.SECURED:
            raise NotOnManifestError(f"device {device_id} left the line unfinished ({entry.state})")
        device = ledger.device(device_id)
        if device is not None:
            if device.status == DeviceStatus.TRANSFERRED:
                raise DeviceTransferredError(f"device {device_id} moved to another authority")
            if device.status == DeviceStatus.REVOKED:
                raise DeviceRevokedError(f"device {device_id} is revoked here")
            if device.idevid_key_sha256 is not None and device.idevid_key_sha256 != idevid_key:
                raise CloneSuspectedError(
                    f"device {device_id} is enrolled with another IDevID key: clone signal"
                )
        if entry.idevid_fingerprint is not None and (
            entry.idevid_fingerprint != certificate_fingerprint(idevid)
        ):
            raise IdevidMismatchError(f"device {device_id}'s IDevID is not the manifest's")
        if entry.attestation_public_key is not None and (
            hashlib.sha256(entry.attestation_public_key).digest() != idevid_key
        ):
            raise IdevidMismatchError(f"device {device_id}'s attestation key is not the manifest's")

    # --- 10: the challenge ---------------------------------------------------------------------

    @staticmethod
    def _challenge(ledger: EnrolmentLedger, nonce: bytes, device_id: str, now: datetime) -> None:
        """Spend the challenge (one conditional UPDATE); only a refusal reads it to say why. A
        challenge bound to another device is refused after the spend, which the caller's
        transaction then undoes."""
        if not nonce:
            raise ChallengeNotBoundError("the key attestation carries no challenge")
        spent = ledger.spend_challenge(nonce, now)
        if spent is None:
            record = ledger.challenge(nonce)
            if record is None:
                raise ChallengeUnknownError("the attested challenge was not issued here")
            if record.used_at is not None:
                raise ChallengeReplayedError(
                    f"the attested challenge was used at {record.used_at.isoformat()}"
                )
            if now >= record.expires_at:
                raise ChallengeExpiredError(
                    f"the attested challenge expired at {record.expires_at.isoformat()}"
                )
            raise ChallengeReplayedError("the attested challenge was spent concurrently")
        if spent.device_id is not None and spent.device_id != device_id:
            raise ChallengeNotBoundError(f"the challenge was issued for {spent.device_id}")
