"""HSM custody of the factory's keys: one interface (``Hsm``), two backends.

``SoftwareHsm`` (``fleetid.hsm.software``) is the embedded default. ``Pkcs11Hsm`` lives in
``fleetid.hsm.pkcs11`` and is imported from there, because it needs the optional ``python-pkcs11``
dependency and a PKCS#11 module such as SoftHSM2. See ``docs/hsm.md``.
"""

from __future__ import annotations

from fleetid.hsm.base import (
    CURVES,
    KDD_LENGTH,
    AesKeyRole,
    Curve,
    DerivedKey,
    Hsm,
    KeyKind,
    Scp03KeySet,
    WrappedKey,
    aes_kcv,
    diversification_data,
)
from fleetid.hsm.software import SoftwareHsm

__all__ = [
    "CURVES",
    "KDD_LENGTH",
    "AesKeyRole",
    "Curve",
    "DerivedKey",
    "Hsm",
    "KeyKind",
    "Scp03KeySet",
    "SoftwareHsm",
    "WrappedKey",
    "aes_kcv",
    "diversification_data",
]
