"""Re-enrolment by a stock EST client: ``curl --cert --key`` and ``openssl`` only (RFC 7030 §3.3.2).

The device enrols with a one-time token, then re-enrols over TLS authenticated with the
certificate it got, posting a CSR that ``openssl x509 -x509toreq`` makes from it (same subject,
same key: §4.2.2). The old certificate is then superseded. Negative twins, black-box against the
real server: the same CSR replayed without a client certificate (plain HTTP on loopback and HTTPS)
is refused 401 and neither issues nor revokes anything, ten concurrent replays likewise, and the
superseded certificate can no longer re-enrol.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
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


def test_curl_reenrols_with_its_client_certificate_and_replays_mint_nothing(
    tmp_path: Path,
) -> None:
    openssl, curl = require_tool("openssl"), require_tool("curl")
    authority = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(authority)).returncode == 0
    work = tmp_path / "client"
    work.mkdir()
    certs = fleetid("ca", "certs", "--data-dir", str(authority))
    assert certs.returncode == 0, certs.stderr
    root = certs.stdout[certs.stdout.rindex("-----BEGIN CERTIFICATE-----") :]
    (work / "root.pem").write_text(root)
    (work / "chain.pem").write_text(certs.stdout)
    created = fleetid("token", "create", "--data-dir", str(authority), "--device-id", "gw-mtls")
    (credential,) = created.stdout.splitlines()

    _run(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "dev.key", "-subj", "/CN=gw-mtls", "-outform", "DER",
         "-out", "req.der", cwd=work)  # fmt: skip
    _run(openssl, "base64", "-in", "req.der", "-out", "req.b64", cwd=work)

    tls_port, http_port = free_port(), free_port()
    est = f"https://127.0.0.1:{tls_port}/.well-known/est"
    plain = f"http://127.0.0.1:{http_port}/.well-known/est"
    args = ["--https", f"127.0.0.1:{tls_port}", "--http", f"127.0.0.1:{http_port}"]
    with serving(authority, [tls_port, http_port], args):
        assert _post(curl, work, f"{est}/simpleenroll", "enrol.b64", "-u", credential) == "200"
        _run(openssl, "base64", "-d", "-in", "enrol.b64", "-out", "enrol.p7", cwd=work)
        _run(openssl, "pkcs7", "-inform", "DER", "-in", "enrol.p7", "-print_certs",
             "-out", "dev.pem", cwd=work)  # fmt: skip
        first = _serial(openssl, work, "dev.pem")

        # The renewal CSR a stock client makes: the current certificate's subject and key.
        _run(openssl, "x509", "-x509toreq", "-in", "dev.pem", "-key", "dev.key",
             "-out", "renew.pem", cwd=work)  # fmt: skip
        _run(openssl, "req", "-in", "renew.pem", "-outform", "DER", "-out", "renew.der", cwd=work)
        _run(openssl, "base64", "-in", "renew.der", "-out", "req.b64", cwd=work)

        # Replays of that CSR without the credential: over plain HTTP and over TLS, one by one
        # and ten at once. Each is 401 problem details.
        assert _post(curl, work, f"{plain}/simplereenroll", "r1.json") == "401"
        assert _post(curl, work, f"{est}/simplereenroll", "r2.json") == "401"
        problem = json.loads((work / "r2.json").read_text())
        assert problem["status"] == 401
        assert "TLS client authentication" in problem["detail"]
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(
                pool.map(
                    lambda i: _post(curl, work, f"{est}/simplereenroll", f"c{i}.json"), range(10)
                )
            )
        assert statuses == ["401"] * 10

        # The real thing: curl authenticates TLS with the current certificate.
        status = _post(curl, work, f"{est}/simplereenroll", "renew.b64",
                       "--cert", "dev.pem", "--key", "dev.key")  # fmt: skip
        assert status == "200", (work / "renew.b64").read_text()
        _run(openssl, "base64", "-d", "-in", "renew.b64", "-out", "renew.p7", cwd=work)
        _run(openssl, "pkcs7", "-inform", "DER", "-in", "renew.p7", "-print_certs",
             "-out", "new.pem", cwd=work)  # fmt: skip
        assert _serial(openssl, work, "new.pem") != first
        verified = _run(openssl, "verify", "-CAfile", "root.pem", "-untrusted", "chain.pem",
                        "new.pem", cwd=work)  # fmt: skip
        assert verified.strip() == "new.pem: OK"
        assert _run(openssl, "x509", "-noout", "-subject", "-in", "new.pem", cwd=work) == _run(
            openssl, "x509", "-noout", "-subject", "-in", "dev.pem", cwd=work
        )

        # The superseded certificate authenticates TLS still (it chains), but re-enrols no more.
        status = _post(curl, work, f"{est}/simplereenroll", "again.json",
                       "--cert", "dev.pem", "--key", "dev.key")  # fmt: skip
        assert status == "401"
        assert "superseded" in (work / "again.json").read_text()

    # Had a replay minted, the first certificate would have been superseded before curl's own
    # re-enrolment, which would then have failed. A refresh revokes nothing (the superseded
    # credential simply expires), and both stay revocable, the old key on suspicion included.
    second = _serial(openssl, work, "new.pem")
    for serial in (first, second):
        revoked = fleetid("revoke", "--data-dir", str(authority), serial, "--reason",
                          "keyCompromise")  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr


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
