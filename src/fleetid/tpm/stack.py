"""The TPM software stack: tpm2-pytss over the tpm2-tss libraries, an optional part of fleetid.

tpm2-pytss has no wheel and is built against Debian's ``libtss2-dev`` (the extra ``tpm``,
``requirements/tpm.txt``). Code that reads TPM structures or drives a TPM asks ``tss()`` for the
package, so an installation without the stack imports fine and says what to install where a TPM
is needed; TSS errors become ``TpmError`` with the TPM's response code (``tss_errors``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from fleetid.errors import TpmError

__all__ = ["TPM_EXTRA", "tss", "tss_available", "tss_errors", "tss_utils"]

TPM_EXTRA = (
    "pip install -r requirements/tpm.txt (the extra 'tpm'; pip builds tpm2-pytss, which needs "
    "Debian's libtss2-dev, gcc and python3-dev)"
)


def tss() -> ModuleType:
    """The ``tpm2_pytss`` package; ``TpmError`` naming the extra if it is not installed."""
    try:
        return importlib.import_module("tpm2_pytss")
    except ImportError as exc:  # also a libtss2 the binding cannot load
        raise TpmError(f"the TPM stack is not installed ({exc}): {TPM_EXTRA}") from exc


def tss_utils() -> ModuleType:
    """``tpm2_pytss.utils``: the TSS's software halves (MakeCredential, the TCG EK templates)."""
    tss()
    return importlib.import_module("tpm2_pytss.utils")


def tss_available() -> str | None:
    """Why the TPM stack cannot be used here (``None`` if it can)."""
    try:
        tss()
    except TpmError as exc:
        return str(exc)
    return None


@contextmanager
def tss_errors(what: str) -> Iterator[None]:
    """Turn the TSS's exception for ``what`` into ``TpmError`` with the response code."""
    exception = tss().TSS2_Exception
    try:
        yield
    except exception as exc:
        raise TpmError(f"{what}: {exc}", rc=int(exc.rc)) from exc
