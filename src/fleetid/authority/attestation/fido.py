"""WebAuthn attestation statements (FIDO authenticators): the statement alone, no trust decision.

``verify_attestation(attestation_object, client_data_hash)`` runs, for the formats this authority
accepts, every step of the format's verification procedure in WebAuthn Level 3 §8 and returns the
format, the authenticator model (AAGUID) and the attestation trust path. Trust comes after it,
from the metadata store (``fleetid.authority.fido_metadata``), which knows the roots and the
status of each model. Every failure raises a ``VerificationError`` (an ``AttestationError``
subclass, whose ``reason`` the HTTP edge sends).

python-fido2 verifies packed, tpm and fido-u2f (``fleetid.crypto.webauthn_signatures``); it has no
android-key. Checked against the specification text step by step, these are the steps added here
("L" marks what python-fido2 does itself):

All formats
  A1 the attestation object is CTAP2 canonical CBOR with nothing trailing and exactly fmt,
     attStmt, authData; so are the credential public key and the extensions in authData
     (``fleetid.formats.webauthn``; L only refuses bytes after the top-level item);
  A2 "none" and self attestation are refused by policy (L accepts both);
  A3 attStmt holds exactly the members its format's syntax defines (L ignores unknown members);
  A4 every x5c element is a DER X.509 certificate (L parses only the first).
packed (§8.2)
  L  sig over authenticatorData || clientDataHash with the attestnCert key and alg;
  L  attestnCert meets §8.2.1 (version 3, subject C, O, OU "Authenticator Attestation", CN,
     basicConstraints CA false);
  P1 the id-fido-gen-ce-aaguid extension, when present, is a non-critical DER OCTET STRING of 16
     bytes equal to authData's AAGUID (L compares the value's bytes from the third on, whatever
     their DER tag and length say).
tpm (§8.3)
  T1 ver is "2.0" (L does not look);
  L  pubArea's key is the credential public key; certInfo's magic, type, extraData (the hash of
     authenticatorData || clientDataHash) and attested name; sig over certInfo; aikCert §8.3.1;
  T2 the id-fido-gen-ce-aaguid extension of aikCert, when present, as P1 (L does not look).
android-key (§8.4), all here:
  K1 sig over authenticatorData || clientDataHash with the leaf's key and alg;
  K2 the leaf's public key is the credential public key;
  K3 attestationChallenge in the key description is clientDataHash;
  K4 allApplications is in neither authorization list;
  K5 origin is KM_ORIGIN_GENERATED and purpose is KM_PURPOSE_SIGN alone, in the hardware-enforced
     list (the Relying Party default WebAuthn §8.4 recommends: a key the TEE or StrongBox made).
fido-u2f (§8.6)
  U1 x5c has exactly one element, whose key is EC P-256 (L uses the first and any EC key);
  U2 the credential public key is an EC2 P-256 key with 32-byte coordinates (L reads the
     coordinates without checking kty, alg, crv or their sizes);
  U3 authData's AAGUID is zero, as the client writes it for a U2F authenticator (§8.6 step 3 and
     CTAP2 §11.2.7): the U2F signature does not cover it, so a non-zero one could only be forged
     (L does not look). Nor does it cover the flags or the counter: a fido-u2f registration says
     nothing verifiable about user verification (``operator_keys`` refuses it where UV is
     required);
  L  the U2F registration signature over 0x00 || rpIdHash || clientDataHash || credentialId ||
     publicKeyU2F.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.utils import CryptographyDeprecationWarning
from fido2 import cbor
from fido2.cose import CoseKey

from fleetid.crypto.webauthn_signatures import cose_signature_valid, library_verify_statement
from fleetid.errors import (
    AttestationSignatureError,
    AttestationTypeRefusedError,
    EncodingError,
    EvidenceFormatUnsupportedError,
    EvidenceMalformedError,
    KeyMismatchError,
    KeyNotGeneratedOnCardError,
    KeyUsageError,
)
from fleetid.formats.android_key import (
    ANDROID_KEY_DESCRIPTION_OID,
    KM_ORIGIN_GENERATED,
    KM_PURPOSE_SIGN,
    TAG_ALL_APPLICATIONS,
    TAG_ORIGIN,
    TAG_PURPOSE,
    decode_key_description,
)
from fleetid.formats.webauthn import (
    FIDO_AAGUID_OID,
    AttestationObjectParts,
    parse_attestation_object,
)

__all__ = ["ACCEPTED_FORMATS", "FIDO_AAGUID_OID", "FidoAttestation", "verify_attestation"]


# attStmt members by format (WebAuthn L3 §8.2.1 ... §8.6 "Syntax"); ECDAA was removed in Level 2.
_MEMBERS: Final[Mapping[str, frozenset[str]]] = {
    "packed": frozenset({"alg", "sig", "x5c"}),
    "tpm": frozenset({"ver", "alg", "x5c", "sig", "certInfo", "pubArea"}),
    "android-key": frozenset({"alg", "sig", "x5c"}),
    "fido-u2f": frozenset({"sig", "x5c"}),
}
ACCEPTED_FORMATS: Final = frozenset(_MEMBERS)
_REFUSED_FORMATS: Final = frozenset({"none"})
# COSE_Key labels (RFC 9052 §7, RFC 9053 §7.1): kty 1, alg 3, crv -1, x -2, y -3; EC2 = 2,
# ES256 = -7, P-256 = 1
_KTY, _ALG, _CRV, _X, _Y = 1, 3, -1, -2, -3


@dataclass(frozen=True, kw_only=True)
class FidoAttestation:
    """What a verified statement says: its format, the authenticator model and the trust path
    (leaf first) that the metadata store is to anchor."""

    fmt: str
    aaguid: uuid.UUID
    trust_path: tuple[x509.Certificate, ...]
    credential_id: bytes
    credential_public_key: bytes = field(repr=False)  # the COSE_Key from authData
    rp_id_hash: bytes
    flags: int
    sign_count: int


def verify_attestation(attestation_object: bytes, client_data_hash: bytes) -> FidoAttestation:
    """Verify a WebAuthn attestation statement (see the module docstring for the steps)."""
    if len(client_data_hash) != 32:
        raise EvidenceMalformedError("clientDataHash is a SHA-256 digest of 32 bytes")
    try:
        parts = parse_attestation_object(attestation_object)
    except EncodingError as exc:
        raise EvidenceMalformedError(str(exc)) from exc
    _accepted_type(parts)
    trust_path = _certificates(parts.statement["x5c"])
    if parts.fmt == "android-key":
        _android_key(parts, trust_path, client_data_hash)
    else:
        if parts.fmt == "fido-u2f":
            _u2f_keys(parts, trust_path)
        if parts.fmt == "tpm" and parts.statement["ver"] != "2.0":
            raise EvidenceMalformedError('a tpm statement\'s ver is "2.0" (§8.3)')
        library_verify_statement(parts.fmt, parts.statement, parts.auth_data, client_data_hash)
        if parts.fmt in ("packed", "tpm"):
            _aaguid_extension(trust_path[0], parts.aaguid)
    return FidoAttestation(
        fmt=parts.fmt,
        aaguid=parts.aaguid,
        trust_path=trust_path,
        credential_id=parts.credential_id,
        credential_public_key=parts.credential_public_key,
        rp_id_hash=parts.rp_id_hash,
        flags=parts.flags,
        sign_count=parts.sign_count,
    )


def _accepted_type(parts: AttestationObjectParts) -> None:
    """A2 and A3: the format, self attestation, the statement's members."""
    if parts.fmt in _REFUSED_FORMATS:
        raise AttestationTypeRefusedError(
            f'attestation format "{parts.fmt}" names no authenticator model; refused by policy'
        )
    members = _MEMBERS.get(parts.fmt)
    if members is None:
        raise EvidenceFormatUnsupportedError(f'attestation format "{parts.fmt}" is not accepted')
    if parts.fmt == "packed" and "x5c" not in parts.statement:
        raise AttestationTypeRefusedError(
            "self attestation (packed without x5c) names no authenticator model; refused by policy"
        )
    if set(parts.statement) != members:
        found = ", ".join(sorted(map(str, parts.statement)))
        raise EvidenceMalformedError(
            f"a {parts.fmt} statement holds exactly {', '.join(sorted(members))}; this one: {found}"
        )


def _certificates(x5c: Any) -> tuple[x509.Certificate, ...]:
    """A4: x5c is a non-empty array of DER certificates, each parsed whole now (pyca parses a
    key and extensions on first use) and with a positive serial (RFC 5280 §4.1.2.2)."""
    if not isinstance(x5c, list) or not x5c or not all(isinstance(c, bytes) for c in x5c):
        raise EvidenceMalformedError("x5c is not a non-empty array of byte strings")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            certificates = tuple(x509.load_der_x509_certificate(der) for der in x5c)
            for certificate in certificates:
                certificate.public_key()
                certificate.extensions  # noqa: B018 - parsed now, so that errors surface here
    except (
        ValueError,
        x509.InvalidVersion,
        x509.DuplicateExtension,
        UnsupportedAlgorithm,
        Warning,
    ) as exc:
        raise EvidenceMalformedError(f"an x5c element is not a DER certificate: {exc}") from exc
    return certificates


def _aaguid_extension(certificate: x509.Certificate, aaguid: uuid.UUID) -> None:
    """P1 and T2: id-fido-gen-ce-aaguid, when present, is the DER OCTET STRING of authData's
    AAGUID, not critical (§8.2.1, §8.3.1)."""
    try:
        extension = certificate.extensions.get_extension_for_oid(FIDO_AAGUID_OID)
    except x509.ExtensionNotFound:
        return
    if extension.critical:
        raise EvidenceMalformedError("the id-fido-gen-ce-aaguid extension is marked critical")
    value = extension.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    if len(raw) != 18 or raw[:2] != b"\x04\x10":
        raise EvidenceMalformedError(
            "the id-fido-gen-ce-aaguid extension is not a DER OCTET STRING of 16 bytes"
        )
    if raw[2:] != aaguid.bytes:
        raise EvidenceMalformedError(
            f"the attestation certificate names AAGUID {uuid.UUID(bytes=raw[2:])},"
            f" authData {aaguid}"
        )


def _credential_key(parts: AttestationObjectParts) -> dict[int, Any]:
    key = cbor.decode(parts.credential_public_key)
    if not isinstance(key, dict):
        raise EvidenceMalformedError("the credential public key is not a COSE_Key map")
    return key


def _key_material(key: Mapping[int, Any]) -> dict[int, Any]:
    """A COSE_Key's type and public parameters, without its algorithm (RFC 9052 §7)."""
    return {label: value for label, value in key.items() if label != _ALG}


def _u2f_keys(parts: AttestationObjectParts, trust_path: tuple[x509.Certificate, ...]) -> None:
    """U1 to U3 (§8.6 steps 2 and 3)."""
    if len(trust_path) != 1:
        raise EvidenceMalformedError("a fido-u2f statement's x5c has exactly one certificate")
    certificate_key = trust_path[0].public_key()
    if not (
        isinstance(certificate_key, ec.EllipticCurvePublicKey)
        and isinstance(certificate_key.curve, ec.SECP256R1)
    ):
        raise EvidenceMalformedError("a fido-u2f attestation certificate holds an EC P-256 key")
    if parts.aaguid.int != 0:
        raise EvidenceMalformedError("a fido-u2f registration's AAGUID is zero (unsigned here)")
    key = _credential_key(parts)
    if key.get(_KTY) != 2 or key.get(_ALG) != -7 or key.get(_CRV) != 1:
        raise EvidenceMalformedError("a fido-u2f credential public key is EC2, ES256, P-256")
    if not all(isinstance(key.get(c), bytes) and len(key[c]) == 32 for c in (_X, _Y)):
        raise EvidenceMalformedError("a fido-u2f credential key's coordinates are 32 bytes each")


def _android_key(
    parts: AttestationObjectParts,
    trust_path: tuple[x509.Certificate, ...],
    client_data_hash: bytes,
) -> None:
    """K1 to K5 (§8.4)."""
    leaf = trust_path[0]
    alg = parts.statement["alg"]
    signature = parts.statement["sig"]
    if not isinstance(alg, int) or not isinstance(signature, bytes):
        raise EvidenceMalformedError("an android-key statement's alg or sig has the wrong type")
    if not cose_signature_valid(alg, leaf, parts.auth_data + client_data_hash, signature):
        raise AttestationSignatureError("the android-key attestation signature does not verify")
    try:
        leaf_key = dict(CoseKey.for_alg(alg).from_cryptography_key(leaf.public_key()))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EvidenceMalformedError(f"the leaf's key does not fit alg {alg}") from exc
    credential = _credential_key(parts)
    if _key_material(leaf_key) != _key_material(credential):
        raise KeyMismatchError("the android-key certificate's key is not the credential's")
    try:
        extension = leaf.extensions.get_extension_for_oid(
            x509.ObjectIdentifier(ANDROID_KEY_DESCRIPTION_OID)
        )
    except x509.ExtensionNotFound as exc:
        raise EvidenceMalformedError("the android-key certificate has no key description") from exc
    raw = extension.value.value if isinstance(extension.value, x509.UnrecognizedExtension) else b""
    try:
        description = decode_key_description(raw)
    except EncodingError as exc:
        raise EvidenceMalformedError(str(exc)) from exc
    if description.attestation_challenge != client_data_hash:
        raise EvidenceMalformedError("the key description's attestationChallenge is not ours")
    lists = (description.software_enforced, description.hardware_enforced)
    if any(auth.has(TAG_ALL_APPLICATIONS) for auth in lists):
        raise KeyUsageError("the key is usable by all applications (allApplications)")
    enforced = description.hardware_enforced
    try:
        origin = enforced.integer(TAG_ORIGIN)
        purposes = enforced.integer_set(TAG_PURPOSE)
    except EncodingError as exc:
        raise EvidenceMalformedError(str(exc)) from exc
    if origin != KM_ORIGIN_GENERATED:
        raise KeyNotGeneratedOnCardError(
            "the hardware-enforced list does not say the key was generated in the keystore"
        )
    if purposes != {KM_PURPOSE_SIGN}:  # §8.4: "equal to KM_PURPOSE_SIGN"
        raise KeyUsageError(
            f"the hardware-enforced key purposes are {sorted(purposes)}, not SIGN alone"
        )
