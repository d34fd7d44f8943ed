"""The device agent on a TPM 2.0 (Debian's swtpm) as on a secure element: enrol by TPM2_Certify
through the authority's EST app, refresh with the same TPM key, re-key to a new one; and the
refusals a TPM-rooted device meets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from tests.attestation_fixtures import Authority, make_authority
from tests.tpm_fixtures import (
    tpm_fixture,  # noqa: F401 - the "tpm" fixture
    tpm_line_fixture,  # noqa: F401 - the "tpm_line" fixture
)

from fleetid.authority.provisioners.attestation import import_manifest
from fleetid.clock import ManualClock
from fleetid.device.agent import AgentState, DeviceAgent
from fleetid.errors import ConfigError, TpmError, VerificationError
from fleetid.factory.tpm_line import TpmIdentity
from fleetid.sim.demo_tpm import SoftwareTpmLine
from fleetid.tpm.device import TpmDevice


@pytest.fixture
def authority(tmp_path: Path, db_url: str, tpm_line: SoftwareTpmLine) -> Iterator[Authority]:
    assert isinstance(tpm_line.clock, ManualClock)
    made = make_authority(tmp_path / "authority", db_url, tpm_line.clock, [tpm_line.root])
    yield made
    made.close()


def _listed(authority: Authority, identity: TpmIdentity) -> None:
    import_manifest(
        authority.ca.store, [identity.manifest_record("tpm/000001")], authority.ca.clock.now()
    )


def test_an_agent_on_a_tpm_enrols_refreshes_and_rekeys(
    tpm: TpmDevice, tpm_line: SoftwareTpmLine, authority: Authority
) -> None:
    identity = tpm_line.provision(tpm)
    _listed(authority, identity)
    agent = DeviceAgent.for_tpm(tpm, anchors=[authority.ca.root], clock=authority.ca.clock)
    assert agent.device_id == identity.serial
    enrolled = agent.enrol(authority.transport)
    assert enrolled.certificate.public_key() == tpm.public_key(enrolled.handle)
    refreshed = agent.refresh(authority.transport)
    assert refreshed.handle == enrolled.handle
    assert refreshed.certificate.serial_number != enrolled.certificate.serial_number
    assert refreshed.certificate.public_key() == enrolled.certificate.public_key()
    rekeyed = agent.rekey(authority.transport)
    assert agent.state is AgentState.REKEYED
    assert rekeyed.certificate.public_key() != enrolled.certificate.public_key()
    with pytest.raises(TpmError, match="no TPM key"):
        tpm.signer(enrolled.handle)  # the superseded key is gone
    (name,) = rekeyed.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert name.value == identity.serial


def test_a_tpm_off_the_manifest_does_not_enrol(
    tpm: TpmDevice, tpm_line: SoftwareTpmLine, authority: Authority
) -> None:
    tpm_line.provision(tpm)
    agent = DeviceAgent.for_tpm(tpm, anchors=[authority.ca.root], clock=authority.ca.clock)
    with pytest.raises(VerificationError, match="not on a manifest"):
        agent.enrol(authority.transport)
    assert agent.state is AgentState.FACTORY and agent.credential is None


def test_the_same_tpm_evidence_twice_is_refused_over_est(
    tpm: TpmDevice, tpm_line: SoftwareTpmLine, authority: Authority
) -> None:
    _listed(authority, tpm_line.provision(tpm))
    agent = DeviceAgent.for_tpm(tpm, anchors=[authority.ca.root], clock=authority.ca.clock)
    nonce = authority.transport.challenge(agent.device_id)
    _, csr = agent._attested_request(nonce)
    authority.transport.simple_enroll(csr)
    with pytest.raises(VerificationError, match="used at"):
        authority.transport.simple_enroll(csr)


def test_a_tpm_device_has_no_unattended_package_download(
    tpm: TpmDevice, tpm_line: SoftwareTpmLine, authority: Authority
) -> None:
    """Packages install inside a secure element (LOAD BOUND PACKAGE); a TPM has no such step."""
    tpm_line.provision(tpm)
    agent = DeviceAgent.for_tpm(tpm, anchors=[authority.ca.root], clock=authority.ca.clock)
    with pytest.raises(ConfigError, match="needs a secure element"):
        agent.unattended()
