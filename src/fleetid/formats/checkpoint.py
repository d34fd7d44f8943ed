"""C2SP ``tlog-checkpoint`` tree heads carried in C2SP ``signed-note`` envelopes, ECDSA-signed.

A checkpoint (c2sp.org/tlog-checkpoint) is the note text::

    <origin>\\n<tree size, decimal>\\n<base64 root hash>\\n[extension lines\\n]

and a signed note (c2sp.org/signed-note) is that text, a blank line, then one line per signature::

    — <key name> <base64(4-byte big-endian key ID || signature)>\\n

The audit log key is an ECDSA P-256 key in the HSM, so we use signed-note signature type ``0x02``,
"ECDSA signatures as implemented by github.com/transparency-dev/witness" (the scheme Sigstore's
Rekor uses for its checkpoints):

* the signature is ASN.1 DER ECDSA over SHA-256 of the note text;
* the key ID is the first four bytes of SHA-256 of the DER SubjectPublicKeyInfo (not the
  name-prefixed Ed25519 recipe);
* a verifier key is written ``<name>+<key ID as 8 hex digits>+<base64(0x02 || SPKI DER)>``.

The spec allows P-256, P-384 or P-521 and says SHOULD P-256; with a SHA-256 digest fixed by the
scheme we accept P-256 only, so the signer's own curve/hash pairing never disagrees with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import Signer, verify_signature
from fleetid.errors import ConfigError, EncodingError, VerificationError

__all__ = [
    "ECDSA_SIGNATURE_TYPE",
    "Checkpoint",
    "NoteSignature",
    "SignedNote",
    "ecdsa_key_id",
    "open_checkpoint",
    "parse_checkpoint",
    "parse_signed_note",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "verifier_key",
    "verify_note",
]

ECDSA_SIGNATURE_TYPE = 0x02
_EM_DASH = "\u2014"
_SIGNATURE_PREFIX = _EM_DASH + " "
# signed-note: verifiers MUST accept at least 16 signatures and SHOULD cap them.
_MAX_SIGNATURES = 64
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_ROOT_SIZE = 32


def _b64decode(text: str, what: str) -> bytes:
    """Strict RFC 4648 §4 base64: the alphabet, padding and no non-zero trailing bits."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise EncodingError(f"{what} is not base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise EncodingError(f"{what} is not canonical base64")
    return raw


def _check_key_name(name: str) -> str:
    # signed-note: key names are non-empty and contain no Unicode spaces and no "+".
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise EncodingError(f"invalid note key name {name!r}")
    if any(ord(ch) < 0x20 for ch in name):
        raise EncodingError("note key names contain no control characters")
    return name


def _note_text(data: bytes, what: str) -> str:
    """``data`` as note text: UTF-8 with no control character but newline."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError(f"{what} is not UTF-8") from exc
    _check_note_text(decoded)
    return decoded


def _check_note_text(text: str) -> None:
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise EncodingError("a signed note contains no control characters other than newline")


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A tree head: the log's origin, its size and the RFC 6962 root hash at that size."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise EncodingError("a checkpoint origin is one non-empty line")
        if self.size < 0:
            raise EncodingError("a checkpoint tree size is not negative")
        if len(self.root_hash) != _ROOT_SIZE:
            raise EncodingError(f"a checkpoint root hash is {_ROOT_SIZE} bytes")
        for line in self.extensions:
            if not line or "\n" in line:
                raise EncodingError("checkpoint extension lines are single non-empty lines")
        _check_note_text(self.origin + "".join(self.extensions))

    def text(self) -> bytes:
        """The note text (tlog-checkpoint "Note text"), ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return ("\n".join([*lines, *self.extensions]) + "\n").encode("utf-8")


def parse_checkpoint(text: bytes) -> Checkpoint:
    """Parse checkpoint note text; raise ``EncodingError`` if it is not one."""
    decoded = _note_text(text, "checkpoint text")
    if not decoded.endswith("\n"):
        raise EncodingError("checkpoint text does not end in a newline")
    lines = decoded[:-1].split("\n")
    if len(lines) < 3:
        raise EncodingError("a checkpoint has at least three lines")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise EncodingError("checkpoint tree size is not a decimal without leading zeros")
    root_hash = _b64decode(root_text, "checkpoint root hash")
    if len(root_hash) != _ROOT_SIZE:
        raise EncodingError(f"checkpoint root hash is not {_ROOT_SIZE} bytes")
    return Checkpoint(
        origin=origin, size=int(size_text), root_hash=root_hash, extensions=tuple(extensions)
    )


@dataclass(frozen=True, kw_only=True)
class NoteSignature:
    """One signature line: the key name, the 32-bit key ID and the algorithm's signature bytes."""

    key_name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIGNATURE_PREFIX}{self.key_name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True, kw_only=True)
class SignedNote:
    """Note text (ending in a newline) and its signature lines."""

    text: bytes
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        lines = "".join(signature.line() for signature in self.signatures)
        return self.text + b"\n" + lines.encode("utf-8")


def parse_signed_note(data: bytes) -> SignedNote:
    """Split a signed note into its text and signature lines (signed-note "Format")."""
    decoded = _note_text(data, "a signed note")
    # The text is separated from the signatures by the last empty line.
    split = decoded.rfind("\n\n")
    if split < 0 or not decoded.endswith("\n"):
        raise EncodingError("a signed note has text, a blank line and signature lines")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    lines = block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise EncodingError(f"a signed note with more than {_MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise EncodingError("a signature line starts with an em dash and a space")
        fields = line[len(_SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise EncodingError("a signature line is a key name and a base64 signature")
        name, blob_text = _check_key_name(fields[0]), fields[1]
        blob = _b64decode(blob_text, "note signature")
        if len(blob) < 5:
            raise EncodingError("a note signature is a 4-byte key ID and a signature")
        signatures.append(
            NoteSignature(key_name=name, key_id=int.from_bytes(blob[:4], "big"), signature=blob[4:])
        )
    return SignedNote(text=text.encode("utf-8"), signatures=tuple(signatures))


def _spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _require_p256(public_key: ec.EllipticCurvePublicKey) -> None:
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise ConfigError("checkpoint keys are ECDSA P-256 (signed-note type 0x02 with SHA-256)")


def ecdsa_key_id(public_key: ec.EllipticCurvePublicKey) -> int:
    """Signed-note type 0x02 key ID: SHA-256(SPKI DER)[:4] as a big-endian uint32."""
    return int.from_bytes(hashlib.sha256(_spki(public_key)).digest()[:4], "big")


def verifier_key(key_name: str, public_key: ec.EllipticCurvePublicKey) -> str:
    """The text a verifier is configured with: ``name+keyid+base64(0x02 || SPKI DER)``."""
    _check_key_name(key_name)
    _require_p256(public_key)
    blob = bytes([ECDSA_SIGNATURE_TYPE]) + _spki(public_key)
    key_id = ecdsa_key_id(public_key)
    return f"{key_name}+{key_id:08x}+{base64.b64encode(blob).decode('ascii')}"


def parse_verifier_key(vkey: str) -> tuple[str, ec.EllipticCurvePublicKey]:
    """Parse ``verifier_key`` output; raise ``EncodingError`` if malformed or inconsistent."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise EncodingError("a verifier key is name+keyid+key")
    name, key_id_text, blob_text = parts
    _check_key_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", key_id_text):
        raise EncodingError("a verifier key ID is 8 lowercase hex digits")
    blob = _b64decode(blob_text, "verifier key")
    if len(blob) < 2 or blob[0] != ECDSA_SIGNATURE_TYPE:
        raise EncodingError("only signed-note type 0x02 (ECDSA) verifier keys are supported")
    try:
        public_key = serialization.load_der_public_key(blob[1:])
    except ValueError as exc:
        raise EncodingError("verifier key is not a DER SubjectPublicKeyInfo") from exc
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise EncodingError("verifier key is not an ECDSA key")
    try:
        _require_p256(public_key)
    except ConfigError as exc:
        raise EncodingError(str(exc)) from exc
    if _spki(public_key) != blob[1:]:
        raise EncodingError("verifier key SPKI is not in canonical DER")
    if int(key_id_text, 16) != ecdsa_key_id(public_key):
        raise EncodingError("verifier key ID does not match its public key")
    return name, public_key


def sign_note(text: bytes, key_name: str, signer: Signer) -> NoteSignature:
    """Sign note text with an ECDSA P-256 signer (type 0x02); the signature is checked first.

    Every signature an HSM returns is verified before use (SoftHSM has had intermittent
    bad-signature reports).
    """
    _check_key_name(key_name)
    public_key = signer.public_key()
    _require_p256(public_key)
    if not isinstance(signer.hash_algorithm, hashes.SHA256):
        raise ConfigError("signed-note type 0x02 signs a SHA-256 digest")
    if not text.endswith(b"\n"):
        raise EncodingError("note text ends in a newline")
    _check_note_text(text.decode("utf-8"))
    signature = signer.sign(text)
    verify_signature(public_key, signature, text, hashes.SHA256())
    return NoteSignature(key_name=key_name, key_id=ecdsa_key_id(public_key), signature=signature)


def verify_note(note: SignedNote, key_name: str, public_key: ec.EllipticCurvePublicKey) -> None:
    """Verify a note against one trusted key (signed-note "Signatures").

    Signatures from other keys (a different name or key ID) are ignored; every signature from the
    trusted key must verify, and at least one must be present. Raises ``VerificationError``.
    """
    _require_p256(public_key)
    key_id = ecdsa_key_id(public_key)
    known = [
        signature
        for signature in note.signatures
        if signature.key_name == key_name and signature.key_id == key_id
    ]
    if not known:
        raise VerificationError(f"note carries no signature by {key_name}+{key_id:08x}")
    for signature in known:
        verify_signature(public_key, signature.signature, note.text, hashes.SHA256())


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer, key_name: str | None = None) -> bytes:
    """The signed note of a checkpoint; the key name defaults to the origin (tlog-checkpoint)."""
    text = checkpoint.text()
    signature = sign_note(text, key_name or checkpoint.origin, signer)
    return SignedNote(text=text, signatures=(signature,)).encode()


def open_checkpoint(
    note: bytes,
    public_key: ec.EllipticCurvePublicKey,
    origin: str,
    key_name: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint and return its tree head; raise ``VerificationError``.

    Encoding errors are reported as verification failures too: a caller asking "is this a valid
    checkpoint from that log" gets one exception family.
    """
    try:
        signed = parse_signed_note(note)
        verify_note(signed, key_name or origin, public_key)
        checkpoint = parse_checkpoint(signed.text)
    except EncodingError as exc:
        raise VerificationError(f"malformed checkpoint: {exc}") from exc
    if checkpoint.origin != origin:
        raise VerificationError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint
