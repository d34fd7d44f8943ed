"""The attestation provisioner: devices with a secure element or a TPM enrol on their own evidence.

The flow (docs/enrolment.md):

1. ``POST /enrol/challenge`` (optionally ``{"device_id": SERIAL}``) returns a single-use nonce, 32
   random bytes valid for the policy's ``challenge_ttl`` (five minutes by default), stored in
   ``enrolment_challenges``. This path is a fleetid extension beside EST (RFC 7030 §3.2.2 leaves
   room for more operations; draft-ietf-lamps-attestation-freshness is not final).
2. The device has its SE generate a key and ATTEST it with the nonce as challenge (or its TPM
   create a key and its AK certify it with the nonce as qualifying data), and sends a PKCS#10
   CSR signed by that key carrying the draft-ietf-lamps-csr-attestation bundle (key attestation
   + IDevID or AK chain) to ``/.well-known/est/simpleenroll`` with no HTTP credential. Every
   registered format (``fleetid.authority.attestation``) is accepted in the same attribute.
3. ``authorise`` verifies it (``fleetid.authority.attestation``) inside the issuance
   transaction: the challenge is spent only if the certificate is recorded. It accepts
   (``accepts``) a request with no HTTP credential whose CSR has an id-aa-attestation attribute,
   malformed or not (a malformed one is refused as ``evidence-malformed``).

Configuration, in the data directory:

* ``trust/manufacturers/*.pem``: the manufacturer roots this authority accepts IDevIDs from;
  ``trust_manufacturer`` writes one (``fleetid ca trust-manufacturer``), ``distrust_manufacturer``
  removes it. ``ManufacturerTrust`` re-reads the directory whenever a file in it changes, so a
  running server (every worker) follows without a restart; files are replaced atomically, never
  read half-written.
* the ``line_manifest`` table: the devices this authority accepts; the factory's own line writes it,
  another authority imports the entries it trusts (``import_manifest``,
  ``fleetid ca import-manifest``); it is read per request, so imports need no restart either.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from fleetid.authority.attestation import (
    AttestedDevice,
    RepositoryLedger,
    VerificationPolicy,
    check_attested_records,
    examine_attested_csr,
    verify_attested_csr,
)
from fleetid.authority.provisioners import EnrolmentRequest, Grant, register
from fleetid.clock import Clock
from fleetid.errors import (
    ConfigError,
    EncodingError,
    NotConfiguredError,
    NotFoundError,
    StoreError,
)
from fleetid.formats.csr_attestation import has_attestation_attribute
from fleetid.formats.proof import CHALLENGE_PATH
from fleetid.policy import CredentialType
from fleetid.store.repositories import ChallengeRecord, ManifestRecord, Repositories, Store
from fleetid.store.schema import DeviceStatus

__all__ = [
    "CHALLENGE_PATH",
    "MANUFACTURERS_DIR",
    "AttestationProvisioner",
    "Challenge",
    "ManufacturerTrust",
    "distrust_manufacturer",
    "import_manifest",
    "manufacturer_roots",
    "trust_manufacturer",
]

MANUFACTURERS_DIR: Final = Path("trust") / "manufacturers"
_NONCE_BYTES: Final = 32


@dataclass(frozen=True, kw_only=True)
class Challenge:
    """A single-use enrolment nonce."""

    nonce: bytes
    expires_at: datetime
    device_id: str | None = None


def manufacturer_roots(data_dir: Path) -> tuple[x509.Certificate, ...]:
    """Every PEM certificate under ``<data-dir>/trust/manufacturers/``, sorted by file name."""
    directory = data_dir / MANUFACTURERS_DIR
    roots: list[x509.Certificate] = []
    for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
        try:
            roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except ValueError as exc:
            raise ConfigError(f"{path} is not a PEM certificate: {exc}") from exc
    return tuple(roots)


def trust_manufacturer(data_dir: Path, root: x509.Certificate) -> Path:
    """Add a manufacturer root to this authority's trust (a file named by its fingerprint)."""
    directory = data_dir / MANUFACTURERS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (root.fingerprint(hashes.SHA256()).hex()[:16] + ".pem")
    # Written beside and renamed: a server re-reading the directory never sees half a file.
    partial = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    partial.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    os.replace(partial, path)
    return path


def distrust_manufacturer(data_dir: Path, fingerprint: str) -> list[x509.Certificate]:
    """Remove the trusted manufacturer roots whose SHA-256 fingerprint (hex, at least 16 digits)
    starts with ``fingerprint``; returns them. Refuses a prefix that matches nothing."""
    wanted = fingerprint.lower().replace(":", "")
    if len(wanted) < 16 or any(c not in "0123456789abcdef" for c in wanted):
        raise ConfigError("name a manufacturer root by at least 16 hex digits of its SHA-256")
    directory = data_dir / MANUFACTURERS_DIR
    removed: list[x509.Certificate] = []
    for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
        try:
            roots = x509.load_pem_x509_certificates(path.read_bytes())
        except ValueError as exc:
            raise ConfigError(f"{path} is not a PEM certificate: {exc}") from exc
        if any(r.fingerprint(hashes.SHA256()).hex().startswith(wanted) for r in roots):
            path.unlink()
            removed.extend(roots)
    if not removed:
        raise NotFoundError(f"no trusted manufacturer root has fingerprint {fingerprint}")
    return removed


class ManufacturerTrust:
    """The roots of ``<data-dir>/trust/manufacturers``, re-read when any file there changes.

    Each call compares the directory's listing (names, sizes, modification times) with the one
    the roots were read from: a few microseconds for the handful of roots an authority trusts,
    and the same answer in every worker process without signalling them.
    """

    def __init__(self, data_dir: Path) -> None:
        self._directory = data_dir / MANUFACTURERS_DIR
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._policy: VerificationPolicy | None = None

    def _listing(self) -> tuple[tuple[str, int, int], ...]:
        try:
            with os.scandir(self._directory) as entries:
                found = [(e.name, e.stat()) for e in entries if e.name.endswith(".pem")]
        except FileNotFoundError:
            return ()
        return tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in found))

    def policy(self) -> VerificationPolicy | None:
        """The verification policy over the roots trusted now; None while none is trusted."""
        listing = self._listing()
        with self._lock:
            if listing != self._seen:
                roots = manufacturer_roots(self._data_dir)
                self._policy = VerificationPolicy(manufacturer_roots=roots) if roots else None
                self._seen = listing
            return self._policy


def import_manifest(store: Store, records: Iterable[ManifestRecord], now: datetime) -> int:
    """Trust line-manifest entries here (one transaction); returns how many were new. A row
    listed already exactly so is skipped (imports repeat safely); a row that differs from the one
    listed for its serial is refused, and nothing is imported."""
    count = 0
    with store.transaction() as tx:
        for record in records:
            listed = tx.manifest.by_serial(record.serial)
            if listed == record:
                continue
            if listed is not None:
                raise StoreError(
                    f"the manifest lists serial {record.serial} as unit {listed.unit} "
                    f"({listed.state}) already, not as this unit {record.unit} ({record.state})"
                )
            tx.manifest.add(record, now)
            count += 1
    return count


@register
class AttestationProvisioner:
    """Authorise an enrolment by secure-element or TPM evidence bound to a challenge from here."""

    type_key = "attestation"

    def __init__(
        self,
        clock: Clock,
        policy: VerificationPolicy | Callable[[], VerificationPolicy | None],
        *,
        challenge_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        """``policy`` is fixed, or read per request (``ManufacturerTrust.policy``: None while no
        manufacturer is trusted, and then this provisioner accepts nothing)."""
        if challenge_ttl <= timedelta(0):
            raise ConfigError("a challenge's validity is positive")
        self._clock = clock
        self._policy = policy
        self._ttl = challenge_ttl

    @property
    def configured(self) -> bool:
        """Whether at least one manufacturer root is trusted now."""
        return self._current_policy() is not None

    def _current_policy(self) -> VerificationPolicy | None:
        return self._policy if isinstance(self._policy, VerificationPolicy) else self._policy()

    @property
    def policy(self) -> VerificationPolicy:
        current = self._current_policy()
        if current is None:
            raise NotConfiguredError(
                "attestation-gated enrolment is not configured: no manufacturer root is trusted"
            )
        return current

    def accepts(self, request: EnrolmentRequest) -> bool:
        if request.basic is not None or not self.configured:
            return False
        try:
            # Present is enough, malformed or not: ``authorise`` names it evidence-malformed.
            return has_attestation_attribute(request.csr)
        except EncodingError:
            return False  # the CSR's attributes do not parse at all: not evidence

    def issue_challenge(self, tx: Repositories, device_id: str | None = None) -> Challenge:
        now = self._clock.now()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        tx.challenges.add(
            ChallengeRecord(
                nonce=nonce, device_id=device_id, created_at=now, expires_at=now + self._ttl
            )
        )
        return Challenge(nonce=nonce, expires_at=now + self._ttl, device_id=device_id)

    def verify(self, tx: Repositories, csr: x509.CertificateSigningRequest) -> AttestedDevice:
        """Verify the evidence and spend its challenge (in ``tx``); raises ``AttestationError``."""
        return verify_attested_csr(
            csr, policy=self.policy, ledger=RepositoryLedger(tx), now=self._clock.now()
        )

    def examine(self, request: EnrolmentRequest) -> EnrolmentRequest:
        """The evidence itself: signatures, the IDevID's path, the key's properties."""
        attested = examine_attested_csr(request.csr, policy=self.policy, now=self._clock.now())
        return replace(request, evidence=attested)

    def authorise(self, tx: Repositories, request: EnrolmentRequest) -> Grant:
        """Check the records (manifest, device, challenge, spent here), then record the device
        and the factory identity it enrolled with."""
        if not isinstance(request.evidence, AttestedDevice):
            request = self.examine(request)
        attested = request.evidence
        assert isinstance(attested, AttestedDevice)  # noqa: S101 - examine made it
        ledger = RepositoryLedger(tx)
        now = self._clock.now()
        check_attested_records(attested, ledger=ledger, now=now)
        known = ledger.device(attested.device_id) is not None  # the record the check read
        if not known:
            tx.devices.add(
                attested.device_id,
                DeviceStatus.PENDING,
                now,
                provisioner=self.type_key,
                idevid_serial=attested.device_id,
                idevid_key_sha256=attested.idevid_key_sha256,
            )
        else:
            tx.devices.bind_idevid(
                attested.device_id,
                idevid_serial=attested.device_id,
                idevid_key_sha256=attested.idevid_key_sha256,
                now=now,
            )
        return Grant(
            provisioner=self.type_key,
            device_id=attested.device_id,
            credential_type=CredentialType.OPERATIONAL,
            supersedes_previous=known,  # a device new here holds no credential to supersede
        )
