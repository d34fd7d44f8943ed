"""Sign X.509 certificates, CRLs and OCSP responses with any ``Signer`` (HSM, card or software).

pyca/cryptography signs only with a private key object it holds. So the builder signs once with a
throwaway key, and the to-be-signed bytes are kept. Under RFC 5280 §4.1.1.2 and §5.1.1.2, those
bytes carry the signature *algorithm* (ecdsa-with-SHA256/384, RFC 5758 §3.2, which has no
parameters and so no curve) but nothing of the issuer's key. Then the ``Signer`` signs them, and
the outer ``SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }`` is rebuilt around
the draft's own TBS and algorithm elements, copied byte for byte (X.690 §10.1 definite lengths,
§8.6 BIT STRING with no unused bits: what asn1crypto wrote before, without decoding the draft).
Before anything is returned, the result is parsed back, its TBS is compared, and its signature is
checked against the signer's public key. A signer that already verified each signature before
returning it (an HSM signer, ``verifies_signatures = True``) is not verified a second time: the
result's signature must then be byte for byte the one it returned, over the same TBS bytes.

An OCSP response (RFC 6960 §4.2.1) is signed the same way one level deeper: the signed part is the
``tbsResponseData`` of the BasicOCSPResponse carried in the OCTET STRING of ``responseBytes``, and
the OCTET STRING, ``responseBytes`` and the outer SEQUENCE are re-encoded around it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from fleetid.crypto.signer import Signer, verify_signature
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats import x509_tbs
from fleetid.formats.ocsp_certid import issuer_hashes
from fleetid.formats.tlv import decode_tlv, encode_tlv

__all__ = [
    "draft_tbs",
    "key_usage",
    "probe_public_key",
    "sign_certificate",
    "sign_crl",
    "sign_ocsp_response",
    "sign_tbs",
]

_Built = TypeVar("_Built", x509.Certificate, x509.CertificateRevocationList)


@cache
def _throwaway_key() -> ec.EllipticCurvePrivateKey:
    """A key that only makes pyca emit the TBS bytes; its signature is discarded, never used."""
    return ec.generate_private_key(ec.SECP256R1())


def _check_hash(signer: Signer) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    algorithm = signer.hash_algorithm
    if not isinstance(algorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
        raise EncodingError(f"no ECDSA signature algorithm for hash {algorithm.name}")
    return algorithm


def _resign(draft_der: bytes, signer: Signer) -> tuple[bytes, bytes]:
    """The re-encoded DER and the signature the signer returned."""
    outer, end = decode_tlv(draft_der)
    if outer.tag != 0x30 or end != len(draft_der):
        raise EncodingError("the draft is not one DER SEQUENCE")
    # RFC 5280 §4.1 / §5.1: tbs, signatureAlgorithm, signatureValue, in that order.
    tbs_element, tbs_end = decode_tlv(outer.value)
    _, alg_end = decode_tlv(outer.value, tbs_end)
    tbs = outer.value[:tbs_end]
    if tbs_element.tag != 0x30:
        raise EncodingError("the draft's to-be-signed part is not a SEQUENCE")
    signature = signer.sign(tbs)
    body = tbs + outer.value[tbs_end:alg_end] + encode_tlv(0x03, b"\x00" + signature)
    return encode_tlv(0x30, body), signature


def _checked(
    result: _Built,
    draft: _Built,
    tbs: bytes,
    draft_tbs: bytes,
    signer: Signer,
    signature: bytes,
) -> _Built:
    if tbs != draft_tbs:
        raise EncodingError("re-encoding changed the to-be-signed bytes")
    if result.signature_algorithm_oid != draft.signature_algorithm_oid:
        raise EncodingError("re-encoding changed the signature algorithm")
    if getattr(signer, "verifies_signatures", False) is True:
        # The signer verified ``signature`` over these TBS bytes with its public key already.
        if result.signature != signature:
            raise EncodingError("re-encoding changed the signature")
        return result
    try:
        verify_signature(signer.public_key(), result.signature, tbs, signer.hash_algorithm)
    except VerificationError as exc:
        raise VerificationError("the signer's signature does not verify over the TBS") from exc
    return result


def key_usage(
    *,
    digital_signature: bool = False,
    key_agreement: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    """A KeyUsage extension value (RFC 5280 §4.2.1.3) asserting only the named bits; the bits
    fleetid never asserts (contentCommitment, keyEncipherment, dataEncipherment, encipherOnly,
    decipherOnly) are clear."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def sign_certificate(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    """The certificate ``builder`` describes, signed by ``signer`` (RFC 5280 §4.1)."""
    draft = builder.sign(_throwaway_key(), _check_hash(signer))
    der, signature = _resign(draft.public_bytes(serialization.Encoding.DER), signer)
    result = x509.load_der_x509_certificate(der)
    return _checked(
        result, draft, result.tbs_certificate_bytes, draft.tbs_certificate_bytes, signer, signature
    )


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, signer: Signer
) -> x509.CertificateRevocationList:
    """The CRL ``builder`` describes, signed by ``signer`` (RFC 5280 §5.1)."""
    draft = builder.sign(_throwaway_key(), _check_hash(signer))
    der, signature = _resign(draft.public_bytes(serialization.Encoding.DER), signer)
    result = x509.load_der_x509_crl(der)
    return _checked(
        result, draft, result.tbs_certlist_bytes, draft.tbs_certlist_bytes, signer, signature
    )


def _element(data: bytes, offset: int, tag: int, what: str) -> tuple[bytes, int]:
    element, end = decode_tlv(data, offset)
    if element.tag != tag:
        raise EncodingError(f"the draft's {what} is not tagged {tag:02X}")
    return element.value, end


@cache
def _throwaway_responder() -> x509.Certificate:
    """A certificate of the throwaway key: pyca signs a draft response only with the private key
    of the responder certificate its ResponderID names. Never published."""
    key = _throwaway_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetid draft responder")])
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


@lru_cache(maxsize=64)
def _key_hash(certificate: x509.Certificate) -> bytes:
    """SHA-1 of a responder's subjectPublicKey: its ResponderID byKey (RFC 6960 §4.2.1)."""
    return issuer_hashes(certificate, hashes.SHA1())[1]  # noqa: S303 - RFC 6960 KeyHash


@lru_cache(maxsize=64)
def _key_id_element(certificate: x509.Certificate) -> bytes:
    """ResponderID byKey ``[2] EXPLICIT OCTET STRING`` of a responder (RFC 6960 §4.2.1)."""
    return encode_tlv(0xA2, encode_tlv(0x04, _key_hash(certificate)))


def sign_ocsp_response(
    builder: ocsp.OCSPResponseBuilder, signer: Signer, *, responder: x509.Certificate
) -> bytes:
    """The DER OCSPResponse ``builder`` describes (without a ResponderID), signed by ``signer``,
    the key of ``responder``, which the response names by key hash (RFC 6960 §4.2.1).

    The draft names the throwaway responder; its ResponderID, the first element of
    ``tbsResponseData`` (the DEFAULT version is absent in DER), is replaced by ``responder``'s
    before the TBS is signed. Both are a 20-byte SHA-1 KeyHash, so no length changes.
    """
    if responder.public_key() != signer.public_key():
        raise VerificationError("the signer is not the responder certificate's key")
    draft = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, _throwaway_responder()).sign(
        _throwaway_key(), _check_hash(signer)
    )
    der = draft.public_bytes(serialization.Encoding.DER)
    # OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT
    # SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING } }, and the OCTET STRING
    # holds BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm,
    # signature BIT STRING, certs [0] EXPLICIT OPTIONAL } (RFC 6960 §4.2.1).
    outer, end = _element(der, 0, 0x30, "OCSPResponse")
    if end != len(der):
        raise EncodingError("the draft is not one DER SEQUENCE")
    _, status_end = _element(outer, 0, 0x0A, "responseStatus")
    explicit, _ = _element(outer, status_end, 0xA0, "responseBytes")
    response_bytes, _ = _element(explicit, 0, 0x30, "ResponseBytes")
    _, type_end = _element(response_bytes, 0, 0x06, "responseType")
    octets, _ = _element(response_bytes, type_end, 0x04, "response")
    basic, _ = _element(octets, 0, 0x30, "BasicOCSPResponse")
    tbs_value, tbs_end = _element(basic, 0, 0x30, "tbsResponseData")
    _, alg_end = _element(basic, tbs_end, 0x30, "signatureAlgorithm")
    _, signature_end = _element(basic, alg_end, 0x03, "signature")
    draft_id = _key_id_element(_throwaway_responder())
    if not tbs_value.startswith(draft_id):
        raise EncodingError("the draft's tbsResponseData does not start with its ResponderID")
    tbs = encode_tlv(0x30, _key_id_element(responder) + tbs_value[len(draft_id) :])
    signature = signer.sign(tbs)
    basic = (
        tbs + basic[tbs_end:alg_end] + encode_tlv(0x03, b"\x00" + signature) + basic[signature_end:]
    )
    response_bytes = response_bytes[:type_end] + encode_tlv(0x04, encode_tlv(0x30, basic))
    body = outer[:status_end] + encode_tlv(0xA0, encode_tlv(0x30, response_bytes))
    der = encode_tlv(0x30, body)
    result = ocsp.load_der_ocsp_response(der)
    if result.tbs_response_bytes != tbs or len(tbs) != len(draft.tbs_response_bytes):
        raise EncodingError("re-encoding changed the to-be-signed bytes")
    if result.responder_key_hash != _key_hash(responder):
        raise EncodingError("the response does not name its responder")
    if result.signature_algorithm_oid != draft.signature_algorithm_oid:
        raise EncodingError("re-encoding changed the signature algorithm")
    if getattr(signer, "verifies_signatures", False) is True:
        if result.signature != signature:
            raise EncodingError("re-encoding changed the signature")
        return der
    try:
        verify_signature(signer.public_key(), result.signature, tbs, signer.hash_algorithm)
    except VerificationError as exc:
        raise VerificationError("the signer's signature does not verify over the TBS") from exc
    return der


def sign_tbs(tbs: bytes, algorithm: bytes, signer: Signer) -> x509.Certificate:
    """The certificate of a TBSCertificate its caller encoded, signed by ``signer``.

    ``algorithm`` is the DER AlgorithmIdentifier inside ``tbs``, which RFC 5280 §4.1.1.2 repeats
    outside it. The signature is verified with the signer's public key unless the signer did so
    before returning it; the certificate is parsed back, and its TBS and signature must be the
    bytes signed and returned.
    """
    signature = signer.sign(tbs)
    if getattr(signer, "verifies_signatures", False) is not True:
        try:
            verify_signature(signer.public_key(), signature, tbs, signer.hash_algorithm)
        except VerificationError as exc:
            raise VerificationError("the signer's signature does not verify over the TBS") from exc
    certificate = x509.load_der_x509_certificate(x509_tbs.certificate(tbs, algorithm, signature))
    if certificate.tbs_certificate_bytes != tbs or certificate.signature != signature:
        raise EncodingError("the certificate does not parse back to what was signed")
    return certificate


# --- the template fence: what TBS templates (fleetid.formats.x509_template) need of pyca ---------


def draft_tbs(builder: x509.CertificateBuilder, signer: Signer) -> bytes:
    """The TBSCertificate pyca writes for ``builder`` with the signature algorithm ``signer``'s
    hash names (RFC 5758 §3.2); the draft's throwaway signature is discarded."""
    return builder.sign(_throwaway_key(), _check_hash(signer)).tbs_certificate_bytes


def probe_public_key() -> ec.EllipticCurvePublicKey:
    """A fresh P-256 public key whose private half is discarded: a stand-in subject key for the
    drafts a template is made from and checked against."""
    return ec.generate_private_key(ec.SECP256R1()).public_key()
