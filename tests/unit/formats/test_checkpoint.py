"""C2SP tlog-checkpoint and signed-note (ECDSA type 0x02): format, real published checkpoints,
OpenSSL cross-checks both ways, and every malformed or mis-signed note we can think of.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.optional import require_tool

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import ConfigError, EncodingError, VerificationError
from fleetid.formats.checkpoint import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    ecdsa_key_id,
    open_checkpoint,
    parse_checkpoint,
    parse_signed_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verifier_key,
)

ORIGIN = "fleetid.example/line-1"

# Real checkpoints signed by production ECDSA P-256 logs, with their verifier keys, as published
# in transparency-dev/formats note/note_verifier_test.go (Apache-2.0; values only).
PUBLISHED = [
    (
        "rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBc"
        "K5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=",
        "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n"
        "\u2014 rekor.sigstore.dev wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIg"
        "c+qEHS3+GKVClgqq20uDLet7MCoTURUCRdxwWBHHufk=\n",
    ),
    (
        "pixel6_transparency_log+91c16e30+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN+4x0Jk1yTwvLFI9A4NDd"
        "GZcX0aiWVdWM5XJVy0M4VWD3AvyW5Q6Hs9A0mcDkpUoYgn+KKPNzFC0H3nN3q6JQ8=",
        "DEFAULT\n10\nbsWRucJU5xJPHb5eBdOm6+DM+VelCZBuvtI3sHERJ9Y=\n\n"
        "\u2014 pixel6_transparency_log kcFuMDBFAiEAhqMAP8P6qf6QxtUJhzMhbN+MbZ9dwfUHzGQJmffJHtoC"
        "IGD0cNe47dHWBoPwYdgBCepB06/+g5O1FmYjXl06owL4\n",
    ),
]


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def signer(key: ec.EllipticCurvePrivateKey) -> SoftwareSigner:
    return SoftwareSigner(key)


def _checkpoint(size: int = 7) -> Checkpoint:
    return Checkpoint(origin=ORIGIN, size=size, root_hash=hashlib.sha256(b"root").digest())


# -- format -------------------------------------------------------------------------------


def test_checkpoint_text_matches_the_spec_example() -> None:
    # The example in c2sp.org/tlog-checkpoint.
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    head = Checkpoint(origin="example.com/behind-the-sofa", size=20852163, root_hash=root)
    expected = (
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    assert head.text() == expected
    assert parse_checkpoint(expected) == head


def test_empty_tree_checkpoint() -> None:
    head = Checkpoint(origin=ORIGIN, size=0, root_hash=hashlib.sha256(b"").digest())
    assert head.text().split(b"\n")[1] == b"0"
    assert parse_checkpoint(head.text()) == head


def test_extension_lines_round_trip() -> None:
    head = Checkpoint(origin=ORIGIN, size=3, root_hash=bytes(32), extensions=("ext one",))
    assert parse_checkpoint(head.text()) == head


def test_signed_note_spec_example_splits_at_the_last_blank_line() -> None:
    # The example in c2sp.org/signed-note: its text itself contains a blank line.
    note = (
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\n"
        "ed è subito sera.\n\n\u2014 quasimodo.example/salvatore "
        "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
    ).encode()
    signed = parse_signed_note(note)
    assert signed.text.endswith(b"\n\ned \xc3\xa8 subito sera.\n")
    (signature,) = signed.signatures
    assert signature.key_name == "quasimodo.example/salvatore"
    assert len(signature.signature) == 64  # Ed25519
    assert signed.encode() == note


def test_signed_checkpoint_layout(signer: SoftwareSigner) -> None:
    note = sign_checkpoint(_checkpoint(), signer)
    text, sep, line = note.partition(b"\n\n")
    assert sep and text + b"\n" == _checkpoint().text()
    assert line.startswith(f"\u2014 {ORIGIN} ".encode()) and line.endswith(b"\n")
    blob = base64.b64decode(line.split(b" ")[-1])
    assert int.from_bytes(blob[:4], "big") == ecdsa_key_id(signer.public_key())


# -- real published checkpoints (independent signers) ---------------------------------------


@pytest.mark.parametrize(("vkey", "note"), PUBLISHED, ids=["rekor", "pixel6"])
def test_published_checkpoints_verify(vkey: str, note: str) -> None:
    name, public_key = parse_verifier_key(vkey)
    assert verifier_key(name, public_key) == vkey  # our encoding is byte-identical
    origin = note.split("\n", 1)[0]
    head = open_checkpoint(note.encode(), public_key, origin, key_name=name)
    assert head.size == int(note.split("\n")[1])


@pytest.mark.parametrize(("vkey", "note"), PUBLISHED, ids=["rekor", "pixel6"])
def test_published_checkpoints_reject_tampering(vkey: str, note: str) -> None:
    name, public_key = parse_verifier_key(vkey)
    origin = note.split("\n", 1)[0]
    lines = note.split("\n")
    bigger = "\n".join([lines[0], str(int(lines[1]) + 1), *lines[2:]])
    for bad in (bigger, note.replace(name, name + "x", 1), note.replace(origin, origin + "x", 1)):
        with pytest.raises(VerificationError):
            open_checkpoint(bad.encode(), public_key, origin, key_name=name)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(VerificationError):
        open_checkpoint(note.encode(), other, origin, key_name=name)


# -- our signatures, checked by OpenSSL, and OpenSSL's checked by us ------------------------


def _openssl() -> str:
    return require_tool("openssl")


def _pem_files(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    private = tmp_path / "key.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_openssl_verifies_our_checkpoint_signature(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, signer: SoftwareSigner
) -> None:
    openssl = _openssl()
    _, public = _pem_files(tmp_path, key)
    note = parse_signed_note(sign_checkpoint(_checkpoint(), signer))
    (tmp_path / "text").write_bytes(note.text)
    (tmp_path / "sig").write_bytes(note.signatures[0].signature)
    command = [openssl, "dgst", "-sha256", "-verify", str(public), "-signature"]
    ok = subprocess.run(
        [*command, str(tmp_path / "sig"), str(tmp_path / "text")], capture_output=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "text").write_bytes(note.text.replace(b"\n7\n", b"\n8\n"))
    bad = subprocess.run(
        [*command, str(tmp_path / "sig"), str(tmp_path / "text")], capture_output=True, check=False
    )
    assert bad.returncode != 0


def test_key_id_matches_openssl_spki(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    openssl = _openssl()
    _, public = _pem_files(tmp_path, key)
    der = subprocess.run(
        [openssl, "pkey", "-pubin", "-in", str(public), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    assert ecdsa_key_id(key.public_key()) == int.from_bytes(hashlib.sha256(der).digest()[:4], "big")


def test_we_verify_an_openssl_signed_note(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    openssl = _openssl()
    private, _ = _pem_files(tmp_path, key)
    text = _checkpoint().text()
    (tmp_path / "text").write_bytes(text)
    signature = subprocess.run(
        [openssl, "dgst", "-sha256", "-sign", str(private), str(tmp_path / "text")],
        capture_output=True,
        check=True,
    ).stdout
    line = NoteSignature(
        key_name=ORIGIN, key_id=ecdsa_key_id(key.public_key()), signature=signature
    )
    note = SignedNote(text=text, signatures=(line,)).encode()
    assert open_checkpoint(note, key.public_key(), ORIGIN) == _checkpoint()


# -- verification rules (signed-note "Signatures") -----------------------------------------


def test_unknown_signatures_are_ignored(signer: SoftwareSigner) -> None:
    other = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    text = _checkpoint().text()
    witness = sign_note(text, "witness.example/w1", other)
    mine = sign_note(text, ORIGIN, signer)
    note = SignedNote(text=text, signatures=(witness, mine)).encode()
    assert open_checkpoint(note, signer.public_key(), ORIGIN) == _checkpoint()


def test_only_unknown_signatures_is_rejected(signer: SoftwareSigner) -> None:
    other = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    # Same name, other key: ignored as unknown, so no known signature remains.
    note = sign_checkpoint(_checkpoint(), other)
    with pytest.raises(VerificationError, match="no signature"):
        open_checkpoint(note, signer.public_key(), ORIGIN)


def test_a_bad_signature_from_the_known_key_is_rejected(signer: SoftwareSigner) -> None:
    text = _checkpoint().text()
    good = sign_note(text, ORIGIN, signer)
    forged = NoteSignature(key_name=ORIGIN, key_id=good.key_id, signature=good.signature[:-1])
    for signatures in ((forged,), (good, forged), (forged, good)):
        note = SignedNote(text=text, signatures=signatures).encode()
        with pytest.raises(VerificationError):
            open_checkpoint(note, signer.public_key(), ORIGIN)


def test_signature_over_other_text_is_rejected(signer: SoftwareSigner) -> None:
    good = sign_note(_checkpoint(7).text(), ORIGIN, signer)
    note = SignedNote(text=_checkpoint(8).text(), signatures=(good,)).encode()
    with pytest.raises(VerificationError):
        open_checkpoint(note, signer.public_key(), ORIGIN)


def test_wrong_origin_is_rejected(signer: SoftwareSigner) -> None:
    other = Checkpoint(origin="fleetid.example/line-2", size=1, root_hash=bytes(32))
    note = sign_checkpoint(other, signer, key_name=ORIGIN)
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(note, signer.public_key(), ORIGIN)


def test_signed_but_malformed_body_is_rejected(signer: SoftwareSigner) -> None:
    root = base64.b64encode(bytes(32)).decode()
    for text in (
        f"{ORIGIN}\n01\n{root}\n",  # leading zero
        f"{ORIGIN}\n-1\n{root}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(bytes(31)).decode()}\n",  # short root
        f"{ORIGIN}\n1\n",  # two lines
        f"{ORIGIN}\n1\n{root}\n\n",  # empty extension line
        f"{ORIGIN}\n1\n{root[:-1]}\n",  # unpadded base64
    ):
        note = SignedNote(
            text=text.encode(), signatures=(sign_note(text.encode(), ORIGIN, signer),)
        ).encode()
        with pytest.raises(VerificationError):
            open_checkpoint(note, signer.public_key(), ORIGIN)


# -- malformed notes ----------------------------------------------------------------------

_SIG = "\u2014 a.example/k " + base64.b64encode(b"\x00\x00\x00\x01" + b"s" * 64).decode() + "\n"
MALFORMED_NOTES = {
    "no blank line": "a\n1\n" + _SIG,
    "no final newline": "a\n\n" + _SIG[:-1],
    "no signature": "a\n\n",
    "hyphen instead of em dash": "a\n\n" + _SIG.replace("\u2014", "-"),
    "no space after dash": "a\n\n" + _SIG.replace("\u2014 ", "\u2014"),
    "name with plus": "a\n\n" + _SIG.replace("a.example/k", "a+b"),
    "three fields": "a\n\n" + _SIG.replace("a.example/k ", "a.example/k x "),
    "bad base64": "a\n\n" + _SIG.replace("AAAA", "AA*A"),
    "short signature blob": "a\n\n\u2014 a.example/k "
    + base64.b64encode(b"\x00\x00\x00\x01").decode()
    + "\n",
    "control character": "a\tb\n\n" + _SIG,
    "carriage return": "a\r\n\n" + _SIG,
    "too many signatures": "a\n\n" + _SIG * 65,
}


@pytest.mark.parametrize("case", MALFORMED_NOTES, ids=list(MALFORMED_NOTES))
def test_malformed_notes_are_rejected(case: str) -> None:
    with pytest.raises(EncodingError):
        parse_signed_note(MALFORMED_NOTES[case].encode())


def test_non_utf8_note_is_rejected() -> None:
    with pytest.raises(EncodingError):
        parse_signed_note(b"\xff\n\n" + _SIG.encode())


def test_non_canonical_base64_is_rejected() -> None:
    blob = base64.b64encode(b"\x00\x00\x00\x01" + b"s" * 64).decode()
    assert blob.endswith("=")
    # Same bytes, but non-zero padding bits in the last character.
    tweaked = blob[:-2] + chr(ord(blob[-2]) + 1) + "="
    assert base64.b64decode(tweaked) == base64.b64decode(blob)
    with pytest.raises(EncodingError):
        parse_signed_note(f"a\n\n\u2014 k {tweaked}\n".encode())


# -- keys and signers ---------------------------------------------------------------------


def test_verifier_key_round_trip(signer: SoftwareSigner) -> None:
    vkey = verifier_key(ORIGIN, signer.public_key())
    name, public_key = parse_verifier_key(vkey)
    assert name == ORIGIN and public_key == signer.public_key()


def _upper_case_key_id() -> str:
    """A verifier key whose key ID is written in upper case. The ID must have a hex letter to
    change: about one key in 43 has none (8 digits), so keys are drawn until one does."""
    while True:
        public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
        name, key_id, blob = verifier_key(ORIGIN, public_key).split("+", 2)
        if key_id.upper() != key_id:
            return f"{name}+{key_id.upper()}+{blob}"


def test_verifier_key_rejects(signer: SoftwareSigner) -> None:
    vkey = verifier_key(ORIGIN, signer.public_key())
    name, key_id, blob = vkey.split("+", 2)
    raw = base64.b64decode(blob)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384_spki = p384.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ed25519_type = base64.b64encode(b"\x01" + raw[1:]).decode()
    p384_blob = base64.b64encode(b"\x02" + p384_spki).decode()
    cases = [
        f"{name}+{int(key_id, 16) ^ 1:08x}+{blob}",  # key ID of another key
        f"{name}+{key_id}+{ed25519_type}",  # Ed25519 type byte
        f"{name}+{key_id}+{p384_blob}",  # P-384
        f"{name}+{key_id}",
        f"a b+{key_id}+{blob}",
        _upper_case_key_id(),
        "garbage",
    ]
    for case in cases:
        with pytest.raises(EncodingError):
            parse_verifier_key(case)


class _CorruptingSigner(SoftwareSigner):
    """An HSM that returns a bad signature (SoftHSM2 has had such reports)."""

    def sign(self, data: bytes) -> bytes:
        signature = bytearray(super().sign(data))
        signature[-1] ^= 1
        return bytes(signature)


def test_a_bad_signature_from_the_hsm_is_never_used(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(VerificationError):
        sign_checkpoint(_checkpoint(), _CorruptingSigner(key))


def test_non_p256_signer_is_refused() -> None:
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP384R1()))
    assert isinstance(signer.hash_algorithm, hashes.SHA384)
    with pytest.raises(ConfigError):
        sign_checkpoint(_checkpoint(), signer)


def test_invalid_key_names_are_refused(signer: SoftwareSigner) -> None:
    for name in ("", "a b", "a+b", "a\u00a0b"):
        with pytest.raises(EncodingError):
            sign_note(_checkpoint().text(), name, signer)


def test_checkpoint_values_are_checked() -> None:
    for kwargs in (
        {"origin": "", "size": 1, "root_hash": bytes(32)},
        {"origin": "a\nb", "size": 1, "root_hash": bytes(32)},
        {"origin": ORIGIN, "size": -1, "root_hash": bytes(32)},
        {"origin": ORIGIN, "size": 1, "root_hash": bytes(31)},
        {"origin": ORIGIN, "size": 1, "root_hash": bytes(32), "extensions": ("",)},
    ):
        with pytest.raises(EncodingError):
            Checkpoint(**kwargs)  # type: ignore[arg-type]
