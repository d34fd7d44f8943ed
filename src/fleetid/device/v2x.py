"""The vehicle's V2X station (ITS-S): enrolment, authorization tickets, signed CAMs, and the
receiver that verifies its neighbours' CAMs.

Flows (ETSI TS 102 941 §6.2.3): the station enrols with the EA (outer signature by the canonical
key registered at manufacture, or by the current EC to re-enrol; inner POP by the new EC key;
encrypted to the EA), then asks the AA for ATs, one request per AT, each with a fresh AT key and
hmacKey and an EC signature encrypted to the EA. It signs CAMs (psid 36) with the current AT and
rotates AT on a pseudonym period (``Clock``-driven), each AT serving one period. The signer is the
full AT certificate on the first message after a change of AT, then once per second or every
``certificate_every``-th message, and its HashedId8 digest otherwise (ETSI TS 103 097 §7.1.1,
EN 302 637-2 §6.1.3).

Keys are created through a ``V2xKeyStore``: in the secure element (both curve families), or in
software behind the same ``Signer``/``EcdhKey`` interfaces. A retired AT's keys are deleted from
the store (DELETE KEY on the card), so a decade of rotation fits the SE's 127 key slots.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.clock import Clock
from fleetid.crypto.ecies import EcdhKey
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.crypto.v2xkeys import CURVES, PublicKey, generate_key
from fleetid.errors import FleetIdError, PolicyError, ProfileError, VerificationError
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.etsi102941 import (
    PSID_CERTIFICATE_REQUEST,
    decrypt_with_key,
    encode_etsi102941_data,
    encode_inner_ec_request,
    encrypt,
    key_tag,
    open_pki_data,
    request_hash,
    shared_at_request_hash,
    sign_enrolment_request_pop,
    sign_external_payload,
    sign_pki_data,
)
from fleetid.formats.ieee1609 import (
    Certificate,
    decode,
    decode_certificate,
    encode,
    open_signed_data,
    sign_data,
    time32,
    time64,
    unsecured,
    verify_signed_data,
)
from fleetid.formats.ieee1609.keys import encryption_key_value, verification_key_value
from fleetid.formats.ieee1609.profile import check_signed
from fleetid.formats.ieee1609.validity import check_validity, validity_bounds
from fleetid.policy.v2x import CAM_SSP, EC_SSP, PSID_CAM, CurveFamily
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.trust.v2x import V2xTrustStore

__all__ = [
    "CamReceiver",
    "ItsStation",
    "PendingRequest",
    "ReceivedCam",
    "SecureElementV2xKeys",
    "SoftwareV2xKeys",
    "Transport",
    "V2xKeyStore",
]

#: Sends a request to an authority and returns its response (HTTP or in-process).
Transport = Callable[[bytes], bytes]


class V2xKeyStore(Protocol):
    """Where a station's EC and AT keys are made and kept; keys are used by reference."""

    def signing_key(self, curve: str) -> Signer: ...

    def encryption_key(self, curve: str) -> tuple[EcdhKey, PublicKey]: ...

    def delete(self, key: Signer | EcdhKey) -> None:
        """Destroy a key this store made; it can no longer sign or agree."""
        ...


class SoftwareV2xKeys:
    """Keys in this process (tests, simulations, benchmarks)."""

    def signing_key(self, curve: str) -> Signer:
        return SoftwareSigner(generate_key(curve))

    def encryption_key(self, curve: str) -> tuple[EcdhKey, PublicKey]:
        key = generate_key(curve)
        return key, key.public_key()

    def delete(self, key: Signer | EcdhKey) -> None:
        """Nothing to erase: the key object goes when the station drops its last reference."""


class _SeEcdhKey:
    """An ``EcdhKey`` whose private half is a key handle on the secure element."""

    def __init__(self, client: SecureElementClient, handle: int, public_key: PublicKey) -> None:
        self._client = client
        self._handle = handle
        self._public_key = public_key

    @property
    def handle(self) -> int:
        return self._handle

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        return self._client.ecdh(self._handle, peer_public_key)


class SecureElementV2xKeys:
    """Keys generated in the secure element's identity applet, on any 1609.2 curve.

    The applet has NIST P-256 / P-384 and brainpoolP256r1 / brainpoolP384r1 (docs/se-apdu.md), so
    both curve families keep their EC and AT keys on the card. A curve name that 1609.2 does not
    use raises ``PolicyError``.
    """

    def __init__(self, client: SecureElementClient) -> None:
        self._client = client

    @staticmethod
    def _curve(curve: str) -> ec.EllipticCurve:
        try:
            return CURVES[curve]
        except KeyError:
            raise PolicyError(f"the secure element has no {curve} keys") from None

    def signing_key(self, curve: str) -> Signer:
        info = self._client.generate_key(self._curve(curve), KeyUsage.SIGN)
        return SecureElementSigner(self._client, info.handle)

    def encryption_key(self, curve: str) -> tuple[EcdhKey, PublicKey]:
        info = self._client.generate_key(self._curve(curve), KeyUsage.KEY_AGREEMENT)
        return _SeEcdhKey(self._client, info.handle, info.public_key), info.public_key

    def delete(self, key: Signer | EcdhKey) -> None:
        """DELETE KEY of a key this store made on the card (the slot is free again)."""
        if not isinstance(key, SecureElementSigner | _SeEcdhKey):
            raise PolicyError("not a key on this secure element")
        self._client.delete_key(key.handle)


@dataclass(frozen=True, kw_only=True)
class PendingRequest:
    """A request as sent, with what is needed to open and check its response."""

    encoded: bytes
    aes_key: bytes = field(repr=False)
    authority: Certificate = field(repr=False)
    key: Signer = field(repr=False)
    kind: str
    #: The AT's ECIES key when the request asked for one (``at_encryption_key``).
    encryption_key: EcdhKey | None = field(default=None, repr=False)

    @property
    def request_hash(self) -> bytes:
        return request_hash(self.encoded)


class ItsStation:
    """One vehicle's V2X security: its EC, its ATs and the CAMs it signs."""

    def __init__(
        self,
        *,
        its_id: bytes,
        canonical_key: Signer,
        keys: V2xKeyStore,
        family: CurveFamily,
        trust: V2xTrustStore,
        clock: Clock,
        pseudonym_period: timedelta = timedelta(minutes=5),
        certificate_every: int = 10,
        certificate_interval: timedelta = timedelta(seconds=1),
        at_encryption_key: bool = False,
    ) -> None:
        self.its_id = its_id
        self._canonical_key = canonical_key
        self._keys = keys
        self.family = family
        self.trust = trust
        self._clock = clock
        self._period = pseudonym_period
        self._certificate_every = certificate_every
        self._certificate_interval = certificate_interval
        self._at_encryption_key = at_encryption_key
        self.enrolment_credential: Certificate | None = None
        self._ec_key: Signer | None = None
        #: The ATs held: the one in use (once signing started) and those not used yet, in order.
        self.tickets: list[tuple[Certificate, Signer]] = []
        self._ticket_encryption_keys: dict[bytes, EcdhKey] = {}
        self._in_use: tuple[Certificate, Signer] | None = None
        self._in_use_slot = 0
        self.retired_tickets = 0
        self._last_ticket: bytes | None = None
        self._last_certificate_at: datetime | None = None
        self._since_certificate = 0

    def enrolment_signer(self) -> Signer:
        """The current EC's key, by reference (it signs butterfly batch requests)."""
        if self._ec_key is None:
            raise PolicyError("the station is not enrolled")
        return self._ec_key

    # ------------------------------------------------------------------ enrolment

    def _ea(self) -> Certificate:
        entries = self.trust.entries("ea")
        if not entries:
            raise PolicyError("the CTL lists no EA")
        return entries[0].certificate

    def enrolment_request(self, ea: Certificate | None = None) -> PendingRequest:
        """EnrolmentRequestMessage: Signed{Signed(POP){InnerEcRequest}}, encrypted to the EA."""
        ea = ea or self._ea()
        new_key = self._keys.signing_key(self.family.end_entity)
        now = time64(self._clock.now())
        current = self.enrolment_credential
        its_id = self.its_id if current is None else current.hashed_id8
        inner = encode_inner_ec_request(
            its_id=its_id,
            verification_key=new_key.public_key(),
            requested_subject_attributes={
                "appPermissions": [{"psid": PSID_CERTIFICATE_REQUEST, "ssp": ("bitmapSsp", EC_SSP)}]
            },
        )
        pop = sign_enrolment_request_pop(inner, new_key, generation_time=now)
        content = ("enrolmentRequest", decode("Ieee1609Dot2Data", pop))
        if current is None or self._ec_key is None:
            outer = sign_pki_data(content, self._canonical_key, generation_time=now)
        else:
            outer = sign_pki_data(
                content, self._ec_key, generation_time=now, signer_certificate=current.encoded
            )
        sealed = encrypt(outer, ea.encoded)
        return PendingRequest(
            encoded=sealed.encoded, aes_key=sealed.aes_key, authority=ea, key=new_key, kind="ec"
        )

    def _open_response(self, pending: PendingRequest, response: bytes, kind: str) -> Certificate:
        data = open_pki_data(
            decrypt_with_key(response, pending.aes_key),
            signer_kinds=frozenset({"digest"}),
            expected=frozenset({kind}),
        )
        data.verify(pending.authority.verification_key(), pending.authority.encoded)
        body: dict[str, Any] = data.content[1]
        if bytes(body["requestHash"]) != pending.request_hash:
            raise VerificationError("the response answers another request")
        code = str(body["responseCode"])
        if (code == "ok") != ("certificate" in body):
            raise ProfileError("a certificate comes with ok and only with ok")
        if code != "ok":
            raise PolicyError(f"the authority refused the request: {code}")
        certificate = decode_certificate(encode("Certificate", body["certificate"]))
        if (
            certificate.verification_key().public_numbers()
            != pending.key.public_key().public_numbers()
        ):
            raise VerificationError("the certificate is for another key")
        return certificate

    def accept_enrolment(self, pending: PendingRequest, response: bytes) -> Certificate:
        """Check an EnrolmentResponseMessage and keep the EC it carries."""
        certificate = self._open_response(pending, response, "enrolmentResponse")
        self.trust.verify_issued(certificate, "ea", psids={PSID_CERTIFICATE_REQUEST})
        previous = self._ec_key
        self.enrolment_credential = certificate
        self._ec_key = pending.key
        if previous is not None and previous is not pending.key:
            self._keys.delete(previous)  # the replaced EC's key: its slot is free again
        return certificate

    def enrol(self, send: Transport, ea: Certificate | None = None) -> Certificate:
        pending = self.enrolment_request(ea)
        return self.accept_enrolment(pending, send(pending.encoded))

    # ------------------------------------------------------------------ authorization

    def authorization_request(
        self,
        aa: Certificate | None = None,
        ea: Certificate | None = None,
        *,
        pop: bool = True,
        psids: tuple[int, ...] = (PSID_CAM,),
    ) -> PendingRequest:
        """AuthorizationRequestMessage(WithPop) for one AT, encrypted to the AA."""
        if self.enrolment_credential is None or self._ec_key is None:
            raise PolicyError("enrol before asking for authorization tickets")
        aa = aa or self._aa()
        ea = ea or self._ea()
        at_key = self._keys.signing_key(self.family.end_entity)
        public_keys: dict[str, Any] = {
            "verificationKey": verification_key_value(at_key.public_key())
        }
        encryption_key: EcdhKey | None = None
        if self._at_encryption_key:
            encryption_key, encryption_public = self._keys.encryption_key(self.family.end_entity)
            public_keys["encryptionKey"] = encryption_key_value(encryption_public)
        hmac_key = os.urandom(32)
        shared = {
            "eaId": ea.hashed_id8,
            "keyTag": key_tag(hmac_key, public_keys),
            "certificateFormat": 1,
            "requestedSubjectAttributes": {
                "appPermissions": [
                    {"psid": psid, "ssp": ("bitmapSsp", CAM_SSP)}
                    if psid == PSID_CAM
                    else {"psid": psid}
                    for psid in psids
                ]
            },
        }
        now = time64(self._clock.now())
        ec_signature = sign_external_payload(
            shared_at_request_hash(shared),
            self._ec_key,
            self.enrolment_credential.encoded,
            generation_time=now,
        )
        encrypted_ec_signature = encrypt(ec_signature, ea.encoded).encoded
        inner = {
            "publicKeys": public_keys,
            "hmacKey": hmac_key,
            "sharedAtRequest": shared,
            "ecSignature": (
                "encryptedEcSignature",
                decode("Ieee1609Dot2Data", encrypted_ec_signature),
            ),
        }
        if pop:
            body = sign_pki_data(("authorizationRequest", inner), at_key, generation_time=now)
        else:
            body = encode(
                "Ieee1609Dot2Data",
                unsecured(encode_etsi102941_data(("authorizationRequest", inner))),
            )
        sealed = encrypt(body, aa.encoded)
        return PendingRequest(
            encoded=sealed.encoded,
            aes_key=sealed.aes_key,
            authority=aa,
            key=at_key,
            kind="at",
            encryption_key=encryption_key,
        )

    def _aa(self) -> Certificate:
        entries = self.trust.entries("aa")
        for entry in entries:
            if entry.certificate.hashed_id8 not in self.trust.revoked:
                return entry.certificate
        raise PolicyError("the CTL lists no usable AA")

    def accept_authorization(self, pending: PendingRequest, response: bytes) -> Certificate:
        """Check an AuthorizationResponseMessage and keep the AT it carries."""
        ticket = self._open_response(pending, response, "authorizationResponse")
        if ticket.tbs["id"][0] != "none":
            raise ProfileError("an AT carries no identifier")
        self.trust.verify_issued(ticket, "aa", psids={PSID_CAM})
        self.tickets.append((ticket, pending.key))
        if pending.encryption_key is not None:
            self._ticket_encryption_keys[ticket.hashed_id8] = pending.encryption_key
        return ticket

    def discard(self, pending: PendingRequest) -> None:
        """Delete the keys of an AT request that will not become a ticket (refused, lost)."""
        self._keys.delete(pending.key)
        if pending.encryption_key is not None:
            self._keys.delete(pending.encryption_key)

    def request_tickets(
        self, count: int, send: Transport, aa: Certificate | None = None
    ) -> list[Certificate]:
        """``count`` ATs, one request (and one fresh key and hmacKey) per AT.

        A request that fails has its fresh keys deleted before the error propagates.
        """
        issued = []
        for _ in range(count):
            pending = self.authorization_request(aa)
            try:
                issued.append(self.accept_authorization(pending, send(pending.encoded)))
            except FleetIdError:
                self.discard(pending)
                raise
        return issued

    # ------------------------------------------------------------------ CAMs

    def current_ticket(self) -> tuple[Certificate, Signer]:
        """The AT for this pseudonym period: a new one every ``pseudonym_period``.

        Each AT serves one period. When the period changes, the next valid AT not used yet takes
        over and the one it replaces is retired: dropped, its keys deleted from the key store.
        With no fresh AT held, the current one stays in use (a vehicle keeps sending CAMs rather
        than fall silent) until it expires. ATs past their validity are retired too; ATs whose
        validity has not started yet are kept.
        """
        now = self._clock.now()
        slot = time32(now) // max(1, int(self._period.total_seconds()))
        current = self._in_use
        if current is not None and not _valid(current[0], now):
            self._retire(current)
            current = self._in_use = None
        if current is not None and slot == self._in_use_slot:
            return current
        fresh = next((t for t in self.tickets if t is not current and _valid(t[0], now)), None)
        if fresh is not None:
            self._in_use = fresh
            if current is not None:
                self._retire(current)
        self._in_use_slot = slot
        for held in list(self.tickets):
            if time32(now) >= validity_bounds(held[0])[1]:
                self._retire(held)
        if self._in_use is None:
            raise PolicyError("no valid authorization ticket")
        return self._in_use

    def _retire(self, ticket: tuple[Certificate, Signer]) -> None:
        certificate, key = ticket
        self.tickets.remove(ticket)
        self.retired_tickets += 1
        self._keys.delete(key)
        encryption_key = self._ticket_encryption_keys.pop(certificate.hashed_id8, None)
        if encryption_key is not None:
            self._keys.delete(encryption_key)

    def sign_cam(self, payload: bytes) -> bytes:
        """A CAM-like EtsiTs103097Data-Signed, psid 36, signed with the current AT."""
        ticket, key = self.current_ticket()
        now = self._clock.now()
        changed = ticket.hashed_id8 != self._last_ticket
        due = (
            changed
            or self._last_certificate_at is None
            or now - self._last_certificate_at >= self._certificate_interval
            or self._since_certificate + 1 >= self._certificate_every
        )
        header = {"psid": PSID_CAM, "generationTime": time64(now)}
        if due:
            signer_identifier: tuple[str, Any] = ("certificate", [ticket.value])
            self._last_certificate_at = now
            self._since_certificate = 0
        else:
            signer_identifier = ("digest", ticket.hashed_id8)
            self._since_certificate += 1
        self._last_ticket = ticket.hashed_id8
        return sign_data(
            {"data": unsecured(payload)},
            header,
            key,
            signer_identifier=signer_identifier,
            signer_certificate=ticket.encoded,
        )


@dataclass(frozen=True, kw_only=True)
class ReceivedCam:
    """A CAM that verified: its payload, the pseudonym that signed it and when."""

    payload: bytes
    signer_id: bytes
    generation_time: int
    signer_was_certificate: bool


class CamReceiver:
    """Verifies neighbours' CAMs: chain via the CTL, validity, psid/SSP, CA CRL, freshness and
    replay. Every failure raises ``VerificationError`` (``ProfileError`` for a bad profile)."""

    def __init__(
        self,
        trust: V2xTrustStore,
        clock: Clock,
        *,
        max_age: timedelta = timedelta(seconds=2),
        future_tolerance: timedelta = timedelta(milliseconds=500),
        cache_size: int = 1024,
    ) -> None:
        self._trust = trust
        self._clock = clock
        self._max_age = int(max_age.total_seconds() * 1_000_000)
        self._future = int(future_tolerance.total_seconds() * 1_000_000)
        self._cache: OrderedDict[bytes, Certificate] = OrderedDict()
        self._cache_size = cache_size
        self._seen: dict[tuple[bytes, int, bytes], int] = {}

    @property
    def trust(self) -> V2xTrustStore:
        """The store this receiver checks against (apply new CTLs and CRLs to it)."""
        return self._trust

    def _signer_certificate(self, signer: tuple[str, Any]) -> tuple[Certificate, bool]:
        kind, value = signer
        if kind == "certificate":
            ticket = decode_certificate(encode("Certificate", value[0]))
            self._trust.verify_issued(ticket, "aa", psids={PSID_CAM})
            self._cache[ticket.hashed_id8] = ticket
            self._cache.move_to_end(ticket.hashed_id8)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return ticket, True
        ticket_or_none = self._cache.get(bytes(value))
        if ticket_or_none is None:
            raise VerificationError("signer digest of an AT this receiver has not seen")
        # A cached AT is re-checked for time and for its AA's revocation (the CRL may be new).
        check_validity(ticket_or_none, self._clock.now())
        self._trust.ca(bytes(ticket_or_none.value["issuer"][1]), "aa")
        return ticket_or_none, False

    def verify(self, message: bytes) -> ReceivedCam:
        signed = open_signed_data(message)
        check_signed(signed.value, psid=PSID_CAM, signer_kinds=frozenset({"digest", "certificate"}))
        generation_time = int(signed.header_info["generationTime"])
        now = time64(self._clock.now())
        if generation_time > now + self._future:
            raise VerificationError("the CAM is from the future")
        if now - generation_time > self._max_age:
            raise VerificationError("the CAM is too old")
        ticket, with_certificate = self._signer_certificate(signed.signer)
        ssp = _ssp_for(ticket, PSID_CAM)
        if ssp is None or not ssp.startswith(b"\x01"):
            raise VerificationError("the AT grants no CAM SSP version 1")
        verify_signed_data(signed, ticket.verification_key(), ticket.encoded)
        key = (ticket.hashed_id8, generation_time, signed.tbs_encoded)
        for seen, when in list(self._seen.items()):
            if now - when > self._max_age:
                del self._seen[seen]
        if key in self._seen:
            raise VerificationError("replayed CAM")
        self._seen[key] = generation_time
        return ReceivedCam(
            payload=signed.unsecured_payload(),
            signer_id=ticket.hashed_id8,
            generation_time=generation_time,
            signer_was_certificate=with_certificate,
        )


def _valid(certificate: Certificate, moment: datetime) -> bool:
    try:
        check_validity(certificate, moment)
    except VerificationError:
        return False
    return True


def _ssp_for(ticket: Certificate, psid: int) -> bytes | None:
    for item in ticket.tbs.get("appPermissions", []):
        if int(item["psid"]) == psid:
            ssp = item.get("ssp")
            if ssp is None:
                return None
            return bytes(ssp[1])
    return None
