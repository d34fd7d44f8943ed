"""Sign X.509 certificates and CRLs with any ``Signer`` (an HSM or secure-element key).

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
"""

from __future__ import annotations

from functools import cache
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import Signer, verify_signature
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats import x509_tbs
from fleetid.formats.tlv import decode_tlv, encode_tlv

__all__ = [
    "draft_tbs",
    "key_usage",
    "probe_public_key",
    "sign_certificate",
    "sign_crl",
    "sign_tbs",
]

_Built = TypeVar("_Built", x509.Certificate, x509.CertificateRevocationList)


@cache
def _throwaway_key() -> ec.EllipticCurvePrivateKey:
    """A key that only makes pyca emit the TBS bytes; its signature is discarded, never used."""
    return new_private_key()


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
    return new_private_key().public_key()
