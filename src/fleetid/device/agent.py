"""The device agent: a state machine over the credential lifecycle, its keys in the SE or a TPM.

States::

    factory ──enrol──▶ enrolled ──refresh──▶ enrolled ──rekey──▶ rekeyed ──refresh/rekey──▶ …
                          │                                          │
                          └────────── revoked | transferred ◀────────┘

The agent decides *what* to do and builds every request from its root of trust's operations
(``fleetid.device.key_root``: on an SE GENERATE KEY, ATTEST, SIGN by handle; on a TPM 2.0
TPM2_Create, TPM2_Certify by the AK, TPM2_Sign); a transport (``fleetid.device.transport``)
carries them. It keeps only
public material: certificates, the trust store and key handles. Time comes from a ``Clock`` and
the renewal cadence from policy, so a simulated year of refreshes runs in seconds.

``tick`` is the whole policy: nothing before the renewal window; inside it a refresh (same key,
proven by the current credential); past expiry a re-enrolment with the IDevID (attestation),
which is the recovery path when a device was offline for longer than its credential lived.
When the authority says when to renew (RFC 9773 renewal information, a transport that is a
``RenewalInfoSource``), the agent waits for the start of that window instead of the opening of
the cadence's, so that a fleet enrolled together does not renew together; it asks once per
credential, and falls back to the cadence when the authority cannot answer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from fleetid.clock import Clock, SystemClock
from fleetid.device.key_root import KeyRoot, SecureElementRoot
from fleetid.device.transport import AuthorityTransport, RenewalInfoSource
from fleetid.device.truststore import TrustStore
from fleetid.device.unattended import UnattendedDownloader
from fleetid.errors import (
    AuthenticationError,
    ConfigError,
    FleetIdError,
    PolicyError,
    VerificationError,
)
from fleetid.formats.csr_attestation import build_attested_csr, build_csr
from fleetid.formats.proof import REENROLL_PATH, RELEASE_PATH, CredentialProof, sign_proof
from fleetid.formats.renewal_info import RenewalWindow
from fleetid.policy import DEFAULT_POLICY, Cadence, CredentialType
from fleetid.se.client import SecureElementClient, Transport
from fleetid.se.wire import Curve

__all__ = ["AgentState", "Credential", "DeviceAgent", "Event", "UnattendedDownloader"]

_DER = serialization.Encoding.DER


class AgentState(enum.StrEnum):
    """Where a device is in its lifecycle, as its agent records it."""

    FACTORY = "factory"
    ENROLLED = "enrolled"
    REKEYED = "rekeyed"
    REVOKED = "revoked"
    TRANSFERRED = "transferred"


_LIVE = frozenset({AgentState.ENROLLED, AgentState.REKEYED})


@dataclass(frozen=True, kw_only=True)
class Credential:
    """The current operational credential: public certificate and the handle of its key."""

    certificate: x509.Certificate
    handle: int
    intermediates: tuple[x509.Certificate, ...]

    @property
    def serial(self) -> str:
        return f"{self.certificate.serial_number:040x}"

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


@dataclass(frozen=True, kw_only=True)
class Event:
    at: datetime
    action: str  # enrol | refresh | rekey | recover | release | revoked
    serial: str | None = None


@dataclass
class DeviceAgent:
    """One device's lifecycle (see the module docstring). ``se`` is the root of trust: a
    secure element's client, or any ``KeyRoot`` (a ``fleetid.tpm.TpmDevice``)."""

    se: SecureElementClient | KeyRoot
    clock: Clock
    cadence: Cadence
    trust: TrustStore
    curve: Curve = Curve.P256
    state: AgentState = AgentState.FACTORY
    credential: Credential | None = None
    history: list[Event] = field(default_factory=list)
    # The authority's renewal window for the current credential (None: not asked yet).
    window: RenewalWindow | None = None
    root: KeyRoot = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = (
            SecureElementRoot(self.se, self.curve)
            if isinstance(self.se, SecureElementClient)
            else self.se
        )

    @classmethod
    def for_card(
        cls,
        card: Transport,
        *,
        anchors: Sequence[x509.Certificate],
        clock: Clock | None = None,
        cadence: Cadence | None = None,
        curve: Curve = Curve.P256,
    ) -> DeviceAgent:
        """An agent for the secure element behind ``card`` (anything with ``transmit``: the
        emulated chip, a PC/SC reader), trusting the fleet roots ``anchors``; operational
        credentials renew on the default policy's cadence unless ``cadence`` says otherwise."""
        return cls(
            se=SecureElementClient(card),
            clock=clock or SystemClock(),
            cadence=cadence or DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence,
            trust=TrustStore(anchors),
            curve=curve,
        )

    @classmethod
    def for_tpm(
        cls,
        tpm: KeyRoot,
        *,
        anchors: Sequence[x509.Certificate],
        clock: Clock | None = None,
        cadence: Cadence | None = None,
    ) -> DeviceAgent:
        """An agent for a TPM-rooted device (``fleetid.tpm.TpmDevice``, provisioned by the
        line), trusting the fleet roots ``anchors``."""
        return cls(
            se=tpm,
            clock=clock or SystemClock(),
            cadence=cadence or DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence,
            trust=TrustStore(anchors),
        )

    def unattended(
        self,
        *,
        journal_path: Path | None = None,
        confirmation_codes: Mapping[str, str] | None = None,
    ) -> UnattendedDownloader:
        """Unattended package download for this device (``fleetid.device.unattended``):
        discover, authenticate, download, install, notify, resumable from ``journal_path``.
        Packages install inside a secure element (LOAD BOUND PACKAGE): a TPM-rooted device has
        no such instruction and gets a ``ConfigError``."""
        if not isinstance(self.se, SecureElementClient):
            raise ConfigError("unattended package download needs a secure element, not a TPM")
        return UnattendedDownloader(
            se=self.se,
            trust=self.trust,
            clock=self.clock,
            journal_path=journal_path,
            curve=self.curve,
            confirmation_codes=dict(confirmation_codes or {}),
            on_trust=self._adopt_trust,
        )

    def _adopt_trust(self, trust: TrustStore) -> None:
        self.trust = trust

    # -- identity ------------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        """The IDevID's (or AK certificate's) serialNumber: the name authorities know this
        device by."""
        idevid = self.root.identity()
        (name,) = idevid.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        return str(name.value)

    def _record(self, action: str) -> None:
        serial = self.credential.serial if self.credential else None
        self.history.append(Event(at=self.clock.now(), action=action, serial=serial))

    # -- requests, built from the root of trust's operations -----------------------------------

    def _attested_request(self, nonce: bytes) -> tuple[int, bytes]:
        """A new key, its attestation bound to ``nonce``, and the CSR carrying both."""
        handle = self.root.new_key()
        bundle = self.root.evidence(handle, nonce)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.device_id)])
        csr = build_attested_csr(subject=subject, signer=self.root.signer(handle), bundle=bundle)
        return handle, csr.public_bytes(_DER)

    def _refresh_request(self) -> bytes:
        assert self.credential is not None  # noqa: S101 - callers checked the state
        signer = self.root.signer(self.credential.handle)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.device_id)])
        return build_csr(subject=subject, signer=signer).public_bytes(_DER)

    def _proof(self, nonce: bytes, path: str, body: bytes) -> CredentialProof:
        assert self.credential is not None  # noqa: S101
        return sign_proof(
            self.root.signer(self.credential.handle),
            serial=self.credential.serial,
            nonce=nonce,
            path=path,
            body=body,
        )

    def _accept(
        self, transport: AuthorityTransport, certificate: x509.Certificate, handle: int
    ) -> None:
        """Check the new credential against the anchors held, then make it current."""
        bag = transport.cacerts()
        self.trust.accept_update(bag, self.clock.now())
        intermediates = tuple(c for c in bag if not self.trust.holds(c))
        self.trust.verify(certificate, intermediates, self.clock.now())
        key = self.root.public_key(handle)
        if key.public_numbers() != certificate.public_key().public_numbers():  # type: ignore[union-attr]
            raise VerificationError("the issued certificate is not for the key the device holds")
        old = self.credential
        self.credential = Credential(
            certificate=certificate, handle=handle, intermediates=intermediates
        )
        self.window = None  # a new credential has a window of its own
        if old is not None and old.handle != handle:
            self.root.delete_key(old.handle)  # the superseded key is of no further use

    # -- operations ----------------------------------------------------------------------------

    def enrol(self, transport: AuthorityTransport) -> Credential:
        """Enrol (or recover) with the IDevID: attestation-gated ``simpleenroll``."""
        if self.state in (AgentState.REVOKED,):
            raise PolicyError("a revoked device does not enrol again")
        action = "enrol" if self.credential is None else "recover"
        nonce = transport.challenge(self.device_id)
        handle, csr = self._attested_request(nonce)
        try:
            certificate = transport.simple_enroll(csr)
        except Exception:
            self.root.delete_key(handle)
            raise
        self._accept(transport, certificate, handle)
        self.state = AgentState.ENROLLED
        self._record(action)
        assert self.credential is not None  # noqa: S101
        return self.credential

    def refresh(self, transport: AuthorityTransport) -> Credential:
        """A new certificate for the same key, proven by the current credential."""
        self._require_live()
        assert self.credential is not None  # noqa: S101
        nonce = transport.challenge(self.device_id)
        csr = self._refresh_request()
        proof = self._proof(nonce, REENROLL_PATH, csr)
        certificate = self._reenroll(transport, csr, proof)
        self._accept(transport, certificate, self.credential.handle)
        self._record("refresh")
        return self.credential

    def rekey(self, transport: AuthorityTransport) -> Credential:
        """A new key and its attestation, requested under the current credential."""
        self._require_live()
        nonce = transport.challenge(self.device_id)
        handle, csr = self._attested_request(nonce)
        proof = self._proof(nonce, REENROLL_PATH, csr)
        try:
            certificate = self._reenroll(transport, csr, proof)
        except Exception:
            self.root.delete_key(handle)
            raise
        self._accept(transport, certificate, handle)
        self.state = AgentState.REKEYED
        self._record("rekey")
        assert self.credential is not None  # noqa: S101
        return self.credential

    def _reenroll(
        self, transport: AuthorityTransport, csr: bytes, proof: CredentialProof
    ) -> x509.Certificate:
        try:
            return transport.simple_reenroll(csr, proof)
        except AuthenticationError as exc:
            if "revoked" in str(exc) and "superseded" not in str(exc):
                self.state = AgentState.REVOKED
                self._record("revoked")
            raise

    def tick(self, transport: AuthorityTransport) -> str | None:
        """Apply the cadence now: refresh in the window, recover past expiry; the action taken."""
        if self.state not in _LIVE or self.credential is None:
            return None
        now = self.clock.now()
        if now >= self.credential.not_after:
            self.enrol(transport)
            return "recover"
        if self._renewal_due(transport, self.credential, now):
            self.refresh(transport)
            return "refresh"
        return None

    def _renewal_due(
        self, transport: AuthorityTransport, credential: Credential, now: datetime
    ) -> bool:
        """The authority's window has started, or without one the cadence's has opened."""
        if self.window is None and isinstance(transport, RenewalInfoSource):
            try:
                self.window = transport.renewal_info(credential.certificate)
            except FleetIdError:
                self.window = None  # the cadence decides
        if self.window is not None:
            return now >= self.window.start
        return self.cadence.renewal_due(credential.not_after, now)

    def transfer(
        self, old: AuthorityTransport, new: AuthorityTransport, new_root: x509.Certificate
    ) -> Credential:
        """Leave ``old`` (credentials end there as cessationOfOperation), enrol at ``new``.

        ``new_root`` is the new authority's root as the operator hands it over (pinned by
        fingerprint); it becomes an anchor beside the old ones.
        """
        self._require_live()
        body = f"transfer {self.device_id}".encode()
        nonce = old.challenge(self.device_id)
        old.release(body, self._proof(nonce, RELEASE_PATH, body))
        self._record("release")
        self.state = AgentState.TRANSFERRED
        self.trust = TrustStore([*self.trust.anchors, new_root])
        self.enrol(new)
        return self.credential  # type: ignore[return-value]

    def _require_live(self) -> None:
        if self.state not in _LIVE or self.credential is None:
            raise PolicyError(f"the device is {self.state}; it holds no live credential")
