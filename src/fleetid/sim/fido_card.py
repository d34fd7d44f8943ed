"""A TEST FIDO2 authenticator: an emulated card whose FIDO applet carries a model attestation key.

The line's part (``fleetid.factory``) done in software: one attestation key per authenticator
model, its packed attestation certificate issued by the TEST manufacturer's attestation CA
(``DemoManufacturer``) with the model's AAGUID (``issue_fido_attestation``), injected into the
card over SCP03 (``inject_fido_attestation``). The demo, the tests and the PC/SC check use it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.factory.manufacturer import FidoModel, ManufacturerNames, issue_fido_attestation
from fleetid.factory.personalisation import inject_fido_attestation
from fleetid.se.applets.boot import BootApplet
from fleetid.se.applets.fido import FidoApplet, UserPresence
from fleetid.se.applets.identity import IdentityApplet
from fleetid.se.applets.manager import ManagerApplet
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.test_card import DemoManufacturer

__all__ = ["TEST_FIDO_MODEL", "FidoCard", "FidoModelKey", "manufacture_fido_card"]

#: The TEST authenticator model (a random-looking version 4 UUID, fixed so metadata can name it).
TEST_FIDO_MODEL = FidoModel(
    aaguid=uuid.UUID("6d44ba9b-f6ec-4e55-9b2a-3c1c7b2f1f01"),
    name="fleetid TEST FIDO2 authenticator",
)
_NAMES = ManufacturerNames(organization="fleetid TEST", country="DE")
_KVN = 0x30


@dataclass(frozen=True, kw_only=True)
class FidoModelKey:
    """What the line holds for one model: the attestation key and its chain (leaf first)."""

    model: FidoModel
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]
    manufacturer: DemoManufacturer

    @classmethod
    def issue(
        cls, manufacturer: DemoManufacturer, model: FidoModel = TEST_FIDO_MODEL
    ) -> FidoModelKey:
        key = new_private_key()
        leaf = issue_fido_attestation(
            line_ca=manufacturer.ca_certificate,
            line_ca_signer=SoftwareSigner(manufacturer.ca_key),
            public_key=key.public_key(),
            model=model,
            names=_NAMES,
            now=manufacturer.clock.now(),
        )
        return cls(
            model=model,
            key=key,
            chain=(leaf, manufacturer.ca_certificate),
            manufacturer=manufacturer,
        )


@dataclass(frozen=True, kw_only=True)
class FidoCard:
    """A card with an injected FIDO model key, and the applet (to set its presence hook)."""

    card: SecureElement
    applet: FidoApplet
    model_key: FidoModelKey

    @property
    def root(self) -> x509.Certificate:
        """The manufacturer root the attestation chains to."""
        return self.model_key.manufacturer.root_certificate


def manufacture_fido_card(
    *,
    model_key: FidoModelKey | None = None,
    user_presence: UserPresence | None = None,
    random: Callable[[int], bytes] = os.urandom,
) -> FidoCard:
    """Fabricate a card and inject the model's attestation key and chain, through APDUs (a
    new TEST manufacturer and model key unless ``model_key`` is given)."""
    model_key = model_key or FidoModelKey.issue(DemoManufacturer.create())
    applet = (
        FidoApplet(random=random)
        if user_presence is None
        else FidoApplet(user_presence=user_presence, random=random)
    )
    keys = StaticKeys(random(16), random(16), random(16))
    card = SecureElement.fabricate(
        keysets={_KVN: keys},
        applets=[ManagerApplet(), IdentityApplet(), BootApplet(), applet],
        random=random,
    )
    inject_fido_attestation(
        SecureElementClient(card),
        keys,
        _KVN,
        attestation_key=model_key.key,
        chain=model_key.chain,
    )
    card.reset()
    return FidoCard(card=card, applet=applet, model_key=model_key)
