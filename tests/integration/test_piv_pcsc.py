"""Stock PIV middleware uses the emulated card's PIV applet through pcscd and vpcd.

* yubico-piv-tool (Yubico's): ``status``, ``generate``, ``import-certificate``,
  ``test-signature``; a wrong administration key and a wrong PIN are refused.
* OpenSC: ``piv-tool`` generates the 9A key on the card (mutual authentication with the AES-192
  administration key) and loads its certificate; ``pkcs11-tool --module opensc-pkcs11.so`` lists
  the token, logs in, signs; ``openssl`` verifies the signature. OpenSC's PKCS#11 module has no
  key generation for PIV cards (no pkcs15init profile: "Generate EC key mechanism not
  supported"), which is why OpenSC's own ``piv-tool`` generates the key.
* The fleet's enrolment through PC/SC fills slot 9A; OpenSC signs with it and OpenSSL checks the
  chain to the fleet root and the signature.

The pcscd fixture and the card insertion are those of test_pcsc.py.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.integration.test_pcsc import (  # the shared pcscd fixture and helpers
    Inserted,
    PcscStack,
    PcscTransport,
    connected,
    pcsc_stack,
)
from tests.optional import require_tool

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import create_token
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.device.piv_enrolment import enrol_piv_authentication
from fleetid.device.transport import HttpTransport, in_process_client
from fleetid.se.card import SecureElement
from fleetid.se.piv_client import PivClient
from fleetid.se.piv_wire import DEFAULT_MANAGEMENT_KEY
from fleetid.se.wire import Curve

__all__ = ["pcsc_stack"]  # the fixture, imported so that pytest finds it here

pytestmark = [pytest.mark.pcsc, pytest.mark.xdist_group("pcsc")]

PIN = "123456"
TOOL_TIMEOUT = 60


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
        env={**os.environ, **(env or {})},
    )


def certificate_for(
    public: Any, common_name: str
) -> tuple[x509.Certificate, ec.EllipticCurvePublicKey]:
    """A certificate for ``public`` from a throwaway issuer (the middleware only stores it)."""
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "piv test issuer")]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate, issuer_key.public_key()


def write_pem(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_yubico_piv_tool_status_generate_import_and_test_signature(
    pcsc_stack: PcscStack, tmp_path: Path
) -> None:
    tool = require_tool("yubico-piv-tool")
    card = SecureElement.fabricate()
    # Debian's yubico-piv-tool (2.2) authenticates with a Triple DES administration key only:
    # the issuer sets one (the tool's default value) through the card's AES-192 default.
    piv = PivClient(card)
    piv.select()
    piv.authenticate(DEFAULT_MANAGEMENT_KEY, 0x0A)
    piv.set_management_key(DEFAULT_MANAGEMENT_KEY, 0x03)
    yubico = [tool, "--reader", pcsc_stack.reader]
    with Inserted(pcsc_stack, card):
        status = run([*yubico, "--action", "status"])
        assert status.returncode == 0, status.stderr
        assert "Version:\t5.4.3" in status.stdout
        assert "PIN tries left:\t3" in status.stdout
        assert "Slot 9a" not in status.stdout

        wrong = run([*yubico, "--key=" + "00" * 24, "-a", "generate", "-s", "9a", "-A", "ECCP256"])
        assert wrong.returncode != 0
        assert "Failed authentication" in wrong.stderr + wrong.stdout

        public_pem = tmp_path / "public.pem"
        generated = run(
            [*yubico, "-a", "generate", "-s", "9a", "-A", "ECCP256", "-o", str(public_pem)]
        )
        assert generated.returncode == 0, generated.stderr
        public = serialization.load_pem_public_key(public_pem.read_bytes())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        certificate, _ = certificate_for(public, "yubico-piv-tool 9a")
        cert_pem = write_pem(tmp_path / "cert.pem", certificate)
        imported = run([*yubico, "-a", "import-certificate", "-s", "9a", "-i", str(cert_pem)])
        assert imported.returncode == 0, imported.stderr

        status = run([*yubico, "-a", "status"])
        assert "Slot 9a:" in status.stdout and "CN=yubico-piv-tool 9a" in status.stdout
        assert "ECCP256" in status.stdout

        signed = run(
            [*yubico, "-a", "verify-pin", "-P", PIN, "-a", "test-signature", "-s", "9a",
             "-i", str(cert_pem)]
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
        assert "Successful ECDSA verification" in signed.stderr + signed.stdout

        bad_pin = run([*yubico, "-a", "verify-pin", "-P", "654321"])
        assert bad_pin.returncode != 0
        assert "2 tries left" in bad_pin.stderr + bad_pin.stdout
    # The certificate is in the card's 9A object, and the key is the card's.
    piv.select()
    assert piv.read_certificate(0x9A) == certificate
    assert piv.public_key(0x9A) == (Curve.P256, public)


def test_opensc_lists_the_token_signs_and_openssl_verifies(
    pcsc_stack: PcscStack, tmp_path: Path
) -> None:
    piv_tool = require_tool("piv-tool")
    pkcs11_tool = require_tool("pkcs11-tool")
    openssl = require_tool("openssl")
    card = SecureElement.fabricate()
    admin_key = tmp_path / "admin.key"
    admin_key.write_text(DEFAULT_MANAGEMENT_KEY.hex())
    opensc_env = {"PIV_EXT_AUTH_KEY": str(admin_key)}  # where piv-tool reads the key (hex)
    reader = ["--reader", pcsc_stack.reader]
    pkcs11 = [pkcs11_tool, "--module", "opensc-pkcs11.so"]
    with Inserted(pcsc_stack, card):
        # piv-tool generates on the card; it then fails to write the public key out with
        # OpenSSL 3 ("invalid curve"), so the key is read back through PC/SC below.
        run([piv_tool, *reader, "--admin", "M:9B:0A", "--genkey", "9A:11"], opensc_env)
        with connected(pcsc_stack.reader) as connection:
            host = PivClient(PcscTransport(connection))
            host.select()
            curve, public = host.public_key(0x9A)
        assert curve is Curve.P256
        certificate, _ = certificate_for(public, "opensc 9a")
        cert_pem = write_pem(tmp_path / "cert.pem", certificate)
        # piv-tool's exit status is not its success (it exits 48 after loading a certificate);
        # what the card holds afterwards, as PKCS#11 shows it, is.
        run(
            [piv_tool, *reader, "--admin", "M:9B:0A", "--cert", "9A", "--in", str(cert_pem)],
            opensc_env,
        )
        intruder, _ = certificate_for(public, "intruder")
        wrong_key = tmp_path / "wrong.key"
        wrong_key.write_text("00" * 24)
        run(
            [piv_tool, *reader, "--admin", "M:9B:0A", "--cert", "9A", "--in",
             str(write_pem(tmp_path / "intruder.pem", intruder))],
            {"PIV_EXT_AUTH_KEY": str(wrong_key)},
        )  # fmt: skip
        objects = run([*pkcs11, "--list-objects", "--type", "cert"])
        assert objects.returncode == 0, objects.stderr
        assert "CN=opensc 9a" in objects.stdout and "intruder" not in objects.stdout

        listed = run([*pkcs11, "--list-slots"])
        assert listed.returncode == 0, listed.stderr
        assert f"Slot 0 (0x0): {pcsc_stack.reader}" in listed.stdout
        # OpenSC's PIV driver names the token after the 9A certificate's subject.
        assert "token label        : opensc 9a" in listed.stdout
        assert "token manufacturer : piv_II" in listed.stdout

        message = tmp_path / "message"
        message.write_bytes(b"signed by the card, verified by openssl")
        signature = tmp_path / "signature.der"
        sign = [*pkcs11, "--sign", "--id", "01", "-m", "ECDSA-SHA256", "--signature-format"]
        sign += ["openssl", "-i", str(message), "-o", str(signature)]
        wrong_pin = run([*sign, "--login", "--pin", "654321"])
        assert wrong_pin.returncode != 0 and "CKR_PIN_INCORRECT" in wrong_pin.stderr
        signed = run([*sign, "--login", "--pin", PIN])
        assert signed.returncode == 0, signed.stderr

    public_pem = tmp_path / "public.pem"
    public_pem.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    verify = [openssl, "dgst", "-sha256", "-verify", str(public_pem), "-signature", str(signature)]
    checked = run([*verify, str(message)])
    assert checked.returncode == 0 and "Verified OK" in checked.stdout, checked.stderr
    message.write_bytes(b"another message")
    assert run([*verify, str(message)]).returncode != 0


def test_a_fleet_enrolled_9a_certificate_serves_opensc(
    pcsc_stack: PcscStack, tmp_path: Path
) -> None:
    """Enrolment through PC/SC puts the fleet's certificate in 9A; OpenSC signs with the key it
    names, and OpenSSL checks both the chain to the fleet root and the signature."""
    pkcs11_tool = require_tool("pkcs11-tool")
    openssl = require_tool("openssl")
    base = "http://fleet.test"
    settings = Settings.load(tmp_path / "ca", environ={"FLEETID_PUBLIC_URL": base})
    ca = FleetCa.init(settings, clock=SystemClock(), name="PIV Fleet")
    try:
        client = in_process_client(create_app(settings, clock=ca.clock, ca=ca), base)
        with ca.store.transaction() as tx:
            token = create_token(tx, device_id="piv-7", clock=ca.clock, ttl=timedelta(hours=1))
        client.auth = (token.username, token.password)
        card = SecureElement.fabricate()
        with Inserted(pcsc_stack, card):
            with connected(pcsc_stack.reader) as connection:
                certificate = enrol_piv_authentication(
                    PivClient(PcscTransport(connection)),
                    HttpTransport(client),
                    subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "piv-7")]),
                    management_key=DEFAULT_MANAGEMENT_KEY,
                    pin=PIN,
                )
            message = tmp_path / "message"
            message.write_bytes(b"a fleet credential in a PIV slot")
            signature = tmp_path / "signature.der"
            signed = run(
                [pkcs11_tool, "--module", "opensc-pkcs11.so", "--login", "--pin", PIN,
                 "--sign", "--id", "01", "-m", "ECDSA-SHA256", "--signature-format", "openssl",
                 "-i", str(message), "-o", str(signature)]
            )  # fmt: skip
            assert signed.returncode == 0, signed.stderr
        chain = ca.chain()
    finally:
        ca.close()
    leaf = write_pem(tmp_path / "leaf.pem", certificate)
    (tmp_path / "root.pem").write_bytes(chain[-1].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "issuers.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain[:-1])
    )
    verified = run(
        [openssl, "verify", "-CAfile", str(tmp_path / "root.pem"),
         "-untrusted", str(tmp_path / "issuers.pem"), str(leaf)]
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    public_pem = tmp_path / "public.pem"
    run([openssl, "x509", "-in", str(leaf), "-pubkey", "-noout", "-out", str(public_pem)])
    checked = run(
        [openssl, "dgst", "-sha256", "-verify", str(public_pem), "-signature", str(signature),
         str(message)]
    )  # fmt: skip
    assert checked.returncode == 0 and "Verified OK" in checked.stdout, checked.stderr
