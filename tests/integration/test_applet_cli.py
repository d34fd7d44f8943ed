"""``fleetid applet``: the operator pushes an applet version to cards kept in files, signed by
the authority's HSM key, and the audit log holds each card's GET STATUS before and after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.authority_server import fleetid

from fleetid.factory.auditlog import AuditLogReader
from fleetid.se.keystore import Silicon
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.test_card import manufacture_test_card

pytestmark = pytest.mark.slow

KEYS = StaticKeys(b"\x11" * 16, b"\x22" * 16, b"\x33" * 16)


def test_push_and_status_through_the_cli(tmp_path: Path) -> None:
    authority = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(authority)).returncode == 0
    key = fleetid("applet", "key", "--data-dir", str(authority), "--json")
    assert key.returncode == 0, key.stderr
    public = serialization.load_pem_public_key(json.loads(key.stdout)["public_key"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    cards = []
    for name in ("a", "b"):
        silicon = Silicon.fabricate()
        silicon.save(tmp_path / f"{name}.chip")
        manufacture_test_card(
            keys=KEYS,
            silicon=silicon,
            flash_path=tmp_path / f"{name}.flash",
            applet_signing_key=public,
        )
        cards += ["--card", f"{tmp_path / f'{name}.chip'}:{tmp_path / f'{name}.flash'}"]
    keys = tmp_path / "isd-keys.toml"
    keys.write_text(
        f'enc = "{KEYS.enc.hex()}"\nmac = "{KEYS.mac.hex()}"\ndek = "{KEYS.dek.hex()}"\n'
    )
    isd = ["--keys", str(keys), "--kvn", "0x30"]

    status = fleetid("applet", "status", *cards[:2], *isd, "--json")
    assert status.returncode == 0, status.stderr
    versions = {e["aid"]: e["version"] for e in json.loads(status.stdout)["load_files"]}
    assert versions["F0464C454554494401"] == 1

    push = ["applet", "push", "identity", "--data-dir", str(authority), *cards, *isd, "--json"]
    pushed = fleetid(*push[:3], "--version", "2", *push[3:])
    assert pushed.returncode == 0, pushed.stderr
    assert [(r["outcome"], r["before"], r["after"]) for r in json.loads(pushed.stdout)] == [
        ("upgraded", 1, 2)
    ] * 2

    # Version 1 again is a downgrade: each card refuses it (6985), the command exits 1.
    down = fleetid(*push[:3], "--version", "1", *push[3:])
    assert down.returncode == 1
    assert {(r["outcome"], r["status_word"]) for r in json.loads(down.stdout)} == {
        ("refused", "6985")
    }

    # The audit log holds, per card and push, its GET STATUS before and after; it verifies.
    serial = json.loads(pushed.stdout)[0]["serial"]
    entries = AuditLogReader(authority, "unused").entries_for_serial(serial)
    upgrades = [json.loads(e.body_json) for e in entries if e.kind == "ca.applet-upgrade"]
    assert [u["outcome"] for u in upgrades] == ["upgraded", "refused"]
    lf = "F0464C454554494401"
    before = {f["aid"]: f["version"] for f in upgrades[0]["before"]["load_files"]}
    after = {f["aid"]: f["version"] for f in upgrades[0]["after"]["load_files"]}
    assert (before[lf], after[lf]) == (1, 2)
    verified = fleetid("audit", "verify", "--data-dir", str(authority))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    listed = fleetid("applet", "list", "--json")
    assert {"identity"} <= {p["name"] for p in json.loads(listed.stdout)}
