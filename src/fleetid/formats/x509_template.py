"""TBS templates: the one mechanism for issuers whose certificates differ in a few fields only.

An issuer of many certificates of one profile (the fleet CA's end entities, the line's IDevIDs,
the card's key attestations) spends most of pyca's builder time encoding what every certificate
of the profile shares. A ``TbsTemplate`` encodes that once and writes only the fields that differ:

1. a *probe* (values the subclass names) is built by the subclass's pyca builder and drafted
   (``fleetid.formats.x509_sign.draft_tbs``, with the signature algorithm of the template's
   signer, so the template and its signatures always agree, RFC 5280 §4.1.1.2); its
   TBSCertificate is cut into ``TbsParts``, the fields the subclass keeps;
2. a *check* (other values: another key, serial, name, times) is written by the subclass from
   the parts and compared with pyca's draft of the same values; a difference refuses the
   template (``EncodingError``) before it issues anything;
3. ``certificate`` writes the TBS for the values and has ``x509_sign.sign_tbs`` sign it, verify the
   signature and parse the certificate back; values the subclass says it does not write as pyca
   would (``takes``) go to pyca's builder and ``x509_sign.sign_certificate`` instead.

The template fence: every draft, throwaway key and signature of these issuers is made in
``fleetid.formats.x509_sign``; a subclass only builds and cuts DER.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from cryptography import x509

from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError
from fleetid.formats import x509_tbs
from fleetid.formats.tlv import decode_tlv, decode_tlvs, encode_tlv
from fleetid.formats.x509_sign import draft_tbs, sign_certificate, sign_tbs

__all__ = ["TbsParts", "TbsTemplate"]

_V = TypeVar("_V")


@dataclass(frozen=True, kw_only=True)
class TbsParts:
    """A version 3 TBSCertificate pyca wrote (RFC 5280 §4.1), cut into its fields, each the DER
    it stands as: the RDNs of the subject and the extensions one by one."""

    version: bytes
    algorithm: bytes
    issuer: bytes
    not_after: bytes
    subject_rdns: tuple[bytes, ...]
    extensions: tuple[bytes, ...]

    @classmethod
    def of(cls, tbs: bytes) -> TbsParts:
        """Cut ``tbs``: version, serial, signature, issuer, validity, subject, key, [3]."""
        fields = decode_tlvs(decode_tlv(tbs)[0].value)
        if len(fields) != 8 or fields[0].tag != 0xA0 or fields[7].tag != 0xA3:
            raise EncodingError("a template's draft is a version 3 TBSCertificate with extensions")
        version, _, algorithm, issuer, validity, subject, _, extensions = fields
        listed = decode_tlvs(decode_tlv(extensions.value)[0].value)
        return cls(
            version=version.encode(),
            algorithm=algorithm.encode(),
            issuer=issuer.encode(),
            not_after=decode_tlvs(validity.value)[1].encode(),
            subject_rdns=tuple(rdn.encode() for rdn in decode_tlvs(subject.value)),
            extensions=tuple(extension.encode() for extension in listed),
        )

    def tbs(
        self, *, serial: int, validity: bytes, subject: bytes, spki: bytes, extensions: bytes
    ) -> bytes:
        """A TBSCertificate with this draft's version, algorithm and issuer: ``validity`` is the
        two times' DER, ``subject`` the RDNs' and ``extensions`` the Extension elements'."""
        return encode_tlv(
            0x30,
            self.version
            + x509_tbs.integer(serial)
            + self.algorithm
            + self.issuer
            + encode_tlv(0x30, validity)
            + encode_tlv(0x30, subject)
            + spki
            + encode_tlv(0xA3, encode_tlv(0x30, extensions)),
        )


class TbsTemplate(ABC, Generic[_V]):
    """Certificates of one profile for one signer, their shared fields encoded once (module
    docstring). A subclass sets what its methods need, then calls ``__init__``."""

    what: ClassVar[str]  # the profile's name, for the refusal

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self.parts = TbsParts.of(draft_tbs(self.builder(self.probe()), signer))
        self.learn(self.parts)
        check = self.check()
        if self.tbs(check) != draft_tbs(self.builder(check), signer):
            raise EncodingError(f"the {self.what} template does not rebuild pyca's encoding")

    @abstractmethod
    def builder(self, values: _V) -> x509.CertificateBuilder:
        """The profile as pyca's builder: the reference the template must write alike."""

    @abstractmethod
    def probe(self) -> _V:
        """Values whose draft the shared parts are taken from."""

    @abstractmethod
    def check(self) -> _V:
        """Other values (key, serial, names, times) whose TBS must come out as pyca's."""

    def learn(self, parts: TbsParts) -> None:
        """Keep what ``tbs`` needs of the probe's parts beyond ``self.parts``."""

    @abstractmethod
    def tbs(self, values: _V) -> bytes:
        """The TBSCertificate for ``values``, written from the parts."""

    def takes(self, values: _V) -> bool:
        """Whether ``tbs`` writes ``values`` as pyca would; otherwise the builder issues."""
        return True

    def certificate(self, values: _V, signer: Signer | None = None) -> x509.Certificate:
        """The certificate for ``values``, signed, verified and parsed back.

        ``signer`` signs instead of the template's own signer where an issuer is one of many of
        the same profile (every card is the issuer of its own key attestations): the parts name
        the signature algorithm, not the key, so it must sign with the same hash.
        """
        signer = signer or self._signer
        if type(signer.hash_algorithm) is not type(self._signer.hash_algorithm):
            raise EncodingError(f"the {self.what} template signs with another hash")
        if not self.takes(values):
            return sign_certificate(self.builder(values), signer)
        return sign_tbs(self.tbs(values), self.parts.algorithm, signer)
