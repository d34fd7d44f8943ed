"""Canonical OER (COER) for the IEEE 1609.2 / ETSI TS 103 097 / TS 102 941 subset fleetid uses.

The ASN.1 text is ours (the ``*.asn`` files beside this module, written from the standards) and
is compiled once per process with asn1tools. Decoding is strict: the constraints are checked,
and the input must be exactly the canonical encoding of what it decodes to (IEEE 1609.2 §6.1
requires COER), so there are no trailing bytes and the signed parts we hash are the received
bytes. Type names are unique across the six modules, so a bare name finds its type.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import asn1tools

from fleetid.errors import EncodingError

__all__ = ["decode", "encode", "schema"]

_MODULE_FILES = (
    "Ieee1609Dot2BaseTypes.asn",
    "Ieee1609Dot2.asn",
    "Ieee1609Dot2CrlBaseTypes.asn",
    "EtsiTs103097Module.asn",
    "EtsiTs102941Messages.asn",
    "FleetidButterfly.asn",
)


@functools.cache
def schema() -> Any:
    """The compiled OER specification (cached: compiling takes about 0.3 s)."""
    here = Path(__file__).resolve().parent
    return asn1tools.compile_files([str(here / name) for name in _MODULE_FILES], "oer")


def encode(type_name: str, value: Any) -> bytes:
    """COER-encode ``value`` as ``type_name``; ``EncodingError`` if it does not fit the type."""
    try:
        return bytes(schema().encode(type_name, value, check_constraints=True))
    except (asn1tools.Error, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EncodingError(f"cannot encode {type_name}: {exc}") from exc


def decode(type_name: str, data: bytes) -> Any:
    """Decode canonical OER; ``EncodingError`` if truncated, over-long, non-canonical or invalid."""
    try:
        value = schema().decode(type_name, bytes(data), check_constraints=True)
    except (asn1tools.Error, KeyError, TypeError, ValueError, IndexError) as exc:
        raise EncodingError(f"not a valid {type_name}: {exc}") from exc
    # The decoded value is known to fit the type, so the canonical check re-encodes unchecked.
    try:
        canonical = bytes(schema().encode(type_name, value, check_types=False))
    except (asn1tools.Error, KeyError, TypeError, ValueError, AttributeError) as exc:
        # e.g. an extension alternative this schema does not declare, decoded as (None, None)
        raise EncodingError(f"{type_name} holds a value fleetid does not support: {exc}") from exc
    if canonical != data:
        # Trailing bytes, a non-canonical length or a DEFAULT value sent explicitly.
        raise EncodingError(f"not the canonical OER encoding of a {type_name}")
    return value
