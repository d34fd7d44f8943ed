"""The ``Fleetid-Proof`` header: a request signed by the device's current credential.

Shared by the device (``fleetid.device``), which makes proofs with its SE, and the authority
(``fleetid.authority.lifecycle``), which verifies them. Refresh and re-key may instead be
authenticated by TLS with the current certificate (RFC 7030 §3.3.2); this signature over the
request and a fresh challenge works wherever TLS client authentication does not (an SE-held key
the TLS stack cannot use, HTTP on loopback, in process), and authenticates release::

    Fleetid-Proof: v1; serial=<40 hex>; nonce=<base64url>; sig=<base64url DER ECDSA>

``sig`` is made by the current credential's key over ``proof_message``:
``"fleetid-proof-v1\\n" ‖ path ‖ "\\n" ‖ nonce ‖ SHA-256(body)``, where ``nonce`` is a fresh
single-use challenge from ``POST /enrol/challenge`` (``CHALLENGE_PATH``) and ``path`` the route
the request goes to (``REENROLL_PATH`` with the DER CSR as body, or ``RELEASE_PATH``). base64url
is RFC 4648 §5 without padding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Final

from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError

__all__ = [
    "CHALLENGE_PATH",
    "PROOF_HEADER",
    "REENROLL_PATH",
    "RELEASE_PATH",
    "CredentialProof",
    "proof_message",
    "sign_proof",
]

PROOF_HEADER: Final = "Fleetid-Proof"
CHALLENGE_PATH: Final = "/enrol/challenge"
REENROLL_PATH: Final = "/.well-known/est/simplereenroll"
RELEASE_PATH: Final = "/enrol/release"
_PROOF_LABEL: Final = b"fleetid-proof-v1\n"


def proof_message(*, path: str, nonce: bytes, body: bytes) -> bytes:
    """What a ``Fleetid-Proof`` signature covers (see the module docstring)."""
    return _PROOF_LABEL + path.encode() + b"\n" + nonce + hashlib.sha256(body).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        # validate: characters outside the base64url alphabet are refused, not skipped.
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncodingError(f"{PROOF_HEADER}: a value is not base64url") from exc


@dataclass(frozen=True, kw_only=True)
class CredentialProof:
    """A ``Fleetid-Proof`` header: which credential signs, the nonce, the signature."""

    serial: str
    nonce: bytes
    signature: bytes

    def header(self) -> str:
        return f"v1; serial={self.serial}; nonce={_b64(self.nonce)}; sig={_b64(self.signature)}"

    @classmethod
    def parse(cls, text: str) -> CredentialProof:
        version, *params = (part.strip() for part in text.split(";"))
        if version != "v1":
            raise EncodingError(f"{PROOF_HEADER}: the version is not v1")
        fields: dict[str, str] = {}
        for param in params:
            name, sep, value = param.partition("=")
            if not sep or name in fields:
                raise EncodingError(f"{PROOF_HEADER}: a parameter is not name=value or repeats")
            fields[name] = value
        if set(fields) != {"serial", "nonce", "sig"}:
            raise EncodingError(f"{PROOF_HEADER} has exactly serial, nonce and sig")
        return cls(
            serial=fields["serial"], nonce=_unb64(fields["nonce"]), signature=_unb64(fields["sig"])
        )


def sign_proof(
    signer: Signer, *, serial: str, nonce: bytes, path: str, body: bytes
) -> CredentialProof:
    """The proof a device makes with its current credential's key (held by its SE)."""
    message = proof_message(path=path, nonce=nonce, body=body)
    return CredentialProof(serial=serial, nonce=nonce, signature=signer.sign(message))
