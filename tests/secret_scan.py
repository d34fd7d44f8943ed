"""Find secrets in log lines: every private key, token secret and random secret a run created.

``SecretRecorder.install`` wraps, for the duration of a test, what makes secrets in fleetid:

* ``ec.generate_private_key`` and ``ec.derive_private_key`` (every software, emulated-HSM and
  emulated-card EC key goes through them): the private scalar is recorded;
* ``secrets.token_bytes`` / ``token_urlsafe`` / ``token_hex`` and ``os.urandom`` called from
  fleetid code: the value is recorded unless the call site makes a public value (a serial
  number, a challenge nonce, a request ID, a temporary file name: ``PUBLIC_CALLS``).

``needles`` turns them into the forms a leak would take: hex, base64 and base64url of each value
and of each key's scalar, every stretch of the base64 of each key's PKCS#8 and SEC 1 DER (what a
PEM body holds) that covers part of the scalar, and the PEM armour itself. ``scan`` slides a
window of ``WINDOW`` characters over each line and looks each window up, so thousands of secrets
are checked against thousands of lines in linear time.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["PUBLIC_CALLS", "WINDOW", "SecretRecorder", "scan"]

WINDOW: Final = 20  # characters: 80 bits of hex, 120 of base64; no chance match
_MIN_BYTES: Final = 10  # shorter random values are not secrets fleetid makes

# (module, function) of the calls whose random values are public by design.
PUBLIC_CALLS: Final = frozenset(
    {
        ("fleetid.authority.ca_init", "new_serial"),  # certificate serial numbers
        ("fleetid.authority.provisioners.attestation", "issue_challenge"),  # nonces
        ("fleetid.authority.provisioners.attestation", "trust_manufacturer"),  # temp file names
        ("fleetid.authority.v2x.ra", "_queue"),  # batch request IDs
        ("fleetid.api.access_log", "_request_id"),  # request IDs
        ("fleetid.hsm.base", "seal"),  # AES-GCM nonces
        ("fleetid.se.scp03.host", "initialize_update"),  # host challenges
        ("fleetid.crypto.ecies", "new_ccm_nonce"),  # CCM nonces
        ("fleetid.se.applets.fido_credentials", "_nonce"),  # in every FIDO2 credential ID
    }
)
_PEM_ARMOUR: Final = ("PRIVATE KEY-----", "PRIVATE KEY\\n", "RIVATE KEY-----")


def _forms(value: bytes) -> list[str]:
    """hex (lower case: the scan lowers each line too), base64 and base64url, unpadded."""
    return [
        value.hex(),
        base64.b64encode(value).decode().rstrip("="),
        base64.urlsafe_b64encode(value).decode().rstrip("="),
    ]


@dataclass
class SecretRecorder:
    """What a run created that must never be logged."""

    keys: list[ec.EllipticCurvePrivateKey] = field(default_factory=list)
    values: list[tuple[str, bytes]] = field(default_factory=list)  # (where, secret)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, secret text)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def keys(real: Callable[..., ec.EllipticCurvePrivateKey]) -> Callable[..., Any]:
            def make(*args: Any, **kwargs: Any) -> ec.EllipticCurvePrivateKey:
                key = real(*args, **kwargs)
                self.keys.append(key)
                return key

            return make

        def randoms(real: Callable[[int], Any], name: str) -> Callable[..., Any]:
            def make(*args: Any, **kwargs: Any) -> Any:
                value = real(*args, **kwargs)
                caller = sys._getframe(1)
                module = str(caller.f_globals.get("__name__", ""))
                site = (module, caller.f_code.co_name)
                if module.startswith("fleetid") and site not in PUBLIC_CALLS:
                    where = f"{module}.{caller.f_code.co_name} ({name})"
                    if isinstance(value, bytes) and len(value) >= _MIN_BYTES:
                        self.values.append((where, value))
                    elif isinstance(value, str) and len(value) >= WINDOW:
                        self.texts.append((where, value))
                return value

            return make

        monkeypatch.setattr(ec, "generate_private_key", keys(ec.generate_private_key))
        monkeypatch.setattr(ec, "derive_private_key", keys(ec.derive_private_key))
        for name in ("token_bytes", "token_urlsafe", "token_hex"):
            monkeypatch.setattr(secrets, name, randoms(getattr(secrets, name), name))
        monkeypatch.setattr(os, "urandom", randoms(os.urandom, "urandom"))

    def add_text(self, where: str, text: str) -> None:
        """A secret the test made itself (a passphrase it handed the run)."""
        self.texts.append((where, text))

    def needles(self) -> dict[str, str]:
        """Every window of every form a recorded secret would leak in, and what it is."""
        found: dict[str, str] = {}

        def add(text: str, what: str) -> None:
            for start in range(len(text) - WINDOW + 1):
                found.setdefault(text[start : start + WINDOW], what)

        for where, value in self.values:
            for form in _forms(value):
                add(form, f"random secret from {where}")
        for where, text in self.texts:
            add(text, f"secret text from {where}")
            add(text.encode().hex(), f"secret text from {where}, as hex")
        for index, key in enumerate(self.keys):
            what = f"private key #{index} ({key.curve.name})"
            size = (key.curve.key_size + 7) // 8
            scalar = key.private_numbers().private_value.to_bytes(size, "big")
            for form in _forms(scalar):
                add(form, what)
            for der in _der_forms(key):
                encoded = base64.b64encode(der).decode()
                first = der.index(scalar) * 4 // 3
                last = (der.index(scalar) + len(scalar)) * 4 // 3
                # The windows that hold part of the scalar: header-only windows are common
                # to every key of the curve and would match an algorithm identifier elsewhere.
                for start in range(max(0, first - WINDOW + 4), min(last, len(encoded) - WINDOW)):
                    found.setdefault(encoded[start : start + WINDOW], f"{what}, DER in base64")
        return found


def _der_forms(key: ec.EllipticCurvePrivateKey) -> list[bytes]:
    return [
        key.private_bytes(serialization.Encoding.DER, format_, serialization.NoEncryption())
        for format_ in (
            serialization.PrivateFormat.PKCS8,
            serialization.PrivateFormat.TraditionalOpenSSL,
        )
    ]


def scan(lines: Iterable[str], needles: dict[str, str]) -> list[tuple[int, str]]:
    """``(line number, what)`` for every line holding a needle or PEM private-key armour."""
    hits: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        armour = next((a for a in _PEM_ARMOUR if a in line), None)
        if armour is not None:
            hits.append((number, "PEM private key armour"))
            continue
        lowered = line.lower()
        for text in (line, lowered):
            hit = next(
                (
                    needles[text[i : i + WINDOW]]
                    for i in range(len(text) - WINDOW + 1)
                    if text[i : i + WINDOW] in needles
                ),
                None,
            )
            if hit is not None:
                hits.append((number, hit))
                break
    return hits
