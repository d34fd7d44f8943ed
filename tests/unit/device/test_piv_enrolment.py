"""The fleet issues a card's PIV authentication certificate: key on the card, CSR signed by the
card, EST ``simpleenroll`` with a one-time token to the fleet CA, certificate back in slot 9A.

The issued certificate is checked against the fleet CA by ``openssl verify``, and the
card's 9A key proves possession afterwards (a signature pyca verifies with the certificate).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.optional import require_tool

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import create_token
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.device.piv_enrolment import enrol_piv_authentication
from fleetid.device.transport import HttpTransport, in_process_client
from fleetid.errors import AuthenticationError, SecureElementError, VerificationError
from fleetid.se.card import SecureElement
from fleetid.se.piv_client import PivClient, PivSigner
from fleetid.se.piv_wire import DEFAULT_MANAGEMENT_KEY
from fleetid.se.wire import Curve

BASE = "http://fleet.test"
SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "piv-card-1")])


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[FleetCa]:
    # The store's default (SQLite): the store itself is tested on both backends elsewhere.
    settings = Settings.load(tmp_path, environ={"FLEETID_PUBLIC_URL": BASE})
    authority = FleetCa.init(settings, clock=ManualClock(), name="PIV Fleet")
    yield authority
    authority.close()


def authority_for(ca: FleetCa, device_id: str | None = "piv-card-1") -> HttpTransport:
    client = in_process_client(create_app(ca.settings, clock=ca.clock, ca=ca), BASE)
    if device_id is not None:
        with ca.store.transaction() as tx:
            token = create_token(tx, device_id=device_id, clock=ca.clock, ttl=timedelta(hours=1))
        client.auth = (token.username, token.password)
    return HttpTransport(client)


@pytest.mark.parametrize("curve", [Curve.P256, Curve.P384])
def test_enrolment_issues_the_9a_certificate_into_the_card(
    ca: FleetCa, curve: Curve, tmp_path: Path
) -> None:
    card = PivClient(SecureElement.fabricate())
    certificate = enrol_piv_authentication(
        card,
        authority_for(ca),
        subject=SUBJECT,
        management_key=DEFAULT_MANAGEMENT_KEY,
        pin="123456",
        curve=curve,
    )
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "piv-card-1"
    card.select()
    assert card.read_certificate(0x9A) == certificate
    assert card.public_key(0x9A) == (curve, certificate.public_key())
    # The chain verifies to the fleet's root (OpenSSL's RFC 5280 path validation).
    chain = ca.chain()
    pem = serialization.Encoding.PEM
    (tmp_path / "root.pem").write_bytes(chain[-1].public_bytes(pem))
    (tmp_path / "issuers.pem").write_bytes(b"".join(c.public_bytes(pem) for c in chain[:-1]))
    (tmp_path / "leaf.pem").write_bytes(certificate.public_bytes(pem))
    checked = subprocess.run(
        [require_tool("openssl"), "verify", "-attime", str(int(ca.clock.now().timestamp())),
         "-CAfile", str(tmp_path / "root.pem"),
         "-untrusted", str(tmp_path / "issuers.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # And the card holds the certified key.
    card.verify_pin("123456")
    signature = PivSigner(card, 0x9A).sign(b"possession")
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    digest = hashes.SHA256() if curve is Curve.P256 else hashes.SHA384()
    public.verify(signature, b"possession", ec.ECDSA(digest))


def test_a_wrong_management_key_enrols_nothing(ca: FleetCa) -> None:
    card = PivClient(SecureElement.fabricate())
    with pytest.raises(SecureElementError) as refused:
        enrol_piv_authentication(
            card, authority_for(ca), subject=SUBJECT, management_key=bytes(24), pin="123456"
        )
    assert refused.value.sw == 0x6982
    with pytest.raises(SecureElementError):
        card.public_key(0x9A)  # no key was generated


def test_a_wrong_pin_stops_before_the_authority(ca: FleetCa) -> None:
    card = PivClient(SecureElement.fabricate())
    authority = authority_for(ca)
    with pytest.raises(SecureElementError) as refused:
        enrol_piv_authentication(
            card,
            authority,
            subject=SUBJECT,
            management_key=DEFAULT_MANAGEMENT_KEY,
            pin="000000",
        )
    assert refused.value.sw == 0x63C2
    card.select()
    with pytest.raises(SecureElementError) as absent:
        card.read_certificate(0x9A)
    assert absent.value.sw == 0x6A82
    # The token was not spent: the same authority enrols the card with the right PIN.
    enrol_piv_authentication(
        card, authority, subject=SUBJECT, management_key=DEFAULT_MANAGEMENT_KEY, pin="123456"
    )


def test_without_a_credential_the_authority_refuses_and_the_slot_stays_empty(ca: FleetCa) -> None:
    card = PivClient(SecureElement.fabricate())
    with pytest.raises(AuthenticationError):
        enrol_piv_authentication(
            card,
            authority_for(ca, device_id=None),
            subject=SUBJECT,
            management_key=DEFAULT_MANAGEMENT_KEY,
            pin="123456",
        )
    card.select()
    with pytest.raises(SecureElementError) as absent:
        card.read_certificate(0x9A)
    assert absent.value.sw == 0x6A82


def test_a_certificate_for_another_key_is_not_stored(ca: FleetCa) -> None:
    class Substituting(HttpTransport):
        """An authority that answers with a certificate for a different key."""

        def simple_enroll(self, csr_der: bytes) -> x509.Certificate:
            other = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(SUBJECT)
                .sign(other, hashes.SHA256())
            )
            return super().simple_enroll(csr.public_bytes(serialization.Encoding.DER))

    inner = authority_for(ca)
    card = PivClient(SecureElement.fabricate())
    with pytest.raises(VerificationError):
        enrol_piv_authentication(
            card,
            Substituting(inner._client),
            subject=SUBJECT,
            management_key=DEFAULT_MANAGEMENT_KEY,
            pin="123456",
        )
    card.select()
    with pytest.raises(SecureElementError):
        card.read_certificate(0x9A)
