"""The signature checks of WebAuthn attestation statements, done by python-fido2.

The statement formats' own verification procedures (WebAuthn Level 3 §8.2 packed, §8.3 tpm,
§8.6 fido-u2f) are python-fido2's ``fido2.attestation`` classes; this module is the one place
that calls them, so that the signature checks stay inside the crypto fence. python-fido2 has no
android-key format (§8.4): its one signature, over ``authenticatorData || clientDataHash`` with
the leaf certificate's key, is checked here with python-fido2's COSE algorithm table
(``cose_signature_valid``). What the library skips of each procedure is checked by
``fleetid.authority.attestation.fido``, which calls this module first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from fido2.attestation.base import Attestation, InvalidAttestation, InvalidSignature
from fido2.attestation.packed import PackedAttestation
from fido2.attestation.tpm import TpmAttestation
from fido2.attestation.u2f import FidoU2FAttestation
from fido2.cose import CoseKey, UnsupportedKey
from fido2.webauthn import AuthenticatorData

from fleetid.errors import AttestationSignatureError, EvidenceMalformedError

__all__ = [
    "LIBRARY_FORMATS",
    "cose_key_signature_valid",
    "cose_signature_valid",
    "library_verify_statement",
]

# The formats python-fido2 verifies, by their WebAuthn attestation statement format identifier.
LIBRARY_FORMATS: Final[Mapping[str, type[Attestation]]] = {
    "packed": PackedAttestation,
    "tpm": TpmAttestation,
    "fido-u2f": FidoU2FAttestation,
}


def library_verify_statement(
    fmt: str, statement: Mapping[str, Any], auth_data: bytes, client_data_hash: bytes
) -> None:
    """Run python-fido2's verification procedure of ``fmt``; raise ``AttestationSignatureError``
    for a signature that does not verify and ``EvidenceMalformedError`` for anything else the
    library refuses."""
    verifier = LIBRARY_FORMATS[fmt]()
    try:
        verifier.verify(statement, AuthenticatorData(auth_data), client_data_hash)
    except InvalidSignature as exc:
        raise AttestationSignatureError(f"the {fmt} attestation signature does not verify") from exc
    except InvalidAttestation as exc:
        raise EvidenceMalformedError(f"the {fmt} statement breaks its format: {exc}") from exc
    except x509.ExtensionNotFound as exc:  # its certificate checks look extensions up unguarded
        raise EvidenceMalformedError(f"the {fmt} certificate lacks an extension: {exc}") from exc
    except (ValueError, KeyError, TypeError, IndexError, NotImplementedError) as exc:
        raise EvidenceMalformedError(f"the {fmt} statement does not parse: {exc}") from exc


def cose_signature_valid(
    alg: int, certificate: x509.Certificate, message: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` over ``message`` verifies under ``certificate``'s key with the COSE
    algorithm ``alg`` (RFC 9053); an algorithm python-fido2 does not know, or a key of another
    type than ``alg`` names, is a no."""
    cose = CoseKey.for_alg(alg)
    if cose is UnsupportedKey:
        return False
    try:
        cose.from_cryptography_key(certificate.public_key()).verify(message, signature)
    except (CryptographyInvalidSignature, ValueError, TypeError):
        return False
    return True


def cose_key_signature_valid(key: Mapping[int, Any], message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies under the COSE_Key ``key`` (a credential
    public key, RFC 9052 §7), with python-fido2's COSE algorithm table; a key it cannot use is
    a no."""
    try:
        cose = CoseKey.parse(dict(key))
        if isinstance(cose, UnsupportedKey):
            return False
        cose.verify(message, signature)
    except (CryptographyInvalidSignature, ValueError, TypeError, KeyError):
        return False
    return True
