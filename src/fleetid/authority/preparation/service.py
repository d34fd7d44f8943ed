"""The credential preparation service: SM-DP+ in shape (GSMA SGP.22 §3.1.3 and ES9+).

An operator (or an upstream authority) orders a package for one device, named only by the
SHA-256 of its SE attestation key (the binding key) and the order's reference; the service
registers an event with the discovery service under the device's discovery reference and keeps
nothing else about the device. The device then runs the ES9+ sequence:

1. ``initiate_authentication``: the service answers a transaction ID, its fresh challenge and its
   signature over both challenges and its address (serverSigned1), with its certificate chain;
2. ``authenticate_client``: the device proves its SE identity with a key attestation bound to
   the service's challenge; the service checks it against the manufacturer roots and the
   package's binding key and signs the event ID and whether a confirmation code is needed
   (smdpSigned2);
3. ``get_bound_package``: the device sends the attestation of a one-time key-agreement key
   generated in its SE (and hashCc when asked); the service seals the package to that key
   (``fleetid.crypto.package_seal``), signs it and records the package as downloaded. Asking
   again in the same transaction for the same key answers the same bytes (resumption); any
   other download of it is refused;
4. ``handle_notification``: the device's word, signed in its SE, moves the package to installed
   or failed, once; the event leaves the discovery service.

States: released → downloaded → installed | failed → deleted (``PackageState``).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, NoReturn, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.attestation.base import AttestedDevice, VerificationPolicy
from fleetid.authority.attestation.key_proof import KeyProofVerifier, spki
from fleetid.clock import Clock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.package_seal import private_scalar, seal_package
from fleetid.crypto.signer import Signer, verify_signature
from fleetid.crypto.symmetric import bytes_equal
from fleetid.errors import (
    AuthenticationError,
    ConfigError,
    EncodingError,
    NotFoundError,
    NotificationReplayedError,
    PackageExpiredError,
    PackageRefusedError,
)
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.package_messages import (
    CHALLENGE_LENGTH,
    BoundPackage,
    Notification,
    attestation_challenge,
    server_signed1,
    smdp_signed2,
)
from fleetid.se.wire import Curve, PackageSecret, encode_package_plaintext
from fleetid.store.package_repository import (
    EventRegistration,
    PackageRecord,
    PackageRepository,
    TransactionRecord,
)

__all__ = [
    "AuthenticateClientAnswer",
    "CredentialIssuer",
    "EventRegistrar",
    "InitiateAuthenticationAnswer",
    "Order",
    "PackageKind",
    "PackageState",
    "PreparationService",
]

_PEM = serialization.Encoding.PEM
CODE_REFUSED: Final = "confirmation-code-refused"
CODE_LOCKED: Final = "confirmation-code-attempts-exceeded"


class PackageState(enum.StrEnum):
    RELEASED = "released"
    DOWNLOADED = "downloaded"
    INSTALLED = "installed"
    FAILED = "failed"
    DELETED = "deleted"


class PackageKind(enum.StrEnum):
    """What a package carries: an operational key and its certificate chain (the key made at
    download time, sealed, then forgotten), a configuration bundle, or a new fleet authority's
    trust anchors."""

    CREDENTIAL = "credential"
    CONFIGURATION = "configuration"
    TRUST_ANCHORS = "trust-anchors"


class EventRegistrar(Protocol):
    """ES12 as the preparation service sees the discovery service."""

    def register_events(self, events: Sequence[EventRegistration]) -> None: ...

    def delete_event(self, event_id: str) -> None: ...


#: Certifies a credential package's key: the certificate first, then its issuers.
CredentialIssuer = Callable[[ec.EllipticCurvePublicKey, str], list[x509.Certificate]]


@dataclass(frozen=True, kw_only=True)
class Order:
    """ES2+ DownloadOrder + ConfirmOrder (released at once): one package for one device."""

    reference: str
    kind: PackageKind
    binding_sha256: bytes  # SHA-256 of the device's SE attestation key (DER SPKI)
    device_ref: str  # the discovery reference (``discovery_reference``), passed on, not kept
    content: bytes = b""
    confirmation_code: str | None = field(default=None, repr=False)
    lifetime: timedelta = timedelta(days=30)


@dataclass(frozen=True, kw_only=True)
class InitiateAuthenticationAnswer:
    transaction_id: bytes
    server_challenge: bytes
    address: str
    signature: bytes
    chain: tuple[x509.Certificate, ...]


@dataclass(frozen=True, kw_only=True)
class AuthenticateClientAnswer:
    transaction_id: bytes
    event_id: str
    cc_required: bool
    signature: bytes


class PreparationService:
    """One preparation service (see the module docstring)."""

    def __init__(
        self,
        *,
        repository: PackageRepository,
        clock: Clock,
        identity: Callable[[], tuple[Signer, tuple[x509.Certificate, ...]]],
        address: str | Callable[[], str],
        attestation_policy: Callable[[], VerificationPolicy],
        discovery: EventRegistrar,
        issuer: CredentialIssuer | None = None,
        session_ttl: timedelta = timedelta(minutes=10),
        code_attempts: int = 5,
    ) -> None:
        if code_attempts < 1:
            raise ConfigError("a confirmation code allows at least one attempt")
        self.repository = repository
        self.clock = clock
        self._address = address
        self._identity = identity
        self._policy = attestation_policy
        self._discovery = discovery
        self._issuer = issuer
        self._ttl = session_ttl
        self._code_attempts = code_attempts
        self._proofs = KeyProofVerifier()

    @property
    def address(self) -> str:
        """Where devices reach this service: given, or read when first needed (the authority's
        public URL, which a deployment may set after the app is built)."""
        return self._address if isinstance(self._address, str) else self._address()

    # --- ES2+: the operator's side ----------------------------------------------------------

    def order(self, order: Order) -> PackageRecord:
        """Record a released package and register its event with the discovery service. An
        order retried (same reference, same device, same kind and content) while its package is
        still released answers that package again: ordering is idempotent."""
        return self.order_batch([order])[0]

    def order_batch(self, orders: Sequence[Order]) -> list[PackageRecord]:
        """``order`` for many orders at once (a cohort): every order is checked before anything
        is written, then the new packages are one commit and their events one ES12
        registration. The records answer the orders in their order."""
        for order in orders:
            self._check_order(order)
        earlier = self.repository.released_for(o.reference for o in orders)
        now = self.clock.now()
        records: list[PackageRecord] = []
        new: list[tuple[Order, PackageRecord]] = []
        for order in orders:
            key = (order.reference, order.binding_sha256)
            pending = earlier.get(key)
            if pending is not None:
                if pending.kind != order.kind or pending.content != order.content:
                    raise PackageRefusedError(
                        "reference-in-use", f"order {order.reference} is pending with other content"
                    )
                records.append(pending)
                continue
            code = order.confirmation_code
            record = PackageRecord(
                event_id=secrets.token_hex(16),
                reference=order.reference,
                kind=str(order.kind),
                content=order.content,
                binding_sha256=order.binding_sha256,
                cc_hash=None if code is None else hashlib.sha256(code.encode()).digest(),
                state=PackageState.RELEASED,
                reason=None,
                created_at=now,
                expires_at=now + order.lifetime,
                updated_at=now,
            )
            earlier[key] = record  # the same order twice in one batch is one package
            records.append(record)
            new.append((order, record))
        self.repository.add_packages(record for _, record in new)
        address = self.address
        self._discovery.register_events(
            [
                EventRegistration(
                    device_ref=order.device_ref, event_id=record.event_id, service_address=address
                )
                for order, record in new
            ]
        )
        return records

    def _check_order(self, order: Order) -> None:
        if len(order.binding_sha256) != 32:
            raise ConfigError("the binding key fingerprint is a SHA-256 (32 bytes)")
        if order.kind == PackageKind.CREDENTIAL and self._issuer is None:
            raise ConfigError("this preparation service issues no credentials")
        if order.kind != PackageKind.CREDENTIAL and not order.content:
            raise ConfigError(f"a {order.kind} package needs content")

    def status(self, event_id: str) -> PackageRecord:
        record = self.repository.package(event_id)
        if record is None:
            raise NotFoundError(f"no package with event ID {event_id}")
        return record

    def delete_package(self, event_id: str) -> None:
        """installed | failed → deleted: the stored content and bound package are erased."""
        now = self.clock.now()
        done = (PackageState.INSTALLED, PackageState.FAILED)
        if not self.repository.transition(
            event_id, done, PackageState.DELETED, now, content=None, bound=None
        ):
            raise PackageRefusedError("not-deletable", f"{event_id} is not installed or failed")
        self._discovery.delete_event(event_id)

    # --- ES9+: the device's side ------------------------------------------------------------

    def initiate_authentication(self, euicc_challenge: bytes) -> InitiateAuthenticationAnswer:
        if len(euicc_challenge) != CHALLENGE_LENGTH:
            raise EncodingError(f"euiccChallenge is {CHALLENGE_LENGTH} bytes")
        transaction_id = secrets.token_bytes(16)
        server_challenge = secrets.token_bytes(CHALLENGE_LENGTH)
        self.repository.add_transaction(
            TransactionRecord(
                transaction_id=transaction_id.hex(),
                server_challenge=server_challenge,
                euicc_challenge=euicc_challenge,
                expires_at=self.clock.now() + self._ttl,
            )
        )
        signed = server_signed1(
            transaction_id=transaction_id,
            euicc_challenge=euicc_challenge,
            address=self.address,
            server_challenge=server_challenge,
        )
        return InitiateAuthenticationAnswer(
            transaction_id=transaction_id,
            server_challenge=server_challenge,
            address=self.address,
            signature=self._sign(signed),
            chain=self._identity()[1],
        )

    def _verify(
        self, session: TransactionRecord, attestation: bytes, chain: list[bytes], usage: KeyUsage
    ) -> AttestedDevice:
        """An SE key attestation bound to this session's challenge (``attestation_challenge``)."""
        return self._proofs.verify(
            attestation=attestation,
            chain=chain,
            policy=self._policy(),
            usage=usage,
            challenge=attestation_challenge(
                bytes.fromhex(session.transaction_id), session.server_challenge
            ),
            now=self.clock.now(),
        )

    def _sign(self, data: bytes) -> bytes:
        return self._identity()[0].sign(data)

    def _transaction(self, transaction_id: bytes) -> TransactionRecord:
        record = self.repository.transaction(transaction_id.hex())
        if record is None:
            raise AuthenticationError("unknown transaction")
        return record

    def authenticate_client(
        self, transaction_id: bytes, event_id: str, attestation: bytes, chain: list[bytes]
    ) -> AuthenticateClientAnswer:
        """The device's SE identity, proven for this session, against the package's binding."""
        session = self._transaction(transaction_id)
        now = self.clock.now()
        if session.event_id is not None or now >= session.expires_at:
            raise AuthenticationError("the transaction is spent or expired")
        attested = self._verify(session, attestation, chain, KeyUsage.SIGN)
        package = self.repository.package(event_id)
        # Another device's event and no event at all are refused alike (SGP.22 "matching ID
        # refused"): a device learns nothing of events that are not its own.
        if package is None or not bytes_equal(package.binding_sha256, attested.idevid_key_sha256):
            raise PackageRefusedError("matching-id-refused", "no such event for this device")
        self._require_downloadable(package)
        self.repository.update_transaction(
            session.transaction_id, event_id=event_id, notification_key=spki(attested)
        )
        cc_required = package.cc_hash is not None
        signed = smdp_signed2(
            transaction_id=transaction_id, event_id=event_id, cc_required=cc_required
        )
        return AuthenticateClientAnswer(
            transaction_id=transaction_id,
            event_id=event_id,
            cc_required=cc_required,
            signature=self._sign(signed),
        )

    def _require_downloadable(self, package: PackageRecord) -> None:
        if package.state == PackageState.FAILED and package.reason == CODE_LOCKED:
            raise PackageRefusedError(
                CODE_LOCKED, f"package {package.event_id} failed after too many wrong codes"
            )
        if package.state != PackageState.RELEASED:
            raise PackageRefusedError(
                f"already-{package.state}", f"package {package.event_id} is {package.state}"
            )
        now = self.clock.now()
        if now >= package.expires_at:
            if self.repository.transition(
                package.event_id,
                (PackageState.RELEASED,),
                PackageState.FAILED,
                now,
                reason="order-expired",
            ):
                self._discovery.delete_event(package.event_id)
            raise PackageExpiredError(f"the order expired at {package.expires_at.isoformat()}")

    def get_bound_package(
        self,
        transaction_id: bytes,
        attestation: bytes,
        chain: list[bytes],
        hash_cc: bytes | None = None,
    ) -> bytes:
        """The package sealed to the attested one-time key, signed; once per package."""
        session = self._transaction(transaction_id)
        if session.event_id is None:
            raise AuthenticationError("the transaction has not authenticated the device")
        package = self.status(session.event_id)
        now = self.clock.now()
        attested = self._verify(session, attestation, chain, KeyUsage.KEY_AGREEMENT)
        if not bytes_equal(package.binding_sha256, attested.idevid_key_sha256):
            raise PackageRefusedError("matching-id-refused", "the one-time key is another SE's")
        otpk = hashlib.sha256(spki(attested)).digest()
        if (
            package.state == PackageState.DOWNLOADED
            and package.transaction_id == session.transaction_id
            and session.otpk_sha256 == otpk
            and package.bound is not None
        ):
            return package.bound  # the same download, asked again: resumption
        self._require_downloadable(package)
        if now >= session.expires_at:
            raise AuthenticationError("the transaction expired")
        if package.cc_hash is not None:
            expected = hashlib.sha256(package.cc_hash + transaction_id).digest()
            if hash_cc is None:
                raise PackageRefusedError(CODE_REFUSED, "the order needs a confirmation code")
            if not bytes_equal(hash_cc, expected):
                self._count_wrong_code(package.event_id, now)
        bound = self._bind(package, transaction_id, attested.public_key)
        if not self.repository.mark_downloaded(
            package.event_id, session.transaction_id, otpk, bound, now
        ):
            raise PackageRefusedError("already-downloaded", "the package was downloaded")
        return bound

    def _count_wrong_code(self, event_id: str, now: datetime) -> NoReturn:
        """A wrong code counts against the order; the ``code_attempts``-th fails it and takes
        its event off the discovery service (SGP.22 §5.6.2 GetBoundProfilePackage, "Confirmation
        Code - Maximum number of retries exceeded"). A missing code counts for nothing: it
        guesses nothing."""
        limit = self._code_attempts
        counted = self.repository.count_wrong_code(event_id, limit, CODE_LOCKED, now)
        if counted is None:  # another request moved the package on meanwhile
            self._require_downloadable(self.status(event_id))
            raise PackageRefusedError(CODE_REFUSED, "wrong confirmation code")
        if counted >= limit:
            self._discovery.delete_event(event_id)
            raise PackageRefusedError(
                CODE_LOCKED, f"wrong confirmation code {counted} of {limit}: the order failed"
            )
        raise PackageRefusedError(
            CODE_REFUSED, f"wrong confirmation code {counted} of {limit}: {limit - counted} left"
        )

    def _bind(
        self, package: PackageRecord, transaction_id: bytes, otpk: ec.EllipticCurvePublicKey
    ) -> bytes:
        secret: PackageSecret | None = None
        public = package.content or b""
        if package.kind == PackageKind.CREDENTIAL:
            assert self._issuer is not None  # noqa: S101 - refused at order time otherwise
            key = new_private_key(otpk.curve)
            chain = self._issuer(key.public_key(), package.reference)
            public = b"".join(c.public_bytes(_PEM) for c in chain)
            secret = PackageSecret(
                curve=_CURVES[type(otpk.curve)],
                policy=int(KeyUsage.SIGN),
                scalar=private_scalar(key),
            )
            del key
        sealed = seal_package(otpk, encode_package_plaintext(secret, public), transaction_id)
        unsigned = BoundPackage(
            transaction_id=transaction_id,
            event_id=package.event_id,
            kind=package.kind,
            point=sealed.ephemeral_point,
            nonce=sealed.nonce,
            ciphertext=sealed.ciphertext,
        )
        return dataclasses.replace(unsigned, signature=self._sign(unsigned.tbs())).encode()

    def handle_notification(self, data: bytes) -> PackageState:
        """The device's signed result: downloaded → installed | failed, once."""
        notification = Notification.decode(data)
        session = self._transaction(notification.transaction_id)
        if session.event_id != notification.event_id or session.notification_key is None:
            raise AuthenticationError("the notification names another transaction's event")
        key = serialization.load_der_public_key(session.notification_key)
        assert isinstance(key, ec.EllipticCurvePublicKey)  # noqa: S101 - attested EC keys only
        verify_signature(key, notification.signature, notification.tbs())
        event_id = notification.event_id
        target = PackageState.INSTALLED if notification.success else PackageState.FAILED
        outcome = self.repository.settle(
            session.transaction_id,
            notification.sequence,
            event_id,
            state=target,
            reason=None if notification.success else "device-reported-failure",
            now=self.clock.now(),
        )
        if outcome == "replayed":
            raise NotificationReplayedError(
                f"notification {notification.sequence} of this transaction was handled"
            )
        if outcome == "refused":
            raise PackageRefusedError(
                "notification-refused", "the package is not downloaded in this transaction"
            )
        self._discovery.delete_event(event_id)
        return target


_CURVES: dict[type[ec.EllipticCurve], Curve] = {
    ec.SECP256R1: Curve.P256,
    ec.SECP384R1: Curve.P384,
    ec.BrainpoolP256R1: Curve.BRAINPOOL_P256,
    ec.BrainpoolP384R1: Curve.BRAINPOOL_P384,
}
