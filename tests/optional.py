"""The one place that decides what a missing optional part does to a test.

The optional parts are the Python extras (pyscard, python-pkcs11, tpm2-pytss), tools from Debian's
packages (openssl, softhsm2-util, pcscd, ssss-combine, curl, swtpm, tpm2-tools, opensc,
yubico-piv-tool) and local services (PostgreSQL, Mosquitto). A user's fresh clone may have none
of them: the tests that need one skip there and name what to install. CI installs them all, so
under ``CI=true`` a missing part fails the test instead, and ``conftest.py`` turns any other skip
into a failure too.

Every call may be made at module level (a test module that imports an optional package at its top
skips as a whole instead of breaking collection) or inside a test or fixture.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = [
    "PCSC_EXTRA",
    "PKCS11_EXTRA",
    "in_ci",
    "require_module",
    "require_tcp",
    "require_tool",
    "unavailable",
]

# How to install the optional Python extras, for the skip message.
PKCS11_EXTRA = "pip install -r requirements/pkcs11.txt (the extra 'pkcs11')"
PCSC_EXTRA = (
    "pip install -r requirements/pcsc.txt (the extra 'pcsc'; pip builds pyscard, which needs "
    "Debian's swig, gcc, python3-dev and libpcsclite-dev)"
)

# Debian packages of the tools the tests run, for the skip message.
_DEBIAN_PACKAGES = {
    "openssl": "openssl",
    "curl": "curl",
    "softhsm2-util": "softhsm2",
    "pcscd": "pcscd",
    "ssss-combine": "ssss",
    "ssss-split": "ssss",
    "swtpm": "swtpm swtpm-tools",
    "tpm2_print": "tpm2-tools",
    "pkcs11-tool": "opensc",
    "piv-tool": "opensc",
    "yubico-piv-tool": "yubico-piv-tool",
    "ip": "iproute2",
}


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail under ``CI=true``, where every optional part is installed."""
    if in_ci():
        pytest.fail(f"{reason} (required under CI=true)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, *, install: str) -> ModuleType:
    """Import ``name``; ``install`` says how to get it (for example ``pip's extra 'pcsc'``)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"Python package {name.split('.')[0]} is not importable ({exc}): {install}")


def require_tool(name: str) -> str:
    """The path of an external command on PATH."""
    path = shutil.which(name)
    if path is None:
        package = _DEBIAN_PACKAGES.get(name, name)
        unavailable(f"{name} is not installed (Debian: apt-get install {package})")
    return path


def require_tcp(host: str, port: int, *, what: str) -> None:
    """A service that must accept TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        unavailable(f"no {what} on {host}:{port} ({exc.strerror or exc})")
