"""Which HSM a ceremony makes or opens: the software HSM in ``<data-dir>/hsm``, or a PKCS#11 token.

Nothing here reads the environment: the SO PIN and a PKCS#11 module path come from the caller
(the ``fleetid ceremony`` command reads them where the config says).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fleetid.errors import (
    ConfigError,
)
from fleetid.factory.ceremony.config import HsmSpec
from fleetid.hsm.base import Hsm

__all__ = ["HSM_DIR", "initialise_hsm", "open_hsm"]

HSM_DIR: Final = "hsm"
_PKCS11_STATE: Final = "pkcs11-activation.json"


def initialise_hsm(
    spec: HsmSpec,
    data_dir: Path,
    kek: bytes,
    *,
    so_pin: str | None = None,
    pkcs11_module: str | None = None,
) -> Hsm:
    """A new HSM for a ceremony, activated with ``kek``: the software HSM, or the token of
    ``spec`` given its SO PIN (``ConfigError`` without one). A module named in ``spec`` wins over
    ``pkcs11_module``; without either, SoftHSM2 is searched for."""
    directory = data_dir / HSM_DIR
    if spec.backend == "software":
        from fleetid.hsm.software import SoftwareHsm

        return SoftwareHsm.initialise(directory, kek)
    if not so_pin:
        raise ConfigError(f"set ${spec.so_pin_env} to the token's SO PIN for the ceremony")
    from fleetid.hsm.pkcs11 import Pkcs11Hsm

    return Pkcs11Hsm.initialise(
        token_label=spec.token_label,
        so_pin=so_pin,
        state_file=directory / _PKCS11_STATE,
        kek=kek,
        module=spec.module or pkcs11_module,
    )


def open_hsm(spec: HsmSpec, data_dir: Path, *, pkcs11_module: str | None = None) -> Hsm:
    """The ceremony's HSM, locked (``activate`` it); the module as ``initialise_hsm`` chooses."""
    directory = data_dir / HSM_DIR
    if spec.backend == "software":
        from fleetid.hsm.software import SoftwareHsm

        return SoftwareHsm.open(directory)
    from fleetid.hsm.pkcs11 import Pkcs11Hsm

    return Pkcs11Hsm(
        token_label=spec.token_label,
        state_file=directory / _PKCS11_STATE,
        module=spec.module or pkcs11_module,
    )


# --- files -----------------------------------------------------------------------------------
