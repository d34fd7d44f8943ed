"""The provisioner registry: every provisioner takes one ``EnrolmentRequest`` through one
interface (``accepts``, ``authorise``), and the enrolment service asks the one whose kind the
request is. On SQLite and PostgreSQL where a store is involved."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.attestation_fixtures import Authority, attested_csr, make_authority

from fleetid import errors as e
from fleetid.authority.provisioners import (
    PROVISIONERS,
    BasicCredentials,
    EnrolmentRequest,
    Provisioner,
)
from fleetid.authority.provisioners.attestation import AttestationProvisioner
from fleetid.authority.provisioners.token import TokenProvisioner, create_token
from fleetid.clock import ManualClock
from fleetid.errors import AuthenticationError, NotConfiguredError
from fleetid.formats.csr_attestation import ID_AA_ATTESTATION
from fleetid.sim.software_line import SoftwareLine


def _plain_csr() -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )


def _broken_evidence_csr() -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_attribute(x509.ObjectIdentifier(ID_AA_ATTESTATION), b"not a bundle")
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )


DER = serialization.Encoding.DER
BASIC = BasicCredentials(username="t-0123456789abcdef", password="secret")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def line(clock: ManualClock) -> SoftwareLine:
    return SoftwareLine(clock=clock)


@pytest.fixture
def authority(
    tmp_path: Path, db_url: str, clock: ManualClock, line: SoftwareLine
) -> Iterator[Authority]:
    made = make_authority(tmp_path / "a", db_url, clock, [line.root])
    yield made
    made.close()


def test_every_registered_provisioner_has_the_one_interface() -> None:
    assert set(PROVISIONERS) == {"token", "attestation"}
    for cls in PROVISIONERS.values():
        for name in ("accepts", "authorise"):
            parameters = list(inspect.signature(getattr(cls, name)).parameters)
            assert parameters[-1] == "request", (cls, name, parameters)


def test_kinds_are_told_apart_without_verification(
    authority: Authority, line: SoftwareLine
) -> None:
    token: Provisioner = TokenProvisioner(authority.ca.clock)
    attestation = authority.service.attestation
    assert isinstance(attestation, AttestationProvisioner)
    device = line.make_device()
    evidence = attested_csr(device.client(), b"\x00" * 32)
    assert token.accepts(EnrolmentRequest(csr=_plain_csr(), basic=BASIC))
    assert not token.accepts(EnrolmentRequest(csr=evidence))
    assert attestation.accepts(EnrolmentRequest(csr=evidence))
    assert attestation.accepts(EnrolmentRequest(csr=_broken_evidence_csr()))
    # Negative twins: a plain CSR, or evidence sent with a Basic credential (that is a token
    # enrolment, decided by the token provisioner alone).
    assert not attestation.accepts(EnrolmentRequest(csr=_plain_csr()))
    assert not attestation.accepts(EnrolmentRequest(csr=evidence, basic=BASIC))


def test_token_provisioner_refuses_a_request_without_basic(authority: Authority) -> None:
    with authority.ca.store.transaction() as tx, pytest.raises(AuthenticationError):
        TokenProvisioner(authority.ca.clock).authorise(tx, EnrolmentRequest(csr=_plain_csr()))


def test_attestation_provisioner_refuses_a_request_without_evidence(authority: Authority) -> None:
    attestation = authority.service.attestation
    assert attestation is not None
    with authority.ca.store.transaction() as tx, pytest.raises(e.EvidenceMissingError):
        attestation.authorise(tx, EnrolmentRequest(csr=_plain_csr()))


def test_service_routes_by_kind(authority: Authority, line: SoftwareLine) -> None:
    service = authority.service
    assert list(service.provisioners) == ["token", "attestation"]
    with authority.ca.store.transaction() as tx:
        issued = create_token(
            tx, device_id="gw-1", clock=authority.ca.clock, ttl=timedelta(hours=1)
        )
    basic = BasicCredentials(username=issued.username, password=issued.password)
    der = _plain_csr().public_bytes(DER)
    assert service.simple_enroll(basic, der).subject.rfc4514_string() == "CN=gw-1"

    device = line.make_device()
    authority.import_devices(device)
    nonce = service.issue_challenge(device.serial).nonce
    csr = attested_csr(device.client(), nonce).public_bytes(DER)
    assert service.simple_enroll(None, csr).subject.rfc4514_string() == f"CN={device.serial}"

    with pytest.raises(AuthenticationError, match=r"needs a credential.*attestation evidence"):
        service.simple_enroll(None, der)


def test_no_trusted_manufacturer_is_not_configured_here_in_both_places() -> None:
    """The lifecycle service and the provisioner both refuse attestation while no manufacturer
    root is trusted. The provisioner raised a plain ConfigError (HTTP 500, "misconfigured")
    where the service raised NotConfiguredError (HTTP 503); both now raise the latter."""
    provisioner = AttestationProvisioner(ManualClock(), lambda: None)
    assert not provisioner.configured
    with pytest.raises(NotConfiguredError, match="no manufacturer root is trusted"):
        _ = provisioner.policy
