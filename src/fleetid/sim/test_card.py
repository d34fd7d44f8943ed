"""A TEST card for the demo, the tests and the benchmarks: an emulated secure element personalised
with a software manufacturer chain.

It lives in the simulation package, outside the tamper-boundary package ``fleetid.se``: it is
a factory stand-in, not part of the chip. ``DemoManufacturer`` is a TEST manufacturer PKI in
software (root -> attestation CA -> device attestation certificates) whose names say TEST so
that no verifier pins it by mistake; ``manufacture_test_card`` fabricates a card and runs the
line's personalisation sequence on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.clock import Clock, SystemClock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.factory.personalisation import personalise
from fleetid.formats.ca_profile import CaProfile
from fleetid.formats.x509_sign import key_usage
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.scp03 import StaticKeys

__all__ = ["DemoManufacturer", "ManufacturedCard", "manufacture_test_card"]


@dataclass(frozen=True, kw_only=True)
class DemoManufacturer:
    """A TEST manufacturer PKI in software: root -> attestation CA -> device attestation certs.

    Stands in for the manufacturer CA in the HSM until the provisioning line exists. Its names say
    TEST so that no verifier pins it by mistake.
    """

    root_key: ec.EllipticCurvePrivateKey
    root_certificate: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    ca_certificate: x509.Certificate
    clock: Clock

    @classmethod
    def create(cls, clock: Clock | None = None) -> DemoManufacturer:
        clock = clock or SystemClock()
        now = clock.now()
        root_key = new_private_key(ec.SECP384R1())
        root_name = _name("fleetid TEST manufacturer root")
        root = _ca_certificate(root_name, root_key, root_name, root_key, now, 20, path_length=2)
        ca_key = new_private_key()
        ca = _ca_certificate(
            _name("fleetid TEST manufacturer attestation CA"),
            ca_key,
            root_name,
            root_key,
            now,
            15,
            path_length=1,
        )
        return cls(
            root_key=root_key, root_certificate=root, ca_key=ca_key, ca_certificate=ca, clock=clock
        )

    def certify_attestation_key(
        self, public_key: ec.EllipticCurvePublicKey, chip_serial: bytes
    ) -> x509.Certificate:
        """The device attestation certificate for a card's attestation key (pathLen 0 CA)."""
        now = self.clock.now()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.SERIAL_NUMBER, chip_serial.hex().upper()),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetid TEST"),
                x509.NameAttribute(NameOID.COMMON_NAME, "fleetid SE attestation key"),
            ]
        )
        return CaProfile(
            subject=subject,
            issuer=self.ca_certificate.subject,
            public_key=public_key,
            serial_number=x509.random_serial_number(),
            not_before=now - timedelta(minutes=5),
            # IEEE 802.1AR §8.5 / RFC 5280 §4.1.2.5: a device identity has no expiry.
            not_after=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
            path_length=0,
            key_usage=_CA_KEY_USAGE,
            authority_key=self.ca_key.public_key(),
        ).issue(SoftwareSigner(self.ca_key))


_CA_KEY_USAGE = key_usage(key_cert_sign=True, crl_sign=True)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetid TEST"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    years: int,
    *,
    path_length: int,
) -> x509.Certificate:
    return CaProfile(
        subject=subject,
        issuer=issuer,
        public_key=key.public_key(),
        serial_number=x509.random_serial_number(),
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=365 * years),
        path_length=path_length,
        key_usage=_CA_KEY_USAGE,
        authority_key=issuer_key.public_key(),
    ).issue(SoftwareSigner(issuer_key))


@dataclass(frozen=True, kw_only=True)
class ManufacturedCard:
    """A card fresh from ``manufacture_test_card`` and what the test line knows about it."""

    card: SecureElement
    keys: StaticKeys
    key_version: int
    manufacturer: DemoManufacturer
    attestation_certificate: x509.Certificate

    @property
    def chain(self) -> list[x509.Certificate]:
        """The chain the card holds: device attestation certificate, then the CA."""
        return [self.attestation_certificate, self.manufacturer.ca_certificate]


def manufacture_test_card(
    *,
    manufacturer: DemoManufacturer | None = None,
    ic_serial: bytes | None = None,
    keys: StaticKeys | None = None,
    key_version: int = 0x30,
    silicon: Silicon | None = None,
    silicon_path: Path | None = None,
    flash_path: Path | None = None,
    firmware_key: ec.EllipticCurvePublicKey | None = None,
    applet_signing_key: ec.EllipticCurvePublicKey | None = None,
    attestation_curve: ec.EllipticCurve | None = None,
    secure: bool = True,
    random: Callable[[int], bytes] = os.urandom,
) -> ManufacturedCard:
    """Make a card with a TEST manufacturer chain, all through APDUs, by the line's own
    personalisation sequence (``fleetid.factory.personalisation.personalise``).

    Fabricate (OP_READY, keys ``keys`` at ``key_version``) -> SCP03 into the identity applet ->
    GENERATE the attestation key on card -> STORE DATA its certificate chain (and the firmware
    key) -> SET STATUS INITIALIZED -> SECURED (when ``secure``).
    """
    manufacturer = manufacturer or DemoManufacturer.create()
    keys = keys or StaticKeys(random(16), random(16), random(16))
    silicon = silicon or Silicon.fabricate(random)
    if silicon_path is not None:
        silicon.save(silicon_path)
    card = SecureElement.fabricate(
        silicon=silicon,
        flash=SealedFlash(flash_path),
        ic_serial=ic_serial,
        keysets={key_version: keys},
        random=random,
    )
    made = personalise(
        SecureElementClient(card),
        keys=keys,
        key_version=key_version,
        certify=lambda public_key, _cplc: [
            manufacturer.certify_attestation_key(public_key, card.chip_serial),
            manufacturer.ca_certificate,
        ],
        attestation_curve=attestation_curve or ec.SECP256R1(),
        firmware_key=firmware_key,
        applet_signing_key=applet_signing_key,
        secure=secure,
    )
    card.reset()
    certificate = made.chain[0]
    return ManufacturedCard(
        card=card,
        keys=keys,
        key_version=key_version,
        manufacturer=manufacturer,
        attestation_certificate=certificate,
    )
