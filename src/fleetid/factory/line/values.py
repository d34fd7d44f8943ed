"""The line's values: its configuration, a manifest entry as the factory reads it, a run's report,
and where its cards come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.factory.personalisation import FULL_SECURITY
from fleetid.se.client import Transport
from fleetid.se.wire import Curve
from fleetid.store.line_manifest_rows import Step, UnitState

__all__ = ["DEVICE_KVN", "CardSource", "LineConfig", "LineReport", "ManifestEntry"]

DEVICE_KVN: Final = 0x30


class CardSource(Protocol):
    """Where the line gets its cards: the wafer (emulated) or a reader (PC/SC)."""

    def power_on(self, unit: str) -> Transport: ...


@dataclass(frozen=True, kw_only=True)
class LineConfig:
    transport_kvn: int = 0x01
    device_kvn: int = DEVICE_KVN
    security_level: int = FULL_SECURITY
    attestation_curve: Curve = Curve.P256
    #: The canonical key's curve: P-256 or brainpoolP256r1 (ETSI TS 103 097 §5 end-entity keys).
    canonical_curve: Curve = Curve.P256
    batch_size: int = 64
    #: The fleet's applet-signing key (DER SPKI, P-256), put on every card before SECURED so
    #: that it loads only applet versions the fleet signs (docs/se-apdu.md, DGI 0F05); None
    #: leaves cards that load no applet.
    applet_signing_key: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class ManifestEntry:
    """One unit's row of the line manifest."""

    unit: str
    serial: str
    state: UnitState
    step: Step
    reason: str | None
    key_version: int | None
    attestation_public_key: ec.EllipticCurvePublicKey | None
    idevid: x509.Certificate | None
    idevid_fingerprint: str | None
    canonical_public_key: ec.EllipticCurvePublicKey | None = None
    canonical_attestation: x509.Certificate | None = None


@dataclass(frozen=True, kw_only=True)
class LineReport:
    processed: int
    secured: int
    quarantined: int
    duplicates: int
    already_done: int
