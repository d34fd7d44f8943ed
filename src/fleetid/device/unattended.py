"""Unattended, device-driven package download: SGP.32 in shape.

``UnattendedDownloader.run_once`` is one wake-up of a device with no user interface: discover
(ES11: which services hold an event for me), then for each event authenticate, download,
install and notify (ES9+), with no human step. Each step is written to a journal (public values
only: IDs, handles, the sealed package, never a secret) before the next begins, so that a device
that loses power or its connection at any step resumes where it stopped on its next wake-up:

* prepared (one-time key generated in the SE, not yet downloaded): download again in the same
  transaction; the service answers the same bound package;
* downloaded: install from the journal, with no network;
* installed: send the notification again; a service that had it already refuses the copy, which
  counts as delivered.

The service proves itself (its certificate chains to an anchor the device holds; its signatures
over both challenges and over the package verify); the device proves its SE identity by SE key
attestations bound to the service's challenge; installation happens in the SE (LOAD BOUND
PACKAGE), so the host never sees the key a package carries. Notifications are signed in the SE.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.clock import Clock
from fleetid.crypto.signer import verify_signature
from fleetid.device.truststore import TrustStore
from fleetid.errors import (
    FleetIdError,
    PolicyError,
    SecureElementError,
    UnreachableError,
    VerificationError,
)
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.package_messages import (
    CHALLENGE_LENGTH,
    BoundPackage,
    Notification,
    attestation_challenge,
    discovery_signed,
    hash_confirmation_code,
    server_signed1,
    smdp_signed2,
)
from fleetid.policy.connectivity import ConnectivityProfile
from fleetid.private_file import write_private_file
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.wire import BoundPackageCommand, Curve

__all__ = ["POLL_INTERVALS", "InstalledPackage", "PackageTransport", "UnattendedDownloader"]

_DER = serialization.Encoding.DER

#: How often a device asks the discovery service, by its connectivity profile: an always-on
#: device hourly, an intermittent one daily, an offline one when its weekly window opens.
POLL_INTERVALS: Final[dict[ConnectivityProfile, timedelta]] = {
    ConnectivityProfile.ALWAYS_ON: timedelta(hours=1),
    ConnectivityProfile.INTERMITTENT: timedelta(days=1),
    ConnectivityProfile.OFFLINE: timedelta(days=7),
}


class PackageTransport(Protocol):
    """ES11 and ES9+ as the device needs them (``fleetid.device.package_transport``)."""

    def discovery_initiate(self) -> dict[str, Any]: ...

    def discovery_authenticate(
        self, transaction_id: str, attestation: bytes, chain: list[bytes]
    ) -> dict[str, Any]: ...

    def initiate_authentication(self, address: str, euicc_challenge: bytes) -> dict[str, Any]: ...

    def authenticate_client(
        self,
        address: str,
        transaction_id: str,
        event_id: str,
        attestation: bytes,
        chain: list[bytes],
    ) -> dict[str, Any]: ...

    def get_bound_package(
        self,
        address: str,
        transaction_id: str,
        attestation: bytes,
        chain: list[bytes],
        hash_cc: bytes | None,
    ) -> bytes: ...

    def handle_notification(self, address: str, notification: bytes) -> str: ...


@dataclass(frozen=True, kw_only=True)
class InstalledPackage:
    """What an installed package left on the device: its kind, public part and key handle."""

    event_id: str
    kind: str
    public: bytes
    handle: int


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _no_crash(step: str) -> None:
    return None


@dataclass
class UnattendedDownloader:
    """One device's discover → authenticate → download → install → notify loop."""

    se: SecureElementClient
    trust: TrustStore
    clock: Clock
    journal_path: Path | None = None
    curve: Curve = Curve.P256
    confirmation_codes: Mapping[str, str] = field(default_factory=dict)
    #: Fault injection (the line's ``CrashPlan`` pattern): called with each step's name just
    #: after the journal records it; a test passes one that ends the run there.
    crash: Callable[[str], None] = _no_crash
    #: Told of the trust store after a trust-anchors package (the agent adopts it).
    on_trust: Callable[[TrustStore], None] = field(default=lambda trust: None, repr=False)
    profile: ConnectivityProfile = ConnectivityProfile.INTERMITTENT
    next_poll: datetime | None = None
    installed: list[InstalledPackage] = field(default_factory=list)
    #: Events of the last wake-up refused before a download began, with the reason.
    refused: dict[str, str] = field(default_factory=dict)
    _journal: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.journal_path is not None and self.journal_path.exists():
            self._journal = json.loads(self.journal_path.read_text())

    # --- the journal ------------------------------------------------------------------------

    def _save(self, step: str | None) -> None:
        if step is not None:
            self._journal["step"] = step
        if self.journal_path is not None:
            write_private_file(self.journal_path, json.dumps(self._journal).encode())
        if step is not None:
            self.crash(step)

    @property
    def pending_step(self) -> str | None:
        """The journal's step of the download in progress, if one is."""
        step = self._journal.get("step")
        return None if step is None or step == "done" else str(step)

    def _notification_handle(self) -> int:
        """The SE signing key notifications and proofs of identity use (made once)."""
        handle = self._journal.get("notification_handle")
        if handle is not None and any(h == handle for h, _, _ in self.se.list_keys()):
            return int(handle)
        made = self.se.generate_key(self.curve, KeyUsage.SIGN).handle
        self._journal["notification_handle"] = made
        self._save(None)
        return made

    def _chain(self) -> list[bytes]:
        return [c.public_bytes(_DER) for c in self.se.attestation_chain()]

    # --- the schedule and one wake-up ----------------------------------------------------------

    def tick(self, transport: PackageTransport) -> list[InstalledPackage]:
        """What the device's timer calls: a download left half done resumes at once; otherwise
        nothing happens before the profile's next poll. A lost connection ends the wake-up
        quietly; the journal resumes it on the next tick."""
        now = self.clock.now()
        if self.pending_step is None and self.next_poll is not None and now < self.next_poll:
            return []
        self.next_poll = now + POLL_INTERVALS[self.profile]
        try:
            return self.run_once(transport)
        except UnreachableError:
            return []

    def run_once(self, transport: PackageTransport) -> list[InstalledPackage]:
        """Resume what a previous wake-up left, then discover and download every event."""
        done: list[InstalledPackage] = []
        if self.pending_step is not None:
            done += self._resume(transport)
        for _ in range(2):  # a second round when an installed package changed the trust held
            self.refused.clear()
            installed_now = 0
            for event_id, address in self.discover(transport):
                if event_id in {p.event_id for p in self.installed}:
                    continue
                try:
                    got = self.download(transport, event_id, address)
                except (UnreachableError, SecureElementError):
                    raise
                except FleetIdError as exc:
                    if self.pending_step is not None:
                        raise  # half done: the next wake-up resumes it, nothing else starts
                    self.refused[event_id] = str(exc)  # refused before anything was prepared
                    continue
                done += got
                installed_now += len(got)
            if not (installed_now and self.refused):
                break
        return done

    def discover(self, transport: PackageTransport) -> list[tuple[str, str]]:
        """ES11: the event records (event ID, service address) pending for this device, from an
        answer signed by a discovery service that chains to a held fleet anchor, over this
        poll's transaction ID and challenge (else ``VerificationError``)."""
        session = transport.discovery_initiate()
        tid = bytes.fromhex(session["transactionId"])
        server_challenge = _unb64(session["serverChallenge"])
        challenge = attestation_challenge(tid, server_challenge)
        attestation = self.se.attest(self._notification_handle(), challenge).public_bytes(_DER)
        answer = transport.discovery_authenticate(
            session["transactionId"], attestation, self._chain()
        )
        try:
            events = [(e["eventId"], e["rspServerAddress"]) for e in answer["eventEntries"]]
            chain = [
                x509.load_der_x509_certificate(_unb64(c)) for c in answer["discoveryCertificates"]
            ]
            signature = _unb64(answer["discoverySignature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(f"the discovery answer is malformed: {exc}") from exc
        if not chain:
            raise VerificationError("the discovery answer comes with no certificate")
        self.trust.verify(chain[0], chain[1:], self.clock.now())
        signed = discovery_signed(
            transaction_id=tid, server_challenge=server_challenge, events=events
        )
        verify_signature(_key(chain[0]), signature, signed)
        return events

    def download(
        self, transport: PackageTransport, event_id: str, address: str
    ) -> list[InstalledPackage]:
        """ES9+ for one event: authenticate both ways, download, install, notify."""
        euicc_challenge = os.urandom(CHALLENGE_LENGTH)
        answer = transport.initiate_authentication(address, euicc_challenge)
        tid = bytes.fromhex(answer["transactionId"])
        server_challenge = _unb64(answer["serverChallenge"])
        service = self._check_service(answer, euicc_challenge, address)
        challenge = attestation_challenge(tid, server_challenge)
        proof = self.se.attest(self._notification_handle(), challenge).public_bytes(_DER)
        authenticated = transport.authenticate_client(
            address, tid.hex(), event_id, proof, self._chain()
        )
        verify_signature(
            _key(service),
            _unb64(authenticated["smdpSignature2"]),
            smdp_signed2(
                transaction_id=tid, event_id=event_id, cc_required=authenticated["ccRequired"]
            ),
        )
        one_time = self.se.generate_key(self.curve, KeyUsage.KEY_AGREEMENT).handle
        self._journal.update(
            event_id=event_id,
            address=address,
            transaction_id=tid.hex(),
            server_challenge=_b64(server_challenge),
            service=_b64(service.public_bytes(_DER)),
            one_time_handle=one_time,
            cc_required=bool(authenticated["ccRequired"]),
            bound=None,
            success=None,
            notified=0,
        )
        self._save("prepared")
        return self._resume(transport)

    def _check_service(
        self, answer: Mapping[str, Any], euicc_challenge: bytes, address: str
    ) -> x509.Certificate:
        chain = [x509.load_der_x509_certificate(_unb64(c)) for c in answer["serverCertificates"]]
        if not chain or answer["serverAddress"] != address:
            raise VerificationError("the service's answer names another address or no chain")
        self.trust.verify(chain[0], chain[1:], self.clock.now())
        verify_signature(
            _key(chain[0]),
            _unb64(answer["serverSignature1"]),
            server_signed1(
                transaction_id=bytes.fromhex(answer["transactionId"]),
                euicc_challenge=euicc_challenge,
                address=address,
                server_challenge=_unb64(answer["serverChallenge"]),
            ),
        )
        return chain[0]

    # --- the resumable steps ------------------------------------------------------------------

    def _resume(self, transport: PackageTransport) -> list[InstalledPackage]:
        journal = self._journal
        tid = bytes.fromhex(journal["transaction_id"])
        if journal["step"] == "prepared":
            challenge = attestation_challenge(tid, _unb64(journal["server_challenge"]))
            attestation = self.se.attest(journal["one_time_handle"], challenge).public_bytes(_DER)
            hash_cc = None
            if journal["cc_required"]:
                code = self.confirmation_codes.get(journal["event_id"])
                if code is None:
                    raise PolicyError("the package needs a confirmation code this device lacks")
                hash_cc = hash_confirmation_code(code, tid)
            bound = transport.get_bound_package(
                journal["address"], tid.hex(), attestation, self._chain(), hash_cc
            )
            self._check_bound(bound, tid)
            journal["bound"] = _b64(bound)
            self._save("downloaded")
        installed: list[InstalledPackage] = []
        if journal["step"] == "downloaded":
            installed = self._install(BoundPackage.decode(_unb64(journal["bound"])))
            journal["success"] = bool(installed)
            self._save("installed")
        if journal["step"] == "installed":
            self._notify(transport, tid)
            self._save("done")
        return installed

    def _check_bound(self, data: bytes, tid: bytes) -> None:
        bound = BoundPackage.decode(data)
        if bound.transaction_id != tid or bound.event_id != self._journal["event_id"]:
            raise VerificationError("the bound package is for another transaction")
        service = x509.load_der_x509_certificate(_unb64(self._journal["service"]))
        verify_signature(_key(service), bound.signature, bound.tbs())

    def _install(self, bound: BoundPackage) -> list[InstalledPackage]:
        """LOAD BOUND PACKAGE in the SE; [] when the card refuses it (reported as failed)."""
        command = BoundPackageCommand(
            context=bound.transaction_id,
            point=bound.point,
            nonce=bound.nonce,
            ciphertext=bound.ciphertext,
        )
        try:
            handle, public = self.se.load_bound_package(self._journal["one_time_handle"], command)
        except SecureElementError:
            return []
        package = InstalledPackage(
            event_id=bound.event_id, kind=bound.kind, public=public, handle=handle
        )
        self.installed.append(package)
        if bound.kind == "trust-anchors":
            anchors = x509.load_pem_x509_certificates(public)
            self.trust = TrustStore([*self.trust.anchors, *anchors])
            self.on_trust(self.trust)
        return [package]

    def _notify(self, transport: PackageTransport, tid: bytes) -> None:
        journal = self._journal
        sequence = int(journal.get("sequence", 0)) + 1
        if journal["notified"] == 0:
            journal["sequence"] = sequence
        notification = Notification(
            transaction_id=tid,
            event_id=journal["event_id"],
            sequence=int(journal["sequence"]),
            success=bool(journal["success"]),
        )
        signer = SecureElementSigner(self.se, self._notification_handle())
        signed = Notification(
            transaction_id=notification.transaction_id,
            event_id=notification.event_id,
            sequence=notification.sequence,
            success=notification.success,
            signature=signer.sign(notification.tbs()),
        )
        journal["notified"] += 1
        self._save(None)
        try:
            transport.handle_notification(journal["address"], signed.encode())
        except UnreachableError:
            raise
        except FleetIdError:
            # A copy of a notification sent before (its answer lost) is refused as handled.
            if journal["notified"] <= 1:
                raise


def _key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("the service's key is not an EC key")
    return key
