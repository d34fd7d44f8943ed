"""Demo stage: a TPM 2.0-rooted device (Debian's swtpm) enrols by TPM2_Certify, then refreshes.

A software manufacturer (``SoftwareTpmLine``: root and line CA in software, a TEST manufacturer)
certifies the TPM's EK, proves the AK beside it by credential activation and certifies the AK
(``fleetid.factory.tpm_line``). The device agent then runs on the TPM: a key made in the TPM,
certified by the AK with the authority's challenge, a CSR signed by TPM2_Sign, an operational
certificate; a refresh; and two refusals: the same evidence again (a replayed challenge) and a
duplicable key (fixedTPM clear). Without swtpm or tpm2-pytss the stage says so and is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.provisioners.attestation import import_manifest
from fleetid.clock import Clock, ManualClock, SystemClock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.device.agent import DeviceAgent
from fleetid.device.transport import HttpTransport
from fleetid.errors import AttestationError, VerificationError
from fleetid.factory.manufacturer import ManufacturerNames, issue_line_ca, issue_root
from fleetid.factory.tpm_line import TpmIdentity, provision_tpm
from fleetid.formats.csr_attestation import build_attested_csr
from fleetid.sim.demo import DemoContext, drill, stage_directory
from fleetid.tpm.device import TpmDevice
from fleetid.tpm.stack import tss_available
from fleetid.tpm.swtpm import Swtpm, swtpm_available

__all__ = ["SoftwareTpmLine", "stage_tpm"]


@dataclass
class SoftwareTpmLine:
    """A TEST manufacturer of TPM-rooted devices: its root and line CA keys are software keys."""

    root: x509.Certificate
    line_ca: x509.Certificate
    organization: str
    line_signer: SoftwareSigner  # a TEST manufacturer's key, in software
    clock: Clock

    @classmethod
    def create(
        cls, *, clock: Clock, organization: str = "fleetid TEST TPM maker"
    ) -> SoftwareTpmLine:
        names = ManufacturerNames(organization=organization)
        root_signer = SoftwareSigner(new_private_key(ec.SECP384R1()))
        line_signer = SoftwareSigner(new_private_key())
        root = issue_root(names=names, signer=root_signer, now=clock.now())
        line_ca = issue_line_ca(
            names=names,
            line_id="T1",
            line_ca_public_key=line_signer.public_key(),
            root=root,
            root_signer=root_signer,
            now=clock.now(),
        )
        return cls(root, line_ca, organization, line_signer, clock)

    def provision(self, tpm: TpmDevice) -> TpmIdentity:
        """The line's TPM steps (``fleetid.factory.tpm_line.provision_tpm``) for one device."""
        return provision_tpm(
            tpm,
            line_ca=self.line_ca,
            line_ca_signer=self.line_signer,
            organization=self.organization,
            now=self.clock.now(),
        )


def stage_tpm(ctx: DemoContext) -> None:
    console = ctx.console
    reason = swtpm_available() or tss_available()
    if reason is not None:
        console.print(f"skipped: {reason}")
        ctx.record("TPM-rooted device", "skipped: no software TPM here")
        return
    # Imported here: the authority side is only needed once a TPM can run.
    from fleetid.sim.demo_fleet import demo_authority

    clock = ManualClock(SystemClock().now())
    line = SoftwareTpmLine.create(clock=clock)
    with stage_directory("tpm") as root_dir, Swtpm() as swtpm, TpmDevice(swtpm.tcti) as tpm:
        identity = line.provision(tpm)
        console.print(
            f"line: EK certificate and, after credential activation, AK certificate for "
            f"{identity.serial}"
        )
        authority = demo_authority(root_dir / "authority", "Fleet T", clock, line.root)
        try:
            record = identity.manifest_record(f"{line.organization}/000001")
            import_manifest(authority.ca.store, [record], clock.now())
            agent = DeviceAgent.for_tpm(tpm, anchors=[authority.ca.root], clock=clock)
            enrolled = agent.enrol(authority.transport)
            console.print(f"enrolled by TPM2_Certify: {enrolled.serial}")
            refreshed = agent.refresh(authority.transport)
            console.print(f"refreshed with the same TPM key: {refreshed.serial}")
            refusals = _refusals(ctx, agent, tpm, authority.transport)
        finally:
            authority.transport.close()
            authority.ca.close()
    ctx.record("TPM-rooted device", f"enrolled, refreshed; drill: {refusals} forgeries refused")
    console.print()


def _refusals(
    ctx: DemoContext, agent: DeviceAgent, tpm: TpmDevice, transport: HttpTransport
) -> int:
    """The agent's evidence sent twice, and a duplicable key's: each refused with its reason."""
    refused = 0
    nonce = transport.challenge(agent.device_id)
    handle, csr = agent._attested_request(nonce)
    transport.simple_enroll(csr)
    duplicable = tpm.create_key(duplicable=True)
    forged = build_attested_csr(
        subject=x509.Name([]),
        signer=tpm.signer(duplicable),
        bundle=tpm.evidence(duplicable, transport.challenge(agent.device_id)),
    )
    for what, request in (
        ("the same evidence again", csr),
        ("a duplicable TPM key (fixedTPM clear)", forged.public_bytes(serialization.Encoding.DER)),
    ):
        try:
            transport.simple_enroll(request)
        except (AttestationError, VerificationError) as exc:
            refused += 1
            ctx.console.print(f"{drill(what)}: refused ({exc})")
    for key in (handle, duplicable):
        tpm.delete_key(key)
    return refused
