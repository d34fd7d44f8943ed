"""A TPM-rooted device end to end: Debian's swtpm provisioned by the line's TPM steps, the device
agent on it, ``fleetid serve --https`` on loopback (real TLS, the real EST app): attestation-gated
enrolment by TPM2_Certify, then a refresh; the same evidence again is refused over the wire."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.authority_server import fleetid, free_port, serving
from tests.tpm_fixtures import tpm_fixture  # noqa: F401 - the "tpm" fixture

from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.clock import SystemClock
from fleetid.device.agent import AgentState, DeviceAgent
from fleetid.device.transport import HttpTransport
from fleetid.errors import VerificationError
from fleetid.sim.demo_tpm import SoftwareTpmLine
from fleetid.store.engine import open_engine
from fleetid.store.repositories import Store
from fleetid.tpm.device import TpmDevice

pytestmark = pytest.mark.slow


def test_a_tpm_rooted_device_enrols_and_refreshes_over_tls(
    tmp_path: Path, db_url: str, tpm: TpmDevice
) -> None:
    data_dir = tmp_path / "authority"
    env = {**os.environ, "FLEETID_DATABASE_URL": db_url}
    assert fleetid("ca", "init", "--data-dir", str(data_dir), env=env).returncode == 0
    issuing, root = x509.load_pem_x509_certificates(
        fleetid("ca", "certs", "--data-dir", str(data_dir), env=env).stdout.encode()
    )
    clock = SystemClock()
    line = SoftwareTpmLine.create(clock=clock)
    identity = line.provision(tpm)
    trust_manufacturer(data_dir, line.root)
    store = Store(open_engine(db_url))
    import_manifest(store, [identity.manifest_record("tpm/000001")], clock.now())
    store.dispose()
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))

    port = free_port()
    with serving(data_dir, [port], ["--https", f"127.0.0.1:{port}"], env=env):
        transport = HttpTransport.connect(
            f"https://127.0.0.1:{port}", ca_bundle=tmp_path / "root.pem", timeout=30
        )
        agent = DeviceAgent.for_tpm(tpm, anchors=[root], clock=clock)
        enrolled = agent.enrol(transport)
        refreshed = agent.refresh(transport)
        assert agent.state is AgentState.ENROLLED
        assert enrolled.certificate.issuer == issuing.subject
        assert refreshed.certificate.public_key() == tpm.public_key(enrolled.handle)
        assert refreshed.serial != enrolled.serial

        nonce = transport.challenge(agent.device_id)
        _, csr = agent._attested_request(nonce)
        transport.simple_enroll(csr)
        with pytest.raises(VerificationError, match="used at"):
            transport.simple_enroll(csr)  # the same challenge again: replayed
        transport.close()
