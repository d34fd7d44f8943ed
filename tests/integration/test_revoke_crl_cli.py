"""B17: ``fleetid revoke`` and ``fleetid crl publish`` through the real CLI: a device revoked
twice is refused the second time, ``crl publish`` names shards as the URLs do (issuing-1), and
every error is one line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.authority_server import fleetid

from fleetid.authority.fleet_ca import CRL_SHARDS, FleetCa
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.policy import CredentialType
from fleetid.store.schema import DeviceStatus

_BASE = "http://revocation.example"
_DOWN = "postgresql+psycopg://fleetid@127.0.0.1:1/nowhere"  # nothing listens on port 1


@dataclass(frozen=True)
class Authority:
    data_dir: Path
    env: dict[str, str]
    serials: list[str]  # the device's two certificates


@pytest.fixture
def authority(tmp_path: Path) -> Iterator[Authority]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "FLEETID_DATABASE_URL"},
        "FLEETID_PUBLIC_URL": _BASE,
    }
    data_dir = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data_dir), env=env).returncode == 0
    ca = FleetCa.open(Settings.load(data_dir, environ={"FLEETID_PUBLIC_URL": _BASE}),
                      clock=SystemClock())  # fmt: skip
    try:
        with ca.store.transaction() as tx:
            tx.devices.add("gw-1", DeviceStatus.ENROLLED, ca.clock.now(), provisioner="token")
            serials = []
            for _ in range(2):
                certificate, _ = ca.issue(
                    tx,
                    public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                    credential_type=CredentialType.OPERATIONAL,
                    common_name="gw-1",
                    device_id="gw-1",
                )
                serials.append(f"{certificate.serial_number:x}")
    finally:
        ca.close()
    yield Authority(data_dir=data_dir, env=env, serials=serials)


def _refused(result: object, fragment: str) -> None:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode != 0, result  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert fragment in stderr, stderr


def test_revoking_a_device_twice_is_refused(authority: Authority) -> None:
    args = ("revoke", "--data-dir", str(authority.data_dir), "--device", "gw-1")
    first = fleetid(*args, "--reason", "keyCompromise", env=authority.env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("revoked ") == 2
    _refused(fleetid(*args, "--reason", "keyCompromise", env=authority.env), "already revoked")


def test_every_revoke_error_is_one_line(authority: Authority, tmp_path: Path) -> None:
    env, data_dir = authority.env, str(authority.data_dir)
    serial = authority.serials[0]

    def revoke(*args: str, environ: dict[str, str] | None = None) -> object:
        return fleetid("revoke", "--data-dir", data_dir, *args, env=environ or env)

    assert revoke(serial, "--reason", "certificateHold").returncode == 0
    _refused(revoke(serial, "--reason", "superseded"), "already revoked")
    _refused(revoke("ab" * 21, "--reason", "superseded"), "1..20 octets")
    _refused(revoke("nothex", "--reason", "superseded"), "not a hexadecimal serial")
    _refused(revoke("7" * 40, "--reason", "superseded"), "no certificate")
    _refused(revoke(authority.serials[1], "--reason", "stolen"), "not an RFC 5280")
    _refused(revoke(authority.serials[1], "--reason", "removeFromCRL"), "only delta CRLs")
    _refused(revoke(authority.serials[1]), "give --reason")
    _refused(revoke(authority.serials[1], "--release"), "no hold to release")
    _refused(revoke(serial, "--release", "--reason", "keyCompromise"), "takes no --reason")
    _refused(revoke("--device", "gw-1", "--release"), "not --device")
    _refused(revoke(authority.serials[1], "--reason", "keyCompromise", "--escalate"),
             "not revoked")  # fmt: skip
    _refused(revoke("--device", "nobody", "--reason", "superseded"), "nobody")
    later = authority.serials[1]
    _refused(revoke(later, "--reason", "keyCompromise", "--invalidity-date", "yesterday"),
             "not an ISO 8601 time")  # fmt: skip
    _refused(revoke(later, "--reason", "keyCompromise", "--invalidity-date", "2026-01-01T00:00"),
             "no time zone")  # fmt: skip
    _refused(revoke(later, "--reason", "keyCompromise", "--invalidity-date", "2999-01-01T00:00Z"),
             "in the future")  # fmt: skip
    _refused(
        fleetid("revoke", "--data-dir", str(tmp_path / "none"), serial, "--reason", "superseded",
                env=env),
        "no fleet CA",
    )  # fmt: skip
    assert not (tmp_path / "none").exists()  # refused before anything is written
    _refused(
        revoke(serial, "--reason", "keyCompromise", environ={**env, "FLEETID_DATABASE_URL": _DOWN}),
        "database unavailable",
    )


def test_crl_publish_names_shards_as_the_urls_do(authority: Authority, tmp_path: Path) -> None:
    published = fleetid("crl", "publish", "--data-dir", str(authority.data_dir), env=authority.env)
    assert published.returncode == 0, published.stderr
    lines = published.stdout.splitlines()
    assert len(lines) == 2 * CRL_SHARDS + 1
    assert lines[-1].startswith("full /crl/root-1.crl number 1 "), lines[-1]
    assert lines[0].startswith("full /crl/issuing-1/0.crl number 1 "), lines[0]
    assert lines[1].startswith("delta /crl/issuing-1/0-delta.crl number 2 base 1 "), lines[1]
    assert "issuer " not in published.stdout
    _refused(
        fleetid("crl", "publish", "--data-dir", str(tmp_path / "none"), env=authority.env),
        "no fleet CA",
    )
    down = {**authority.env, "FLEETID_DATABASE_URL": _DOWN}
    _refused(
        fleetid("crl", "publish", "--data-dir", str(authority.data_dir), env=down),
        "database unavailable",
    )
