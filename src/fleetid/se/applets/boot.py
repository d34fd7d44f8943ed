"""The signed-boot applet: the card decides whether a firmware image is authentic and current.

The card keeps, in ``CardState.boot``, the firmware verification public key (DER
SubjectPublicKeyInfo, P-256 or P-384, personalised by the line with STORE DATA DGI ``0F03`` to the
card manager before the card is SECURED) and a monotonic security counter. VERIFY IMAGE checks
an MCUboot image with ``fleetid.formats.mcuboot.verify_image`` (magic, sizes, TLV areas, hash,
KEYHASH, ECDSA signature), then the image's signed ``SEC_CNT`` against the stored counter, and
answers with the image hash: the boot measurement (secure-element.md §6.1, steps 1-8).

Commands (CLA ``80``; no secure channel: what they reveal is public, what they change is
governed by the signature and the counter):

===============  ====  ========  ======================================================
command          INS   P1 P2     data in / data out
===============  ====  ========  ======================================================
VERIFY IMAGE     38    P1 P2     image (chained or blocks) / measurement: the hash TLV
GET BOOT STATE   3A    00 00     - / counter (4, big-endian) ‖ n ‖ KEYHASH (n bytes)
                                 ‖ m ‖ last confirmed measurement (m bytes)
===============  ====  ========  ======================================================

VERIFY IMAGE P1: ``00`` check only (the counter is compared, never changed); ``01`` confirm a
boot: on success the stored counter is raised to the image's ``SEC_CNT`` and the measurement and
version are recorded for attestation (MCUboot raises its hardware counter when an image is
confirmed). P2: ``00`` the data is the whole image, or the last block of it; ``80`` another
block follows. An image longer than one APDU is sent either with ISO 7816-4 command chaining
(CLA bit b5, ``90``/``94``, which the card assembles) or as P2=80 blocks that this applet
collects, for images longer than the 65535 bytes of one extended APDU. Any other command, or a
block with different P1, drops a pending multi-block image.

Status words (ISO 7816-4 §5.6):

* ``9000`` verified; response data is the measurement.
* ``6A80`` the image is malformed (bad magic, truncated, sizes or TLVs wrong).
* ``6982`` the image is not authentic: hash, KEYHASH or signature do not verify (wrong key,
  any changed bit).
* ``6985`` the image is authentic but refused: its security counter is lower than the stored one
  (rollback), or it carries none.
* ``6A88`` no firmware verification key is installed.
* ``6A84`` the multi-block image exceeds ``MAX_IMAGE_SIZE``.
* ``6A86`` P1/P2 not defined; ``6700`` data missing; ``6D00`` any other INS.

A refusal never changes card state.
"""

from __future__ import annotations

from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from fleetid.errors import VerificationError
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.formats.mcuboot import MalformedImageError, key_hash, verify_image
from fleetid.se.applets.base import Applet, CommandContext, Reply, refuse
from fleetid.se.state import BootState, CardState
from fleetid.se.wire import (
    BOOT_AID,
    INS_GET_BOOT_STATE,
    INS_VERIFY_IMAGE,
    P1_CHECK,
    P1_CONFIRM,
    P2_LAST_BLOCK,
    P2_MORE_BLOCKS,
)

__all__ = ["MAX_IMAGE_SIZE", "BootApplet"]

#: The largest image the applet collects from P2=80 blocks (its RAM budget).
MAX_IMAGE_SIZE = 4 * 1024 * 1024
_MAX_COUNTER = 0xFFFFFFFF


class BootApplet(Applet):
    """VERIFY IMAGE and GET BOOT STATE over ``CardState.boot``."""

    aid: ClassVar[bytes] = BOOT_AID

    def __init__(self) -> None:
        self._blocks = bytearray()
        self._blocks_p1: int | None = None

    def select(self, state: CardState) -> bytes:
        self._drop_blocks()
        return b""

    def deselect(self) -> None:
        self._drop_blocks()

    def zeroise(self) -> None:
        self._drop_blocks()

    def accepts_chaining(self, ins: int) -> bool:
        return ins == INS_VERIFY_IMAGE

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.ins == INS_VERIFY_IMAGE:
            return self._verify_image(ctx, apdu)
        self._drop_blocks()  # any other command interrupts a multi-block image
        if apdu.ins == INS_GET_BOOT_STATE:
            if apdu.p1 or apdu.p2:
                raise refuse(SW.INCORRECT_P1P2, "GET BOOT STATE has P1=P2=00")
            return Reply(data=_encode_boot_state(ctx.state.boot))
        raise refuse(SW.INS_NOT_SUPPORTED, f"INS {apdu.ins:02X}")

    # -- VERIFY IMAGE ------------------------------------------------------------------------

    def _verify_image(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.p1 not in (P1_CHECK, P1_CONFIRM) or apdu.p2 not in (P2_LAST_BLOCK, P2_MORE_BLOCKS):
            self._drop_blocks()
            raise refuse(SW.INCORRECT_P1P2, "VERIFY IMAGE P1 is 00/01 and P2 is 00/80")
        if self._blocks_p1 is not None and self._blocks_p1 != apdu.p1:
            self._drop_blocks()
            raise refuse(SW.INCORRECT_P1P2, "P1 changed inside a multi-block image")
        if not apdu.data:
            self._drop_blocks()
            raise refuse(SW.WRONG_LENGTH, "VERIFY IMAGE carries image data")
        if len(self._blocks) + len(apdu.data) > MAX_IMAGE_SIZE:
            self._drop_blocks()
            raise refuse(SW.NOT_ENOUGH_MEMORY, f"image exceeds {MAX_IMAGE_SIZE} bytes")
        self._blocks += apdu.data
        if apdu.p2 == P2_MORE_BLOCKS:
            self._blocks_p1 = apdu.p1
            return Reply()
        image = bytes(self._blocks)
        self._drop_blocks()
        return Reply(data=_check_image(ctx, image, confirm=apdu.p1 == P1_CONFIRM))

    def _drop_blocks(self) -> None:
        self._blocks = bytearray()
        self._blocks_p1 = None


def _firmware_key(boot: BootState) -> ec.EllipticCurvePublicKey:
    if boot.verification_key is None:
        raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "no firmware verification key installed")
    key = load_der_public_key(boot.verification_key)
    if not isinstance(key, ec.EllipticCurvePublicKey):  # STORE DATA 0F03 admits only EC keys
        raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "stored firmware key is not an EC key")
    return key


def _check_image(ctx: CommandContext, image: bytes, *, confirm: bool) -> bytes:
    boot = ctx.state.boot
    key = _firmware_key(boot)
    try:
        parsed = verify_image(image, key)
    except MalformedImageError as exc:
        raise refuse(SW.INCORRECT_DATA, f"malformed image: {exc}") from exc
    except VerificationError as exc:
        raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, f"image not authentic: {exc}") from exc
    counter = parsed.security_counter
    if counter is None:
        # MCUboot with hardware rollback protection rejects an image without SEC_CNT.
        raise refuse(SW.CONDITIONS_NOT_SATISFIED, "image has no security counter")
    if counter < boot.security_counter:
        raise refuse(
            SW.CONDITIONS_NOT_SATISFIED,
            f"rollback: image counter {counter} < stored {boot.security_counter}",
        )
    if confirm:
        boot.security_counter = max(boot.security_counter, min(counter, _MAX_COUNTER))
        boot.measurement = parsed.digest
        boot.image_version = str(parsed.version)
        ctx.persist()
    return parsed.digest


# -- wire format, shared with the host side (fleetid.se.client) ------------------------------


def _encode_boot_state(boot: BootState) -> bytes:
    fingerprint = b""
    if boot.verification_key is not None:
        fingerprint = key_hash(_firmware_key(boot))
    measurement = boot.measurement or b""
    return (
        boot.security_counter.to_bytes(4, "big")
        + bytes((len(fingerprint),))
        + fingerprint
        + bytes((len(measurement),))
        + measurement
    )
