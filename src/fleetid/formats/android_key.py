"""The Android Keystore attestation extension (``KeyDescription``), as WebAuthn §8.4 reads it.

The leaf of an android-key statement carries the extension 1.3.6.1.4.1.11129.2.1.17, whose value
is the DER ``KeyDescription`` of Android's key attestation schema (AOSP "Verifying hardware-backed
key pairs with key attestation", schema versions 1 to 400)::

    KeyDescription ::= SEQUENCE {
        attestationVersion INTEGER, attestationSecurityLevel SecurityLevel,
        keyMintVersion INTEGER, keyMintSecurityLevel SecurityLevel,
        attestationChallenge OCTET STRING, uniqueId OCTET STRING,
        softwareEnforced AuthorizationList, hardwareEnforced AuthorizationList }

An ``AuthorizationList`` is a SEQUENCE of optional, EXPLICIT context-tagged fields, more with each
schema version; the tags WebAuthn reads are ``purpose`` [1] (SET OF INTEGER), ``allApplications``
[600] (NULL) and ``origin`` [702] (INTEGER). Unknown tags are kept by number and skipped, so a
newer schema still parses. asn1crypto decodes the outer SEQUENCE and walks the lists' elements.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from asn1crypto import core, parser

from fleetid.errors import EncodingError

__all__ = [
    "ANDROID_KEY_DESCRIPTION_OID",
    "KM_ORIGIN_GENERATED",
    "KM_PURPOSE_SIGN",
    "TAG_ALL_APPLICATIONS",
    "TAG_ORIGIN",
    "TAG_PURPOSE",
    "AuthorizationList",
    "KeyDescription",
    "SecurityLevel",
    "decode_key_description",
]

ANDROID_KEY_DESCRIPTION_OID: Final = "1.3.6.1.4.1.11129.2.1.17"
TAG_PURPOSE: Final = 1
TAG_ALL_APPLICATIONS: Final = 600
TAG_ORIGIN: Final = 702
KM_PURPOSE_SIGN: Final = 2
KM_ORIGIN_GENERATED: Final = 0

_CONTEXT: Final = 2  # the context-specific class in asn1crypto.parser's numbering


class SecurityLevel(enum.IntEnum):
    SOFTWARE = 0
    TRUSTED_ENVIRONMENT = 1
    STRONG_BOX = 2


class _SecurityLevel(core.Enumerated):  # type: ignore[misc]
    _map = {0: "software", 1: "trusted-environment", 2: "strong-box"}  # noqa: RUF012


class _KeyDescription(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 - asn1crypto's schema attribute
        ("attestationVersion", core.Integer),
        ("attestationSecurityLevel", _SecurityLevel),
        ("keyMintVersion", core.Integer),
        ("keyMintSecurityLevel", _SecurityLevel),
        ("attestationChallenge", core.OctetString),
        ("uniqueId", core.OctetString),
        ("softwareEnforced", core.Sequence),
        ("hardwareEnforced", core.Sequence),
    ]


@dataclass(frozen=True)
class AuthorizationList:
    """The fields of one list: tag number -> the DER of the explicitly tagged inner value."""

    fields: Mapping[int, bytes]

    def has(self, tag: int) -> bool:
        return tag in self.fields

    def integer(self, tag: int) -> int | None:
        if tag not in self.fields:
            return None
        return int(_load(core.Integer, self.fields[tag], tag).native)

    def integer_set(self, tag: int) -> frozenset[int]:
        if tag not in self.fields:
            return frozenset()
        values = _load(core.SetOf, self.fields[tag], tag, child=core.Integer)
        return frozenset(int(v.native) for v in values)


@dataclass(frozen=True, kw_only=True)
class KeyDescription:
    attestation_version: int
    attestation_security_level: SecurityLevel
    attestation_challenge: bytes
    software_enforced: AuthorizationList
    hardware_enforced: AuthorizationList


def _load(
    kind: type[core.Asn1Value], der: bytes, tag: int, child: type[core.Asn1Value] | None = None
) -> core.Asn1Value:
    spec: Any = type("_Of", (core.SetOf,), {"_child_spec": child}) if child is not None else kind
    try:
        value = spec.load(der, strict=True)
        value.native  # noqa: B018 - decodes the contents now, so that errors surface here
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"authorization list field [{tag}] does not decode") from exc
    return value


def _authorization_list(sequence: core.Sequence, what: str) -> AuthorizationList:
    fields: dict[int, bytes] = {}
    rest = sequence.contents or b""
    while rest:
        try:
            class_, _method, tag, header, inner, trailer = parser.parse(rest)
        except ValueError as exc:
            raise EncodingError(f"{what} is not a DER SEQUENCE of tagged fields") from exc
        if class_ != _CONTEXT or tag in fields:
            raise EncodingError(f"{what} holds an untagged or repeated field ({tag})")
        fields[tag] = inner
        rest = rest[len(header) + len(inner) + len(trailer) :]
    return AuthorizationList(fields)


def decode_key_description(der: bytes) -> KeyDescription:
    """Decode the extension value; raise ``EncodingError`` unless it is DER of the schema."""
    try:
        parsed = _KeyDescription.load(der, strict=True)
        level = int(parsed["attestationSecurityLevel"])
        challenge = bytes(parsed["attestationChallenge"].native)
        version = int(parsed["attestationVersion"].native)
        software = parsed["softwareEnforced"]
        hardware = parsed["hardwareEnforced"]
    except (ValueError, TypeError, KeyError) as exc:
        raise EncodingError(f"the Android key description does not decode: {exc}") from exc
    if level not in set(SecurityLevel):
        raise EncodingError(f"unknown attestation security level {level}")
    return KeyDescription(
        attestation_version=version,
        attestation_security_level=SecurityLevel(level),
        attestation_challenge=challenge,
        software_enforced=_authorization_list(software, "softwareEnforced"),
        hardware_enforced=_authorization_list(hardware, "hardwareEnforced"),
    )
