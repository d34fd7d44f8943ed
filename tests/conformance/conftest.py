"""The conformance suite: what fleetid puts on the wire, checked as an independent party would.

Secure channels: ``test_scp03_transcripts.py`` replays published SCP03 transcripts (GP Amendment
D) against both of our sides, byte for byte.

Everything served: the one entry point below, a real ``fleetid serve``, seen from outside.

Every test here reaches fleetid only as a stranger would: the ``fleetid`` command, HTTP(S) on
loopback, and stock clients (``openssl``, ``curl``). Nothing imports fleetid's own code, so a test
passes only if the bytes on the wire are what the standard says (RFC 7030 EST, RFC 6960 OCSP,
RFC 5280 certificates and CRLs), as independent implementations read them.

One authority serves each test module: ``fleetid ca init`` names the public listener in every
certificate (CRL distribution points, OCSP), then ``fleetid serve`` listens on three ports: TLS
(EST, with optional client certificates), plain loopback HTTP (EST for clients without TLS: used
to show what is refused there), and the public plain-HTTP listener (CRLs, OCSP, CA certificates).
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.authority_server import fleetid, free_port, serving
from tests.optional import require_tool

__all__ = ["Authority", "Enrolled"]

BEGIN, END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def split_pem(text: str) -> list[str]:
    """The PEM certificate blocks of ``text``, in order (``-print_certs`` headers dropped)."""
    return [f"{BEGIN}{chunk.partition(BEGIN)[2]}{END}\n" for chunk in text.split(END)[:-1]]


@dataclass(frozen=True, kw_only=True)
class Enrolled:
    """A device enrolled by curl: its certificate and key files (in the work folder) and serial."""

    name: str
    certificate: str  # file name, PEM
    key: str  # file name, PEM
    serial: str  # lower-case hex, as ``fleetid revoke`` takes it


@dataclass(kw_only=True)
class Authority:
    data_dir: Path
    work: Path
    public: str  # the public plain-HTTP listener, named in every certificate
    est: str  # EST over TLS
    plain_est: str  # EST over loopback plain HTTP
    env: dict[str, str]
    openssl: str
    curl: str
    _enrolled: int = field(default=0)

    def fleetid(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``fleetid ARGS --data-dir DATA_DIR``."""
        return fleetid(*args, "--data-dir", str(self.data_dir), env=self.env)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A stock tool in the work folder (first argument: the tool's path)."""
        return subprocess.run(
            list(args), cwd=self.work, capture_output=True, text=True, timeout=60, check=False
        )

    def ok(self, *args: str) -> str:
        """Like ``run``, and the tool must succeed; its stdout."""
        result = self.run(*args)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result.stdout

    def curl_post(self, url: str, body: str, out: str, *extra: str) -> str:
        """curl POSTs the file ``body`` as an EST PKCS#10 request; the HTTP status, as text."""
        return self.ok(
            self.curl, "-sS", "-k", "-o", out, "-w", "%{http_code}",
            "-H", "Content-Type: application/pkcs10", "--data-binary", f"@{body}", *extra, url,
        )  # fmt: skip

    def certs_only(self, response: str, out: str) -> None:
        """An EST certs-only answer (base64 CMS, RFC 7030 §4.1.3) to PEM certificates in ``out``."""
        (self.work / f"{out}.p7").write_bytes(base64.b64decode((self.work / response).read_text()))
        self.ok(self.openssl, "pkcs7", "-inform", "DER", "-in", f"{out}.p7", "-print_certs",
                "-out", out)  # fmt: skip

    def csr(self, name: str, subject: str) -> str:
        """A new P-256 key ``NAME.key`` and its CSR, base64 DER (RFC 7030 §4.2.1); the file."""
        self.ok(self.openssl, "req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key", "-subj", subject,
                "-outform", "DER", "-out", f"{name}.der")  # fmt: skip
        self.ok(self.openssl, "base64", "-in", f"{name}.der", "-out", f"{name}.b64")
        return f"{name}.b64"

    def token(self, device: str) -> str:
        created = self.fleetid("token", "create", "--device-id", device)
        assert created.returncode == 0, created.stderr
        (credential,) = created.stdout.splitlines()
        return credential

    def serial(self, certificate: str) -> str:
        out = self.ok(self.openssl, "x509", "-noout", "-serial", "-in", certificate)
        return out.strip().partition("=")[2].lower()

    def enrol(self) -> Enrolled:
        """A new device enrolled as a stock client would: openssl req, then curl with a token."""
        self._enrolled += 1
        name = f"device-{self._enrolled}"
        body = self.csr(name, f"/CN={name}")
        credential = self.token(name)
        status = self.curl_post(f"{self.est}/simpleenroll", body, f"{name}.b64r", "-u", credential)
        assert status == "200", (self.work / f"{name}.b64r").read_text()
        self.certs_only(f"{name}.b64r", f"{name}.pem")
        return Enrolled(
            name=name,
            certificate=f"{name}.pem",
            key=f"{name}.key",
            serial=self.serial(f"{name}.pem"),
        )

    def revoke(self, serial: str, *args: str) -> str:
        result = self.fleetid("revoke", serial, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    openssl, curl = require_tool("openssl"), require_tool("curl")
    root = tmp_path_factory.mktemp("conformance")
    tls_port, http_port, public_port = free_port(), free_port(), free_port()
    public = f"http://127.0.0.1:{public_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    data_dir = root / "authority"
    init_env = {**env, "FLEETID_PUBLIC_URL": public, "FLEETID_ALLOW_LOOPBACK_URLS": "1"}
    initialised = fleetid("ca", "init", "--data-dir", str(data_dir), env=init_env)
    assert initialised.returncode == 0, initialised.stderr
    work = root / "work"
    work.mkdir()
    chain = fleetid("ca", "certs", "--data-dir", str(data_dir), env=env)
    assert chain.returncode == 0, chain.stderr
    issuing, root_ca = split_pem(chain.stdout)
    (work / "issuing.pem").write_text(issuing)
    (work / "root.pem").write_text(root_ca)
    (work / "chain.pem").write_text(issuing + root_ca)
    args = ["--https", f"127.0.0.1:{tls_port}", "--http", f"127.0.0.1:{http_port}",
            "--public-http", f"127.0.0.1:{public_port}", "--public-url", public]  # fmt: skip
    with serving(data_dir, [tls_port, http_port, public_port], args, env=env):
        yield Authority(
            data_dir=data_dir,
            work=work,
            public=public,
            est=f"https://127.0.0.1:{tls_port}/.well-known/est",
            plain_est=f"http://127.0.0.1:{http_port}/.well-known/est",
            env=env,
            openssl=openssl,
            curl=curl,
        )
