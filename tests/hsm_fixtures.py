"""Fixtures for the HSM tests: a backend-parametrised HSM, and SoftHSM2 tokens in a temp dir.

SoftHSM2 reads ``SOFTHSM2_CONF`` once, when the module is first initialised in the process, so the
configuration (its token directory under pytest's temp dir) is session-wide. Each test gets its own
token, made with ``softhsm2-util --init-token --free``. The library is then re-initialised so that
it sees the new slot. Where SoftHSM2 is absent, the tests skip and say why. Under ``CI=true`` they
fail instead.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetid.hsm import Hsm, SoftwareHsm
from tests.optional import PKCS11_EXTRA, require_module, require_tool, unavailable

__all__ = [
    "KEK",
    "PKCS11_EXTRA",
    "SO_PIN",
    "Backend",
    "backend_for",
    "make_softhsm",
    "require_module",
    "require_tool",
    "softhsm_session",
]

KEK = bytes.fromhex("000102030405060708090a0b0c0d0e0f")  # test-only key-encryption key
SO_PIN = "test-so-pin-5678"


def _softhsm_module() -> str:
    from fleetid.config import PKCS11_MODULE_ENV
    from fleetid.errors import HsmError
    from fleetid.hsm.pkcs11 import find_pkcs11_module

    try:
        return str(find_pkcs11_module(os.environ.get(PKCS11_MODULE_ENV)))
    except HsmError as exc:
        unavailable(str(exc))


def softhsm_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Body of a session-scoped fixture: a SoftHSM2 configuration for this process."""
    require_tool("softhsm2-util")
    require_module("pkcs11", install=PKCS11_EXTRA)
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    yield conf
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


def make_softhsm(conf: Path) -> tuple[str, str]:
    """Initialise a fresh token; returns (token label, module path)."""
    import pkcs11

    module = _softhsm_module()
    label = f"fleetid-{uuid.uuid4().hex[:12]}"
    subprocess.run(
        [
            require_tool("softhsm2-util"),
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            "initial-user-pin",
            "--so-pin",
            SO_PIN,
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
    )
    pkcs11.lib(module).reinitialize()  # SoftHSM2 lists slots as of C_Initialize
    return label, module


@dataclass
class Backend:
    """How a test makes HSMs of one kind: ``create`` one (activated), ``reopen`` it (locked)."""

    name: str
    create: Callable[[bytes], Hsm]
    reopen: Callable[[], Hsm]


def backend_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Body of a function fixture: HSMs of ``kind``, closed at teardown."""
    opened: list[Hsm] = []

    def track(hsm: Hsm) -> Hsm:
        opened.append(hsm)
        return hsm

    if kind == "software":
        store = tmp_path / "hsm"
        result = Backend(
            name="software",
            create=lambda kek: track(SoftwareHsm.initialise(store, kek)),
            reopen=lambda: track(SoftwareHsm.open(store)),
        )
    else:
        # The SoftHSM2 configuration first: it skips (or fails under CI) without SoftHSM2 or
        # python-pkcs11, which the import below needs.
        conf = request.getfixturevalue("softhsm_conf")
        from fleetid.hsm.pkcs11 import Pkcs11Hsm

        token, module = make_softhsm(conf)
        state = tmp_path / "pkcs11-activation.json"
        result = Backend(
            name="softhsm",
            create=lambda kek: track(
                Pkcs11Hsm.initialise(
                    token_label=token, so_pin=SO_PIN, state_file=state, kek=kek, module=module
                )
            ),
            reopen=lambda: track(Pkcs11Hsm(token_label=token, state_file=state, module=module)),
        )
    yield result
    for hsm in opened:
        hsm.close()
