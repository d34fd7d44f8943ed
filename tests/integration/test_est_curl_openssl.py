"""A stock EST client against the real server: ``openssl req`` + ``curl`` + ``openssl`` only.

The CSR is made by OpenSSL, posted base64 (RFC 7030 §4.2.1) by curl with the one-time token as
HTTP Basic (§3.2.3), the certs-only reply is decoded by ``openssl base64 -d`` and
``openssl pkcs7 -print_certs``, and ``openssl verify`` accepts the chain that
``fleetid ca certs`` prints. Then the token's reuse is refused and the certificate is revoked
through ``fleetid revoke``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.authority_server import fleetid, free_port, require_tool, serving

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def _split_pem(text: str) -> list[str]:
    """The PEM certificate blocks of ``text``, in order (``-print_certs`` headers dropped)."""
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    blocks = [chunk.partition(begin)[2] for chunk in text.split(end)[:-1]]
    return [f"{begin}{block}{end}\n" for block in blocks]


@pytest.fixture
def authority(tmp_path: Path) -> Path:
    data_dir = tmp_path / "authority"
    result = fleetid("ca", "init", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return data_dir


def test_curl_and_openssl_enrol_through_the_token_provisioner(
    authority: Path, tmp_path: Path
) -> None:
    openssl, curl = require_tool("openssl"), require_tool("curl")
    work = tmp_path / "client"
    work.mkdir()

    certs = fleetid("ca", "certs", "--data-dir", str(authority))
    assert certs.returncode == 0, certs.stderr
    issuing_pem, root_pem = _split_pem(certs.stdout)
    (work / "issuing.pem").write_text(issuing_pem)
    (work / "root.pem").write_text(root_pem)
    issuing_subject = _run(openssl, "x509", "-noout", "-subject", "-in", "issuing.pem", cwd=work)
    assert "Issuing CA" in issuing_subject
    assert "Root" in _run(openssl, "x509", "-noout", "-subject", "-in", "root.pem", cwd=work)

    created = fleetid("token", "create", "--data-dir", str(authority), "--device-id", "gw-curl")
    assert created.returncode == 0, created.stderr
    (credential,) = created.stdout.splitlines()
    user, _, password = credential.partition(":")
    assert user and password

    _run(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "device.key", "-subj", "/CN=gw-curl", "-outform", "DER",
         "-out", "req.der", cwd=work)  # fmt: skip
    _run(openssl, "base64", "-in", "req.der", "-out", "req.b64", cwd=work)

    port = free_port()
    url = f"http://127.0.0.1:{port}/.well-known/est"
    with serving(authority, [port], ["--http", f"127.0.0.1:{port}"]):
        status = _run(curl, "-sS", "-o", "resp.b64", "-w", "%{http_code}", "-u", credential,
                      "-H", "Content-Type: application/pkcs10", "--data-binary", "@req.b64",
                      f"{url}/simpleenroll", cwd=work)  # fmt: skip
        assert status == "200", (work / "resp.b64").read_text()
        replay = _run(curl, "-sS", "-o", "replay.json", "-w", "%{http_code}", "-u", credential,
                      "-H", "Content-Type: application/pkcs10", "--data-binary", "@req.b64",
                      f"{url}/simpleenroll", cwd=work)  # fmt: skip
        assert replay == "401"
        assert "used already" in (work / "replay.json").read_text()
        status = _run(curl, "-sS", "-o", "cacerts.b64", "-w", "%{http_code}",
                      f"{url}/cacerts", cwd=work)  # fmt: skip
        assert status == "200"

    _run(openssl, "base64", "-d", "-in", "resp.b64", "-out", "resp.p7", cwd=work)
    _run(openssl, "pkcs7", "-inform", "DER", "-in", "resp.p7", "-print_certs", "-out", "leaf.pem",
         cwd=work)  # fmt: skip
    verified = _run(openssl, "verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem",
                    "leaf.pem", cwd=work)  # fmt: skip
    assert verified.strip() == "leaf.pem: OK"
    leaf_key = _run(openssl, "x509", "-noout", "-pubkey", "-in", "leaf.pem", cwd=work)
    assert leaf_key == _run(openssl, "pkey", "-pubout", "-in", "device.key", cwd=work)
    assert "CN = gw-curl" in _run(
        openssl, "x509", "-noout", "-subject", "-in", "leaf.pem", cwd=work
    )

    _run(openssl, "base64", "-d", "-in", "cacerts.b64", "-out", "cacerts.p7", cwd=work)
    listed = _run(openssl, "pkcs7", "-inform", "DER", "-in", "cacerts.p7", "-print_certs",
                  cwd=work)  # fmt: skip
    assert sorted(_split_pem(listed)) == sorted([issuing_pem, root_pem])

    serial = _run(openssl, "x509", "-noout", "-serial", "-in", "leaf.pem", cwd=work)
    serial_hex = serial.strip().partition("=")[2]
    revoked = fleetid("revoke", "--data-dir", str(authority), serial_hex, "--reason",
                      "keyCompromise")  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    assert "keyCompromise" in revoked.stdout
    again = fleetid("revoke", "--data-dir", str(authority), serial_hex, "--reason", "superseded")
    assert again.returncode == 1
    assert "already revoked" in again.stderr


def test_openssl_verify_refuses_a_leaf_under_another_fleet_root(
    authority: Path, tmp_path: Path
) -> None:
    openssl = require_tool("openssl")
    other = tmp_path / "other"
    assert fleetid("ca", "init", "--data-dir", str(other)).returncode == 0
    work = tmp_path / "client"
    work.mkdir()
    issuing_pem, _ = _split_pem(fleetid("ca", "certs", "--data-dir", str(authority)).stdout)
    _, other_root = _split_pem(fleetid("ca", "certs", "--data-dir", str(other)).stdout)
    (work / "issuing.pem").write_text(issuing_pem)
    (work / "other-root.pem").write_text(other_root)
    result = subprocess.run(
        [openssl, "verify", "-CAfile", "other-root.pem", "issuing.pem"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


def test_cli_refusals(authority: Path) -> None:
    unknown = fleetid(
        "revoke", "--data-dir", str(authority), "ab" * 20, "--reason", "keyCompromise"
    )
    assert unknown.returncode == 1
    assert "NotFoundError" in unknown.stderr
    bad_reason = fleetid("revoke", "--data-dir", str(authority), "ab", "--reason", "lostIt")
    assert bad_reason.returncode == 1
    assert "not an RFC 5280" in bad_reason.stderr
    twice = fleetid("ca", "init", "--data-dir", str(authority))
    assert twice.returncode == 1
    assert "already" in twice.stderr
    public = fleetid("serve", "--data-dir", str(authority), "--http", "0.0.0.0:8080")
    assert public.returncode == 1
    assert "loopback only" in public.stderr
