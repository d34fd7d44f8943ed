"""The device's boot routine: the secure element decides whether a firmware image may run.

The host (boot ROM, in a real device) does not trust its own check of the image: it streams the
image to the secure element's boot applet (VERIFY IMAGE), and starts it only when the card answers
9000 with a measurement. The card holds the firmware verification key and the monotonic security
counter; a tampered image, an image signed by another key, or a rollback below the counter is
refused there, and this routine then raises instead of starting anything (secure-element.md §6.1,
steps 1-8; ARCHITECTURE.md flow 3).

After the card says yes, the routine parses the image itself and requires the card's measurement
to equal the image's own hash TLV, so the bytes it would start are exactly the bytes the card
measured, and it refuses images flagged NON_BOOTABLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fleetid.errors import BootRefusedError, SecureElementError, VerificationError
from fleetid.formats.mcuboot import ImageFlag, ImageHeader, ImageVersion, parse_image

__all__ = ["BootedImage", "ImageVerifier", "boot"]


class ImageVerifier(Protocol):
    """What the boot routine needs from a secure-element client (``fleetid.se.client``)."""

    def verify_image(self, image: bytes, *, confirm: bool = True) -> bytes:
        """Ask the card to verify ``image``; return its measurement or raise on refusal."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class BootedImage:
    """An image the secure element verified and the host may start."""

    header: ImageHeader
    version: ImageVersion
    security_counter: int | None
    measurement: bytes
    payload: bytes


def boot(client: ImageVerifier, image: bytes, *, confirm: bool = True) -> BootedImage:
    """Have the secure element verify ``image``; return it ready to start, or raise.

    ``confirm`` (default) tells the card this is a real boot: on success it raises its stored
    security counter to the image's (MCUboot anti-rollback). ``confirm=False`` only checks.
    Raises :class:`BootRefusedError` (a ``VerificationError``) whenever the image must not run.
    """
    try:
        measurement = client.verify_image(image, confirm=confirm)
    except SecureElementError as exc:
        raise BootRefusedError("secure element refused the image", exc.sw) from exc
    try:
        parsed = parse_image(image)
    except VerificationError as exc:  # the card accepted bytes we cannot parse: fail closed
        raise BootRefusedError(f"image does not parse on the host: {exc}") from exc
    if measurement != parsed.digest:
        raise BootRefusedError("secure element measured other bytes than the image to start")
    if parsed.header.flags & ImageFlag.NON_BOOTABLE:
        raise BootRefusedError("image is flagged NON_BOOTABLE")
    return BootedImage(
        header=parsed.header,
        version=parsed.version,
        security_counter=parsed.security_counter,
        measurement=measurement,
        payload=parsed.payload,
    )
