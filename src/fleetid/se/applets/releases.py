"""The applet classes behind the known packages (``fleetid.se.packages``), on the card side.

A package names its applet class as ``module:Class``; the card imports it when the package is
loaded or installed, so declaring a package is the only step an applet needs. ``register`` binds
a package to a class directly (an applet defined where importing by name is not wanted).
"""

from __future__ import annotations

import importlib

from fleetid.se.applets.base import Applet
from fleetid.se.packages import AppletPackage

__all__ = ["applet_class", "implementation_of", "register"]

_REGISTERED: dict[AppletPackage, type[Applet]] = {}


def register(package: AppletPackage, applet: type[Applet]) -> None:
    """Bind ``package`` to ``applet`` (instead of importing ``package.implementation``)."""
    _REGISTERED[package] = applet


def implementation_of(applet: type[Applet]) -> str:
    """The ``module:Class`` name a package gives for ``applet``."""
    return f"{applet.__module__}:{applet.__qualname__}"


def applet_class(package: AppletPackage) -> type[Applet] | None:
    """The applet class of ``package``: one that answers its module AID, or None."""
    cls = _REGISTERED.get(package)
    if cls is None:
        module_name, _, class_name = package.implementation.partition(":")
        if not module_name.startswith("fleetid.se.applets.") or not class_name:
            return None  # the card runs only its own applet modules
        try:
            found = getattr(importlib.import_module(module_name), class_name, None)
        except ImportError:
            return None
        if not isinstance(found, type) or not issubclass(found, Applet):
            return None
        cls = found
    return cls if getattr(cls, "aid", None) == package.module_aid else None
