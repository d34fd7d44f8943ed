"""Reloading a running app (``fleetid.cli.reload.reload_app``, what SIGHUP runs) and ``fleetid ca
rollover``: the next issuance follows the new profile, the provisioners the file enables, and a
bad file changes nothing."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.operator_fixtures import Authority, authority, run_cli, run_json

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.cli.reload import PID_FILENAME, pid_file, reload_app
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.crypto.keys import new_private_key
from fleetid.errors import ConfigError, PolicyError
from fleetid.policy import CredentialType

__all__ = ["authority"]


@pytest.fixture
def app(authority: Authority) -> Any:
    settings = Settings.load(authority.data_dir)
    ca = FleetCa.open(settings, clock=SystemClock())
    application = create_app(settings, clock=ca.clock, ca=ca)
    yield application
    ca.close()


def _issue(app: Any, key: ec.EllipticCurvePrivateKey) -> Any:
    ca = app.state.ca
    with ca.store.transaction() as tx:
        certificate, _ = ca.issue(
            tx,
            public_key=key.public_key(),
            credential_type=CredentialType.OPERATIONAL,
            common_name="gw-r",
            device_id=None,
        )
    return certificate


def test_a_new_profile_applies_to_the_next_issuance(authority: Authority, app: Any) -> None:
    before = _issue(app, new_private_key())
    assert before.not_valid_after_utc - before.not_valid_before_utc > timedelta(days=29)
    (authority.data_dir / "fleetid.toml").write_text(
        'public_url = "http://pki.example.com"\n'
        '[profiles.operational]\nvalidity = "2d"\nrefresh_window = "1d"\nkey_types = ["P-384"]\n'
    )
    said = reload_app(app, [])
    assert said.startswith(f"reloaded {authority.data_dir / 'fleetid.toml'}: profiles")
    after = _issue(app, new_private_key(ec.SECP384R1()))
    lifetime = after.not_valid_after_utc - after.not_valid_before_utc
    assert timedelta(days=2) <= lifetime <= timedelta(days=2, minutes=10)  # plus the backdating
    with pytest.raises(PolicyError, match="certifies secp384r1 keys, not secp256r1"):
        _issue(app, new_private_key())


def test_provisioners_follow_the_file_both_ways(authority: Authority, app: Any) -> None:
    assert set(app.state.enrolment.provisioners) == {"token", "attestation"}
    config = authority.data_dir / "fleetid.toml"
    config.write_text('[provisioners]\nenabled = ["token"]\n')
    assert "provisioners (token)" in reload_app(app, [])
    assert set(app.state.enrolment.provisioners) == {"token"}
    config.write_text('[provisioners]\nenabled = ["attestation"]\n')
    reload_app(app, [])
    assert set(app.state.enrolment.provisioners) == {"attestation"}
    config.write_text("")
    reload_app(app, [])
    assert set(app.state.enrolment.provisioners) == {"token", "attestation"}


def test_a_bad_file_is_refused_and_changes_nothing(authority: Authority, app: Any) -> None:
    policy = app.state.ca.settings.policy
    (authority.data_dir / "fleetid.toml").write_text('[profiles.operational]\nvalidity = "x"\n')
    with pytest.raises(ConfigError, match="is not a duration"):
        reload_app(app, [])
    assert app.state.ca.settings.policy is policy


def test_the_pid_file_names_this_process_and_goes_with_it(tmp_path: Path) -> None:
    with pid_file(tmp_path) as path:
        assert path == tmp_path / PID_FILENAME
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()


def test_reload_without_a_server_is_one_line(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(capsys, "reload", "--data-dir", str(authority.data_dir))
    assert status == 1
    assert err.startswith("fleetid: NotFoundError: no fleetid serve runs on")


def test_reload_with_a_stale_pid_file_says_so(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    (authority.data_dir / PID_FILENAME).write_text("999999999\n")
    status, _, err = run_cli(capsys, "reload", "--data-dir", str(authority.data_dir))
    assert status == 1 and "is stale" in err


def test_reload_checks_the_file_before_signalling(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in = subprocess.Popen(["sleep", "60"])  # SIGHUP would end it
    try:
        (authority.data_dir / PID_FILENAME).write_text(f"{stand_in.pid}\n")
        (authority.data_dir / "fleetid.toml").write_text("[listen\n")
        status, _, err = run_cli(capsys, "reload", "--data-dir", str(authority.data_dir))
        assert status == 1 and "is not valid TOML" in err
        assert stand_in.poll() is None  # not signalled
    finally:
        stand_in.kill()
        stand_in.wait()


def test_ca_rollover_makes_the_next_issuing_generation(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(authority.data_dir)
    made = run_json(capsys, "ca", "rollover", "--data-dir", d)
    assert isinstance(made, dict)
    assert made["issuing"]["subject"].startswith("CN=Operator Fleet Fleet Issuing CA G2")
    rolled = run_json(capsys, "ca", "rollover", "--data-dir", d, "--root")
    assert isinstance(rolled, dict)
    assert set(rolled) == {"root", "new_with_old", "old_with_new", "issuing"}
    assert rolled["root"]["subject"] == rolled["root"]["issuer"]
    assert rolled["new_with_old"]["issuer"].startswith("CN=Operator Fleet Fleet Root G1")
    assert rolled["issuing"]["issuer"].startswith("CN=Operator Fleet Fleet Root G2")
    status, out, _ = run_cli(capsys, "audit", "verify", "--data-dir", d)
    assert status == 0 and out.startswith("OK")


def test_ca_rollover_without_a_ca_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d").mkdir()
    status, _, err = run_cli(capsys, "ca", "rollover", "--data-dir", str(tmp_path / "d"))
    assert status == 1
    assert err.startswith("fleetid: ConfigError: no fleet CA in")


def test_ca_certs_and_manufacturers_print_json(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    d = str(authority.data_dir)
    chain = run_json(capsys, "ca", "certs", "--data-dir", d)
    assert isinstance(chain, list) and len(chain) == 2
    for entry in chain:
        certificate = x509.load_pem_x509_certificate(entry["pem"].encode())
        assert certificate.fingerprint(hashes.SHA256()).hex() == entry["sha256"]
        assert certificate.subject.rfc4514_string() == entry["subject"]
    assert chain[1]["subject"] == chain[1]["issuer"]  # the root last
    assert run_json(capsys, "ca", "manufacturers", "--data-dir", d) == []


def test_reload_adds_a_rollovers_new_cas_to_the_tls_client_trust(
    authority: Authority, app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import ssl
    from types import SimpleNamespace

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    listener = SimpleNamespace(config=SimpleNamespace(ssl=context))
    reload_app(app, [listener])
    before = {dict(item[0] for item in c["subject"])["commonName"] for c in context.get_ca_certs()}
    assert "Operator Fleet Fleet Issuing CA G1" in before
    assert "Operator Fleet Fleet Issuing CA G2" not in before
    run_json(capsys, "ca", "rollover", "--data-dir", str(authority.data_dir))
    reload_app(app, [listener])
    after = {dict(item[0] for item in c["subject"])["commonName"] for c in context.get_ca_certs()}
    assert after - before == {"Operator Fleet Fleet Issuing CA G2"}
