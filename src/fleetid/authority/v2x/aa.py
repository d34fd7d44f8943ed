"""The Authorization Authority (ETSI TS 102 941 §6.2.3.3).

It issues Authorization Tickets (ATs): pseudonymous certificates with no device identifier. A
request reaches it encrypted to the AA; inside are the new AT public keys, the hmacKey, the
SharedAtRequest (naming the EA and carrying keyTag = HMAC(hmacKey, AT keys)) and the EC's signature
over the SharedAtRequest, encrypted to the EA. The AA checks the keyTag and the POP, forwards the
SharedAtRequest and the still-encrypted EC signature to the EA, and issues the AT if the EA
confirms. It never learns which EC asked; the EA never learns the AT keys.

It stores only what accountability needs: the HashedId8 and bytes of each AT, in hash order,
with the AT's validity start rounded down to ``epoch`` so that issuing times blur together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetid.authority.v2x.common import (
    Authority,
    AuthorityKeys,
    ReplayGuard,
    issue_end_entity,
    open_request,
    refuse_malformed,
    seal_response,
    sign_as,
)
from fleetid.authority.v2x.root_ca import validity_period
from fleetid.clock import Clock
from fleetid.crypto.ecies import new_aes_key
from fleetid.crypto.v2xkeys import curve_name_of
from fleetid.errors import (
    EncodingError,
    FleetIdError,
    ProfileError,
    RequestRefusedError,
    VerificationError,
)
from fleetid.formats.etsi102941 import (
    decode_etsi102941_data,
    decrypt_with_key,
    encrypt,
    key_tag,
    open_pki_data,
    request_hash,
)
from fleetid.formats.ieee1609 import (
    Certificate,
    datetime_from_time32,
    decode,
    time32,
)
from fleetid.formats.ieee1609.keys import (
    public_key_from_encryption_key,
    public_key_from_verification_key,
)
from fleetid.formats.ieee1609.validity import validity_bounds
from fleetid.store.engine import Engine
from fleetid.store.v2x_repository import AuthorizationRecords
from fleetid.trust.v2x import V2xTrustStore

__all__ = ["AuthorizationAuthority", "EaTransport"]

_log = logging.getLogger(__name__)

#: How the AA reaches an EA: (the EA's aaAccessPoint from the CTL, request) -> response.
EaTransport = Callable[[str, bytes], bytes]

_EE_CURVES = ("nistP256", "brainpoolP256r1")
# EA validation codes that have the same name among the AA's response codes.
_PASSED_THROUGH = {
    "unknownits",
    "invalidsignature",
    "invalidencryptionkey",
    "deniedpermissions",
    "deniedtoomanycerts",
    "wrongea",
    "invalidaa",
    "invalidaasignature",
}


class AuthorizationAuthority(Authority):
    """An AA over its own database (``AuthorizationRecords``) and keys held by reference."""

    def __init__(
        self,
        *,
        engine: Engine,
        keys: AuthorityKeys,
        trust: V2xTrustStore,
        clock: Clock,
        ea_transport: EaTransport,
        at_lifetime: timedelta = timedelta(days=7),
        epoch: timedelta = timedelta(hours=1),
        freshness: timedelta = timedelta(minutes=5),
    ) -> None:
        super().__init__(keys=keys, clock=clock)
        self.records = AuthorizationRecords(engine)
        self._trust = trust
        self._ea_transport = ea_transport
        self._at_lifetime = at_lifetime
        self._epoch = epoch
        self._replay = ReplayGuard(self.records.seen_requests, clock, freshness)
        self.counters = self.records.counters

    def handle_authorization(self, message: bytes) -> bytes:
        """An AuthorizationRequestMessage (with or without POP) in, its response out.

        Raises ``EncodingError``/``ProfileError`` for a message that is not encrypted data and
        ``VerificationError`` if it is not addressed to this AA or does not decrypt.
        """
        request = open_request(self._keys, message)
        rh = request.request_hash
        ticket: Certificate | None = None
        try:
            ticket = self._authorize(request.plaintext, rh)
            code = "ok"
            _log.info("issued AT %s", ticket.hashed_id8.hex())
        except RequestRefusedError as refusal:
            code = refusal.code
            _log.info("authorization refused: %s", code)
        self.counters.add(f"authorization.{code}")
        response: dict[str, Any] = {"requestHash": rh, "responseCode": code}
        if ticket is not None:
            response["certificate"] = ticket.value
        return seal_response(
            self._keys, ("authorizationResponse", response), request.aes_key, self._clock.now()
        )

    def _open(self, plaintext: bytes) -> tuple[dict[str, Any], Any]:
        """(InnerAtRequest, POP message or None) from the decrypted plaintext."""
        with refuse_malformed("its-aa-badcontenttype", "its-aa-cantparse"):
            value = decode("Ieee1609Dot2Data", plaintext)
            kind, body = value["content"]
            if kind == "unsecuredData":
                content = decode_etsi102941_data(bytes(body))
                if content[0] != "authorizationRequest":
                    raise ProfileError(f"expected authorizationRequest, got {content[0]}")
                return content[1], None
            pop = open_pki_data(
                plaintext,
                signer_kinds=frozenset({"self"}),
                expected=frozenset({"authorizationRequest"}),
            )
            self._replay.check_fresh(pop.generation_time, "its-aa-outofsyncrequest")
            return pop.content[1], pop

    def _authorize(self, plaintext: bytes, rh: bytes) -> Certificate:
        request, pop = self._open(plaintext)
        self._replay.remember(rh, "its-aa-outofsyncrequest")
        public_keys = request["publicKeys"]
        shared = request["sharedAtRequest"]
        try:
            verification_key = public_key_from_verification_key(public_keys["verificationKey"])
            keys = [verification_key]
            if public_keys.get("encryptionKey") is not None:
                keys.append(public_key_from_encryption_key(public_keys["encryptionKey"])[1])
        except EncodingError as exc:
            raise RequestRefusedError("its-aa-invalidencryptionkey", str(exc)) from None
        if any(curve_name_of(k) not in _EE_CURVES for k in keys):
            raise RequestRefusedError("its-aa-invalidencryptionkey", "AT keys are 256-bit")
        if key_tag(bytes(request["hmacKey"]), public_keys) != bytes(shared["keyTag"]):
            raise RequestRefusedError("its-aa-keysdontmatch", "keyTag does not match the AT keys")
        if pop is not None:
            try:
                pop.verify(verification_key)
            except VerificationError:
                raise RequestRefusedError(
                    "invalidsignature", "the AT proof of possession fails"
                ) from None
        try:
            ea = self._trust.ca(bytes(shared["eaId"]), "ea")
        except VerificationError as exc:
            raise RequestRefusedError("its-aa-unknownea", str(exc)) from None
        confirmed = self._validate_with_ea(ea.certificate, ea.access_point, shared, request)
        return self._issue(public_keys, confirmed)

    def _validate_with_ea(
        self,
        ea_certificate: Certificate,
        access_point: str,
        shared: dict[str, Any],
        request: dict[str, Any],
    ) -> dict[str, Any]:
        """Send AuthorizationValidationRequest{sharedAtRequest, ecSignature} to the EA."""
        validation = {"sharedAtRequest": shared, "ecSignature": request["ecSignature"]}
        signed = sign_as(
            self._keys, ("authorizationValidationRequest", validation), self._clock.now()
        )
        sealed = encrypt(signed, ea_certificate.encoded, aes_key=new_aes_key())
        try:
            answer = self._ea_transport(access_point, sealed.encoded)
        except (OSError, FleetIdError) as exc:
            raise RequestRefusedError("aa-ea-cantreachea", str(exc)) from None
        try:
            opened = open_pki_data(
                decrypt_with_key(answer, sealed.aes_key),
                signer_kinds=frozenset({"digest"}),
                expected=frozenset({"authorizationValidationResponse"}),
            )
            opened.verify(ea_certificate.verification_key(), ea_certificate.encoded)
        except ProfileError as exc:
            raise RequestRefusedError("ea-aa-badcontenttype", str(exc)) from None
        except (EncodingError, VerificationError) as exc:
            raise RequestRefusedError("ea-aa-cantparse", str(exc)) from None
        response: dict[str, Any] = opened.content[1]
        if bytes(response["requestHash"]) != request_hash(sealed.encoded):
            raise RequestRefusedError("ea-aa-cantparse", "the EA answered another request")
        code = str(response["responseCode"])
        if code != "ok":
            raise RequestRefusedError(
                code if code in _PASSED_THROUGH else "deniedpermissions", f"EA: {code}"
            )
        confirmed: dict[str, Any] | None = response.get("confirmedSubjectAttributes")
        if confirmed is None or not confirmed.get("appPermissions"):
            raise RequestRefusedError(
                "ea-aa-badcontenttype", "ok without confirmedSubjectAttributes"
            )
        return confirmed

    def _issue(self, public_keys: dict[str, Any], confirmed: dict[str, Any]) -> Certificate:
        now = self._clock.now()
        # Round the start down to the epoch so that the AT does not carry its issuing time.
        seconds = int(self._epoch.total_seconds())
        start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=UTC)
        aa_start, aa_end = validity_bounds(self.certificate)
        if time32(start) < aa_start:
            # An AA younger than one epoch: the AT may not start before its issuer (TS 103 097
            # §7.2.1); every AT of this first epoch gets the AA's own start.
            start = datetime_from_time32(aa_start)
        if time32(start + self._at_lifetime) >= aa_end:
            raise RequestRefusedError(
                "deniedpermissions", "the AA certificate expires before the AT would"
            )
        ticket = issue_end_entity(
            self._keys,
            validity_period=validity_period(start, self._at_lifetime),
            app_permissions=confirmed["appPermissions"],
            verification_key=public_keys["verificationKey"],
            encryption_key=public_keys.get("encryptionKey"),
        )
        self.records.add_ticket(at_id=ticket.hashed_id8, certificate=ticket.encoded)
        return ticket
