"""RFC 6960 OCSP as ``openssl ocsp`` sees it, over the public plain-HTTP listener."""

from __future__ import annotations

import time

from tests.conformance.conftest import Authority, Enrolled


def _ocsp(authority: Authority, device: Enrolled, *extra: str) -> str:
    result = authority.run(authority.openssl, "ocsp", "-issuer", "issuing.pem", "-cert",
                           device.certificate, "-url", f"{authority.public}/ocsp", "-CAfile",
                           "chain.pem", *extra)  # fmt: skip
    return result.stdout + result.stderr


def test_the_aia_names_the_responder_openssl_asks(authority: Authority) -> None:
    device = authority.enrol()
    uri = authority.ok(authority.openssl, "x509", "-noout", "-ocsp_uri", "-in",
                       device.certificate)  # fmt: skip
    assert uri.strip() == f"{authority.public}/ocsp"


def test_good_then_revoked_after_fleetid_revoke_with_and_without_a_nonce(
    authority: Authority,
) -> None:
    device = authority.enrol()
    for extra in ((), ("-no_nonce",)):
        out = _ocsp(authority, device, *extra)
        assert "Response verify OK" in out, out
        assert f"{device.certificate}: good" in out, out
    authority.revoke(device.serial, "--reason", "keyCompromise")
    deadline = time.monotonic() + 10
    out = _ocsp(authority, device)
    while f"{device.certificate}: revoked" not in out and time.monotonic() < deadline:
        time.sleep(0.5)  # ask the responder again
        out = _ocsp(authority, device)
    assert "Response verify OK" in out, out
    assert f"{device.certificate}: revoked" in out, out
    assert "Reason: keyCompromise" in out, out


def test_a_certificate_of_another_issuer_is_not_vouched_for(authority: Authority) -> None:
    """A certificate this fleet never issued is never "good" (RFC 6960 §2.2, §2.3)."""
    authority.ok(authority.openssl, "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", "stranger-ca.key", "-subj",
                 "/CN=Stranger CA", "-days", "2", "-out", "stranger-ca.pem")  # fmt: skip
    authority.ok(authority.openssl, "req", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", "stranger.key", "-subj",
                 "/CN=stranger", "-out", "stranger.csr")  # fmt: skip
    authority.ok(authority.openssl, "x509", "-req", "-in", "stranger.csr", "-CA",
                 "stranger-ca.pem", "-CAkey", "stranger-ca.key", "-days", "1",
                 "-out", "stranger.pem")  # fmt: skip
    result = authority.run(authority.openssl, "ocsp", "-issuer", "stranger-ca.pem", "-cert",
                           "stranger.pem", "-url", f"{authority.public}/ocsp", "-CAfile",
                           "chain.pem")  # fmt: skip
    out = result.stdout + result.stderr
    assert "stranger.pem: good" not in out, out
    assert "unauthorized" in out or "unknown" in out, out


def test_a_malformed_request_gets_an_ocsp_error_status(authority: Authority) -> None:
    (authority.work / "junk.der").write_bytes(b"\x30\x03\x02\x01\x00")
    status = authority.ok(authority.curl, "-sS", "-o", "junk.resp", "-w", "%{http_code}", "-H",
                          "Content-Type: application/ocsp-request", "--data-binary", "@junk.der",
                          f"{authority.public}/ocsp")  # fmt: skip
    assert status == "200"  # RFC 6960 §2.3: the error travels inside an OCSPResponse
    result = authority.run(authority.openssl, "ocsp", "-respin", "junk.resp", "-resp_text",
                           "-noverify")  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.strip() == "Responder Error: malformedrequest (1)"
