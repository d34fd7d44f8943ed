"""Attested enrolment set up from the CLI alone, on a running server: ``fleetid ca
trust-manufacturer`` / ``manufacturers`` / ``distrust-manufacturer``, ``fleetid line
export-manifest`` and ``fleetid ca import-manifest``, each taking effect without a restart."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from tests.authority_server import fleetid, free_port, serving

pytestmark = pytest.mark.slow


def _ok(ran: subprocess.CompletedProcess[str]) -> str:
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


def _refused(ran: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr and len(ran.stderr.splitlines()) == 1, ran.stderr
    for needle in needles:
        assert needle in ran.stderr, ran.stderr


def test_trust_and_manifest_verbs_take_effect_on_a_running_server(tmp_path: Path) -> None:
    """Regression: the manufacturer root had to be copied by hand into a directory and the
    server restarted; the manifest could be imported only from Python."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    cfg, factory, authority = tmp_path / "cfg", tmp_path / "factory", tmp_path / "authority"
    _ok(fleetid("ceremony", "example", "--out", str(cfg), env=env))
    config = str(cfg / "ceremony.toml")
    _ok(fleetid("ceremony", "init", "--config", config, "--data-dir", str(factory), env=env))
    activate = ["ceremony", "activate", "--data-dir", str(factory)]
    for share in sorted((factory / "shares").glob("*.toml"))[:3]:
        activate += ["--share", str(share)]
    _ok(fleetid(*activate, env=env))
    keys = str(cfg / "transport-keys.toml")
    _ok(
        fleetid(
            "line",
            "run",
            "--devices",
            "2",
            "--data-dir",
            str(factory),
            "--transport-keys",
            keys,
            env=env,
        )
    )
    manifest = tmp_path / "manifest.json"
    exported = _ok(
        fleetid(
            "line", "export-manifest", "--data-dir", str(factory), "--out", str(manifest), env=env
        )
    )
    assert exported.startswith("2 secured and 0 quarantined units")

    _ok(fleetid("ca", "init", "--data-dir", str(authority), env=env))
    chain = _ok(fleetid("ca", "certs", "--data-dir", str(authority), env=env))
    fleet_root = tmp_path / "fleet-root.pem"
    fleet_root.write_text(
        re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", chain, re.S)[-1]
    )
    maker_root = factory / "manufacturer-root.pem"

    def ca_verb(verb: str, *args: str) -> subprocess.CompletedProcess[str]:
        return fleetid("ca", verb, "--data-dir", str(authority), *args, env=env)

    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def enrol(unit: str) -> subprocess.CompletedProcess[str]:
        return fleetid(
            "device", "enrol", "--wafer", str(factory / "wafer"), "--unit", unit,
            "--state", str(tmp_path / f"state-{unit}"), "--ca-url", url, "--root", str(fleet_root),
            env=env,
        )  # fmt: skip

    with serving(authority, [port], ["--http", f"127.0.0.1:{port}"], env=env):
        _refused(enrol("LOT1-000000"), "no manufacturer root is trusted")

        trusted = _ok(ca_verb("trust-manufacturer", "--cert", str(maker_root)))
        assert trusted.startswith("trusted ") and "Manufacturer Root" in trusted
        fingerprint = trusted.split()[1]
        assert _ok(ca_verb("manufacturers")).split()[0] == fingerprint
        _refused(enrol("LOT1-000000"), "not on a manifest trusted here", "[not-on-manifest]")

        assert _ok(ca_verb("import-manifest", str(manifest), "--unit", "LOT1-000000")) == (
            "imported 1 units, 0 listed already\n"
        )
        assert "credential " in _ok(enrol("LOT1-000000"))  # no restart in between
        _refused(enrol("LOT1-000001"), "[not-on-manifest]")
        # Importing again is harmless; the whole file adds the second unit.
        assert (
            _ok(ca_verb("import-manifest", str(manifest))) == "imported 1 units, 1 listed already\n"
        )

        assert _ok(ca_verb("distrust-manufacturer", fingerprint[:16])).startswith("distrusted ")
        assert _ok(ca_verb("manufacturers")) == ""
        _refused(enrol("LOT1-000001"), "no manufacturer root is trusted")
        _ok(ca_verb("trust-manufacturer", "--cert", str(maker_root)))
        assert "credential " in _ok(enrol("LOT1-000001"))

    # Refusals, each one line.
    _refused(
        ca_verb("trust-manufacturer", "--cert", str(cfg / "ceremony.toml")),
        "is not one PEM certificate",
    )
    _refused(
        ca_verb("trust-manufacturer", "--cert", str(factory / "line-ca.pem")),
        "is not a self-signed root",
    )
    _refused(ca_verb("distrust-manufacturer", "00" * 8), "no trusted manufacturer root")
    _refused(ca_verb("distrust-manufacturer", "abc"), "at least 16 hex digits")
    _refused(
        ca_verb("import-manifest", str(manifest), "--unit", "LOT9-000000"),
        "lists no unit LOT9-000000",
    )
    _refused(
        fleetid(
            "ca", "import-manifest", "--data-dir", str(tmp_path / "none"), str(manifest), env=env
        ),
        "no fleet CA",
    )
    doc = json.loads(manifest.read_text())
    forged = dict(doc["units"][0], idevid_fingerprint="00" * 32)
    (tmp_path / "forged.json").write_text(json.dumps({**doc, "units": [forged]}))
    _refused(
        ca_verb("import-manifest", str(tmp_path / "forged.json")), "is not the IDevID's SHA-256"
    )
    swapped = dict(doc["units"][0], unit="LOT1-000009")  # a listed serial, another unit name
    (tmp_path / "swapped.json").write_text(json.dumps({**doc, "units": [swapped]}))
    _refused(
        ca_verb("import-manifest", str(tmp_path / "swapped.json")), "StoreError", "lists serial"
    )
    garbage = dict(doc["units"][1], idevid=base64.b64encode(b"not DER").decode())
    (tmp_path / "garbage.json").write_text(json.dumps({**doc, "units": [garbage]}))
    _refused(ca_verb("import-manifest", str(tmp_path / "garbage.json")), "not a DER certificate")
