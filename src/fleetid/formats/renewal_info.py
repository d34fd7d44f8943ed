"""ACME Renewal Information (RFC 9773): the certificate identifier and the window's JSON.

The identifier (§4.1) is ``base64url(AKI keyIdentifier) "." base64url(serial)``, both without
padding, the serial being the DER encoding of the INTEGER's content octets (two's complement,
a leading zero octet when the high bit is set). The answer (§4.2) is a JSON object whose
``suggestedWindow`` holds ``start`` and ``end`` as RFC 3339 timestamps; a client renews at a
moment of its choosing inside it, and asks again after the ``Retry-After`` the answer carries.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from fleetid.errors import EncodingError

__all__ = ["RenewalWindow", "cert_id", "parse_cert_id", "window_from_json", "window_json"]


@dataclass(frozen=True, kw_only=True)
class RenewalWindow:
    """When to renew: any moment from ``start`` to ``end`` (RFC 9773 §4.2)."""

    start: datetime
    end: datetime


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not text or "=" in text:
        raise EncodingError("an ARI identifier part is unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EncodingError("an ARI identifier part is not base64url") from exc


def _serial_octets(serial: int) -> bytes:
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True)


def cert_id(certificate: x509.Certificate) -> str:
    """The ARI identifier of ``certificate`` (RFC 9773 §4.1); it must name its issuer's key."""
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound as exc:
        raise EncodingError("the certificate has no authority key identifier") from exc
    if aki.value.key_identifier is None:
        raise EncodingError("the certificate's authority key identifier has no keyIdentifier")
    return (
        f"{_b64url(aki.value.key_identifier)}.{_b64url(_serial_octets(certificate.serial_number))}"
    )


def parse_cert_id(text: str) -> tuple[bytes, int]:
    """The key identifier and serial an ARI identifier names; ``EncodingError`` if it is none."""
    if len(text) > 200 or text.count(".") != 1:
        raise EncodingError("an ARI identifier is two base64url parts joined by '.'")
    key_part, serial_part = text.split(".")
    key_id, octets = _unb64url(key_part), _unb64url(serial_part)
    if (
        not octets
        or octets[0] & 0x80
        or (len(octets) > 1 and octets[0] == 0 and not octets[1] & 0x80)
    ):
        raise EncodingError("an ARI serial is a positive INTEGER in its shortest form")
    return key_id, int.from_bytes(octets, "big")


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_json(window: RenewalWindow) -> dict[str, object]:
    """The RFC 9773 §4.2 answer for ``window``."""
    return {"suggestedWindow": {"start": _timestamp(window.start), "end": _timestamp(window.end)}}


def window_from_json(document: object) -> RenewalWindow:
    """The window of an RFC 9773 §4.2 answer; ``EncodingError`` if it is not one."""
    suggested = document.get("suggestedWindow") if isinstance(document, dict) else None
    if not isinstance(suggested, dict):
        raise EncodingError("a renewal-info answer has a suggestedWindow object")
    try:
        start = datetime.fromisoformat(str(suggested["start"]))
        end = datetime.fromisoformat(str(suggested["end"]))
    except (KeyError, ValueError) as exc:
        raise EncodingError("a suggestedWindow has RFC 3339 start and end") from exc
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise EncodingError("a suggestedWindow ends after it starts, with time zones")
    return RenewalWindow(start=start, end=end)
