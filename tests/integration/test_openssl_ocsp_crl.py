"""OpenSSL against the real ``fleetid serve`` on loopback: ``openssl ocsp`` sees good, then revoked
within 2 s of a ``fleetid revoke`` in another process; ``openssl verify -crl_check -use_deltas
-extended_crl`` agrees with the device's CRL client on full + delta CRLs fetched from the
distribution points the certificates name; refusals (another issuer, malformed request, stale
CRL) agree too.
SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.authority_server import fleetid, free_port, require_tool, serving
from tests.revocation_fixtures import issue

from fleetid.authority.fleet_ca import CRL_SHARDS, FleetCa
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.device.crl_client import CrlClient
from fleetid.errors import CertificateRevokedError, StaleError
from fleetid.revocation.crl import publisher_for

pytestmark = pytest.mark.slow

_PEM = serialization.Encoding.PEM


@dataclass(frozen=True, kw_only=True)
class Served:
    data_dir: Path
    work: Path
    base: str
    env: dict[str, str]
    ca: FleetCa
    certificates: list[x509.Certificate]  # three of one CRL shard


def _pem(path: Path, *items: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(b"".join(item.public_bytes(_PEM) for item in items))
    return path


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def served(tmp_path: Path, db_url: str) -> Iterator[Served]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FLEETID_DATABASE_URL": db_url, "FLEETID_PUBLIC_URL": base,
           "FLEETID_ALLOW_LOOPBACK_URLS": "1"}  # fmt: skip
    data_dir = tmp_path / "authority"
    initialised = fleetid("ca", "init", "--data-dir", str(data_dir), env=env)
    assert initialised.returncode == 0, initialised.stderr
    ca = FleetCa.open(
        Settings.load(data_dir, environ={k: env[k] for k in ("FLEETID_DATABASE_URL",
                                                              "FLEETID_PUBLIC_URL",
                                                              "FLEETID_ALLOW_LOOPBACK_URLS")}),
        clock=SystemClock(),
    )  # fmt: skip
    by_shard: dict[int, list[x509.Certificate]] = {}
    while max((len(g) for g in by_shard.values()), default=0) < 3:
        for certificate in issue(ca, CRL_SHARDS):
            by_shard.setdefault(certificate.serial_number % CRL_SHARDS, []).append(certificate)
    trio = next(g for g in by_shard.values() if len(g) >= 3)[:3]
    work = tmp_path / "work"
    work.mkdir()
    _pem(work / "issuing.pem", ca.issuing.certificate)
    _pem(work / "chain.pem", ca.root, ca.issuing.certificate)
    for name, certificate in zip("abc", trio, strict=True):
        _pem(work / f"{name}.pem", certificate)
    try:
        with serving(data_dir, [port], ["--http", f"127.0.0.1:{port}"], env=env):
            yield Served(data_dir=data_dir, work=work, base=base, env=env, ca=ca, certificates=trio)
    finally:
        ca.close()


def _ocsp(served: Served, name: str, *extra: str) -> str:
    openssl = require_tool("openssl")
    result = _run(openssl, "ocsp", "-issuer", "issuing.pem", "-cert", f"{name}.pem",
                  "-url", f"{served.base}/ocsp", "-CAfile", "chain.pem", *extra,
                  cwd=served.work)  # fmt: skip
    return result.stdout + result.stderr


def _revoke(served: Served, certificate: x509.Certificate) -> None:
    result = fleetid("revoke", "--data-dir", str(served.data_dir),
                     f"{certificate.serial_number:x}", "--reason", "keyCompromise",
                     env=served.env)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_openssl_ocsp_good_then_revoked_within_two_seconds(served: Served) -> None:
    a = served.certificates[0]
    for extra in ((), ("-no_nonce",)):
        out = _ocsp(served, "a", *extra)
        assert "a.pem: good" in out, out
        assert "Response verify OK" in out, out
    _revoke(served, a)
    revoked_by = time.monotonic() + 2.0  # the bound for a revocation to show
    seen = ""
    while time.monotonic() < revoked_by:
        seen = _ocsp(served, "a", "-no_nonce")  # the pre-signed path, the one that caches
        if "a.pem: revoked" in seen:
            break
    assert "a.pem: revoked" in seen, seen
    assert "Reason: keyCompromise" in seen, seen
    assert "a.pem: revoked" in _ocsp(served, "a")  # and the fresh (nonce) path
    assert "b.pem: good" in _ocsp(served, "b")


def test_openssl_reads_get_answers_and_refusals(served: Served, tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    work = served.work
    made = _run(openssl, "ocsp", "-issuer", "issuing.pem", "-cert", "b.pem", "-no_nonce",
                "-reqout", "req.der", cwd=work)  # fmt: skip
    assert made.returncode == 0, made.stderr
    encoded = base64.b64encode((work / "req.der").read_bytes()).decode()
    response = httpx.get(f"{served.base}/ocsp/{encoded}", timeout=10)
    assert response.status_code == 200
    assert "max-age=" in response.headers["cache-control"]
    (work / "get.der").write_bytes(response.content)
    read = _run(openssl, "ocsp", "-respin", "get.der", "-issuer", "issuing.pem", "-cert",
                "b.pem", "-CAfile", "chain.pem", "-no_nonce", cwd=work)  # fmt: skip
    assert "b.pem: good" in read.stdout, read.stdout + read.stderr
    assert "Response verify OK" in read.stderr + read.stdout
    # Malformed: OpenSSL reads our answer as the OCSP status malformedRequest.
    bad = httpx.post(f"{served.base}/ocsp", content=b"\x30\x02\x01\x01",
                     headers={"Content-Type": "application/ocsp-request"}, timeout=10)  # fmt: skip
    (work / "bad.der").write_bytes(bad.content)
    text = _run(openssl, "ocsp", "-respin", "bad.der", "-resp_text", "-noverify", cwd=work)
    assert "malformedrequest (1)" in (text.stdout + text.stderr).lower(), text.stdout
    # Another issuer: a stranger fleet's certificate is answered `unauthorized`.
    stranger_dir = tmp_path / "stranger"
    env = {k: v for k, v in served.env.items() if k != "FLEETID_DATABASE_URL"}
    assert fleetid("ca", "init", "--data-dir", str(stranger_dir), env=env).returncode == 0
    stranger_settings = Settings.load(stranger_dir, environ={"FLEETID_PUBLIC_URL": served.base},
                                      allow_loopback_urls=True)  # fmt: skip
    stranger = FleetCa.open(stranger_settings, clock=SystemClock())
    try:
        _pem(work / "s-issuing.pem", stranger.issuing.certificate)
        (foreign,) = issue(stranger, 1)
        _pem(work / "s.pem", foreign)
    finally:
        stranger.close()
    refused = _run(openssl, "ocsp", "-issuer", "s-issuing.pem", "-cert", "s.pem",
                   "-url", f"{served.base}/ocsp", "-CAfile", "chain.pem", cwd=work)  # fmt: skip
    assert "unauthorized" in refused.stdout + refused.stderr, refused.stdout + refused.stderr


def _verify(served: Served, name: str, *crls: str, attime: int | None = None) -> str:
    openssl = require_tool("openssl")
    # -extended_crl as well: without it OpenSSL's CRL selection (x509_vfy.c get_crl_score) does
    # not set delta CRLs aside, and takes a delta published a second after its complete CRL as
    # the newer "complete" one, missing what only the complete CRL lists.
    args: list[str] = [
        "verify", "-crl_check", "-use_deltas", "-extended_crl", "-CAfile", "chain.pem"
    ]  # fmt: skip
    for crl in crls:
        args += ["-CRLfile", crl]
    if attime is not None:
        args += ["-attime", str(attime)]
    result = _run(openssl, *args, f"{name}.pem", cwd=served.work)
    return result.stdout + result.stderr


def _distribution_point(certificate: x509.Certificate) -> str:
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    name = points[0].full_name[0]  # type: ignore[index]
    assert isinstance(name, x509.UniformResourceIdentifier)
    return name.value


def _plain_verify(served: Served, name: str, crl: str) -> str:
    """``openssl verify -crl_check`` as a relying party that reads no delta CRLs does it."""
    openssl = require_tool("openssl")
    result = _run(openssl, "verify", "-crl_check", "-CAfile", "chain.pem", "-CRLfile", crl,
                  f"{name}.pem", cwd=served.work)  # fmt: skip
    return result.stdout + result.stderr


def test_the_full_crl_at_the_distribution_point_lists_a_revocation_within_minutes(
    served: Served,
) -> None:
    """B3: a relying party without delta support (plain ``-crl_check``) sees a revocation at the
    certificate's CDP at the server's next publication (30 s), not at the next daily full CRL."""
    a = served.certificates[0]
    url = _distribution_point(a)
    _pem(served.work / "before.pem", x509.load_der_x509_crl(httpx.get(url, timeout=10).content))
    assert "a.pem: OK" in _plain_verify(served, "a", "before.pem")
    _revoke(served, a)
    deadline = time.monotonic() + 45  # the server publishes every 30 s
    while time.monotonic() < deadline:
        crl = x509.load_der_x509_crl(httpx.get(url, timeout=10).content)
        if crl.get_revoked_certificate_by_serial_number(a.serial_number) is not None:
            break
        time.sleep(1)  # poll the distribution point again
    _pem(served.work / "after.pem", crl)
    out = _plain_verify(served, "a", "after.pem")
    assert "certificate revoked" in out, out


def test_openssl_verify_agrees_with_the_crl_client(served: Served) -> None:
    a, b, c = served.certificates
    _revoke(served, a)
    published = fleetid("crl", "publish", "--data-dir", str(served.data_dir), env=served.env)
    assert published.returncode == 0, published.stderr
    assert published.stdout.count("full /crl/issuing-1/") == CRL_SHARDS, published.stdout
    _revoke(served, b)
    # b's shard moved: a new delta, and (B3) a refreshed full. Keep the full CRL from before b
    # to check what only the delta knows.
    stale_full = httpx.get(_distribution_point(b), timeout=10).content
    publisher_for(served.ca).publish()
    fetched: list[int] = []

    def fetch(url: str) -> bytes:
        assert url.startswith(served.base)  # the URL the certificate / full CRL names
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, response.text
        fetched.append(len(response.content))
        return response.content

    client = CrlClient(served.ca.issuing.certificate, fetch=fetch, max_age=timedelta(days=1))
    report = client.refresh(c, SystemClock().now())
    assert report.fetched == ("full", "delta")
    points = c.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    full_url = points[0].full_name[0].value  # type: ignore[index]
    full = x509.load_der_x509_crl(httpx.get(full_url, timeout=10).content)
    delta_url = full_url.replace(".crl", "-delta.crl")
    delta = x509.load_der_x509_crl(httpx.get(delta_url, timeout=10).content)
    _pem(served.work / "full.pem", x509.load_der_x509_crl(stale_full))
    _pem(served.work / "delta.pem", delta)
    assert b.serial_number in {r.serial_number for r in full}  # refreshed on revocation (B3)
    assert b.serial_number not in {r.serial_number for r in x509.load_der_x509_crl(stale_full)}

    now = SystemClock().now()
    for name, certificate in (("a", a), ("b", b)):
        out = _verify(served, name, "full.pem", "delta.pem")
        assert "certificate revoked" in out, out
        with pytest.raises(CertificateRevokedError):
            client.check(certificate, now)
    assert f"{served.work / 'c.pem'}: OK" in _verify(served, "c", "full.pem", "delta.pem") or (
        "c.pem: OK" in _verify(served, "c", "full.pem", "delta.pem")
    )
    client.check(c, now)
    # The full CRL alone does not know b: both implementations need the delta for it.
    assert "OK" in _verify(served, "b", "full.pem")
    # Past the complete CRL's nextUpdate both refuse: stale is never "not revoked".
    assert full.next_update_utc is not None
    later = full.next_update_utc + timedelta(hours=1)
    out = _verify(served, "c", "full.pem", "delta.pem", attime=int(later.timestamp()))
    assert "CRL has expired" in out, out
    with pytest.raises(StaleError):
        client.check(c, later)


def _cli_revoke(served: Served, certificate: x509.Certificate, *args: str) -> str:
    result = fleetid("revoke", "--data-dir", str(served.data_dir),
                     f"{certificate.serial_number:x}", *args, env=served.env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_openssl_follows_hold_release_and_escalation(served: Served) -> None:
    """B4 with OpenSSL, with and without -use_deltas: a hold is revoked; after the release the
    full CRL drops it and the delta's removeFromCRL entry overrides a full CRL that still lists
    it; an escalation changes the reason the CRL gives."""
    a, b, _ = served.certificates
    publisher = publisher_for(served.ca)
    refused = fleetid("revoke", "--data-dir", str(served.data_dir), f"{a.serial_number:x}",
                      "--reason", "removeFromCRL", env=served.env)  # fmt: skip
    assert refused.returncode != 0
    assert "removeFromCRL is not a revocation reason" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    _cli_revoke(served, a, "--reason", "certificateHold")
    publisher.publish()
    url = _distribution_point(a)
    _pem(served.work / "held.pem", x509.load_der_x509_crl(httpx.get(url, timeout=10).content))
    assert "certificate revoked" in _plain_verify(served, "a", "held.pem")

    assert "released" in _cli_revoke(served, a, "--release")
    publisher.publish()
    full = x509.load_der_x509_crl(httpx.get(url, timeout=10).content)
    delta_url = url.replace(".crl", "-delta.crl")
    delta = x509.load_der_x509_crl(httpx.get(delta_url, timeout=10).content)
    _pem(served.work / "released.pem", full)
    _pem(served.work / "delta.pem", delta)
    assert "a.pem: OK" in _plain_verify(served, "a", "released.pem")
    assert "a.pem: OK" in _verify(served, "a", "released.pem", "delta.pem")
    # A relying party that still holds the full CRL listing the hold: the delta releases it.
    assert "a.pem: OK" in _verify(served, "a", "held.pem", "delta.pem")
    assert "certificate revoked" in _verify(served, "a", "held.pem")

    _cli_revoke(served, b, "--reason", "superseded")
    assert "escalated" in _cli_revoke(served, b, "--reason", "keyCompromise", "--escalate",
                                      "--invalidity-date", "2026-01-01T00:00:00Z")  # fmt: skip
    publisher.publish()
    _pem(served.work / "escalated.pem",
         x509.load_der_x509_crl(httpx.get(_distribution_point(b), timeout=10).content))  # fmt: skip
    text = _run(require_tool("openssl"), "crl", "-in", "escalated.pem", "-noout", "-text",
                cwd=served.work)  # fmt: skip
    assert "Key Compromise" in text.stdout and "Superseded" not in text.stdout, text.stdout
    assert "Invalidity Date" in text.stdout and "Jan  1 00:00:00 2026" in text.stdout, text.stdout
    out = _verify(served, "b", "escalated.pem")
    assert "certificate revoked" in out, out
    back = fleetid("revoke", "--data-dir", str(served.data_dir), f"{b.serial_number:x}",
                   "--reason", "superseded", "--escalate", env=served.env)  # fmt: skip
    assert back.returncode != 0 and "cannot become superseded" in back.stderr, back.stderr
    assert "Traceback" not in back.stderr
