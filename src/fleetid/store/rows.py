"""Typed records from result rows: one conversion for every repository."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["record_from_row"]

_T = TypeVar("_T")


def record_from_row(cls: type[_T], row: Any, **values: object) -> _T:
    """The dataclass ``cls`` from ``row``'s columns of the same names, ``values`` taking their
    place where given (a column under another name, or one converted to its enum). PostgreSQL
    returns binary columns as ``memoryview``: they become ``bytes``."""
    columns = row._mapping
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.name
        if name not in values and name in columns:
            value = columns[name]
            values[name] = bytes(value) if isinstance(value, memoryview) else value
    return cls(**values)
