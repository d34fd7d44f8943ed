"""What the PIV applet keeps in the card's sealed flash (``CardState.piv``).

NIST SP 800-73-4 Part 1 §2.4 (the PIV Card Application's data model): the PIN and the PUK with
their retry counters, the card application administration key (key reference ``9B``), the
asymmetric keys by key reference (``9A`` / ``9C`` / ``9D`` / ``9E``), and the data objects by
BER-TLV tag. A factory-fresh card has the values a PIV card issuer is expected to change at
issuance (PIN ``123456``, PUK ``12345678``, administration key ``0102…08`` as AES-192, the
defaults stock PIV middleware assumes). Private keys are plain integers here, as in
``fleetid.se.state``: this object is written to flash only sealed, and no command reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from fleetid.se.piv_wire import (
    DEFAULT_MANAGEMENT_ALGORITHM,
    DEFAULT_MANAGEMENT_KEY,
    DEFAULT_PIN,
    DEFAULT_PUK,
    pad_reference_data,
)
from fleetid.se.wire import Curve

__all__ = ["PinPolicy", "PivKey", "PivState", "ReferenceData"]

_REFERENCE_LENGTH = 8
DEFAULT_RETRIES = 3


class PinPolicy(IntEnum):
    """When a key needs the PIN (Yubico's PIN policy byte, tag ``AA`` of GENERATE). ``ONCE``:
    a verified PIN covers every use until reset or reselection; ``ALWAYS``: each use needs a
    VERIFY just before (SP 800-73-4 Part 1 §3.2.2 for the digital signature key ``9C``)."""

    NEVER = 0x01
    ONCE = 0x02
    ALWAYS = 0x03


@dataclass(frozen=True, slots=True, kw_only=True)
class PivKey:
    """One asymmetric key of the PIV applet, generated on the card."""

    curve: Curve
    private_value: int
    pin_policy: PinPolicy


@dataclass(slots=True, kw_only=True)
class ReferenceData:
    """The PIN or the PUK: the value (8 bytes, ``FF``-padded) and its retry counter."""

    value: bytes
    retries: int = DEFAULT_RETRIES
    left: int = DEFAULT_RETRIES

    def to_doc(self) -> dict[str, Any]:
        return {"left": self.left, "retries": self.retries, "value": self.value.hex()}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ReferenceData:
        return cls(
            value=bytes.fromhex(doc["value"]), retries=int(doc["retries"]), left=int(doc["left"])
        )


@dataclass(slots=True, kw_only=True)
class PivState:
    """The PIV applet's persistent state (mutable: only the applet changes it)."""

    pin: ReferenceData = field(
        default_factory=lambda: ReferenceData(value=pad_reference_data(DEFAULT_PIN))
    )
    puk: ReferenceData = field(
        default_factory=lambda: ReferenceData(value=pad_reference_data(DEFAULT_PUK))
    )
    management_key: bytes = DEFAULT_MANAGEMENT_KEY
    management_algorithm: int = DEFAULT_MANAGEMENT_ALGORITHM
    keys: dict[int, PivKey] = field(default_factory=dict)
    #: Data objects by tag, each the complete TLV a GET DATA answers (``53 …``, ``7E …``).
    objects: dict[int, bytes] = field(default_factory=dict)

    def zeroise(self) -> None:
        """Forget every secret (tamper response): keys, PIN, PUK, administration key."""
        self.keys.clear()
        for reference in (self.pin, self.puk):
            reference.value = bytes(_REFERENCE_LENGTH)
            reference.left = 0
        self.management_key = bytes(len(self.management_key))

    def to_doc(self) -> dict[str, Any]:
        return {
            "keys": {
                str(ref): {
                    "curve": int(k.curve),
                    "d": f"{k.private_value:x}",
                    "pin_policy": int(k.pin_policy),
                }
                for ref, k in sorted(self.keys.items())
            },
            "management_algorithm": self.management_algorithm,
            "management_key": self.management_key.hex(),
            "objects": {str(tag): v.hex() for tag, v in sorted(self.objects.items())},
            "pin": self.pin.to_doc(),
            "puk": self.puk.to_doc(),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> PivState:
        """Raises ValueError / KeyError / TypeError on a malformed document (the caller maps)."""
        return cls(
            pin=ReferenceData.from_doc(doc["pin"]),
            puk=ReferenceData.from_doc(doc["puk"]),
            management_key=bytes.fromhex(doc["management_key"]),
            management_algorithm=int(doc["management_algorithm"]),
            keys={
                int(ref): PivKey(
                    curve=Curve(v["curve"]),
                    private_value=int(v["d"], 16),
                    pin_policy=PinPolicy(v["pin_policy"]),
                )
                for ref, v in doc["keys"].items()
            },
            objects={int(tag): bytes.fromhex(v) for tag, v in doc["objects"].items()},
        )
