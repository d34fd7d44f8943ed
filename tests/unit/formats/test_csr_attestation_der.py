"""The AttestationBundle is read as DER only: its envelope is walked as TLVs in DER form (the
certificates inside go through pyca, which takes DER only), and the cheap presence test reads
no bundle. The reader accepts and refuses what the asn1crypto reading it replaced did (a strict
load, then every envelope header compared with asn1crypto's DER emitter), on valid bundles and on
bytes mutated from them, but for that reading's faults, named where the oracle is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from asn1crypto import core, parser
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.mutations import KINDS, mutate, outcome

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError
from fleetid.formats.csr_attestation import (
    ID_AA_ATTESTATION,
    AttestationBundle,
    AttestationStatement,
    _Bundle,
    attestation_bundle_of,
    build_attested_csr,
    decode_attestation_bundle,
    encode_attestation_bundle,
    has_attestation_attribute,
)

BUNDLE = AttestationBundle(
    statements=(AttestationStatement(type="1.3.6.1.4.1.32473.1", statement=b"\x04\x02\xab\xcd"),)
)


def test_der_bundle_round_trips() -> None:
    der = encode_attestation_bundle(BUNDLE)
    assert der[0] == 0x30 and der[1] == len(der) - 2  # short-form length: under 128 bytes
    assert decode_attestation_bundle(der) == BUNDLE


def test_non_minimal_length_is_refused() -> None:
    der = encode_attestation_bundle(BUNDLE)
    ber = b"\x30\x81" + der[1:]  # the same length in long form (X.690 §10.1 forbids it in DER)
    with pytest.raises(EncodingError, match="not in DER form"):
        decode_attestation_bundle(ber)


def test_presence_is_told_without_reading_the_bundle() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    with_bundle = build_attested_csr(subject=subject, signer=SoftwareSigner(key), bundle=BUNDLE)
    assert has_attestation_attribute(with_bundle)
    broken = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_attribute(x509.ObjectIdentifier(ID_AA_ATTESTATION), b"not a bundle")
        .sign(key, hashes.SHA256())
    )
    assert has_attestation_attribute(broken)
    with pytest.raises(EncodingError):
        attestation_bundle_of(broken)
    plain = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    assert not has_attestation_attribute(plain)


def _certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cert")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )


def _rewrite_at(der: bytes, path: tuple[int, ...], rewrite: Callable[[bytes], bytes]) -> bytes:
    """``der`` with the element at ``path`` (child indexes from the outer SEQUENCE) replaced by
    ``rewrite(element)``, and every enclosing length adjusted (in DER form)."""
    if not path:
        return rewrite(der)
    class_, method, tag, _header, contents, _trailer = parser.parse(der)
    children: list[bytes] = []
    rest = contents
    while rest:
        child = parser.parse(rest)
        size = len(child[3]) + len(child[4])
        children.append(rest[:size])
        rest = rest[size:]
    children[path[0]] = _rewrite_at(children[path[0]], path[1:], rewrite)
    return parser.emit(class_, method, tag, b"".join(children))


def _long_form(element: bytes) -> bytes:
    """The same element with a leading zero octet in its length (X.690 §10.1 forbids it)."""
    contents = parser.parse(element)[4]
    size = len(contents).to_bytes(max(1, (len(contents).bit_length() + 7) // 8), "big")
    return element[:1] + bytes([0x80 | (len(size) + 1)]) + b"\x00" + size + contents


def _long_form_at(der: bytes, path: tuple[int, ...]) -> bytes:
    return _rewrite_at(der, path, _long_form)


@pytest.mark.parametrize(
    ("path", "element"),
    [
        ((0,), "attestations"),
        ((0, 0), "an AttestationStatement"),
        ((0, 0, 0), "a statement type"),
        ((1,), "certs"),
    ],
)
def test_non_minimal_length_inside_the_envelope_is_refused(
    path: tuple[int, ...], element: str
) -> None:
    der = encode_attestation_bundle(
        AttestationBundle(statements=BUNDLE.statements, certificates=(_certificate(),))
    )
    ber = _long_form_at(der, path)
    assert ber != der and len(ber) > len(der), element
    with pytest.raises(EncodingError, match="not in DER form"):
        decode_attestation_bundle(ber)


def test_a_non_minimal_statement_type_oid_is_refused() -> None:
    der = encode_attestation_bundle(BUNDLE)
    # 1.3.6.1.4.1.32473.1 with its last arc as 0x80 0x01 (X.690 §8.19.2: minimal octets).
    padded = _rewrite_at(
        der, (0, 0, 0), lambda oid: parser.emit(0, 0, 6, parser.parse(oid)[4][:-1] + b"\x80\x01")
    )
    with pytest.raises(EncodingError, match="not in DER form"):
        decode_attestation_bundle(padded)


# --- the reader against the asn1crypto reading it replaced -------------------------------------


def _der_children(contents: bytes) -> list[bytes]:
    out = []
    while contents:
        class_, method, tag, header, inner, _ = parser.parse(contents)
        size = len(header) + len(inner)
        if parser.emit(class_, method, tag, inner) != contents[:size]:
            raise EncodingError("a header is not in DER form")
        out.append(contents[:size])
        contents = contents[size:]
    return out


def _inner(encoding: bytes) -> bytes:
    return bytes(parser.parse(encoding)[4])


def _reference(der: bytes) -> AttestationBundle:
    """The asn1crypto reading (fleetid up to Nov 2026; ``_Bundle`` is the asn1crypto type the
    encoder still writes with), kept here as the oracle, with the checks
    it lacked: asn1crypto's ``load`` does not check the outer tag (an OCTET STRING holding a
    bundle's contents was read as a bundle), and ignores elements after a SEQUENCE's last field
    (a bundle or a statement with trailing elements was read without them)."""
    if der[:1] != b"\x30":
        raise EncodingError("not a SEQUENCE")
    try:
        parsed = _Bundle.load(der, strict=True)
        statements = tuple(
            AttestationStatement(type=s["type"].dotted, statement=bytes(s["stmt"].dump()))
            for s in parsed["attestations"]
        )
        certificates = []
        certs = parsed["certs"]
        if not isinstance(certs, core.Void):
            if len(certs) == 0:
                raise EncodingError("empty certs")
            for choice in certs:
                if choice.name not in ("certificate", "other"):
                    raise EncodingError("excluded choice")
                if choice.name == "certificate":
                    certificates.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        (bundle,) = _der_children(der)
        lists = _der_children(_inner(bundle))
        if len(lists) > 2 or any(each[0] != 0x30 for each in lists):
            raise EncodingError("trailing elements in the bundle")
        for statement in _der_children(_inner(lists[0])):
            fields = _der_children(_inner(statement))
            if len(fields) != 2:
                raise EncodingError("trailing elements in a statement")
            type_oid = fields[0]
            if core.ObjectIdentifier.load(type_oid).dump(force=True) != type_oid:
                raise EncodingError("OID not minimal")
        for rest in lists[1:]:
            _der_children(_inner(rest))
    except (ValueError, TypeError, x509.InvalidVersion) as exc:
        # InvalidVersion escaped the old reader (a crash, not a refusal); the new one refuses it.
        raise EncodingError(str(exc)) from exc
    if not statements:
        raise EncodingError("no statement")
    return AttestationBundle(statements=statements, certificates=tuple(certificates))


_CERT = _certificate()
DER = Encoding.DER
_STATEMENTS = (
    AttestationStatement(type="1.3.6.1.4.1.32473.1", statement=b"\x04\x03\x01\x02\x03"),
    AttestationStatement(type="2.999.7", statement=b"\x30\x03\x02\x01\x05"),
)
# The certs list with an ``other`` choice ([3] OtherCertificateFormat) after the certificate.
_OTHER = bytes.fromhex("a3080603290107" + "0401ff")
_ATTESTATIONS = parser.parse(encode_attestation_bundle(AttestationBundle(statements=_STATEMENTS)))[
    4
]
_BASES = (
    encode_attestation_bundle(AttestationBundle(statements=_STATEMENTS[:1])),
    encode_attestation_bundle(AttestationBundle(statements=_STATEMENTS, certificates=(_CERT,))),
    parser.emit(0, 1, 16, _ATTESTATIONS + parser.emit(0, 1, 16, _CERT.public_bytes(DER) + _OTHER)),
)
_TAGS = (0x30, 0x31, 0x06, 0x04, 0x02, 0x05, 0xA0, 0xA1, 0xA2, 0xA3, 0x80, 0x83, 0x1F, 0x3F, 0xBF)


def _headers(der: bytes, offset: int = 0, end: int | None = None) -> list[int]:
    """Offsets of every TLV header in the envelope (best effort over valid input)."""
    end = len(der) if end is None else end
    found = []
    while offset < end:
        try:
            _, method, _, header, inner, _ = parser.parse(der, offset)
        except ValueError:
            break
        found.append(offset)
        start = offset + len(header)
        if method == 1 and der[offset] in (0x30, 0xA3):
            found += _headers(der, start, start + len(inner))
        offset = start + len(inner)
    return found


@pytest.mark.parametrize("der", _BASES, ids=["bare", "with-cert", "with-other"])
def test_valid_bundles_read_the_same(der: bytes) -> None:
    assert decode_attestation_bundle(der) == _reference(der)


# A mutated serial number of zero makes pyca warn (both readers load the same certificate).
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_mutated_bundles_are_refused_or_read_as_before(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(_BASES))
    kind = data.draw(st.sampled_from((*KINDS, "tag", "length")))
    der = bytearray(mutate(data, base, kind))
    if kind in ("tag", "length"):
        at = data.draw(st.sampled_from(_headers(bytes(der))))
        if kind == "tag":
            der[at] = data.draw(st.sampled_from(_TAGS))
        else:  # the same length one octet longer than needed (X.690 §10.1 forbids it)
            _, _, _, header, inner, _ = parser.parse(bytes(der), at)
            size = len(inner).to_bytes(max(1, (len(inner).bit_length() + 7) // 8), "big")
            der[at + 1 : at + len(header)] = bytes([0x80 | (len(size) + 1)]) + b"\x00" + size
    mutated = bytes(der)
    read, before = outcome(decode_attestation_bundle, mutated), outcome(_reference, mutated)
    if isinstance(read, AttestationBundle) and any(
        s.statement[0] & 0x1F in (0x00, 0x0E, 0x0F) for s in read.statements
    ):
        # The one difference: asn1crypto refuses an ANY whose tag number is 0, 14 or 15 in every
        # class (it looks the number up as UNIVERSAL). X.680 §8.6 reserves only UNIVERSAL 0 and
        # 15, which the new reader refuses too (UNIVERSAL 14 is TIME; [0], [APPLICATION 14] …
        # are ordinary tags).
        assert before == "refused"
        assert not any(s.statement[0] & 0xDF in (0x00, 0x0F) for s in read.statements)
        return
    assert read == before


def _with_contents(tag: int, contents: bytes) -> bytes:
    return bytes([tag]) + _length(len(contents)) + contents


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def test_the_bundle_is_a_sequence() -> None:
    contents = parser.parse(_BASES[0])[4]
    with pytest.raises(EncodingError, match="one SEQUENCE"):
        decode_attestation_bundle(_with_contents(0x24, contents))  # OCTET STRING, constructed


def test_trailing_elements_are_refused() -> None:
    (statement,) = _der_children(_inner(_der_children(_inner(_BASES[0]))[0]))
    padded = _with_contents(0x30, _inner(statement) + b"\x05\x00")  # a third element: NULL
    bundle = _with_contents(0x30, _with_contents(0x30, padded))
    with pytest.raises(EncodingError, match="AttestationStatement"):
        decode_attestation_bundle(bundle)
    extra = _with_contents(0x30, _inner(_BASES[1]) + b"\x30\x00")  # a third list
    with pytest.raises(EncodingError, match="attestations, certs"):
        decode_attestation_bundle(extra)


def test_a_certificate_pyca_refuses_is_a_refusal() -> None:
    certificate = bytearray(_CERT.public_bytes(DER))
    version = certificate.index(b"\xa0\x03\x02\x01\x02") + 4
    certificate[version] = 0x01  # v2: pyca raises InvalidVersion, which is no ValueError
    bundle = parser.emit(0, 1, 16, _ATTESTATIONS + parser.emit(0, 1, 16, bytes(certificate)))
    with pytest.raises(EncodingError, match="does not parse"):
        decode_attestation_bundle(bundle)


@pytest.mark.parametrize(("tag", "name"), [(0xA0, "extendedCertificate"), (0xA2, "v2AttrCert")])
def test_limited_cert_choices(tag: int, name: str) -> None:
    bundle = parser.emit(0, 1, 16, _ATTESTATIONS + parser.emit(0, 1, 16, _with_contents(tag, b"")))
    with pytest.raises(EncodingError, match=f"excludes {name}"):
        decode_attestation_bundle(bundle)


@pytest.mark.parametrize("tag", [0x00, 0x0F, 0x2F, 0x1F])
def test_a_statement_tag_x680_reserves_or_a_long_form_low_tag_is_refused(tag: int) -> None:
    # 1F 05: tag number 5 in the long form (X.690 §8.1.2.4 keeps it for numbers from 31).
    element = bytes([tag, 0x05, 0x01, 0x00]) if tag == 0x1F else bytes([tag, 0x01, 0x00])
    statement = _with_contents(0x30, b"\x06\x03\x88\x37\x07" + element)
    with pytest.raises(EncodingError, match="not in DER form"):
        decode_attestation_bundle(_with_contents(0x30, _with_contents(0x30, statement)))
