"""``fleetid serve --https`` on loopback: real TLS with a server certificate from the fleet PKI.

httpx trusts only the fleet root (from ``fleetid ca certs``), fetches ``cacerts`` and enrols with a
one-time token over TLS. Negative twins: a client with the system trust store, and a client that
expects another host name, both refuse the server.
"""

from __future__ import annotations

import base64
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.authority_server import fleetid, free_port, serving

pytestmark = pytest.mark.slow


def _chain(data_dir: Path) -> list[x509.Certificate]:
    result = fleetid("ca", "certs", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return x509.load_pem_x509_certificates(result.stdout.encode())


def _certs(response: httpx.Response) -> list[x509.Certificate]:
    assert response.status_code == 200, response.text
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(response.content))


def test_enrolment_over_tls_on_loopback(tmp_path: Path) -> None:
    data_dir = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data_dir)).returncode == 0
    issuing, root = _chain(data_dir)
    root_file = tmp_path / "root.pem"
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    token = fleetid("token", "create", "--data-dir", str(data_dir), "--device-id", "lab-rig-7")
    user, _, password = token.stdout.strip().partition(":")

    port = free_port()
    base = f"https://127.0.0.1:{port}/.well-known/est"
    with serving(data_dir, [port], ["--https", f"127.0.0.1:{port}"]):
        trust = ssl.create_default_context(cafile=str(root_file))
        with httpx.Client(verify=trust, timeout=30) as client:
            assert set(_certs(client.get(f"{base}/cacerts"))) == {issuing, root}
            key = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab-rig-7")]))
                .sign(key, hashes.SHA256())
            )
            response = client.post(
                f"{base}/simpleenroll",
                content=base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)),
                headers={"Content-Type": "application/pkcs10"},
                auth=(user, password),
            )
            (leaf,) = _certs(response)
            leaf.verify_directly_issued_by(issuing)
            assert leaf.public_key() == key.public_key()
            # The OCSP and CRL URLs point back at this server (the TLS listener here).
            aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
            assert aia[0].access_location.value == f"https://127.0.0.1:{port}/ocsp"

        # The server's own certificate: issued by the fleet issuing CA, for 127.0.0.1.
        with (
            socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
            trust.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            server_der = tls.getpeercert(binary_form=True)
        assert server_der is not None
        server = x509.load_der_x509_certificate(server_der)
        server.verify_directly_issued_by(issuing)
        san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

        # Negative twins: the system trust store does not know the fleet root ...
        with httpx.Client(timeout=30) as stranger, pytest.raises(httpx.ConnectError):
            stranger.get(f"{base}/cacerts")
        # ... and the certificate does not name another host.
        with (
            socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
            pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
        ):
            trust.wrap_socket(raw, server_hostname="fleet.example")


def test_https_and_http_listeners_together(tmp_path: Path) -> None:
    data_dir = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data_dir)).returncode == 0
    _, root = _chain(data_dir)
    root_file = tmp_path / "root.pem"
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    http_port, https_port = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{http_port}", "--https", f"127.0.0.1:{https_port}"]
    with serving(data_dir, [http_port, https_port], args):
        plain = httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=30)
        secure = httpx.get(
            f"https://127.0.0.1:{https_port}/health",
            verify=ssl.create_default_context(cafile=str(root_file)),
            timeout=30,
        )
        assert plain.json() == secure.json() == {"status": "ok"}
        # Plain HTTP on the TLS port is not served.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{https_port}/health", timeout=30)
