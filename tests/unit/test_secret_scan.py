"""The log scanner the demo's secret test relies on finds what it must, planted in a test double
of a log (a private key as PEM, DER in base64, its scalar in hex; a token's secret; a random
secret made by fleetid code), and stays quiet on public values (a public key in every form,
random values made outside fleetid)."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from tests.secret_scan import SecretRecorder, scan

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.shamir import new_kek


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> SecretRecorder:
    recorded = SecretRecorder()
    recorded.install(monkeypatch)
    return recorded


def _log(**fields: object) -> str:
    """One line of the test double: a JSON log line as the formatter writes it."""
    return json.dumps({"level": "debug", "logger": "fleetid.double", **fields})


def test_every_form_of_a_private_key_is_found(recorder: SecretRecorder) -> None:
    key = new_private_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    sec1 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    body = "".join(pem.splitlines()[1:-1])  # the PEM body without its armour
    planted = [
        _log(message="key", value=pem),
        _log(message="body", value=body),
        _log(message="sec1", value=base64.b64encode(sec1).decode()),
        _log(message="scalar", value=scalar.hex().upper()),
        _log(message="scalar", value=base64.urlsafe_b64encode(scalar).decode()),
    ]
    hits = scan(planted, recorder.needles())
    assert [number for number, _ in hits] == [1, 2, 3, 4, 5]
    assert all("private key" in what for _, what in hits)


def test_random_secrets_from_fleetid_code_are_found(recorder: SecretRecorder) -> None:
    from fleetid.authority.provisioners import token as token_module

    password = token_module.secrets.token_urlsafe(32)  # called here: not fleetid code
    assert recorder.texts == []  # ...so not recorded
    kek = new_kek(256)  # fleetid.crypto.shamir makes it
    ((where, value),) = recorder.values
    assert value == kek and where.startswith("fleetid.crypto.shamir.new_kek")
    recorder.add_text("a token the test made", password)
    planted = [_log(message="share", value=value.hex()), _log(message="token", value=password)]
    assert [number for number, _ in scan(planted, recorder.needles())] == [1, 2]


def test_public_values_are_not_hits(recorder: SecretRecorder) -> None:
    key = new_private_key()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    clean = [
        _log(message="public key", value=public_pem.decode()),
        _log(message="public key DER", value=base64.b64encode(spki).decode()),
        _log(message="public point", value=spki[-65:].hex()),
        _log(message="serial", value=secrets.token_hex(20)),  # not fleetid code
    ]
    assert recorder.keys  # the key was recorded, and still nothing above is a hit
    assert scan(clean, recorder.needles()) == []
