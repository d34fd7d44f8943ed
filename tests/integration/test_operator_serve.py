"""The operator's commands against a real ``fleetid serve`` (subprocesses, real TLS):
``fleetid ca bootstrap`` pins the root by fingerprint over HTTPS, and ``fleetid reload`` (SIGHUP)
makes the running server take a new config file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from tests.authority_server import fleetid, free_port, serving


@pytest.fixture
def authority(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    data_dir = tmp_path / "authority"
    done = fleetid("ca", "init", "--data-dir", str(data_dir), env=env)
    assert done.returncode == 0, done.stderr
    return data_dir, env


def _root_fingerprint(data_dir: Path, env: dict[str, str]) -> str:
    chain = fleetid("ca", "certs", "--data-dir", str(data_dir), env=env).stdout.encode()
    return x509.load_pem_x509_certificates(chain)[-1].fingerprint(hashes.SHA256()).hex()


def test_bootstrap_pins_the_root_over_https(
    authority: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    data_dir, env = authority
    fingerprint = _root_fingerprint(data_dir, env)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with serving(data_dir, [port], ["--https", f"127.0.0.1:{port}"], env=env):
        out = tmp_path / "root.pem"
        colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
        done = fleetid(
            "ca", "bootstrap", "--ca-url", url, "--fingerprint", colons, "--out", str(out), env=env
        )
        assert done.returncode == 0, done.stderr
        (root,) = x509.load_pem_x509_certificates(out.read_bytes())
        assert root.fingerprint(hashes.SHA256()).hex() == fingerprint
        # A fingerprint of another root: nothing is written.
        other = tmp_path / "other.pem"
        wrong = fleetid(
            "ca",
            "bootstrap",
            "--ca-url",
            url,
            "--fingerprint",
            "ab" * 32,
            "--out",
            str(other),
            env=env,
        )
        assert wrong.returncode == 1 and not other.exists()
        assert wrong.stderr.startswith(f"fleetid: VerificationError: {url} offers no certificate")
        # An existing file is kept unless --force.
        again = fleetid(
            "ca",
            "bootstrap",
            "--ca-url",
            url,
            "--fingerprint",
            fingerprint,
            "--out",
            str(out),
            env=env,
        )
        assert again.returncode == 1 and "give --force" in again.stderr
    refused = fleetid(
        "ca",
        "bootstrap",
        "--ca-url",
        f"http://127.0.0.1:{port}",
        "--fingerprint",
        fingerprint,
        "--out",
        str(tmp_path / "x.pem"),
        env=env,
    )
    assert refused.returncode == 1 and "is not https://" in refused.stderr


def _log_until(log: Path, text: str) -> str:
    deadline = time.monotonic() + 30
    while text not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)  # poll the server's log for its answer
    return log.read_text()


def test_reload_makes_the_server_read_its_config_file_again(
    authority: tuple[Path, dict[str, str]],
) -> None:
    data_dir, env = authority
    port = free_port()
    config = data_dir / "fleetid.toml"
    config.write_text(f'[listen]\nhttp = "127.0.0.1:{port}"\n[provisioners]\nenabled = ["token"]\n')
    with serving(data_dir, [port], [], env=env):  # the listener comes from the file
        log = data_dir / "serve.log"
        assert (data_dir / "fleetid.pid").is_file()
        config.write_text(
            f'[listen]\nhttp = "127.0.0.1:{port}"\n[provisioners]\nenabled = ["attestation"]\n'
        )
        done = fleetid("reload", "--data-dir", str(data_dir), env=env)
        assert done.returncode == 0, done.stderr
        assert "reload signalled to" in done.stdout
        assert "provisioners (attestation)" in _log_until(log, "provisioners (attestation)")
        config.write_text("[listen\n")
        refused = fleetid("reload", "--data-dir", str(data_dir), env=env)
        assert refused.returncode == 1 and "is not valid TOML" in refused.stderr
    assert not (data_dir / "fleetid.pid").exists()
