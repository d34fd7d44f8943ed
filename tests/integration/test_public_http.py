"""D2 and B2: revocation artefacts over plain HTTP on a public listener, a root CRL and a CDP in
the issuing CA (``openssl verify -crl_check_all`` passes for a good certificate, fails for a
revoked one), and certificates that would name a loopback or unspecified URL refused unless the
operator says this is a test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.authority_server import fleetid, free_port, require_tool, serving
from tests.revocation_fixtures import issue

from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.revocation.crl import publisher_for

pytestmark = pytest.mark.slow

_CLI = "import sys; from fleetid.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class Public:
    data_dir: Path
    work: Path
    base: str  # the public plain-HTTP listener, named in every certificate
    tls: str
    env: dict[str, str]
    ca: FleetCa


def _pem(path: Path, *items: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(b"".join(i.public_bytes(serialization.Encoding.PEM) for i in items))
    return path


def _cdp(certificate: x509.Certificate) -> str:
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    name = points[0].full_name[0]  # type: ignore[index]
    assert isinstance(name, x509.UniformResourceIdentifier)
    return name.value


@pytest.fixture
def public(tmp_path: Path) -> Iterator[Public]:
    public_port, tls_port = free_port(), free_port()
    base = f"http://127.0.0.1:{public_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    data_dir = tmp_path / "authority"
    init_env = {**env, "FLEETID_PUBLIC_URL": base, "FLEETID_ALLOW_LOOPBACK_URLS": "1"}
    initialised = fleetid("ca", "init", "--data-dir", str(data_dir), env=init_env)
    assert initialised.returncode == 0, initialised.stderr
    settings = Settings.load(data_dir, environ={}, public_url=base, allow_loopback_urls=True)
    ca = FleetCa.open(settings, clock=SystemClock())
    work = tmp_path / "work"
    work.mkdir()
    args = ["--https", f"127.0.0.1:{tls_port}", "--public-http", f"127.0.0.1:{public_port}",
            "--public-url", base]  # fmt: skip
    try:
        with serving(data_dir, [public_port, tls_port], args, env=env):
            yield Public(data_dir=data_dir, work=work, base=base,
                         tls=f"https://127.0.0.1:{tls_port}", env=env, ca=ca)  # fmt: skip
    finally:
        ca.close()


def test_crl_check_all_over_the_public_http_listener(public: Public) -> None:
    good, revoked = issue(public.ca, 2)
    refused = fleetid(
        "revoke",
        "--data-dir",
        str(public.data_dir),
        f"{revoked.serial_number:x}",
        "--reason",
        "keyCompromise",
        env=public.env,
    )
    assert refused.returncode == 0, refused.stderr  # fmt: skip
    publisher_for(public.ca).publish()
    issuing = public.ca.issuing.certificate
    root_url = _cdp(issuing)  # D2: the issuing CA names its root's CRL
    assert root_url == f"{public.base}/crl/root-1.crl"
    root_crl = x509.load_der_x509_crl(httpx.get(root_url, timeout=10).content)
    assert root_crl.is_signature_valid(public.ca.root.public_key())  # type: ignore[arg-type]
    _pem(public.work / "root-crl.pem", root_crl)
    _pem(public.work / "chain.pem", public.ca.root, issuing)
    openssl = require_tool("openssl")
    for name, certificate, expected in (("good", good, "good.pem: OK"),
                                        ("revoked", revoked, "certificate revoked")):  # fmt: skip
        url = _cdp(certificate)
        assert url.startswith(f"{public.base}/crl/issuing-1/")  # plain http, the public listener
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200
        _pem(public.work / f"{name}-crl.pem", x509.load_der_x509_crl(response.content))
        _pem(public.work / f"{name}.pem", certificate)
        result = subprocess.run(
            [openssl, "verify", "-crl_check_all", "-CAfile", "chain.pem",
             "-CRLfile", "root-crl.pem", "-CRLfile", f"{name}-crl.pem", f"{name}.pem"],
            cwd=public.work, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert expected in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_public_listener_serves_revocation_only(public: Public) -> None:
    (certificate,) = issue(public.ca, 1)
    assert httpx.get(_cdp(certificate), timeout=10).status_code == 200
    ocsp = httpx.post(
        f"{public.base}/ocsp",
        content=b"\x30\x00",
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    assert ocsp.status_code == 200  # an OCSP answer (malformedRequest), not a refusal  # fmt: skip
    # The CA certificates, DER, for relying parties building the chain.
    der = serialization.Encoding.DER
    for path, expected in (("/ca/root-1.crt", public.ca.root),
                           ("/ca/issuing-1.crt", public.ca.issuing.certificate)):  # fmt: skip
        fetched = httpx.get(public.base + path, timeout=10)
        assert fetched.status_code == 200, path
        assert fetched.headers["content-type"] == "application/pkix-cert"
        assert fetched.content == expected.public_bytes(der)
    for path in ("/ca/issuing-9.crt", "/ca/other-1.crt"):
        assert httpx.get(public.base + path, timeout=10).status_code == 404
    for path in ("/.well-known/est/cacerts", "/health", "/docs", "/enrol/challenge"):
        refused = httpx.get(public.base + path, timeout=10)
        assert refused.status_code == 404, path
        assert refused.headers["content-type"] == "application/problem+json"
    # EST stays on the TLS listener.
    est = httpx.get(f"{public.tls}/.well-known/est/cacerts", verify=False, timeout=10)  # noqa: S501
    assert est.status_code == 200


def _serve_refused(data_dir: Path, *args: str, env: dict[str, str]) -> str:
    """``fleetid serve`` that must refuse before binding: one line on stderr, non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-c", _CLI, "serve", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "serving on" not in result.stdout
    return result.stderr


def test_loopback_and_unspecified_urls_are_refused_unless_a_test(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    data_dir = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data_dir), env=env).returncode == 0
    port = free_port()
    # The README's old line: loopback URLs baked into every certificate, without a word.
    out = _serve_refused(data_dir, "--https", f"127.0.0.1:{port}", env=env)
    assert "relying parties cannot reach" in out and "--public-url" in out
    out = _serve_refused(data_dir, "--https", f"127.0.0.1:{port}",
                         "--public-http", f"0.0.0.0:{port}", env=env)  # fmt: skip
    assert "http://0.0.0.0" in out
    for url in ("http://[::1]:8080", "http://localhost", "http://0.0.0.0:80"):
        out = _serve_refused(data_dir, "--https", f"127.0.0.1:{port}", "--public-url", url,
                             env=env)  # fmt: skip
        assert "relying parties cannot reach" in out, url
    out = _serve_refused(data_dir, "--https", f"127.0.0.1:{port}", "--public-url", "ftp://x",
                         env=env)  # fmt: skip
    assert "is not http://HOST" in out
    # ca init with a loopback public URL is refused before anything is made.
    other = tmp_path / "other"
    refused = fleetid("ca", "init", "--data-dir", str(other),
                      env={**env, "FLEETID_PUBLIC_URL": "http://127.0.0.1:9"})  # fmt: skip
    assert refused.returncode != 0 and "cannot reach" in refused.stderr, refused.stderr
    assert not other.exists()
    helped = fleetid("serve", "--help", env=env)
    assert "--public-url" in helped.stdout and "--allow-loopback-urls" in helped.stdout
