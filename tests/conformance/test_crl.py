"""RFC 5280 CRLs as ``openssl verify`` sees them, fetched from the URLs the certificates name.

The least capable relying party first: plain ``-crl_check`` with the full CRL alone, no deltas.
"""

from __future__ import annotations

import time

from tests.conformance.conftest import Authority, Enrolled


def _distribution_point(authority: Authority, certificate: str) -> str:
    text = authority.ok(authority.openssl, "x509", "-noout", "-ext", "crlDistributionPoints",
                        "-in", certificate)  # fmt: skip
    (uri,) = [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("URI:")]
    return uri


def _fetch_crl(authority: Authority, url: str, out: str) -> None:
    status = authority.ok(authority.curl, "-sS", "-o", f"{out}.der", "-w", "%{http_code}", url)
    assert status == "200", url
    authority.ok(authority.openssl, "crl", "-inform", "DER", "-in", f"{out}.der", "-out", out)


def _verify(authority: Authority, device: Enrolled, *crls: str, check: str = "-crl_check") -> str:
    files = [arg for crl in crls for arg in ("-CRLfile", crl)]
    result = authority.run(authority.openssl, "verify", check, "-CAfile", "root.pem",
                           "-untrusted", "issuing.pem", *files, device.certificate)  # fmt: skip
    return result.stdout + result.stderr


def test_plain_crl_check_sees_a_revocation_at_the_distribution_point(authority: Authority) -> None:
    device = authority.enrol()
    url = _distribution_point(authority, device.certificate)
    assert url.startswith(f"{authority.public}/crl/issuing-1/")  # the public listener
    _fetch_crl(authority, url, "before.pem")
    assert f"{device.certificate}: OK" in _verify(authority, device, "before.pem")

    authority.revoke(device.serial, "--reason", "keyCompromise")
    published = authority.fleetid("crl", "publish")
    assert published.returncode == 0, published.stderr
    deadline = time.monotonic() + 45  # a running server publishes every 30 s in any case
    while True:
        _fetch_crl(authority, url, "after.pem")
        out = _verify(authority, device, "after.pem")
        if "certificate revoked" in out or time.monotonic() > deadline:
            break
        time.sleep(1)  # fetch the distribution point again
    assert "certificate revoked" in out, out


def test_crl_check_all_with_the_root_crl_the_issuing_ca_names(authority: Authority) -> None:
    good, revoked = authority.enrol(), authority.enrol()
    authority.revoke(revoked.serial, "--reason", "keyCompromise")
    assert authority.fleetid("crl", "publish").returncode == 0
    root_url = _distribution_point(authority, "issuing.pem")
    assert root_url == f"{authority.public}/crl/root-1.crl"
    _fetch_crl(authority, root_url, "root-crl.pem")
    for device, expected in ((good, f"{good.certificate}: OK"), (revoked, "certificate revoked")):
        _fetch_crl(authority, _distribution_point(authority, device.certificate), "leaf-crl.pem")
        out = _verify(authority, device, "root-crl.pem", "leaf-crl.pem", check="-crl_check_all")
        assert expected in out, out


def test_without_the_crl_a_checking_relying_party_refuses(authority: Authority) -> None:
    device = authority.enrol()
    out = _verify(authority, device)
    assert "unable to get certificate CRL" in out, out


def test_the_ca_certificates_are_served_for_path_building(authority: Authority) -> None:
    """RFC 2585 §3: DER at /ca/..., application/pkix-cert."""
    for name, path in (("root.pem", "/ca/root-1.crt"), ("issuing.pem", "/ca/issuing-1.crt")):
        headers = authority.ok(authority.curl, "-sS", "-D", "-", "-o", f"{name}.der",
                               f"{authority.public}{path}")  # fmt: skip
        assert "content-type: application/pkix-cert" in headers.lower()
        served = authority.ok(authority.openssl, "x509", "-inform", "DER", "-in", f"{name}.der",
                              "-noout", "-fingerprint", "-sha256")  # fmt: skip
        held = authority.ok(authority.openssl, "x509", "-in", name, "-noout", "-fingerprint",
                            "-sha256")  # fmt: skip
        assert served == held


def test_the_public_listener_serves_revocation_and_nothing_else(authority: Authority) -> None:
    for path in ("/.well-known/est/cacerts", "/health", "/docs", "/ca/issuing-9.crt"):
        headers = authority.ok(authority.curl, "-sS", "-D", "-", "-o", "/dev/null",
                               f"{authority.public}{path}")  # fmt: skip
        assert headers.startswith("HTTP/1.1 404"), (path, headers)
        assert "application/problem+json" in headers
