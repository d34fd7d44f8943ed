"""Receiver-side plausibility checks on V2X messages: one pseudonym in two places, or too often.

A vehicle whose pseudonym key is used from two places at once (a copied key, or a relay to its
secure element) amplifies a hazard warning across places it does not occupy. Each message still
verifies, so a receiver judges what the messages say together (the local misbehaviour detection
of ETSI TR 103 460 §5: plausibility and consistency checks):

* **position jump**: two messages of one pseudonym whose positions are further apart than
  ``max_speed`` allows in the time between their generation times;
* **message rate**: more than ``max_rate`` messages of one pseudonym within one second (a CAM
  is generated at most every 100 ms, EN 302 637-2 §6.1.3: 10 Hz).

``PositionReport`` is this simulation's payload: latitude and longitude in units of 0.1
microdegree (as the ReferencePosition of EN 302 637-2 counts them) and a hazard code, each a
signed 32-bit big-endian integer. It is not a CAM encoding.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass, field

from fleetid.errors import EncodingError

__all__ = ["Flag", "PlausibilityMonitor", "PositionReport"]

_REPORT = struct.Struct(">iii")
_EARTH_RADIUS_M = 6_371_000.0
_MICRO = 10_000_000  # 0.1 microdegree per degree


@dataclass(frozen=True, kw_only=True)
class PositionReport:
    """Where the sender says it is, and what it warns about (module docstring)."""

    latitude: float
    longitude: float
    hazard: int = 0

    def encode(self) -> bytes:
        return _REPORT.pack(
            round(self.latitude * _MICRO), round(self.longitude * _MICRO), self.hazard
        )

    @classmethod
    def decode(cls, data: bytes) -> PositionReport:
        if len(data) != _REPORT.size:
            raise EncodingError(f"a position report has {_REPORT.size} bytes, not {len(data)}")
        lat, lon, hazard = _REPORT.unpack(data)
        if not (-90 * _MICRO <= lat <= 90 * _MICRO and -180 * _MICRO <= lon <= 180 * _MICRO):
            raise EncodingError("a position report's coordinates are out of range")
        return cls(latitude=lat / _MICRO, longitude=lon / _MICRO, hazard=hazard)

    def distance_to(self, other: PositionReport) -> float:
        """Great-circle distance in metres (haversine)."""
        phi1, phi2 = math.radians(self.latitude), math.radians(other.latitude)
        dphi = phi2 - phi1
        dlambda = math.radians(other.longitude - self.longitude)
        a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
        return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(a))


@dataclass(frozen=True, kw_only=True)
class Flag:
    """A pseudonym the monitor judged implausible, and why (the misbehaviour report's basis)."""

    signer_id: bytes
    reason: str
    detail: str


@dataclass
class _Track:
    last: tuple[int, PositionReport] | None = None
    recent: deque[int] = field(default_factory=deque)


class PlausibilityMonitor:
    """Per-pseudonym tracks of what one receiver heard (module docstring)."""

    def __init__(self, *, max_speed: float = 70.0, max_rate: int = 10) -> None:
        """``max_speed`` in m/s (252 km/h), ``max_rate`` messages per second."""
        if max_speed <= 0 or max_rate <= 0:
            raise ValueError("the plausibility bounds are positive")
        self._max_speed = max_speed
        self._max_rate = max_rate
        self._tracks: dict[bytes, _Track] = {}

    def observe(
        self, signer_id: bytes, report: PositionReport, generation_time: int
    ) -> Flag | None:
        """Record a verified message (``generation_time`` in microseconds, TAI as in
        IEEE 1609.2 Time64); a ``Flag`` if it contradicts what this pseudonym sent before."""
        track = self._tracks.setdefault(signer_id, _Track())
        flag: Flag | None = None
        if track.last is not None:
            before, where = track.last
            seconds = abs(generation_time - before) / 1_000_000
            metres = where.distance_to(report)
            allowed = self._max_speed * seconds + 10.0  # positioning error: 10 m
            if metres > allowed:
                flag = Flag(
                    signer_id=signer_id,
                    reason="position-jump",
                    detail=f"{metres:.0f} m in {seconds * 1000:.0f} ms",
                )
        track.recent.append(generation_time)
        while track.recent and generation_time - track.recent[0] >= 1_000_000:
            track.recent.popleft()
        if flag is None and len(track.recent) > self._max_rate:
            flag = Flag(
                signer_id=signer_id,
                reason="message-rate",
                detail=f"{len(track.recent)} messages within one second",
            )
        track.last = (generation_time, report)
        return flag
