"""RFC 7030 EST with stock clients only: ``openssl req``, ``curl``, ``openssl pkcs7/verify``."""

from __future__ import annotations

import json

from tests.conformance.conftest import Authority, split_pem


def test_cacerts_is_a_certs_only_message_openssl_reads(authority: Authority) -> None:
    # RFC 7030 §4.1.3: base64 DER of a certs-only CMS SignedData, no signers.
    response = authority.work / "cacerts.b64"
    status = authority.ok(authority.curl, "-sS", "-k", "-o", str(response), "-w", "%{http_code}",
                          f"{authority.est}/cacerts")  # fmt: skip
    assert status == "200"
    authority.certs_only("cacerts.b64", "cacerts.pem")
    listed = split_pem((authority.work / "cacerts.pem").read_text())
    chain = split_pem((authority.work / "chain.pem").read_text())
    assert sorted(listed) == sorted(chain)


def test_a_token_enrols_a_csr_from_openssl_and_openssl_verifies_the_chain(
    authority: Authority,
) -> None:
    device = authority.enrol()
    verified = authority.ok(authority.openssl, "verify", "-CAfile", "root.pem",
                            "-untrusted", "issuing.pem", device.certificate)  # fmt: skip
    assert verified.strip() == f"{device.certificate}: OK"
    subject = authority.ok(authority.openssl, "x509", "-noout", "-subject", "-in",
                           device.certificate)  # fmt: skip
    assert device.name in subject


def test_a_token_enrols_once(authority: Authority) -> None:
    body = authority.csr("once", "/CN=once")
    credential = authority.token("once")
    url = f"{authority.est}/simpleenroll"
    assert authority.curl_post(url, body, "once-1.b64", "-u", credential) == "200"
    replay = authority.curl_post(url, body, "once-2.json", "-u", credential)
    assert replay == "401"
    problem = json.loads((authority.work / "once-2.json").read_text())
    assert problem["status"] == 401


def test_enrolment_without_credentials_or_with_a_wrong_one_is_refused(authority: Authority) -> None:
    body = authority.csr("nobody", "/CN=nobody")
    url = f"{authority.est}/simpleenroll"
    assert authority.curl_post(url, body, "anon.json") == "401"
    assert authority.curl_post(url, body, "wrong.json", "-u", "nobody:not-a-token") == "401"
    for name in ("anon.json", "wrong.json"):
        problem = json.loads((authority.work / name).read_text())
        assert problem["status"] == 401
        assert problem["type"]


def test_the_wrong_media_type_and_a_broken_body_are_refused(authority: Authority) -> None:
    credential = authority.token("media")
    (authority.work / "junk.b64").write_text("not base64 at all !!")
    status = authority.ok(authority.curl, "-sS", "-k", "-o", "media.json", "-w", "%{http_code}",
                          "-u", credential, "-H", "Content-Type: text/plain", "--data-binary",
                          "@junk.b64", f"{authority.est}/simpleenroll")  # fmt: skip
    assert status == "415"
    status = authority.curl_post(f"{authority.est}/simpleenroll", "junk.b64", "junk.json",
                                 "-u", credential)  # fmt: skip
    assert status == "400"
    assert json.loads((authority.work / "junk.json").read_text())["status"] == 400


def test_reenrolment_needs_tls_with_the_current_certificate(authority: Authority) -> None:
    """RFC 7030 §3.3.2 and §4.2.2: the client authenticates TLS with the certificate it renews."""
    device = authority.enrol()
    # The renewal CSR a stock client makes: the current certificate's subject and key.
    renew = f"{device.name}-renew"
    authority.ok(authority.openssl, "x509", "-x509toreq", "-in", device.certificate, "-key",
                 device.key, "-out", f"{renew}.pem")  # fmt: skip
    authority.ok(authority.openssl, "req", "-in", f"{renew}.pem", "-outform", "DER",
                 "-out", f"{renew}.der")  # fmt: skip
    authority.ok(authority.openssl, "base64", "-in", f"{renew}.der", "-out", f"{renew}.b64")

    # Without the certificate, over TLS or plain HTTP, the same CSR mints nothing.
    assert (
        authority.curl_post(f"{authority.est}/simplereenroll", f"{renew}.b64", "r1.json") == "401"
    )
    plain = authority.curl_post(f"{authority.plain_est}/simplereenroll", f"{renew}.b64", "r2.json")
    assert plain == "401"

    status = authority.curl_post(f"{authority.est}/simplereenroll", f"{renew}.b64",
                                 f"{renew}.b64r", "--cert", device.certificate,
                                 "--key", device.key)  # fmt: skip
    assert status == "200", (authority.work / f"{renew}.b64r").read_text()
    authority.certs_only(f"{renew}.b64r", f"{renew}-new.pem")
    assert authority.serial(f"{renew}-new.pem") != device.serial
    verified = authority.ok(authority.openssl, "verify", "-CAfile", "root.pem", "-untrusted",
                            "issuing.pem", f"{renew}-new.pem")  # fmt: skip
    assert verified.strip().endswith(": OK")

    # The superseded certificate still chains, but renews no more.
    again = authority.curl_post(f"{authority.est}/simplereenroll", f"{renew}.b64", "r3.json",
                                "--cert", device.certificate, "--key", device.key)  # fmt: skip
    assert again == "401"
    assert "superseded" in (authority.work / "r3.json").read_text()


def test_a_certificate_from_another_fleet_does_not_reenrol(authority: Authority) -> None:
    """A self-made certificate with a device's subject is not a credential of this fleet."""
    device = authority.enrol()
    authority.ok(authority.openssl, "req", "-x509", "-new", "-key", device.key, "-subj",
                 f"/CN={device.name}", "-days", "1", "-out", "forged.pem")  # fmt: skip
    body = authority.csr(f"{device.name}-f", f"/CN={device.name}")
    result = authority.run(authority.curl, "-sS", "-k", "-o", "forged.json", "-w",
                           "%{http_code}", "-H", "Content-Type: application/pkcs10",
                           "--data-binary", f"@{body}", "--cert", "forged.pem", "--key",
                           device.key, f"{authority.est}/simplereenroll")  # fmt: skip
    # The TLS layer refuses a client certificate no fleet CA issued: the server closes the
    # connection and nothing is minted (curl says 000); an answer, if any, is 401.
    if result.returncode == 0:
        assert result.stdout == "401", result.stdout
    else:
        assert result.stdout == "000", result.stdout
