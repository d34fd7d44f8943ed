"""The Enrolment Authority (ETSI TS 102 941 §6.2.3.2 and §6.2.3.4).

It knows which vehicle is which: the provisioning line registers each vehicle's canonical key
under its canonical id, and the EA issues Enrolment Credentials (ECs) to requests signed by that
key (initial enrolment) or by the vehicle's current EC (re-enrolment).

For authorization it answers the AA's AuthorizationValidationRequest: it opens the EC signature
(encrypted to the EA, so the AA never sees which EC asked), checks that it covers exactly the
SharedAtRequest, that the EC is known, current and not revoked, and confirms the permissions. It
never sees the AT keys (only their keyTag), and stores nothing per validation.

A request it cannot decrypt raises (there is no key to answer under); anything else is answered
with a signed response, encrypted with the request's AES key, whose responseCode says why.
"""

from __future__ import annotations

import itertools
import logging
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.v2x.common import (
    Authority,
    AuthorityKeys,
    ReplayGuard,
    issue_end_entity,
    open_request,
    refuse_malformed,
    seal_response,
)
from fleetid.authority.v2x.root_ca import validity_period
from fleetid.clock import Clock
from fleetid.crypto.pkix import issued_by
from fleetid.crypto.v2xkeys import PublicKey, compressed_point, curve_name_of, public_key_from_point
from fleetid.errors import (
    EncodingError,
    RequestRefusedError,
    VerificationError,
)
from fleetid.formats.attestation import (
    KEY_PROPERTIES_OID,
    KeyOrigin,
    KeyProperties,
    KeyUsage,
    decode_key_properties,
)
from fleetid.formats.etsi102941 import (
    PSID_CERTIFICATE_REQUEST,
    decode_enrolment_request,
    decrypt_for_certificate,
    open_pki_data,
    shared_at_request_hash,
)
from fleetid.formats.ieee1609 import (
    Certificate,
    decode_certificate,
    encode,
    open_signed_data,
    time32,
    verify_signed_data,
)
from fleetid.formats.ieee1609.keys import encryption_key_value, verification_key_value
from fleetid.formats.ieee1609.profile import check_signed_external_payload
from fleetid.formats.ieee1609.validity import check_validity, validity_bounds
from fleetid.policy.v2x import EC_SSP, PSID_CAM, PSID_DENM
from fleetid.store.engine import Engine
from fleetid.store.v2x_repository import EnrolmentRecords
from fleetid.trust.v2x import V2xTrustStore

__all__ = ["EnrolmentAuthority", "attested_key_properties"]

_log = logging.getLogger(__name__)


def attested_key_properties(attestation: x509.Certificate) -> KeyProperties:
    """The key properties a secure element's attestation certificate carries (fleetid's
    extension); ``VerificationError`` when it carries none that decode."""
    try:
        extension = attestation.extensions.get_extension_for_oid(
            x509.ObjectIdentifier(KEY_PROPERTIES_OID)
        )
        if not isinstance(extension.value, x509.UnrecognizedExtension):
            raise EncodingError("the key properties extension is not raw DER")
        return decode_key_properties(extension.value.value)
    except (x509.ExtensionNotFound, EncodingError) as exc:
        raise VerificationError("the attestation carries no key properties") from exc


class EnrolmentAuthority(Authority):
    """An EA over its own database (``EnrolmentRecords``) and keys held by reference."""

    def __init__(
        self,
        *,
        engine: Engine,
        keys: AuthorityKeys,
        trust: V2xTrustStore,
        clock: Clock,
        ec_lifetime: timedelta = timedelta(days=3 * 365),
        freshness: timedelta = timedelta(minutes=5),
        at_psids: frozenset[int] = frozenset({PSID_CAM, PSID_DENM}),
    ) -> None:
        super().__init__(keys=keys, clock=clock)
        self.records = EnrolmentRecords(engine)
        self._trust = trust
        self._ec_lifetime = ec_lifetime
        self._at_psids = at_psids
        self._replay = ReplayGuard(self.records.seen_requests, clock, freshness)
        self.counters = self.records.counters

    # ------------------------------------------------------------------ registry

    def register_canonical_key(self, its_id: bytes, public_key: PublicKey) -> None:
        """Record a vehicle's canonical key (the provisioning line calls this at manufacture)."""
        self.records.add_canonical_key(
            its_id, curve=curve_name_of(public_key), public_key=compressed_point(public_key)
        )

    def register_attested_canonical_key(
        self,
        its_id: bytes,
        attestation: x509.Certificate,
        chain: list[x509.Certificate],
        *,
        trusted_roots: list[x509.Certificate],
        challenge: bytes,
    ) -> PublicKey:
        """Register a canonical key only if its secure element attests it.

        ``attestation`` is the SE's certificate over the key (fleetid key-properties extension),
        ``chain`` the SE's attestation chain up to a manufacturer root in ``trusted_roots``. The
        key must have been generated on the card, be non-exportable, usable for signing, and the
        attestation must answer ``challenge``. Raises ``VerificationError`` otherwise.
        """
        path = [attestation, *chain]
        now = self._clock.now()
        top = path[-1]
        anchor = next((r for r in trusted_roots if r.subject == top.issuer), None)
        links: list[tuple[x509.Certificate, x509.Certificate | None]] = list(
            itertools.pairwise(path)
        )
        if not any(top == root for root in trusted_roots):
            links.append((top, anchor))
        if not all(parent is not None and issued_by(child, parent) for child, parent in links):
            raise VerificationError("the attestation does not chain to a trusted root")
        for certificate in path:
            if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
                raise VerificationError("a certificate of the attestation chain is not valid now")
        properties = attested_key_properties(attestation)
        if properties.challenge != challenge:
            raise VerificationError("the attestation answers another challenge")
        if properties.origin != KeyOrigin.GENERATED_ON_CARD or properties.exportable:
            raise VerificationError("the canonical key was not generated in the SE")
        if not properties.usage & KeyUsage.SIGN:
            raise VerificationError("the attested key cannot sign")
        key = attestation.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise VerificationError("the attested key is not an EC key")
        self.register_canonical_key(its_id, key)
        return key

    def is_registered(self, its_id: bytes) -> bool:
        """Whether a canonical key (active or not) is on record for ``its_id``."""
        return self.records.canonical_key(its_id) is not None

    def revoke_vehicle(self, its_id: bytes) -> int:
        """Revoke every EC of a vehicle and its canonical key; returns the ECs revoked."""
        return self.records.revoke_vehicle(its_id)

    def revoke_ec(self, ec_id: bytes) -> None:
        """Revoke one EC: every later authorization validation under it fails. ``NotFoundError``
        if this EA never issued it."""
        self.records.revoke_credential(ec_id)

    def _canonical_key(self, its_id: bytes) -> PublicKey:
        row = self.records.canonical_key(its_id)
        if row is None or not row.active:
            raise RequestRefusedError("unknownits", "no active canonical key for this itsId")
        return public_key_from_point(row.curve, row.public_key)

    def current_enrolment_credential(self, ec_id: bytes) -> tuple[Certificate, bytes]:
        """(EC, itsId) of a current EC: for the registration authority of butterfly batches.
        ``Refused`` if it is unknown, revoked or expired."""
        return self._current_ec(ec_id, "unknownits")

    def _current_ec(self, ec_id: bytes, code: str) -> tuple[Certificate, bytes]:
        row = self.records.credential(ec_id)
        if row is None:
            raise RequestRefusedError(code, "unknown EC")
        if row.revoked:
            raise RequestRefusedError("deniedrequest", "the EC is revoked")
        certificate = decode_certificate(row.certificate)
        try:
            check_validity(certificate, self._clock.now())
        except VerificationError:
            raise RequestRefusedError("deniedrequest", "the EC has expired") from None
        return certificate, row.its_id

    # ------------------------------------------------------------------ enrolment

    def handle_enrolment(self, message: bytes) -> bytes:
        """An EnrolmentRequestMessage in, an EnrolmentResponseMessage out.

        Raises ``EncodingError``/``ProfileError`` for a message that is not encrypted data and
        ``VerificationError`` if it is not addressed to this EA or does not decrypt.
        """
        request = open_request(self._keys, message)
        certificate: Certificate | None = None
        try:
            certificate = self._enrol(request.plaintext, request.request_hash)
            code = "ok"
            _log.info("enrolled: EC %s", certificate.hashed_id8.hex())
        except RequestRefusedError as refusal:
            code = refusal.code
            _log.info("enrolment refused: %s", code)
        self.counters.add(f"enrolment.{code}")
        response: dict[str, Any] = {"requestHash": request.request_hash, "responseCode": code}
        if certificate is not None:
            response["certificate"] = certificate.value
        return seal_response(
            self._keys, ("enrolmentResponse", response), request.aes_key, self._clock.now()
        )

    def _enrol(self, plaintext: bytes, rh: bytes) -> Certificate:
        with refuse_malformed("badcontenttype", "cantparse"):
            outer = open_pki_data(
                plaintext,
                signer_kinds=frozenset({"self", "digest"}),
                expected=frozenset({"enrolmentRequest"}),
            )
        self._replay.check_fresh(outer.generation_time, "deniedrequest")
        self._replay.remember(rh, "deniedrequest")
        with refuse_malformed("badcontenttype", "cantparse"):
            try:
                inner = decode_enrolment_request(encode("Ieee1609Dot2Data", outer.content[1]))
            except VerificationError:
                raise RequestRefusedError(
                    "invalidsignature", "the proof of possession does not verify"
                ) from None
        digest = outer.signer_digest
        if digest is None:
            # Initial enrolment: the outer signature is by the canonical key of itsId.
            key = self._canonical_key(inner.its_id)
            its_id = inner.its_id
            signer_certificate = b""
        else:
            # Re-enrolment: signed by the current EC, whose HashedId8 is the itsId.
            if inner.its_id != digest:
                raise RequestRefusedError("unknownits", "a re-enrolment's itsId is its current EC")
            current, its_id = self._current_ec(digest, "unknownits")
            key = current.verification_key()
            signer_certificate = current.encoded
        try:
            outer.verify(key, signer_certificate)
        except VerificationError:
            raise RequestRefusedError(
                "invalidsignature", "the outer signature does not verify"
            ) from None
        for curve_key in (inner.verification_key, inner.encryption_key):
            if curve_key is not None and curve_name_of(curve_key) not in (
                "nistP256",
                "brainpoolP256r1",
            ):
                raise RequestRefusedError("invalidkeys", "EC keys are 256-bit")
        requested = inner.requested_subject_attributes
        psids = {int(p["psid"]) for p in requested.get("appPermissions", [])}
        if psids != {PSID_CERTIFICATE_REQUEST}:
            raise RequestRefusedError("deniedpermissions", "an EC grants psid 623 only")
        return self._issue_ec(its_id, inner.verification_key, inner.encryption_key)

    def _issue_ec(
        self, its_id: bytes, verification_key: PublicKey, encryption_key: PublicKey | None
    ) -> Certificate:
        now = self._clock.now()
        _, ea_end = validity_bounds(self.certificate)
        lifetime = min(self._ec_lifetime, timedelta(seconds=ea_end - time32(now) - 1))
        ec = issue_end_entity(
            self._keys,
            validity_period=validity_period(now, lifetime),
            app_permissions=[{"psid": PSID_CERTIFICATE_REQUEST, "ssp": ("bitmapSsp", EC_SSP)}],
            verification_key=verification_key_value(verification_key),
            encryption_key=None if encryption_key is None else encryption_key_value(encryption_key),
        )
        _, end = validity_bounds(ec)
        self.records.add_credential(
            ec_id=ec.hashed_id8, its_id=its_id, certificate=ec.encoded, not_after=end
        )
        return ec

    # ------------------------------------------------------------------ validation

    def handle_authorization_validation(self, message: bytes) -> bytes:
        """An AuthorizationValidationRequestMessage from an AA in, its response out."""
        request = open_request(self._keys, message)
        confirmed: dict[str, Any] | None = None
        try:
            confirmed = self._validate(request.plaintext, request.request_hash)
            code = "ok"
            _log.info("authorization validation: ok")
        except RequestRefusedError as refusal:
            code = refusal.code
            # No identifier of the EC or the AT in the log: only the outcome.
            _log.info("authorization validation refused: %s", code)
        self.counters.add(f"validation.{code}")
        response: dict[str, Any] = {"requestHash": request.request_hash, "responseCode": code}
        if confirmed is not None:
            response["confirmedSubjectAttributes"] = confirmed
        return seal_response(
            self._keys,
            ("authorizationValidationResponse", response),
            request.aes_key,
            self._clock.now(),
        )

    def _validate(self, plaintext: bytes, rh: bytes) -> dict[str, Any]:
        with refuse_malformed("badcontenttype", "cantparse"):
            outer = open_pki_data(
                plaintext,
                signer_kinds=frozenset({"digest"}),
                expected=frozenset({"authorizationValidationRequest"}),
            )
        try:
            aa = self._trust.ca(outer.signer_digest or b"", "aa")
        except VerificationError as exc:
            raise RequestRefusedError("invalidaa", str(exc)) from None
        try:
            outer.verify(aa.certificate.verification_key(), aa.certificate.encoded)
        except VerificationError:
            raise RequestRefusedError(
                "invalidaasignature", "the AA signature does not verify"
            ) from None
        self._replay.check_fresh(outer.generation_time, "deniedrequest")
        self._replay.remember(rh, "deniedrequest")
        request: dict[str, Any] = outer.content[1]
        shared = request["sharedAtRequest"]
        if bytes(shared["eaId"]) != self.certificate.hashed_id8:
            raise RequestRefusedError("wrongea", "the SharedAtRequest names another EA")
        kind, ec_signature = request["ecSignature"]
        if kind != "encryptedEcSignature":
            raise RequestRefusedError(
                "badcontenttype", "an ITS-S ecSignature is encrypted to the EA"
            )
        try:
            signed, _ = decrypt_for_certificate(
                encode("Ieee1609Dot2Data", ec_signature),
                self._keys.decryption_key,
                self.certificate.encoded,
                unicast=True,
            )
        except VerificationError:
            raise RequestRefusedError(
                "decryptionfailed", "the ecSignature is not encrypted to this EA"
            ) from None
        except EncodingError as exc:
            raise RequestRefusedError("badcontenttype", str(exc)) from None
        try:
            message = open_signed_data(signed)
            check_signed_external_payload(
                message.value,
                psid=PSID_CERTIFICATE_REQUEST,
                signer_kinds=frozenset({"digest"}),
            )
        except EncodingError as exc:
            raise RequestRefusedError("badcontenttype", str(exc)) from None
        _, ec_id = message.signer
        ec, _ = self._current_ec(bytes(ec_id), "unknownits")
        self._replay.check_fresh(int(message.header_info["generationTime"]), "deniedrequest")
        covered = message.payload["extDataHash"][1]
        if bytes(covered) != shared_at_request_hash(shared):
            raise RequestRefusedError(
                "invalidsignature", "the EC signature does not cover the SharedAtRequest"
            )
        try:
            verify_signed_data(message, ec.verification_key(), ec.encoded)
        except VerificationError:
            raise RequestRefusedError(
                "invalidsignature", "the EC signature does not verify"
            ) from None
        requested = shared["requestedSubjectAttributes"]
        if "certIssuePermissions" in requested or "id" in requested:
            raise RequestRefusedError(
                "deniedpermissions", "an AT has no id and no issue permissions"
            )
        permissions = requested.get("appPermissions", [])
        psids = {int(p["psid"]) for p in permissions}
        if not psids or not psids <= self._at_psids:
            raise RequestRefusedError("deniedpermissions", f"psids {sorted(psids)} are not granted")
        return {"appPermissions": permissions}
