"""A software stand-in for the provisioning line: the same certificates and card state, no HSM.

``fleetid.factory.line`` is the real line (HSM-held keys, ceremony, audit log). Tests and the
fleet demo need many manufactured devices quickly and an independent second manufacturer, so
``SoftwareLine`` makes them with the line's own certificate profiles
(``fleetid.factory.manufacturer``: root, line CA, IEEE 802.1AR IDevID with an RFC 4108
HardwareModuleName) and the line's own personalisation sequence over APDUs
(``fleetid.factory.personalisation.personalise``): SCP03 with the card's keys, GENERATE the
attestation key on card, STORE DATA the chain [IDevID, line CA, root], GENERATE and ATTEST the
vehicle's canonical key, SET STATUS SECURED. ``LineDevice.manifest_entry()`` is the row the
real line would record, which an EA imports (``fleetid.authority.v2x.manufactured``).
The manufacturer keys are software keys: a TEST manufacturer, never one to trust in production.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.clock import Clock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.factory.line import ManifestEntry, Step, UnitState
from fleetid.factory.manufacturer import (
    ManufacturerNames,
    certificate_fingerprint,
    issue_idevid,
    issue_line_ca,
    issue_root,
)
from fleetid.factory.personalisation import device_serial, personalise
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import Curve
from fleetid.store.repositories import ManifestRecord

__all__ = ["LineDevice", "SoftwareLine"]

_KVN = 0x30


@dataclass(frozen=True, kw_only=True)
class LineDevice:
    """A device off the software line: its card and what the manifest records about it."""

    unit: str
    serial: str
    chip_serial: bytes
    card: SecureElement
    idevid: x509.Certificate
    attestation_key: ec.EllipticCurvePublicKey
    canonical_key: ec.EllipticCurvePublicKey
    canonical_attestation: x509.Certificate

    def client(self) -> SecureElementClient:
        """A host client with the identity applet selected (no secure channel needed)."""
        client = SecureElementClient(self.card)
        client.select_identity()
        return client

    def manifest_record(self, state: UnitState | str = UnitState.SECURED) -> ManifestRecord:
        return ManifestRecord(
            unit=self.unit,
            serial=self.serial,
            state=UnitState(state),
            idevid_fingerprint=certificate_fingerprint(self.idevid),
            attestation_public_key=self.attestation_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            idevid=self.idevid.public_bytes(serialization.Encoding.DER),
        )

    def manifest_entry(self) -> ManifestEntry:
        """The line-manifest row of this secured unit (canonical key and attestation included)."""
        return ManifestEntry(
            unit=self.unit,
            serial=self.serial,
            state=UnitState.SECURED,
            step=Step.SECURED,
            reason=None,
            key_version=_KVN,
            attestation_public_key=self.attestation_key,
            idevid=self.idevid,
            idevid_fingerprint=certificate_fingerprint(self.idevid),
            canonical_public_key=self.canonical_key,
            canonical_attestation=self.canonical_attestation,
        )


class SoftwareLine:
    """A TEST manufacturer (root and line CA in software) that makes secured cards."""

    def __init__(
        self,
        *,
        clock: Clock,
        organization: str = "fleetid TEST manufacturer",
        line_id: str = "L1",
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock = clock
        self._random = random
        self.organization = organization
        now = clock.now()
        names = ManufacturerNames(organization=organization)
        self._root_signer = SoftwareSigner(new_private_key(ec.SECP384R1()))
        self._line_signer = SoftwareSigner(new_private_key())
        self.root = issue_root(names=names, signer=self._root_signer, now=now)
        self.line_ca = issue_line_ca(
            names=names,
            line_id=line_id,
            line_ca_public_key=self._line_signer.public_key(),
            root=self.root,
            root_signer=self._root_signer,
            now=now,
        )
        self._count = 0

    def certify(
        self,
        attestation_key: ec.EllipticCurvePublicKey,
        serial: str,
        chip_serial: bytes,
        *,
        now: datetime | None = None,
    ) -> x509.Certificate:
        """The IDevID the line CA issues for a card's attestation key."""
        return issue_idevid(
            line_ca=self.line_ca,
            line_ca_signer=self._line_signer,
            public_key=attestation_key,
            device_serial=serial,
            chip_serial=chip_serial,
            organization=self.organization,
            now=now or self._clock.now(),
        )

    def make_device(
        self,
        *,
        ic_serial: bytes | None = None,
        now: datetime | None = None,
        canonical_curve: Curve = Curve.P256,
    ) -> LineDevice:
        """Fabricate, personalise and lock one card; ``ic_serial`` forces a serial (clones)."""
        self._count += 1
        keys = StaticKeys(self._random(16), self._random(16), self._random(16))
        card = SecureElement.fabricate(
            ic_serial=ic_serial or self._random(4), keysets={_KVN: keys}, random=self._random
        )
        made = personalise(
            SecureElementClient(card),
            keys=keys,
            key_version=_KVN,
            certify=lambda public_key, cplc: [
                self.certify(public_key, device_serial(cplc.kdd), card.chip_serial, now=now),
                self.line_ca,
                self.root,
            ],
            canonical_curve=canonical_curve,
        )
        card.reset()
        assert made.canonical_key is not None and made.canonical_attestation is not None  # noqa: S101
        return LineDevice(
            unit=f"{self.organization}/{self._count:06d}",
            serial=made.serial,
            chip_serial=card.chip_serial,
            card=card,
            idevid=made.chain[0],
            attestation_key=made.attestation_key,
            canonical_key=made.canonical_key,
            canonical_attestation=made.canonical_attestation,
        )
