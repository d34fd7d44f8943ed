"""The vehicle's side of butterfly batches: ask once, download a period's pseudonyms, rebuild keys.

The device holds a caterpillar key pair and an AES expansion key (``CaterpillarKey``; the
original variant has a second pair for the response encryption keys). Its batch request
(``EeRaCertRequest``) is signed by its EC and encrypted to the RA. The download holds, for every
(i, j), an ``AcaEeCertResponse`` encrypted to the cocoon encryption key; the device opens each
with the cocoon key it computes itself, then reconstructs the pseudonym private key (explicit:
``b + c``; implicit: ``e·b + r``) and checks it against the certificate: a response for another
device, under another cocoon key or altered on the way does not open or does not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.ecies import EcdhKey, new_aes_key
from fleetid.crypto.ecqv import certificate_hash_integer, reconstruct_public
from fleetid.crypto.pseudonym_keys import CaterpillarKey, check_key_matches
from fleetid.crypto.signer import Signer
from fleetid.crypto.v2xkeys import curve_name_of
from fleetid.errors import EncodingError, PolicyError, VerificationError
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.butterfly_messages import (
    ACA_EE_CERTIFICATE_OFFSET,
    ACA_EE_PREAMBLE,
    decode_message,
    encode_message,
    open_from_key,
)
from fleetid.formats.etsi102941 import decrypt_with_key, encrypt, open_pki_data, sign_pki_data
from fleetid.formats.ieee1609 import (
    Certificate,
    decode_certificate,
    hashed_id8,
    hashed_id8_of,
    sign_data,
    time32,
    time64,
    unsecured,
    verify_certificate_signature,
)
from fleetid.formats.ieee1609.keys import (
    encryption_key_value,
    public_key_from_point_value,
    verification_key_value,
)
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.wire import DERIVE_COCOON, DERIVE_EXPLICIT, DERIVE_IMPLICIT

__all__ = [
    "Caterpillar",
    "PendingBatch",
    "Pseudonym",
    "PseudonymRequester",
    "PseudonymWallet",
    "SecureElementCaterpillar",
]

_PSID_REQUEST: Final = 623


class CocoonKey(EcdhKey, Protocol):
    """A cocoon key that opens the CA's response: ECDH by reference, and its public half."""

    def public_key(self) -> ec.EllipticCurvePublicKey: ...


class Caterpillar(Protocol):
    """A caterpillar key and its expansion key, in software or in the secure element."""

    @property
    def expansion_key(self) -> bytes: ...

    def public_key(self) -> ec.EllipticCurvePublicKey: ...

    def cocoon_key(self, i: int, j: int, *, encryption: bool = False) -> CocoonKey: ...

    def release(self, key: CocoonKey | Signer) -> None:
        """Erase a key derived from the caterpillar: a cocoon key once its response is open,
        a pseudonym key once its period is superseded (``PseudonymWallet``)."""
        ...

    def explicit_key(self, i: int, j: int, c: int) -> Signer: ...

    def implicit_key(self, i: int, j: int, e: int, r: int) -> Signer: ...


class _SeCocoonKey:
    def __init__(
        self, client: SecureElementClient, handle: int, public: ec.EllipticCurvePublicKey
    ) -> None:
        self._client = client
        self.handle = handle
        self._public = public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        return self._client.ecdh(self.handle, peer_public_key)


class SecureElementCaterpillar:
    """A caterpillar key generated in the secure element; every key derived from it (cocoon and
    pseudonym keys) is derived there too (DERIVE PSEUDONYM KEY) and used by handle.

    The expansion key is not secret from the RA (the vehicle sends it), so the host holds it.
    """

    def __init__(self, client: SecureElementClient, curve: ec.EllipticCurve) -> None:
        self._client = client
        info = client.generate_key(curve, KeyUsage.SIGN)
        self.handle = info.handle
        self._public = info.public_key
        self._expansion = new_aes_key()

    @property
    def expansion_key(self) -> bytes:
        return self._expansion

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def cocoon_key(self, i: int, j: int, *, encryption: bool = False) -> CocoonKey:
        info = self._client.derive_pseudonym_key(
            self.handle, DERIVE_COCOON, self._expansion, i, j, encryption=encryption
        )
        return _SeCocoonKey(self._client, info.handle, info.public_key)

    def release(self, key: CocoonKey | Signer) -> None:
        """DELETE KEY of a cocoon key once its response is open, or of a pseudonym key once
        its period is superseded (its slot is free again); never of the caterpillar itself."""
        if isinstance(key, _SeCocoonKey | SecureElementSigner) and key.handle != self.handle:
            self._client.delete_key(key.handle)

    def explicit_key(self, i: int, j: int, c: int) -> Signer:
        info = self._client.derive_pseudonym_key(
            self.handle, DERIVE_EXPLICIT, self._expansion, i, j, values=c.to_bytes(32, "big")
        )
        return SecureElementSigner(self._client, info.handle)

    def implicit_key(self, i: int, j: int, e: int, r: int) -> Signer:
        values = e.to_bytes(32, "big") + r.to_bytes(32, "big")
        info = self._client.derive_pseudonym_key(
            self.handle, DERIVE_IMPLICIT, self._expansion, i, j, values=values
        )
        return SecureElementSigner(self._client, info.handle)


@dataclass(frozen=True, kw_only=True)
class Pseudonym:
    """One pseudonym certificate and its key, by reference (in software or in the SE)."""

    i: int
    j: int
    certificate: Certificate
    key: Signer = field(repr=False)

    @property
    def linkage_value(self) -> bytes:
        return bytes(self.certificate.tbs["id"][1]["linkage-value"])


@dataclass(frozen=True, kw_only=True)
class PendingBatch:
    """A batch request as sent: its bytes, its id at the RA and the AES key of the ack."""

    message: bytes
    batch_id: bytes
    aes_key: bytes = field(repr=False)
    period_start: int
    etsi: bool = False  # sent as ETSI TS 102 941 V2 ButterflyAuthorizationRequestMessage


class PseudonymRequester:
    """Builds batch requests and reconstructs the downloaded pseudonyms."""

    def __init__(
        self,
        *,
        ec_signer: Signer,
        ec_certificate: bytes,
        ra_certificate: bytes,
        ca_certificate: bytes,
        curve: ec.EllipticCurve,
        implicit: bool = False,
        unified: bool = True,
        caterpillar: Caterpillar | None = None,
        encryption_caterpillar: Caterpillar | None = None,
    ) -> None:
        self._ec_signer = ec_signer
        self._ec_certificate = bytes(ec_certificate)
        self._ra_certificate = bytes(ra_certificate)
        self._ca = decode_certificate(ca_certificate)
        self._implicit = implicit
        self.caterpillar: Caterpillar = caterpillar or CaterpillarKey.generate(curve)
        self.encryption_caterpillar: Caterpillar | None = (
            None if unified else encryption_caterpillar or CaterpillarKey.generate(curve)
        )

    def batch_request(
        self,
        *,
        period_start: int,
        duration: tuple[str, int],
        app_permissions: list[Any],
        now: Any,
        etsi: bool = False,
    ) -> PendingBatch:
        """An EeRaCertRequest for the period starting at ``period_start`` (Time32): as the
        1609.2.1 EE-RA request, or with ``etsi`` as ETSI TS 102 941 V2's
        ButterflyAuthorizationRequestMessage (the same request inside EtsiTs102941Data)."""
        if self.encryption_caterpillar is None:
            params: tuple[str, Any] = ("unified", ("aes128", self.caterpillar.expansion_key))
        else:
            params = (
                "original",
                {
                    "signingExpansion": ("aes128", self.caterpillar.expansion_key),
                    "encryptionKey": encryption_key_value(self.encryption_caterpillar.public_key()),
                    "encryptionExpansion": (
                        "aes128",
                        self.encryption_caterpillar.expansion_key,
                    ),
                },
            )
        body = {
            "version": 2,
            "generationTime": time32(now),
            "type": "implicit" if self._implicit else "explicit",
            "tbsCert": {
                "id": ("none", None),
                "cracaId": b"\x00\x00\x00",
                "crlSeries": 0,
                "validityPeriod": {"start": period_start, "duration": duration},
                "appPermissions": app_permissions,
                "verifyKeyIndicator": (
                    "verificationKey",
                    verification_key_value(self.caterpillar.public_key()),
                ),
            },
            "additionalParams": params,
        }
        if etsi:
            signed = sign_pki_data(
                ("butterflyAuthorizationRequest", body),
                self._ec_signer,
                generation_time=time64(now),
                signer_certificate=self._ec_certificate,
            )
        else:
            signed = sign_data(
                {"data": unsecured(encode_message("EeRaCertRequest", body))},
                {"psid": _PSID_REQUEST, "generationTime": time64(now)},
                self._ec_signer,
                signer_identifier=("digest", hashed_id8(self._ec_certificate)),
                signer_certificate=self._ec_certificate,
            )
        sealed = encrypt(signed, self._ra_certificate)
        return PendingBatch(
            message=sealed.encoded,
            batch_id=hashed_id8_of(sealed.encoded),
            aes_key=sealed.aes_key,
            period_start=period_start,
            etsi=etsi,
        )

    def read_ack(self, pending: PendingBatch, response: bytes) -> dict[str, Any]:
        """The RaEeCertAck, or for an ETSI request the RaEeCertInfo of the RA's signed
        ButterflyAuthorizationResponseMessage; ``VerificationError`` if it answers another
        request or (ETSI) is not signed by the RA."""
        if pending.etsi:
            data = open_pki_data(
                response,
                signer_kinds=frozenset({"digest"}),
                expected=frozenset({"butterflyAuthorizationResponse"}),
            )
            ra = decode_certificate(self._ra_certificate)
            data.verify(ra.verification_key(), ra.encoded)
            ack: dict[str, Any] = data.content[1]
        else:
            ack = decode_message("RaEeCertAck", decrypt_with_key(response, pending.aes_key))
        if bytes(ack["requestHash"]) != pending.batch_id:
            raise VerificationError("the acknowledgement is for another batch request")
        return ack

    def download_request(self, pending: PendingBatch, now: Any) -> tuple[bytes, bytes]:
        """ETSI TS 102 941 V2's ButterflyAtDownloadRequestMessage for the batch (EeRaDownloadRequest
        naming its file by the batch id, signed by the EC, encrypted to the RA) and the AES key
        its answer comes under (``open_download``)."""
        body = {"generationTime": time32(now), "filename": pending.batch_id.hex()}
        signed = sign_pki_data(
            ("butterflyAtDownloadRequest", body),
            self._ec_signer,
            generation_time=time64(now),
            signer_certificate=self._ec_certificate,
        )
        sealed = encrypt(signed, self._ra_certificate)
        return sealed.encoded, sealed.aes_key

    @staticmethod
    def open_download(answer: bytes, aes_key: bytes) -> bytes:
        """The RaEeCertBatch of a download answer (``VerificationError`` under another key)."""
        return decrypt_with_key(answer, aes_key)

    def reconstruct(self, pending: PendingBatch, download: bytes) -> list[Pseudonym]:
        """Every pseudonym of a downloaded RaEeCertBatch, its key rebuilt and checked.

        Raises ``VerificationError`` if an entry is not for this device, does not open under
        its cocoon key, or carries a certificate its reconstructed key does not match.
        """
        batch = decode_message("RaEeCertBatch", download)
        if bytes(batch["requestHash"]) != pending.batch_id:
            raise VerificationError("the download is for another batch request")
        if not batch["entries"]:
            raise EncodingError("an empty download")
        return [self._open_entry(pending, entry) for entry in batch["entries"]]

    def _open_entry(self, pending: PendingBatch, entry: dict[str, Any]) -> Pseudonym:
        i, j = int(entry["i"]), int(entry["j"])
        holder = self.encryption_caterpillar or self.caterpillar
        recipient = holder.cocoon_key(i, j, encryption=self.encryption_caterpillar is not None)
        try:
            plaintext = open_from_key(
                bytes(entry["acaResponse"]), recipient, recipient.public_key()
            )
        finally:
            holder.release(recipient)
        response = decode_message("AcaEeCertResponse", plaintext)
        if "privateKeyInfo" not in response or plaintext[0] != ACA_EE_PREAMBLE[0]:
            raise VerificationError("a butterfly response carries privateKeyInfo and no extension")
        # The certificate's own bytes, as the CA built them.
        certificate_bytes = plaintext[ACA_EE_CERTIFICATE_OFFSET:-32]
        certificate = decode_certificate(certificate_bytes)
        info = int.from_bytes(bytes(response["privateKeyInfo"]), "big")
        self._check_certificate(certificate, pending, i)
        if self._implicit:
            if certificate.value["type"] != "implicit":
                raise VerificationError("an explicit certificate where implicit was asked")
            point = certificate.tbs["verifyKeyIndicator"][1]
            curve = curve_name_of(self.caterpillar.public_key())
            reconstruction = public_key_from_point_value(curve, point)
            e = certificate_hash_integer(
                certificate.tbs_encoded, self._ca.encoded, reconstruction.curve
            )
            key = self.caterpillar.implicit_key(i, j, e, info)
            public = reconstruct_public(e, reconstruction, self._ca.verification_key())
        else:
            verify_certificate_signature(certificate, self._ca)
            key = self.caterpillar.explicit_key(i, j, info)
            public = certificate.verification_key()
        check_key_matches(key.public_key(), public)
        return Pseudonym(i=i, j=j, certificate=certificate, key=key)

    @staticmethod
    def _check_certificate(certificate: Certificate, pending: PendingBatch, i: int) -> None:
        kind, linkage = certificate.tbs["id"]
        if kind != "linkageData" or int(linkage["iCert"]) != i:
            raise VerificationError("the certificate is not a pseudonym of this period")
        if int(certificate.tbs["validityPeriod"]["start"]) != pending.period_start:
            raise VerificationError("the certificate's validity is not the period asked for")


class PseudonymWallet:
    """The pseudonyms a vehicle holds, by period i.

    Once the vehicle is in period i (``for_period``), every pseudonym of an earlier period is
    superseded: the wallet drops it and the caterpillar erases its key (DELETE KEY on the card),
    as ``ItsStation`` retires a used AT. So a card holds the keys of the current period and of
    the periods already downloaded ahead, never an old week's: 20 slots a week, however long
    the vehicle lives.
    """

    def __init__(self, caterpillar: Caterpillar) -> None:
        self._caterpillar = caterpillar
        self._periods: dict[int, list[Pseudonym]] = {}
        self._current = -1
        self.retired = 0

    def add(self, pseudonyms: list[Pseudonym]) -> None:
        """Keep downloaded pseudonyms; a period already superseded is refused (its keys are
        erased at once)."""
        stale = [p for p in pseudonyms if p.i < self._current]
        if stale:
            for pseudonym in pseudonyms:
                self._caterpillar.release(pseudonym.key)
            raise PolicyError(
                f"period {stale[0].i} is superseded (the vehicle is in {self._current})"
            )
        for pseudonym in pseudonyms:
            self._periods.setdefault(pseudonym.i, []).append(pseudonym)

    def for_period(self, i: int) -> list[Pseudonym]:
        """The pseudonyms of period ``i`` (empty if none was downloaded); every earlier
        period's are retired first. A period before the current one is refused."""
        if i < self._current:
            raise self._superseded(i)
        self._current = i
        for old in [period for period in self._periods if period < i]:
            for pseudonym in self._periods.pop(old):
                self._caterpillar.release(pseudonym.key)
                self.retired += 1
        return list(self._periods.get(i, []))

    def periods(self) -> list[int]:
        """The periods held, current and ahead."""
        return sorted(self._periods)

    def _superseded(self, i: int) -> PolicyError:
        return PolicyError(f"period {i} is superseded (the vehicle is in {self._current})")
