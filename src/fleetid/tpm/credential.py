"""Credential activation, the verifier's half: TPM2_MakeCredential done outside a TPM.

TPM 2.0 Library Part 1 §24: a verifier holding an EK's public area and the Name of a key it is
told sits beside it seals a secret to both (an ECDH seed to the EK, the secret encrypted and
MACed under keys derived from the seed and the Name). Only the TPM holding that EK, and holding a
loaded object of that Name, gives the secret back (TPM2_ActivateCredential). tpm2-pytss's
``make_credential`` does the software half; the line uses it before it certifies an AK.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetid.errors import EncodingError
from fleetid.tpm.stack import tss, tss_utils

__all__ = ["CredentialChallenge", "make_credential"]


@dataclass(frozen=True, kw_only=True)
class CredentialChallenge:
    """What TPM2_ActivateCredential takes: marshalled ``TPM2B_ID_OBJECT`` and
    ``TPM2B_ENCRYPTED_SECRET``."""

    credential_blob: bytes
    encrypted_secret: bytes


def make_credential(ek_public: bytes, key_name: bytes, secret: bytes) -> CredentialChallenge:
    """Seal ``secret`` to the EK (marshalled ``TPMT_PUBLIC``) and the key of Name ``key_name``."""
    tpm = tss()
    try:
        area, used = tpm.TPMT_PUBLIC.unmarshal(ek_public)
    except Exception as exc:  # the binding raises whatever the TSS's unmarshaller reports
        raise EncodingError(f"the EK public area does not unmarshal: {exc}") from exc
    if used != len(ek_public):
        raise EncodingError("the EK public area has bytes after its end")
    blob, encrypted = tss_utils().make_credential(area, secret, tpm.TPM2B_NAME(key_name))
    return CredentialChallenge(
        credential_blob=bytes(blob.marshal()), encrypted_secret=bytes(encrypted.marshal())
    )
