"""Clone detection: the fleet notices two devices presenting one identity and quarantines it.

A hardware-bound key cannot be copied without copying the silicon; this is the control for the
case where it was (the seed's key-cloning failure mode, docs/threat-model.md). Whoever
authenticates a device's contact feeds it to ``CloneDetector.observe`` as a ``Sighting`` (which
device, under which credential, from where, when, with which device counter and which
attestation nonce), and only after the contact's proof of possession verified: an unproven
contact must not be able to quarantine someone else's device. The key-cloning scenario feeds
it; the EST and lifecycle routes do not yet. Four signals, each a contradiction one genuine
device cannot produce:

* **concurrent sessions**: the device holds a session from two places at once (a second source
  within ``session_window`` of the last contact from another);
* **credential regression**: it presents a credential that was superseded by one issued to it
  later (the copy missed a refresh the original made);
* **counter regression**: a monotonic counter it reports goes down;
* **nonce reuse**: an attestation nonce it answered is answered again.

Sightings and quarantines are kept in the authority's store (``clone_sightings``,
``clone_quarantines``), so every process of one authority shares one history.

The first signal quarantines the device: every valid certificate of it goes on
``certificateHold`` (RFC 5280 §5.3.1), so both copies are refused from then on, and an operator
who has found the genuine unit releases its credential (``release_serial``) or revokes for good.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetid.authority.revoke import revoke_device_certificates
from fleetid.clock import Clock
from fleetid.errors import ConfigError, NotFoundError
from fleetid.store.clone_sightings_repository import CloneSightings
from fleetid.store.repositories import Store
from fleetid.store.schema import RevocationReason

__all__ = ["CloneDetector", "CloneSignal", "Detection", "Sighting"]


class CloneSignal(enum.StrEnum):
    CONCURRENT_SESSIONS = "concurrent-sessions"
    CREDENTIAL_REGRESSION = "credential-regression"
    COUNTER_REGRESSION = "counter-regression"
    NONCE_REUSE = "nonce-reuse"


@dataclass(frozen=True, kw_only=True)
class Sighting:
    """One authenticated contact of a device, as the authority saw it."""

    device_id: str
    credential_serial: str
    source: str
    at: datetime
    counter: int | None = None
    nonce: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class Detection:
    """Why a device is quarantined: the signal and the two contacts that contradict."""

    device_id: str
    signal: CloneSignal
    at: datetime
    detail: str
    held: tuple[str, ...] = ()


class CloneDetector:
    """The authority's view of each device's contacts (module docstring), kept in its store
    (``fleetid.store.clone_sightings_repository``): every process sees one history."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        session_window: timedelta = timedelta(minutes=15),
        on_detection: Callable[[Detection], None] | None = None,
    ) -> None:
        if session_window <= timedelta(0):
            raise ConfigError("the session window is positive")
        self._store = store
        self._sightings = CloneSightings(store.engine)
        self._clock = clock
        self._window = session_window
        self._on_detection = on_detection
        #: What this detector quarantined (the store keeps every detector's).
        self.detections: list[Detection] = []

    def quarantined(self, device_id: str) -> bool:
        return self._sightings.quarantined(device_id)

    def observe(self, sighting: Sighting) -> Detection | None:
        """Record a contact; on a contradiction quarantine the device and return why."""
        if self.quarantined(sighting.device_id):
            return None
        signal, detail = self._contradiction(sighting)
        self._sightings.record(
            device_id=sighting.device_id,
            source=sighting.source,
            credential_serial=sighting.credential_serial,
            seen_at=sighting.at,
            counter=sighting.counter,
            nonce=sighting.nonce,
        )
        if signal is None:
            return None
        return self._quarantine(sighting, signal, detail)

    def _contradiction(self, sighting: Sighting) -> tuple[CloneSignal | None, str]:
        record = self._credential(sighting)
        if record is not None:
            return CloneSignal.CREDENTIAL_REGRESSION, record
        device_id = sighting.device_id
        for source, last in self._sightings.last_by_source(device_id).items():
            if source != sighting.source and abs(sighting.at - last) < self._window:
                return (
                    CloneSignal.CONCURRENT_SESSIONS,
                    f"a session from {sighting.source} while {source} held one "
                    f"({int((sighting.at - last).total_seconds())} s earlier)",
                )
        highest = self._sightings.highest_counter(device_id)
        if sighting.counter is not None and highest is not None and sighting.counter < highest:
            return CloneSignal.COUNTER_REGRESSION, f"counter {sighting.counter} after {highest}"
        if sighting.nonce is not None and self._sightings.nonce_seen(device_id, sighting.nonce):
            return CloneSignal.NONCE_REUSE, "an attestation nonce answered twice"
        return None, ""

    def _credential(self, sighting: Sighting) -> str | None:
        """Why the presented credential contradicts the record (superseded by a later one)."""
        with self._store.transaction() as tx:
            try:
                record = tx.certificates.by_serial(sighting.credential_serial)
            except NotFoundError:
                return None
            if record.device_id != sighting.device_id or record.superseded_by is None:
                return None
            successor = tx.certificates.by_id(record.superseded_by)
        return f"credential {record.serial} presented after its successor {successor.serial}"

    def _quarantine(self, sighting: Sighting, signal: CloneSignal, detail: str) -> Detection:
        now = self._clock.now()
        with self._store.transaction() as tx:
            held = revoke_device_certificates(
                tx, sighting.device_id, RevocationReason.CERTIFICATE_HOLD, now
            )
        detection = Detection(
            device_id=sighting.device_id,
            signal=signal,
            at=now,
            detail=detail,
            held=tuple(r.serial for r in held),
        )
        self._sightings.quarantine(sighting.device_id, signal=signal.value, detail=detail, at=now)
        self.detections.append(detection)
        if self._on_detection is not None:
            self._on_detection(detection)
        return detection
