"""One fuzz harness per parser that takes bytes from outside: a target and its seed inputs.

A target takes arbitrary bytes and must either succeed or raise a ``FleetIdError`` (a clean,
typed refusal that the HTTP, card and CLI edges map); anything else (an ``IndexError``, a
``ValueError`` from a library, a ``RecursionError``) is a crash. Seeds are valid inputs, built
with the product's own encoders or taken from published vectors, that the mutating strategy in
``tests/fuzz/engine.py`` starts from so that the fuzzer reaches past the first length check.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from fleetid.api.est import decode_base64_body
from fleetid.authority.csr import load_csr
from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import FleetIdError
from fleetid.formats import apdu, checkpoint, mcuboot, merkle, tlv
from fleetid.formats.csr_attestation import (
    AttestationBundle,
    AttestationStatement,
    attestation_bundle_of,
    build_csr,
    decode_attestation_bundle,
    encode_attestation_bundle,
)
from fleetid.formats.etsi102941 import decode_etsi102941_data, encode_etsi102941_data
from fleetid.formats.ieee1609.certificate import decode_certificate
from fleetid.formats.ieee1609.codec import decode
from fleetid.formats.ieee1609.crl import decode_crl_contents
from fleetid.formats.proof import REENROLL_PATH, CredentialProof, sign_proof
from fleetid.revocation.filter.builder import build_filter
from fleetid.revocation.filter.format import parse_filter
from fleetid.revocation.ocsp import responder_for
from fleetid.revocation.ocsp.responder import OcspResponder, decode_get_path
from tests.unit.formats.ieee1609.test_crl import EXPECTED_DELTA_HASH, EXPECTED_ONE_ENTRY

__all__ = ["HARNESSES", "Harness", "by_name"]

_VECTORS = Path(__file__).parent.parent / "vectors" / "data"


@dataclass(frozen=True)
class Harness:
    name: str
    target: Callable[[bytes], object]
    seeds: Callable[[], Sequence[bytes]]


@functools.cache
def _signer() -> SoftwareSigner:
    return SoftwareSigner(ec.derive_private_key(0x5EED, ec.SECP256R1()))


# --- APDU and BER-TLV ----------------------------------------------------------------------------


def _apdu_command(data: bytes) -> object:
    command = apdu.parse_command(data)
    return command.encode()


def _apdu_seeds() -> list[bytes]:
    return [
        bytes.fromhex("00A4040007A0000000041010"),
        bytes.fromhex("80CA9F7F00"),
        bytes.fromhex("00B0000000000100"),  # extended Le
        bytes.fromhex("8054000000000401020304FFFF"),  # extended Lc and Le
    ]


def _apdu_response(data: bytes) -> object:
    return apdu.parse_response(data).encode()


def _tlv(data: bytes) -> object:
    return tlv.decode_tlvs(data)


def _tlv_seeds() -> list[bytes]:
    nested = tlv.encode_tlv(0x70, tlv.encode_tlv(0x5A, b"\x12\x34") + tlv.encode_tlv(0x9F02, b"1"))
    return [nested, tlv.encode_tlv(0x7F21, b"\x00" * 200), tlv.encode_tlv(0x04, b"")]


def _dgi(data: bytes) -> object:
    return tlv.decode_dgis(data)


def _dgi_seeds() -> list[bytes]:
    return [tlv.encode_dgi(0x0101, b"abc") + tlv.encode_dgi(0x8000, b"\x00" * 300)]


# --- MCUboot -------------------------------------------------------------------------------------


def _mcuboot(data: bytes) -> object:
    parsed = mcuboot.parse_image(data)
    mcuboot.verify_image(data, _signer().public_key())
    return parsed


def _mcuboot_seeds() -> list[bytes]:
    signer = _signer()
    return [
        mcuboot.build_image(b"\x00" * 64, signer, version="1.2.3+4"),
        mcuboot.build_image(b"firmware", signer, version="2.0.0", security_counter=7),
    ]


# --- PKCS#10 with the attestation attribute, EST bodies -------------------------------------


def _bundle() -> AttestationBundle:
    return AttestationBundle(
        statements=(AttestationStatement(type="1.2.3.4.5", statement=b"\x04\x03abc"),)
    )


def _csr_seed() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz")])
    csr = build_csr(subject=name, signer=_signer(), bundle=_bundle())
    return csr.public_bytes(serialization.Encoding.DER)


def _pkcs10(data: bytes) -> object:
    """``load_csr``'s verdict; the attestation attribute is read from any CSR pyca parses,
    signed or not, so that a mutated attribute is reached despite the broken signature."""
    refusal: FleetIdError | None = None
    try:
        load_csr(data)
    except FleetIdError as exc:
        refusal = exc
    try:
        csr = x509.load_der_x509_csr(data)
    except (ValueError, x509.InvalidVersion):
        csr = None
    bundle = attestation_bundle_of(csr) if csr is not None else None
    if refusal is not None:
        raise refusal
    return bundle


def _bundle_target(data: bytes) -> object:
    return decode_attestation_bundle(data)


def _est_body(data: bytes) -> object:
    return load_csr(decode_base64_body(data))


def _est_seeds() -> list[bytes]:
    return [base64.encodebytes(_csr_seed()), base64.b64encode(_csr_seed())]


# --- COER: IEEE 1609.2 and ETSI TS 102 941 -------------------------------------------------------


def _certificate_1609(data: bytes) -> object:
    return decode_certificate(data)


def _coer_seeds() -> list[bytes]:
    return [(_VECTORS / "v2x" / "TestCertificate.coer").read_bytes()]


def _ieee1609_data(data: bytes) -> object:
    return decode("Ieee1609Dot2Data", data)


def _etsi102941(data: bytes) -> object:
    return decode_etsi102941_data(data)


_DATA_SEED = b"\x03\x80\x04abcd"  # Ieee1609Dot2Data v3, unsecuredData "abcd"


def _etsi_seeds() -> list[bytes]:
    inner = decode("Ieee1609Dot2Data", _DATA_SEED)
    return [encode_etsi102941_data(("enrolmentRequest", inner))]


def _crl_1609(data: bytes) -> object:
    return decode_crl_contents(data)


# --- OCSP requests -------------------------------------------------------------------------------


@functools.cache
def _authority() -> FleetCa:
    """A fleet CA in a directory of its own, for the OCSP responder's harness."""
    directory = Path(tempfile.mkdtemp(prefix="fleetid-fuzz-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    settings = Settings.load(directory, environ={"FLEETID_PUBLIC_URL": "http://fleet.test"})
    return FleetCa.init(settings, clock=ManualClock(), name="Fuzz Fleet")


@functools.cache
def _responder() -> OcspResponder:
    return responder_for(_authority())


def _ocsp_request(data: bytes) -> object:
    """The responder's answer, which must itself be a well-formed OCSPResponse."""
    answer = _responder().respond(data)
    return ocsp.load_der_ocsp_response(answer.der).response_status


def _ocsp_seeds() -> list[bytes]:
    issuer = _authority().issuing.certificate
    subject = issuer.subject.public_bytes()
    point = issuer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    seeds = []
    for algorithm in (hashes.SHA1(), hashes.SHA256()):  # noqa: S303 - RFC 6960 CertID hashes
        name_hash, key_hash = hashes.Hash(algorithm), hashes.Hash(algorithm)
        name_hash.update(subject)
        key_hash.update(point)
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            name_hash.finalize(), key_hash.finalize(), 0x1234, algorithm
        )
        seeds.append(builder.build().public_bytes(serialization.Encoding.DER))
        nonce = builder.add_extension(x509.OCSPNonce(b"\x01" * 16), critical=False).build()
        seeds.append(nonce.public_bytes(serialization.Encoding.DER))
    return seeds


def _ocsp_get(data: bytes) -> object:
    return decode_get_path(data.decode("latin-1"))


def _ocsp_get_seeds() -> list[bytes]:
    return [base64.urlsafe_b64encode(seed) for seed in _ocsp_seeds()]


# --- revocation filters, checkpoints, proofs -----------------------------------------------


def _filter(data: bytes) -> object:
    return parse_filter(data)


def _filter_seeds() -> list[bytes]:
    revoked = [bytes([i]) * 16 for i in range(1, 6)]
    valid = [bytes([i]) * 16 for i in range(10, 60)]
    return [
        build_filter(
            revoked,
            valid,
            watermark=5,
            coverage_until=datetime(2026, 1, 1, tzinfo=UTC),
            signer=_signer(),
        )
    ]


def _checkpoint(data: bytes) -> object:
    return checkpoint.parse_checkpoint(data)


def _head() -> checkpoint.Checkpoint:
    return checkpoint.Checkpoint(
        origin="fuzz.example/log", size=20852163, root_hash=b"\x07" * 32, extensions=("x",)
    )


def _signed_checkpoint(data: bytes) -> object:
    return checkpoint.open_checkpoint(data, _signer().public_key(), "fuzz.example/log")


def _signed_checkpoint_seeds() -> list[bytes]:
    return [checkpoint.sign_checkpoint(_head(), _signer())]


def _signed_note(data: bytes) -> object:
    return checkpoint.parse_signed_note(data)


def _merkle_proof(data: bytes) -> object:
    """Inclusion and consistency proofs as a verifier receives them: two sizes (an index and a
    size, or two sizes), then 32-octet hashes: the leaf or first root, the proof, the root."""
    if len(data) < 16:
        return None
    first = int.from_bytes(data[:8], "big", signed=True)
    second = int.from_bytes(data[8:16], "big", signed=True)
    chunks = [data[i : i + 32] for i in range(16, len(data), 32)] or [b""]
    with contextlib.suppress(FleetIdError):
        merkle.verify_inclusion(chunks[0], first, second, chunks[1:-1], chunks[-1])
    return merkle.verify_consistency(first, second, chunks[1:-1], chunks[0], chunks[-1])


def _merkle_seeds() -> list[bytes]:
    leaf = merkle.leaf_hash(b"a")
    other = merkle.leaf_hash(b"b")
    root = merkle.node_hash(leaf, other)
    sizes = (1).to_bytes(8, "big") + (2).to_bytes(8, "big")
    return [sizes + leaf + other + root]


def _credential_proof(data: bytes) -> object:
    return CredentialProof.parse(data.decode("utf-8", errors="replace"))


def _credential_proof_seeds() -> list[bytes]:
    proof = sign_proof(
        _signer(), serial="ab" * 20, nonce=b"\x01" * 16, path=REENROLL_PATH, body=b"x"
    )
    return [proof.header().encode()]


HARNESSES: tuple[Harness, ...] = (
    Harness("apdu-command", _apdu_command, _apdu_seeds),
    Harness("apdu-response", _apdu_response, lambda: [b"\x90\x00", b"abc\x6a\x82"]),
    Harness("ber-tlv", _tlv, _tlv_seeds),
    Harness("dgi", _dgi, _dgi_seeds),
    Harness("mcuboot", _mcuboot, _mcuboot_seeds),
    Harness("pkcs10-attestation", _pkcs10, lambda: [_csr_seed()]),
    Harness("attestation-bundle", _bundle_target, lambda: [encode_attestation_bundle(_bundle())]),
    Harness("est-body", _est_body, _est_seeds),
    Harness("coer-1609-certificate", _certificate_1609, _coer_seeds),
    Harness("coer-1609-data", _ieee1609_data, lambda: [_DATA_SEED]),
    Harness("coer-102941-data", _etsi102941, _etsi_seeds),
    Harness("coer-1609-crl", _crl_1609, lambda: [EXPECTED_ONE_ENTRY, EXPECTED_DELTA_HASH]),
    Harness("ocsp-request", _ocsp_request, _ocsp_seeds),
    Harness("ocsp-get-path", _ocsp_get, _ocsp_get_seeds),
    Harness("revocation-filter", _filter, _filter_seeds),
    Harness("checkpoint", _checkpoint, lambda: [_head().text()]),
    Harness("signed-checkpoint", _signed_checkpoint, _signed_checkpoint_seeds),
    Harness("signed-note", _signed_note, _signed_checkpoint_seeds),
    Harness("merkle-proof", _merkle_proof, _merkle_seeds),
    Harness("credential-proof", _credential_proof, _credential_proof_seeds),
)


def by_name(name: str) -> Harness:
    return next(h for h in HARNESSES if h.name == name)
