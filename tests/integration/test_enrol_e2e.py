"""Attestation-gated enrolment end to end: ``fleetid serve --https`` on loopback (real TLS), an
emulated secure element, the device agent over httpx; SQLite and PostgreSQL.

Every issued certificate is checked by ``openssl verify`` and pkilint (RFC 5280 linters). The
rollover test checks the link certificates and chains across a root rollover with OpenSSL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.attestation_fixtures import make_authority
from tests.authority_server import fleetid, free_port, require_tool, serving

from fleetid.authority.lifecycle import roll_issuing_ca, roll_root
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.clock import ManualClock, SystemClock
from fleetid.device.agent import AgentState, DeviceAgent
from fleetid.device.transport import HttpTransport
from fleetid.device.truststore import TrustStore
from fleetid.errors import AuthenticationError, VerificationError
from fleetid.policy import DEFAULT_POLICY, CredentialType
from fleetid.sim.software_line import SoftwareLine
from fleetid.store.engine import open_engine
from fleetid.store.repositories import Store

pytestmark = pytest.mark.slow
PEM = serialization.Encoding.PEM


def _pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(PEM) for c in certificates))
    return path


def _openssl_verify(
    tmp: Path,
    root: x509.Certificate,
    chain: list[x509.Certificate],
    leaf: x509.Certificate,
    at: datetime | None = None,
) -> None:
    openssl = require_tool("openssl")
    args = [openssl, "verify", "-CAfile", str(_pem(tmp / "anchor.pem", root))]
    if at is not None:
        args += ["-attime", str(int(at.timestamp()))]
    if chain:
        args += ["-untrusted", str(_pem(tmp / "untrusted.pem", *chain))]
    args.append(str(_pem(tmp / "leaf.pem", leaf)))
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _pkilint(tmp: Path, certificate: x509.Certificate) -> None:
    tool = Path(sys.executable).with_name("lint_pkix_cert")
    result = subprocess.run(
        [str(tool), "lint", "-s", "NOTICE", str(_pem(tmp / "lint.pem", certificate))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_attested_enrolment_over_tls(tmp_path: Path, db_url: str) -> None:
    data_dir = tmp_path / "authority"
    env = {**os.environ, "FLEETID_DATABASE_URL": db_url}
    assert fleetid("ca", "init", "--data-dir", str(data_dir), env=env).returncode == 0
    chain = x509.load_pem_x509_certificates(
        fleetid("ca", "certs", "--data-dir", str(data_dir), env=env).stdout.encode()
    )
    issuing, root = chain
    clock = SystemClock()
    line = SoftwareLine(clock=clock)
    trust_manufacturer(data_dir, line.root)
    device, stranger = line.make_device(), line.make_device()
    store = Store(open_engine(db_url))
    import_manifest(store, [device.manifest_record()], clock.now())
    store.dispose()

    port = free_port()
    with serving(data_dir, [port], ["--https", f"127.0.0.1:{port}"], env=env):
        transport = HttpTransport.connect(
            f"https://127.0.0.1:{port}", ca_bundle=_pem(tmp_path / "root.pem", root), timeout=30
        )
        cadence = DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence
        agent = DeviceAgent(
            se=device.client(), clock=clock, cadence=cadence, trust=TrustStore([root])
        )
        enrolled = agent.enrol(transport)
        refreshed = agent.refresh(transport)
        rekeyed = agent.rekey(transport)
        assert agent.state is AgentState.REKEYED
        for credential in (enrolled, refreshed, rekeyed):
            _openssl_verify(tmp_path, root, [issuing], credential.certificate)
        _pkilint(tmp_path, rekeyed.certificate)
        assert refreshed.certificate.public_key() == enrolled.certificate.public_key()
        assert rekeyed.certificate.public_key() != enrolled.certificate.public_key()

        # Negative twins over the wire.
        with pytest.raises(VerificationError, match="not on a manifest"):
            DeviceAgent(
                se=stranger.client(), clock=clock, cadence=cadence, trust=TrustStore([root])
            ).enrol(transport)
        nonce = transport.challenge(device.serial)
        _, csr = agent._attested_request(nonce)
        transport.simple_enroll(csr)
        with pytest.raises(VerificationError, match="used at"):
            transport.simple_enroll(csr)  # the same challenge again: replayed
        software = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device.serial)]))
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        )
        with pytest.raises(AuthenticationError):
            transport.simple_enroll(software.public_bytes(serialization.Encoding.DER))
        transport.close()


def test_chains_across_issuing_and_root_rollover(tmp_path: Path, db_url: str) -> None:
    """OpenSSL and pkilint on every certificate a rollover publishes, and on the chains."""
    clock = ManualClock()
    line = SoftwareLine(clock=clock)
    authority = make_authority(tmp_path / "a", db_url, clock, [line.root])
    try:
        device = line.make_device()
        authority.import_devices(device)
        cadence = DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence
        agent = DeviceAgent(
            se=device.client(), clock=clock, cadence=cadence, trust=TrustStore([authority.ca.root])
        )
        old_root, old_issuing = authority.ca.root, authority.ca.issuing.certificate
        first = agent.enrol(authority.transport)
        authority.service.replace_ca(roll_issuing_ca(authority.service.ca))
        second_issuing = authority.service.ca.issuing.certificate
        second = agent.refresh(authority.transport)
        _openssl_verify(tmp_path, old_root, [second_issuing], second.certificate, at=clock.now())
        clock.advance(timedelta(days=1))
        ca, rollover = roll_root(authority.service.ca)
        authority.service.replace_ca(ca)
        third = agent.refresh(authority.transport)
        assert rollover.new_root in agent.trust.anchors
        # New credential under the new root; the old one still verifies under the old root, and
        # under the new root through OldWithNew; the link verifies under the old root.
        _openssl_verify(
            tmp_path, rollover.new_root, [rollover.issuing], third.certificate, at=clock.now()
        )
        _openssl_verify(tmp_path, old_root, [old_issuing], first.certificate, at=clock.now())
        _openssl_verify(
            tmp_path,
            rollover.new_root,
            [old_issuing, rollover.old_with_new],
            first.certificate,
            at=clock.now(),
        )
        _openssl_verify(tmp_path, old_root, [], rollover.new_with_old, at=clock.now())
        for certificate in (
            rollover.new_root,
            rollover.new_with_old,
            rollover.old_with_new,
            rollover.issuing,
            second_issuing,
            third.certificate,
        ):
            _pkilint(tmp_path, certificate)
    finally:
        authority.close()
