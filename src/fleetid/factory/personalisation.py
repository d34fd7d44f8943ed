"""The personalisation sequence: what turns a blank secure element into a device, in one place.

The card steps, each over ``fleetid.se.client.SecureElementClient`` (which speaks APDUs over any
transport, so nothing here does I/O of its own), in the order a device is made:

1. ``read_identity``: SELECT the ISD and read CPLC (GET DATA 9F7F); the device serial is the
   CPLC-derived SCP03 key diversification data in upper-case hex.
2. ``replace_key_set``: under the transport keys, PUT KEY a new key set (key data blocks already
   wrapped under the transport Key-DEK, GPCS §11.8.2.3), replacing the transport key set.
3. ``open_channel`` to ``IDENTITY_AID``: SCP03 into the identity applet (it takes its secure
   channel from the ISD's key sets); authenticating proves the card holds the keys (Amd D §6.2.2).
4. ``generate_attestation_key`` and ``generate_canonical_key``: GENERATE on card; the
   attestation key goes to its reserved slot, the vehicle's canonical key to
   ``CANONICAL_KEY_HANDLE`` (sign only, never exportable; ETSI TS 102 941 §6.2.3.2).
5. ``install``: one STORE DATA sequence of the personalisation objects (``objects``: the
   attestation chain device first, the trust anchors, the firmware key; docs/se-apdu.md).
6. ``lock``: SET STATUS INITIALIZED then SECURED from the ISD (GPCS §5.1.1); the card refuses
   re-personalisation from then on.
7. ``attest_canonical_key``: ATTEST the canonical key with ``canonical_challenge(serial)``; the
   certificate must certify that very key.

Where the keys are is the caller's: ``keys`` is static SCP03 keys (a test manufacturer) or a
``SessionKeySource`` (the line: static keys in the HSM, session keys derived by its CMAC), and
the attestation certificate comes from the caller's ``certify`` (a line CA in the HSM, a
software TEST CA). ``personalise`` runs the whole sequence in one go for the software line and
the test card; the provisioning line runs the same steps one at a time, because it commits its
manifest between them and resumes a card a crash left half done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import VerificationError
from fleetid.formats import x509_tbs
from fleetid.formats.attestation import KeyUsage
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import SessionKeySource, StaticKeys
from fleetid.se.wire import (
    FIDO_AID,
    FIDO_ATTESTATION_CHAIN_DGI,
    FIDO_ATTESTATION_KEY_DGI,
    IDENTITY_AID,
    ISD_AID,
    CardLifeCycle,
    Cplc,
    Curve,
    PersonalisationObject,
)

__all__ = [
    "CANONICAL_KEY_HANDLE",
    "FULL_SECURITY",
    "Certify",
    "ChannelKeys",
    "Personalised",
    "attest_canonical_key",
    "canonical_challenge",
    "device_serial",
    "generate_attestation_key",
    "generate_canonical_key",
    "inject_fido_attestation",
    "install",
    "lock",
    "objects",
    "open_channel",
    "personalise",
    "read_identity",
    "replace_key_set",
    "set_secured",
]

#: The identity-applet slot of the vehicle's canonical key (docs/se-apdu.md: host handles 01-7F).
CANONICAL_KEY_HANDLE: Final = 0x01
#: C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION (Amd D Table 7-6): every personalisation session.
FULL_SECURITY: Final = 0x33

ChannelKeys = StaticKeys | SessionKeySource
"""The keys of a secure channel: static keys in this process, or a source of session keys."""

Certify = Callable[[ec.EllipticCurvePublicKey, Cplc], Sequence[x509.Certificate]]
"""Given the attestation public key and the card's CPLC, the chain to install, device first."""


def device_serial(kdd: bytes) -> str:
    """The device serial: the CPLC-derived KDD in upper-case hex."""
    return kdd.hex().upper()


def canonical_challenge(serial: str) -> bytes:
    """The ATTEST challenge for a unit's canonical key: bound to its serial, so a certificate
    cannot be moved to another manifest row (32 bytes, within ATTEST's 64)."""
    return hashlib.sha256(b"fleetid canonical key\x00" + serial.encode()).digest()


def read_identity(client: SecureElementClient) -> Cplc:
    """Step 1: SELECT the ISD and read its CPLC (no secure channel needed)."""
    client.select_isd()
    return client.cplc()


def open_channel(
    client: SecureElementClient,
    aid: bytes,
    keys: ChannelKeys,
    kvn: int,
    level: int = FULL_SECURITY,
) -> None:
    """SELECT ``aid`` (``ISD_AID``, or ``IDENTITY_AID``: the identity applet takes its secure
    channel from the ISD's key sets) and authenticate with the key set ``kvn``; step 3 opens
    the identity applet, which proves the card holds the keys (Amd D §6.2.2)."""
    client.select(aid)
    client.open_secure_channel(keys, level, key_version=kvn)


def replace_key_set(
    client: SecureElementClient,
    *,
    new_kvn: int,
    blocks: Sequence[bytes],
    kcvs: Sequence[bytes],
    replace_kvn: int,
) -> None:
    """Step 2, inside an ISD session under the key set ``replace_kvn``: PUT KEY ``blocks``
    (wrapped key data, GPCS §11.8.2.3) as key set ``new_kvn``; the card's KCVs must match."""
    client.put_key_components(new_kvn, blocks, replace_kvn=replace_kvn, kcvs=list(kcvs))


def generate_attestation_key(
    client: SecureElementClient, curve: ec.EllipticCurve | Curve = Curve.P256
) -> ec.EllipticCurvePublicKey:
    """Step 4, in the identity session: the manufacturer attestation key, on card."""
    return client.generate_attestation_key(curve)


def generate_canonical_key(
    client: SecureElementClient, curve: Curve, *, discard_existing: bool = False
) -> ec.EllipticCurvePublicKey:
    """Step 4, in the identity session: the canonical signing key in ``CANONICAL_KEY_HANDLE``.

    ``discard_existing`` deletes a canonical key the card already holds (one a crash left
    unrecorded) before generating.
    """
    if discard_existing and any(h == CANONICAL_KEY_HANDLE for h, _, _ in client.list_keys()):
        client.delete_key(CANONICAL_KEY_HANDLE)
    return client.generate_key(curve, KeyUsage.SIGN, handle=CANONICAL_KEY_HANDLE).public_key


def objects(
    *,
    chain: bytes,
    trust_anchors: bytes | None = None,
    firmware_key: bytes | None = None,
    applet_signing_key: bytes | None = None,
) -> list[tuple[int, bytes]]:
    """The STORE DATA objects (DGI, value) of step 5, from DER: the concatenated chain (device
    first), the concatenated trust anchors, the firmware key's and the applet-signing key's
    SubjectPublicKeyInfo."""
    out = [(PersonalisationObject.ATTESTATION_CHAIN[0], chain)]
    if trust_anchors is not None:
        out.append((PersonalisationObject.TRUST_ANCHORS[0], trust_anchors))
    if firmware_key is not None:
        out.append((PersonalisationObject.FIRMWARE_KEY[0], firmware_key))
    if applet_signing_key is not None:
        out.append((PersonalisationObject.APPLET_SIGNING_KEY[0], applet_signing_key))
    return out


def inject_fido_attestation(
    client: SecureElementClient,
    keys: ChannelKeys,
    kvn: int,
    *,
    attestation_key: ec.EllipticCurvePrivateKey,
    chain: Sequence[x509.Certificate],
) -> None:
    """The FIDO applet's model attestation key and chain (leaf first, the leaf naming the
    model's AAGUID), in one STORE DATA sequence inside a full-security session (C-DECRYPTION
    keeps the key off the wire; docs/se-apdu.md). The card takes it once, before SECURED."""
    open_channel(client, FIDO_AID, keys, kvn)
    scalar = attestation_key.private_numbers().private_value.to_bytes(32, "big")
    client.store_data(
        [
            (FIDO_ATTESTATION_KEY_DGI, scalar),
            (FIDO_ATTESTATION_CHAIN_DGI, b"".join(_der(c) for c in chain)),
        ]
    )
    client.close_secure_channel()


def install(client: SecureElementClient, items: Sequence[tuple[int, bytes]]) -> None:
    """Step 5, in a session: one STORE DATA sequence (GPCS §11.11) carrying ``items``."""
    client.store_data(items)


def lock(
    client: SecureElementClient,
    keys: ChannelKeys,
    kvn: int,
    *,
    life_cycle: CardLifeCycle = CardLifeCycle.OP_READY,
    level: int = FULL_SECURITY,
) -> None:
    """Step 6: open the ISD with ``keys`` and ``set_secured``."""
    open_channel(client, ISD_AID, keys, kvn, level)
    set_secured(client, life_cycle)


def set_secured(
    client: SecureElementClient, life_cycle: CardLifeCycle = CardLifeCycle.OP_READY
) -> None:
    """Step 6, in an ISD session, the card at ``life_cycle``: SET STATUS INITIALIZED (from
    OP_READY) then SECURED (GPCS §5.1.1)."""
    if life_cycle is CardLifeCycle.OP_READY:
        client.set_status(CardLifeCycle.INITIALIZED)
    client.set_status(CardLifeCycle.SECURED)


def attest_canonical_key(
    client: SecureElementClient,
    serial: str,
    canonical_key: ec.EllipticCurvePublicKey,
    *,
    der: Callable[[x509.Certificate | ec.EllipticCurvePublicKey], bytes] | None = None,
) -> x509.Certificate:
    """Step 7, identity applet selected: ATTEST the canonical key and check that the card
    attests that very key; raise ``VerificationError`` otherwise. ``der`` may serve encodings
    the caller already holds."""
    attestation = client.attest(CANONICAL_KEY_HANDLE, canonical_challenge(serial))
    encode = der or _der
    if not x509_tbs.certifies(encode(attestation), encode(canonical_key)):
        raise VerificationError("the card attests another canonical key than the recorded one")
    return attestation


@dataclass(frozen=True, kw_only=True)
class Personalised:
    """What ``personalise`` made: the card's identity and what it holds."""

    cplc: Cplc
    serial: str
    attestation_key: ec.EllipticCurvePublicKey
    chain: tuple[x509.Certificate, ...]
    canonical_key: ec.EllipticCurvePublicKey | None
    canonical_attestation: x509.Certificate | None


def personalise(
    client: SecureElementClient,
    *,
    keys: ChannelKeys,
    key_version: int,
    certify: Certify,
    attestation_curve: ec.EllipticCurve | Curve = Curve.P256,
    canonical_curve: Curve | None = None,
    trust_anchors: Sequence[x509.Certificate] = (),
    firmware_key: ec.EllipticCurvePublicKey | None = None,
    applet_signing_key: ec.EllipticCurvePublicKey | None = None,
    secure: bool = True,
) -> Personalised:
    """Steps 1 and 3-7 on a card that already holds ``keys`` as key set ``key_version``.

    ``canonical_curve`` None makes no canonical key; ``secure`` False leaves the card OP_READY.
    """
    cplc = read_identity(client)
    serial = device_serial(cplc.kdd)
    open_channel(client, IDENTITY_AID, keys, key_version)
    attestation_key = generate_attestation_key(client, attestation_curve)
    chain = tuple(certify(attestation_key, cplc))
    install(
        client,
        objects(
            chain=b"".join(_der(c) for c in chain),
            trust_anchors=b"".join(_der(c) for c in trust_anchors) if trust_anchors else None,
            firmware_key=None if firmware_key is None else _der(firmware_key),
            applet_signing_key=None if applet_signing_key is None else _der(applet_signing_key),
        ),
    )
    canonical_key = canonical_attestation = None
    if canonical_curve is not None:
        canonical_key = generate_canonical_key(client, canonical_curve)
        canonical_attestation = attest_canonical_key(client, serial, canonical_key)
    if secure:
        lock(client, keys, key_version)
    return Personalised(
        cplc=cplc,
        serial=serial,
        attestation_key=attestation_key,
        chain=chain,
        canonical_key=canonical_key,
        canonical_attestation=canonical_attestation,
    )


def _der(value: x509.Certificate | ec.EllipticCurvePublicKey) -> bytes:
    if isinstance(value, x509.Certificate):
        return value.public_bytes(serialization.Encoding.DER)
    return value.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
