"""Which HSM holds the fleet CA's keys: chosen by the settings at ``fleetid ca init``, recorded in
the data directory, followed by every later open.

* ``software`` (default): ``fleetid.hsm.software`` in ``<data-dir>/ca/hsm``.
* ``pkcs11``: a PKCS#11 token (``fleetid.hsm.pkcs11``; SoftHSM2 in tests), named by
  ``Settings.pkcs11_token`` and reached through ``Settings.pkcs11_module``. ``init`` needs the
  token's SO PIN once, to give it a random user PIN sealed under the activation key
  (``<data-dir>/ca/pkcs11-activation.json``); nobody types a PIN afterwards.

``<data-dir>/ca/hsm.json`` records the backend, the token label and the module path (public
facts, no secret). A setting that contradicts the record is refused rather than followed: the CA
keys are where ``init`` put them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from fleetid.config import Settings
from fleetid.errors import ConfigError, HsmError
from fleetid.hsm import Hsm, SoftwareHsm

__all__ = ["HSM_RECORD", "create_ca_hsm", "open_ca_hsm", "recorded_backend"]

HSM_RECORD: Final = "hsm.json"
_SOFTWARE_DIR: Final = "hsm"
_PKCS11_STATE: Final = "pkcs11-activation.json"
_FORMAT: Final = "fleetid-ca-hsm/1"


def recorded_backend(ca_dir: Path) -> dict[str, str]:
    """The backend record; a data dir from before the record existed used the software HSM."""
    path = ca_dir / HSM_RECORD
    if not path.exists():
        return {"format": _FORMAT, "backend": "software"}
    try:
        record: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from exc
    if record.get("format") != _FORMAT or record.get("backend") not in ("software", "pkcs11"):
        raise ConfigError(f"{path} is not a fleetid CA HSM record")
    return record


def _module(settings: Settings) -> str:
    from fleetid.hsm.pkcs11 import find_pkcs11_module

    return str(find_pkcs11_module(settings.pkcs11_module))


def create_ca_hsm(settings: Settings, ca_dir: Path, kek: bytes) -> Hsm:
    """A new, activated HSM for a new CA, per ``settings.hsm``; writes the record."""
    backend = settings.hsm or "software"
    record = {"format": _FORMAT, "backend": backend}
    if backend == "software":
        hsm: Hsm = SoftwareHsm.initialise(ca_dir / _SOFTWARE_DIR, kek)
    else:
        if not settings.pkcs11_token:
            raise ConfigError("FLEETID_HSM=pkcs11 needs FLEETID_PKCS11_TOKEN (the token label)")
        if not settings.pkcs11_so_pin:
            raise ConfigError(
                "fleetid ca init on a PKCS#11 token needs FLEETID_PKCS11_SO_PIN once, to set "
                "the token's user PIN"
            )
        from fleetid.hsm.pkcs11 import Pkcs11Hsm

        module = _module(settings)
        hsm = Pkcs11Hsm.initialise(
            token_label=settings.pkcs11_token,
            so_pin=settings.pkcs11_so_pin,
            state_file=ca_dir / _PKCS11_STATE,
            kek=kek,
            module=module,
        )
        record |= {"token": settings.pkcs11_token, "module": module}
    ca_dir.mkdir(parents=True, exist_ok=True)
    (ca_dir / HSM_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return hsm


def open_ca_hsm(settings: Settings, ca_dir: Path, kek: bytes) -> Hsm:
    """The CA's HSM as ``init`` recorded it, activated with ``kek``."""
    record = recorded_backend(ca_dir)
    backend = record["backend"]
    if settings.hsm is not None and settings.hsm != backend:
        raise ConfigError(
            f"the fleet CA's keys are in a {backend} HSM; FLEETID_HSM says {settings.hsm}"
        )
    if backend == "software":
        hsm: Hsm = SoftwareHsm.open(ca_dir / _SOFTWARE_DIR)
    else:
        from fleetid.hsm.pkcs11 import Pkcs11Hsm

        if settings.pkcs11_token and settings.pkcs11_token != record.get("token"):
            raise ConfigError(
                f"the fleet CA's keys are on token {record.get('token')!r}, "
                f"FLEETID_PKCS11_TOKEN says {settings.pkcs11_token!r}"
            )
        try:
            hsm = Pkcs11Hsm(
                token_label=record["token"],
                state_file=ca_dir / _PKCS11_STATE,
                module=settings.pkcs11_module or record["module"],
            )
        except KeyError as exc:
            raise ConfigError(f"{ca_dir / HSM_RECORD} names no {exc}") from None
    try:
        hsm.activate(kek)
    except HsmError:
        hsm.close()
        raise
    return hsm
