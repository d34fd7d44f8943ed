"""Re-enrolment over TLS under ``fleetid serve --workers 2``: each worker process hands the
verified client certificate to the app (RFC 7030 §3.3.2). The single-process path is checked
black-box in tests/conformance/test_est.py."""

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


def _post(curl: str, work: Path, url: str, out: str, *options: str) -> str:
    """curl's HTTP status for a POST of req.b64 as application/pkcs10 (body saved in ``out``)."""
    return _run(curl, "-sS", "-o", out, "-w", "%{http_code}", "--cacert", "root.pem",
                "-H", "Content-Type: application/pkcs10", "--data-binary", "@req.b64",
                *options, url, cwd=work)  # fmt: skip


def _serial(openssl: str, work: Path, pem: str) -> str:
    return (
        _run(openssl, "x509", "-noout", "-serial", "-in", pem, cwd=work).strip().partition("=")[2]
    )


def test_worker_processes_hand_the_client_certificate_on_too(tmp_path: Path) -> None:
    """``--workers 2``: each worker process serves TLS with the same client-certificate rule."""
    openssl, curl = require_tool("openssl"), require_tool("curl")
    authority = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(authority)).returncode == 0
    work = tmp_path / "client"
    work.mkdir()
    certs = fleetid("ca", "certs", "--data-dir", str(authority)).stdout
    (work / "root.pem").write_text(certs[certs.rindex("-----BEGIN CERTIFICATE-----") :])
    created = fleetid("token", "create", "--data-dir", str(authority), "--device-id", "gw-w")
    (credential,) = created.stdout.splitlines()
    _run(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "dev.key", "-subj", "/CN=gw-w", "-outform", "DER",
         "-out", "req.der", cwd=work)  # fmt: skip
    _run(openssl, "base64", "-in", "req.der", "-out", "req.b64", cwd=work)
    port = free_port()
    est = f"https://127.0.0.1:{port}/.well-known/est"
    with serving(authority, [port], ["--https", f"127.0.0.1:{port}", "--workers", "2"]):
        assert _post(curl, work, f"{est}/simpleenroll", "enrol.b64", "-u", credential) == "200"
        _run(openssl, "base64", "-d", "-in", "enrol.b64", "-out", "enrol.p7", cwd=work)
        _run(openssl, "pkcs7", "-inform", "DER", "-in", "enrol.p7", "-print_certs",
             "-out", "dev.pem", cwd=work)  # fmt: skip
        _run(openssl, "x509", "-x509toreq", "-in", "dev.pem", "-key", "dev.key",
             "-out", "renew.pem", cwd=work)  # fmt: skip
        _run(openssl, "req", "-in", "renew.pem", "-outform", "DER", "-out", "renew.der", cwd=work)
        _run(openssl, "base64", "-in", "renew.der", "-out", "req.b64", cwd=work)
        assert _post(curl, work, f"{est}/simplereenroll", "replay.json") == "401"
        status = _post(curl, work, f"{est}/simplereenroll", "renew.b64",
                       "--cert", "dev.pem", "--key", "dev.key")  # fmt: skip
        assert status == "200", (work / "renew.b64").read_text()
