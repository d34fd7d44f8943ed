"""Demo stage: the secure element.

Each device that left the line (``ctx.state["line"]``) opens SCP03 at level 33 with its
per-device keys (diversified in the HSM), generates a key on card, attests it against a fresh
challenge up to the manufacturer root, signs and does ECDH by handle, and boots an MCUboot image
signed by the HSM's firmware key while refusing a tampered one. One chip is then tampered with
and zeroises itself.
"""

from __future__ import annotations

import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.keys import ecdh_shared_secret, new_private_key
from fleetid.crypto.pkix import issued_by
from fleetid.crypto.signer import verify_signature
from fleetid.device.boot import boot
from fleetid.errors import BootRefusedError, SecureElementError
from fleetid.factory.line import DEVICE_KVN
from fleetid.formats.attestation import KEY_PROPERTIES_OID, KeyUsage, decode_key_properties
from fleetid.formats.mcuboot import build_image
from fleetid.se.card import TamperEvent
from fleetid.se.client import SecureElementClient
from fleetid.sim.demo import DemoContext, drill
from fleetid.sim.demo_line import DemoLine
from fleetid.sim.test_card import manufacture_test_card

__all__ = ["stage_secure_element"]


def _verify_chain(leaf: x509.Certificate, chain: list[x509.Certificate]) -> None:
    """Each certificate is signed by the next (pyca raises on a bad signature)."""
    for child, parent in zip([leaf, *chain], chain, strict=False):
        if not issued_by(child, parent):
            raise SecureElementError(0x6F00, "attestation chain does not verify")


def stage_secure_element(ctx: DemoContext) -> None:
    console = ctx.console
    line = ctx.state["line"]
    assert isinstance(line, DemoLine)  # noqa: S101 - the line stage runs first
    firmware = line.hsm.signer(line.record.firmware_key_label)
    image = build_image(os.urandom(4096), firmware, version="1.2.0", security_counter=3)
    tampered = bytearray(image)
    tampered[200] ^= 0x01

    attested = signed = booted = refused = 0
    clients = []
    for device in line.devices:
        client = line.client(device)
        clients.append(client)
        client.select_identity()
        client.open_secure_channel(line.session_keys(device), 0x33, key_version=DEVICE_KVN)
        key = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN | KeyUsage.KEY_AGREEMENT)
        challenge = os.urandom(32)
        attestation = client.attest(key.handle, challenge)
        chain = client.attestation_chain()
        _verify_chain(attestation, chain)
        if chain[-1] != line.record.root_certificate:
            raise SecureElementError(0x6F00, "attestation chain does not end at the root")
        props = decode_key_properties(
            attestation.extensions.get_extension_for_oid(
                x509.ObjectIdentifier(KEY_PROPERTIES_OID)
            ).value.value  # type: ignore[attr-defined]
        )
        if props.challenge != challenge or props.exportable:
            raise SecureElementError(0x6F00, "attestation does not state what was asked")
        attested += 1
        digest = hashlib.sha256(b"telemetry record").digest()
        signature = client.sign(key.handle, digest)
        verify_signature(key.public_key, signature, b"telemetry record")
        peer = new_private_key()
        shared = client.ecdh(key.handle, peer.public_key())
        if shared != ecdh_shared_secret(peer, key.public_key):
            raise SecureElementError(0x6F00, "ECDH disagrees with the peer")
        signed += 1
        boot(client, image)
        booted += 1
        try:
            boot(client, bytes(tampered))
        except BootRefusedError:
            refused += 1
        console.print(
            f"  device {device.serial}: key {key.handle} attested to the manufacturer root, "
            f"signed, ECDH; image booted; {drill('tampered image')} "
            f"{'refused' if refused == booted else 'NOT refused'}"
        )

    # A bench sample (not a fleet device) has its glitch detector fire; the card logs a warning.
    victim = manufacture_test_card(firmware_key=firmware.public_key()).card
    console.print(f"  {drill('glitching a bench sample; its tamper warning follows')}")
    victim.tamper(TamperEvent.GLITCH)
    try:
        SecureElementClient(victim).select_identity()
        zeroised = "no"
    except SecureElementError as exc:
        zeroised = f"yes (SELECT answers {exc.sw:04X})"
    console.print(
        f"  {drill('bench sample')} {victim.chip_serial.hex().upper()} glitched, "
        f"zeroised: {zeroised}"
    )

    ctx.record("secure elements exercised", str(len(line.devices)))
    ctx.record("keys generated on card and attested", str(attested))
    ctx.record("sign + ECDH by handle verified", str(signed))
    ctx.record("signed images booted", str(booted))
    ctx.record(drill("tampered images refused"), str(refused))
    ctx.record(drill("glitched bench sample zeroised"), zeroised)
