"""Setting the fields of frozen, slotted dataclasses in their own ``__init__``.

A frozen dataclass's generated ``__init__`` writes each field through ``object.__setattr__``; for
the small value objects the codecs make by the dozen per APDU or certificate (``CommandApdu``,
``Tlv``), that is most of their cost. A slot's member descriptor writes the field directly, as
``object.__setattr__`` ends up doing, and the class's own ``__setattr__`` still refuses changes
afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["slot_setter"]


def slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The ``__set__`` of the slot ``name`` of ``cls`` (a dataclass made with ``slots=True``)."""
    descriptor: Any = cls.__dict__[name]
    setter: Callable[[Any, Any], None] = descriptor.__set__
    return setter
