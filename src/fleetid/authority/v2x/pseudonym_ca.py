"""The pseudonym CA (the ACA of IEEE 1609.2.1, the AA of ETSI TS 102 941 in butterfly mode).

It receives from the registration authority one ``RaAcaCertRequest`` per certificate, shuffled
across devices: a cocoon signing key, for the original variant a cocoon encryption key, the
period i and two pre-linkage values encrypted to it by the linkage authorities. It never learns
the device: no EC, no caterpillar key, no chain. For each request it

1. opens both pre-linkage values (the LA-CA keys) and checks they are for this period, from two
   different LAs, for the same j: lv = plv1 ⊕ plv2 (a tampered value does not decrypt);
2. randomises the cocoon key with a fresh secret (so the RA, which could compute the cocoon key,
   cannot recognise the certificate), builds the certificate from a template, and signs it
   (explicit) or computes the ECQV reconstruction value (implicit);
3. encrypts ``AcaEeCertResponse{certificate, c or r}`` to the cocoon encryption key, so the RA,
   which forwards it, cannot read it.

What it keeps per certificate is what misbehaviour handling needs and nothing more: the
certificate's HashedId8, its period and the two LAs' chain references, which it cannot open
(each takes both LAs) and which differ for every certificate.

Given an ``engine`` and a ``sealer`` (keyed from its key store), the CA keeps the LA-CA keys
sealed in its database and its records in ``butterfly_issued``, so a restart loses neither.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.crypto.ecqv import certificate_hash_integer
from fleetid.crypto.linkage import linkage_value
from fleetid.crypto.pseudonym_keys import ImplicitIssuingKey, randomise_cocoon_key
from fleetid.crypto.sealed_state import StateSealer
from fleetid.crypto.v2xkeys import compressed_point, curve_name_of, sign_1609
from fleetid.errors import BatchRefusedError, EncodingError, NotFoundError, VerificationError
from fleetid.formats.butterfly_messages import (
    PseudonymTemplate,
    aca_ee_response,
    decode_message,
    encode_message,
    open_plv,
    seal_to_key,
)
from fleetid.formats.etsi102941 import decrypt_for_certificate
from fleetid.formats.ieee1609 import hashed_id8, hashed_id8_of, time32
from fleetid.formats.ieee1609.keys import (
    public_key_from_encryption_key,
    public_key_from_verification_key,
)
from fleetid.policy.v2x import PSID_CAM, PSID_DENM
from fleetid.store.butterfly_queue import ButterflyQueue
from fleetid.store.butterfly_state import SealedSecrets, add_issued
from fleetid.store.engine import Engine

__all__ = ["IssuanceRecord", "PeriodSchedule", "PseudonymCa", "stored_record"]

_log = logging.getLogger(__name__)
_EE_CURVES: Final = ("nistP256", "brainpoolP256r1")
_KEY_CURVES: Final = {"ecdsaNistP256": "nistP256", "ecdsaBrainpoolP256r1": "brainpoolP256r1"}


@dataclass(frozen=True, kw_only=True)
class PeriodSchedule:
    """Pseudonym periods: period i starts at ``origin + i·length`` (Time32 seconds)."""

    origin: int
    length: int = 7 * 24 * 3600

    def start(self, i: int) -> int:
        return self.origin + i * self.length

    def period_at(self, moment: int) -> int:
        if moment < self.origin:
            raise EncodingError("a time before the first pseudonym period")
        return (moment - self.origin) // self.length

    @property
    def duration(self) -> tuple[str, int]:
        return ("hours", self.length // 3600)


@dataclass(frozen=True, kw_only=True)
class IssuanceRecord:
    """What the CA keeps of one certificate: only references both LAs together can open."""

    certificate_id: bytes
    i: int
    chain_references: tuple[bytes, bytes] = field(repr=False)


class PseudonymCa:
    """Issues butterfly pseudonym certificates; holds its keys by reference."""

    def __init__(
        self,
        *,
        keys: AuthorityKeys,
        schedule: PeriodSchedule,
        implicit_key: ImplicitIssuingKey | None = None,
        psids: frozenset[int] = frozenset({PSID_CAM, PSID_DENM}),
        engine: Engine | None = None,
        sealer: StateSealer | None = None,
    ) -> None:
        self._keys = keys
        self._schedule = schedule
        self._implicit_key = implicit_key
        self._issuer = keys.certificate.encoded
        self._issuer_curve = curve_name_of(keys.signer.public_key())
        if implicit_key is not None:
            if implicit_key.public_key().public_numbers() != (
                keys.certificate.verification_key().public_numbers()
            ):
                raise EncodingError("the ECQV key is not the CA certificate's key")
            if curve_name_of(implicit_key.public_key()) not in _EE_CURVES:
                raise EncodingError("ECQV needs the CA key on the certificates' 256-bit curve")
        self._psids = psids
        self._la_keys: dict[bytes, bytes] = {}
        self._templates: dict[tuple[str, str, bool], PseudonymTemplate] = {}
        self.records: dict[bytes, IssuanceRecord] = {}
        self._engine = engine
        self._secrets: tuple[SealedSecrets, StateSealer] | None = None
        if engine is not None:
            if sealer is None:
                raise EncodingError("a CA with a database needs a sealer from its key store")
            self._secrets = (SealedSecrets(engine, "pseudonym-ca"), sealer)
            for name, sealed in self._secrets[0].all().items():
                self._la_keys[bytes.fromhex(name)] = sealer.open(sealed, name.encode())

    @property
    def certificate(self) -> bytes:
        return self._issuer

    @property
    def keys(self) -> AuthorityKeys:
        return self._keys

    def knows_la(self, la_id: bytes) -> bool:
        """Whether this CA holds a key shared with the LA ``la_id``."""
        return la_id in self._la_keys

    def accept_la_key(self, message: bytes) -> None:
        """Take an LA's key, sent encrypted to this CA's certificate (``key_for_ca``)."""
        plaintext, _ = decrypt_for_certificate(
            message, self._keys.decryption_key, self._issuer, unicast=True
        )
        if len(plaintext) != 18:
            raise EncodingError("an LA key message is la_id (2) and an AES-128 key (16)")
        if self._secrets is not None:
            store, sealer = self._secrets
            name = plaintext[:2].hex()
            store.put(name, sealer.seal(plaintext[2:], name.encode()))
        self._la_keys[plaintext[:2]] = plaintext[2:]

    # ----------------------------------------------------------------------------------------

    def issue_batch(self, batch: bytes, now: datetime) -> bytes:
        """RaAcaCertRequestBatch in, AcaRaCertResponseBatch out (the RA's shuffled order)."""
        requests = decode_message("RaAcaCertRequestBatch", batch)
        return encode_message("AcaRaCertResponseBatch", self.issue_requests(requests, now))

    def issue_requests(self, requests: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """AcaRaCertResponse values for RaAcaCertRequest values; with a database, the records
        of the whole batch are written in one transaction."""
        if self._engine is None:
            return [self.issue(request, now) for request in requests]
        issued = [self.issue_with_record(request, now) for request in requests]
        add_issued(self._engine, [(r.certificate_id, r.i, *r.chain_references) for _, r in issued])
        return [response for response, _ in issued]

    def issue(self, request: dict[str, Any], now: datetime) -> dict[str, Any]:
        """One AcaRaCertResponse value for one RaAcaCertRequest value; the record kept here.

        Raises ``VerificationError`` for a pre-linkage value that does not open or does not
        belong, ``BatchRefusedError`` for a request outside this CA's policy.
        """
        response, record = self.issue_with_record(request, now)
        self.records[record.certificate_id] = record
        return response

    def issue_with_record(
        self, request: dict[str, Any], now: datetime
    ) -> tuple[dict[str, Any], IssuanceRecord]:
        """``issue`` for workers that keep the record in the shared store themselves."""
        i = int(request["iCert"])
        tbs_in = request["tbsCert"]
        implicit = request["type"] == "implicit"
        template = self._template(tbs_in, implicit)
        start = self._schedule.start(i)
        if tbs_in["validityPeriod"] != {"start": start, "duration": self._schedule.duration}:
            raise BatchRefusedError("validity", f"the validity is not that of period {i}")
        lv = self._linkage_value(request["linkageInfo"], i)
        kind, key = tbs_in["verifyKeyIndicator"]
        if kind != "verificationKey":
            raise EncodingError("the RA sends the cocoon key as a verificationKey")
        cocoon = public_key_from_verification_key(key)
        encryption_value = request.get("certEncKey")
        recipient = (
            cocoon
            if encryption_value is None
            else public_key_from_encryption_key(encryption_value)[1]
        )
        moved = randomise_cocoon_key(cocoon)
        tbs = template.tbs(i, lv, start, compressed_point(moved.point))
        if implicit:
            signing_key = self._implicit_key
            if signing_key is None:
                raise BatchRefusedError("implicit", "this CA issues explicit certificates only")
            certificate = template.certificate(tbs)
            e = certificate_hash_integer(tbs, self._issuer, cocoon.curve)
            private_key_info = signing_key.reconstruction_value(e, moved.secret)
        else:
            r, s = sign_1609(self._keys.signer, tbs, self._issuer)
            certificate = template.certificate(tbs, r, s)
            private_key_info = moved.secret
        plaintext = aca_ee_response(time32(now), certificate, private_key_info)
        # The template writes the canonical form (compressed key, x-only r), and the key is
        # 256-bit: HashedId8 is the low 8 bytes of SHA-256 of these very bytes (1609.2 §6.4.3).
        certificate_id = hashed_id8_of(certificate)
        record = IssuanceRecord(
            certificate_id=certificate_id,
            i=i,
            chain_references=(
                bytes(request["linkageInfo"][0]["chainReference"]),
                bytes(request["linkageInfo"][1]["chainReference"]),
            ),
        )
        response = {
            "requestId": bytes(request["requestId"]),
            "acaResponse": seal_to_key(plaintext, recipient),
        }
        return response, record

    def _linkage_value(self, linkage_info: Iterable[dict[str, Any]], i: int) -> bytes:
        opened = []
        for entry in linkage_info:
            la_key = self._la_keys.get(bytes(entry["laId"]))
            if la_key is None:
                raise VerificationError(f"no key shared with LA {bytes(entry['laId']).hex()}")
            opened.append((bytes(entry["laId"]), *open_plv(la_key, entry, i)))
        (la1, j1, plv1), (la2, j2, plv2) = opened
        if la1 == la2:
            raise VerificationError("both pre-linkage values come from one linkage authority")
        if j1 != j2:
            raise VerificationError("the two pre-linkage values are for different certificates")
        return linkage_value(plv1, plv2)

    def _template(self, tbs_in: dict[str, Any], implicit: bool) -> PseudonymTemplate:
        permissions = tbs_in.get("appPermissions") or []
        if not permissions or any(int(p["psid"]) not in self._psids for p in permissions):
            raise BatchRefusedError("permissions", "psids outside the CA's issue permissions")
        kind, key = tbs_in["verifyKeyIndicator"]
        curve = _KEY_CURVES.get(key[0], "") if kind == "verificationKey" else ""
        if not curve:
            raise BatchRefusedError("curve", "pseudonym keys are on a 256-bit curve")
        cache_key = (repr(permissions), curve, implicit)
        template = self._templates.get(cache_key)
        if template is None:
            template = PseudonymTemplate(
                issuer_certificate=self._issuer,
                issuer_curve=self._issuer_curve,
                implicit=implicit,
                app_permissions=permissions,
                duration=self._schedule.duration,
                key_curve=curve,
            )
            self._templates[cache_key] = template
        return template

    # ----------------------------------------------------------------------------------------
    # Misbehaviour

    def record_for(self, certificate: bytes) -> IssuanceRecord:
        """The references kept for a reported certificate (its COER bytes)."""
        record = self.records.get(hashed_id8(certificate))
        if record is None and self._engine is not None:
            return stored_record(ButterflyQueue(self._engine), certificate)
        if record is None:
            raise NotFoundError("this CA did not issue that certificate")
        return record


def stored_record(queue: ButterflyQueue, certificate: bytes) -> IssuanceRecord:
    """The CA's record of a certificate in ``butterfly_issued`` (its own or its workers')."""
    certificate_id = hashed_id8_of(certificate)
    found = queue.record(certificate_id)
    if found is None:
        raise NotFoundError("this CA did not issue that certificate")
    i, reference1, reference2 = found
    return IssuanceRecord(
        certificate_id=certificate_id, i=i, chain_references=(reference1, reference2)
    )
