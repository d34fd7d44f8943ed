"""The registry, the renderings and the attacker's tools."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rich.console import Console

from fleetid.crypto.keys import new_private_key, private_key_from_scalar
from fleetid.errors import NotFoundError
from fleetid.sim.threats import SCENARIOS, run_threats, scenario
from fleetid.sim.threats.render import results_json, results_table
from fleetid.sim.threats.result import Outcome, Verdict
from fleetid.sim.threats.target_fleet import TargetFleet
from fleetid.sim.threats.tools import Secret, carve, census

_PEM = serialization.Encoding.PEM


def test_the_scenarios_the_specification_names() -> None:
    assert [s.name for s in SCENARIOS] == [
        "flash-extraction",
        "firmware-extraction",
        "key-cloning",
        "fleet-compromise",
        "boot-tampering",
        "bus-attacks",
        "v2x-amplification",
        "authority-compromise",
    ]


def test_an_unknown_scenario_is_refused_with_the_known_names() -> None:
    with pytest.raises(NotFoundError, match="flash-extraction"):
        scenario("flash")


def test_the_json_and_the_table_render_the_results(target: TargetFleet) -> None:
    results = run_threats(["bus-attacks", "authority-compromise"], target=target)
    objects = json.loads(results_json(results))
    assert [o["name"] for o in objects] == ["bus-attacks", "authority-compromise"]
    for item in objects:
        assert {"name", "control", "se_device", "software_device"} <= item.keys()
        assert item["se_device"] in ("stopped", "compromised", None)
        assert item["software_device"] in ("stopped", "compromised", None)
    assert (objects[0]["se_device"], objects[0]["software_device"]) == ("stopped", None)
    assert (objects[1]["se_device"], objects[1]["software_device"]) == (None, None)
    console = Console(file=io.StringIO(), width=200)
    console.print(results_table(results))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Bus attacks" in text and "stopped" in text and "n/a" in text


def test_an_outcome_states_what_was_observed() -> None:
    with pytest.raises(ValueError):
        Outcome(verdict=Verdict.STOPPED, control="x", evidence=())


def test_the_census_finds_a_secret_in_each_careless_encoding() -> None:
    secret = Secret(kind="key", value=bytes(range(1, 33)))
    for form in (
        secret.value,
        secret.value.hex().encode(),
        secret.value.hex().upper().encode(),
        base64.b64encode(secret.value),
    ):
        assert census(b"junk" + form + b"junk", [secret]) == [secret]
    assert census(b"junk" * 50, [secret]) == []


def test_carve_keeps_only_keys_that_match_a_certificate_in_the_dump(target: TargetFleet) -> None:
    device = target.software_device()
    key_pem = device.key.private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    stranger = new_private_key().private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    certificate = device.certificate.public_bytes(_PEM)
    assert carve(key_pem + stranger + certificate).keys[0].public_key() == device.key.public_key()
    assert len(carve(key_pem + stranger + certificate).keys) == 1
    assert carve(key_pem + stranger).keys == []  # no certificate to match against
    scalar = device.key.private_numbers().private_value.to_bytes(32, "big").hex().encode()
    assert len(carve(b'"d":"' + scalar + b'"' + certificate).keys) == 1


def test_carve_finds_a_scalar_written_without_its_leading_zeros() -> None:
    key = private_key_from_scalar(
        new_private_key().private_numbers().private_value >> 8, ec.SECP256R1()
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "short scalar")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    written = f"{key.private_numbers().private_value:x}".encode()
    assert len(written) < 64
    pem = certificate.public_bytes(_PEM)
    assert len(carve(b'"d":"' + written + b'"' + pem).keys) == 1
    assert carve(b'"d":"' + written[:-1] + b'"' + pem).keys == []  # a digit short: not the key


def test_carve_opens_an_encrypted_key_with_a_string_of_the_firmware(target: TargetFleet) -> None:
    device = target.software_device()
    bundle = device.host.files["identity/key.pem"] + device.certificate.public_bytes(_PEM)
    assert carve(bundle).keys == []
    loot = carve(bundle, extra=[target.software.firmware])
    assert loot.key_for(device.certificate) is not None
    assert loot.passphrases == [target.software.passphrase]
