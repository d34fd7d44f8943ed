"""The attacker's bench tools, and the referee's census of secrets in a dump.

The attacker's tools know nothing the attacker would not: they carve PEM blocks and hex runs
out of raw bytes, try every printable string of the dump (and of any firmware it holds) as a
passphrase, and keep a candidate key only if its public key matches a certificate the dump
also holds. ``census`` is the referee's side: it knows every secret the system holds and looks
for each, in the encodings a careless implementation would write, in the attacker's bytes.
``use_identity`` is how stolen material is proven: refresh the victim's credential from another
place on the network with the stolen key, and be issued a certificate.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.keys import private_key_from_scalar
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.device.transport import AuthorityTransport
from fleetid.errors import FleetIdError
from fleetid.formats.csr_attestation import build_csr
from fleetid.formats.proof import REENROLL_PATH, sign_proof
from fleetid.sim.threats.result import Outcome, Verdict
from fleetid.sim.threats.target_fleet import subject_for

__all__ = ["Loot", "Secret", "attempt", "carve", "census", "prove", "use_identity"]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n[A-Za-z0-9+/=\r\n:,\-]+?-----END \1-----")
_HEX_RUN = re.compile(rb"[0-9a-fA-F]{40,}")
_STRING = re.compile(rb"[\x21-\x7e]{12,128}")
_CURVES: tuple[ec.EllipticCurve, ...] = (ec.SECP256R1(), ec.SECP384R1())


@dataclass(frozen=True, kw_only=True)
class Secret:
    """A secret the system holds: its kind (for the report) and its bytes."""

    kind: str
    value: bytes = field(repr=False)


def _encodings(secret: Secret) -> list[bytes]:
    value = secret.value
    forms = [value, value.hex().encode(), value.hex().upper().encode()]
    forms.append(f"{int.from_bytes(value, 'big'):x}".encode())  # an integer written as hex
    forms.append(base64.b64encode(value).rstrip(b"="))
    forms.append(base64.urlsafe_b64encode(value).rstrip(b"="))
    return [f for f in forms if len(f) >= 8]


def census(dump: bytes, secrets: Iterable[Secret]) -> list[Secret]:
    """The referee's search: each of ``secrets`` found in ``dump`` in any of its encodings."""
    return [s for s in secrets if any(form in dump for form in _encodings(s))]


@dataclass
class Loot:
    """What ``carve`` found: private keys that match a certificate, and the certificates."""

    keys: list[ec.EllipticCurvePrivateKey] = field(default_factory=list)
    certificates: list[x509.Certificate] = field(default_factory=list)
    passphrases: list[bytes] = field(default_factory=list)
    candidates_tried: int = 0

    def key_for(self, certificate: x509.Certificate) -> ec.EllipticCurvePrivateKey | None:
        return self.holding(certificate.public_key())

    def holding(self, wanted: object) -> ec.EllipticCurvePrivateKey | None:
        """The key found whose public key is ``wanted``, if any."""
        for key in self.keys:
            if key.public_key() == wanted:
                return key
        return None


def _strings(data: bytes) -> list[bytes]:
    return [m.group(0) for m in _STRING.finditer(data)] + [
        s for chunk in data.split(b"\0") if 8 <= len(s := chunk.strip()) <= 128 and s.isascii()
    ]


def carve(dump: bytes, *, extra: Sequence[bytes] = ()) -> Loot:
    """The attacker's tool: every private key in ``dump`` (plain or passphrase-protected PEM,
    or a bare scalar in hex) whose public key matches a certificate found there too. Printable
    strings of ``dump`` and ``extra`` (say, an extracted firmware) are the passphrases tried."""
    loot = Loot()
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(dump)]
    for block in blocks:
        if b"CERTIFICATE-----" in block[:40]:
            try:
                loot.certificates.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    public_keys = [c.public_key() for c in loot.certificates]
    # What the attacker brought (``extra``) is tried first, then the dump's own strings.
    passwords = [None, *dict.fromkeys(s for data in (*extra, dump) for s in _strings(data))]
    for block in blocks:
        if b"PRIVATE KEY-----" not in block[:40]:
            continue
        for password in passwords:
            loot.candidates_tried += 1
            try:
                key = serialization.load_pem_private_key(block, password=password)
            except (ValueError, TypeError):
                continue
            if isinstance(key, ec.EllipticCurvePrivateKey) and key.public_key() in public_keys:
                loot.keys.append(key)
                if password is not None:
                    loot.passphrases.append(password)
            break
    for window in dict.fromkeys(w for run in _HEX_RUN.findall(dump) for w in _scalars(run)):
        for curve in _CURVES:
            loot.candidates_tried += 1
            try:
                key = private_key_from_scalar(int(window, 16), curve)
            except ValueError:
                continue
            if key.public_key() in public_keys and loot.holding(key.public_key()) is None:
                loot.keys.append(key)
    return loot


def _scalars(run: bytes) -> list[bytes]:
    """Scalar candidates in a hex run: the run itself (an integer written without its leading
    zeros is shorter than its curve's size) and every byte-aligned 32- and 48-byte window."""
    found = [run] if len(run) <= 96 else []
    for width in (64, 96):
        found.extend(run[start : start + width] for start in range(0, len(run) - width + 1, 2))
    return found


def use_identity(
    transport: AuthorityTransport, signer: Signer, certificate: x509.Certificate, device_id: str
) -> x509.Certificate:
    """Refresh ``device_id``'s credential with ``signer`` (a Fleetid-Proof over a fresh
    challenge): the authority issues a certificate only if the key is the credential's."""
    nonce = transport.challenge(device_id)
    csr = build_csr(subject=subject_for(device_id), signer=signer).public_bytes(
        serialization.Encoding.DER
    )
    proof = sign_proof(
        signer,
        serial=f"{certificate.serial_number:040x}",
        nonce=nonce,
        path=REENROLL_PATH,
        body=csr,
    )
    return transport.simple_reenroll(csr, proof)


def prove(
    loot: Loot,
    *,
    transport: AuthorityTransport,
    certificate: x509.Certificate,
    device_id: str,
    control: str,
    refusal: Sequence[str],
) -> Outcome:
    """``compromised`` if ``loot`` holds the key of ``certificate`` and the authority accepts it
    from elsewhere; otherwise ``stopped`` by ``control``, with ``refusal`` as what was seen."""
    key = loot.key_for(certificate)
    if key is None:
        return Outcome(
            verdict=Verdict.STOPPED,
            control=control,
            evidence=(*refusal, f"no key for {device_id} among {loot.candidates_tried} candidates"),
        )
    return attempt(
        SoftwareSigner(key),
        transport=transport,
        certificate=certificate,
        device_id=device_id,
        control=control,
        what="stolen key",
    )


def attempt(
    signer: Signer,
    *,
    transport: AuthorityTransport,
    certificate: x509.Certificate,
    device_id: str,
    control: str,
    what: str,
) -> Outcome:
    """Use ``signer`` as ``device_id`` from another place (``use_identity``): ``compromised``
    if the authority issues a certificate, ``stopped`` with its refusal otherwise."""
    try:
        issued = use_identity(transport, signer, certificate, device_id)
    except FleetIdError as exc:
        return Outcome(
            verdict=Verdict.STOPPED,
            control=control,
            evidence=(f"{what} refused by the authority: {type(exc).__name__} ({exc})",),
        )
    return Outcome(
        verdict=Verdict.COMPROMISED,
        control=control,
        evidence=(
            f"{what} of {device_id} used from another place: the authority issued "
            f"certificate {issued.serial_number:x}",
        ),
    )
