"""Package exports loaded on first use (PEP 562 module ``__getattr__``).

A package lists its public names in ``__all__`` and, for each module, the names it exports.
Importing the package loads nothing; the first use of a name imports its module. So ``from
fleetid.revocation import verify_crl`` does not pull in the CRL publisher's SQLAlchemy, and
``import fleetid.se.client`` does not load the emulated card: light modules stay light behind a
curated surface. Type checkers read the package's ``TYPE_CHECKING`` imports of the same names.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, public: Sequence[str], modules: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, from ``{module: (name, ...)}``.

    ``public`` is the package's ``__all__``; it must name exactly what ``modules`` exports.
    """
    origin = {name: module for module, names in modules.items() for name in names}
    if sorted(origin) != sorted(public):
        raise ImportError(f"{package}.__all__ and its export table disagree")

    def __getattr__(name: str) -> Any:
        module = origin.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted(origin)

    return __getattr__, __dir__
