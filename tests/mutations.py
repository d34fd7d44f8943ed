"""Mutated encodings for the decoders' agreement tests: a decoder and an independent reading must
accept the same bytes, read them alike, and refuse the same bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from hypothesis import strategies as st

from fleetid.errors import EncodingError

__all__ = ["KINDS", "mutate", "outcome"]

T = TypeVar("T")

# One byte replaced, the encoding cut short, one byte inserted, or the encoding as it is.
KINDS: Final = ("byte", "truncate", "insert", "none")


def mutate(data: st.DataObject, encoding: bytes, kind: str) -> bytes:
    """``encoding`` mutated as ``kind`` says, the place and the byte drawn from ``data``."""
    mutated = bytearray(encoding)
    if kind == "byte":
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        del mutated[data.draw(st.integers(0, len(mutated) - 1)) :]
    elif kind == "insert":
        mutated.insert(data.draw(st.integers(0, len(mutated))), data.draw(st.integers(0, 255)))
    return bytes(mutated)


def outcome(read: Callable[[bytes], T], encoding: bytes) -> T | str:
    """What ``read`` makes of ``encoding``, or ``"refused"`` if it raises ``EncodingError``."""
    try:
        return read(encoding)
    except EncodingError:
        return "refused"
