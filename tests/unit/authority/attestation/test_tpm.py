"""The tcg-tpm-certify evidence verifier: genuine TPM evidence is accepted, and each forgery is
refused with its own reason.

Genuine evidence comes from Debian's swtpm (a fresh TPM per test) provisioned by the line's TPM
steps; forged evidence is built with tpm2-pytss's own structures (``TPMS_ATTEST``,
``TPMT_SIGNATURE``) where no genuine TPM would emit it. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from tests.attestation_fixtures import (
    new_challenge,
    store_fixture,  # noqa: F401 - the parametrised "store" fixture
)
from tests.tpm_fixtures import (
    tpm_fixture,  # noqa: F401 - the "tpm" fixture
    tpm_line_fixture,  # noqa: F401 - the "tpm_line" fixture
    two_tpms_fixture,  # noqa: F401 - the "other_tpm" fixture
)

from fleetid import errors as e
from fleetid.authority.attestation import (
    AttestedDevice,
    RepositoryLedger,
    VerificationPolicy,
    verify_attested_csr,
)
from fleetid.clock import ManualClock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.factory.manufacturer import IdevidIssuer, hardware_module_name_of
from fleetid.factory.tpm_line import TPM_HW_TYPE, TpmIdentity
from fleetid.formats.csr_attestation import (
    AttestationBundle,
    AttestationStatement,
    build_attested_csr,
)
from fleetid.formats.tcg_attest_certify import (
    TCG_ATTEST_CERTIFY_OID,
    TcgAttestCertify,
    decode_tcg_attest_certify,
    encode_tcg_attest_certify,
)
from fleetid.sim.demo_tpm import SoftwareTpmLine
from fleetid.store.repositories import Store
from fleetid.tpm.device import TpmDevice

SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tpm device")])


@pytest.fixture
def clock(tpm_line: SoftwareTpmLine) -> ManualClock:
    assert isinstance(tpm_line.clock, ManualClock)
    return tpm_line.clock


@pytest.fixture
def policy(tpm_line: SoftwareTpmLine) -> VerificationPolicy:
    return VerificationPolicy(manufacturer_roots=(tpm_line.root,))


@dataclass
class Gate:
    """A TPM the line provisioned and listed, and the authority's store and policy."""

    store: Store
    tpm: TpmDevice
    line: SoftwareTpmLine
    identity: TpmIdentity
    policy: VerificationPolicy
    clock: ManualClock

    def challenge(self) -> bytes:
        return new_challenge(self.store, self.clock)

    def verify(
        self, csr: x509.CertificateSigningRequest, policy: VerificationPolicy | None = None
    ) -> AttestedDevice:
        with self.store.transaction() as tx:
            return verify_attested_csr(
                csr,
                policy=policy or self.policy,
                ledger=RepositoryLedger(tx),
                now=self.clock.now(),
            )


@pytest.fixture
def gate(
    store: Store,
    tpm: TpmDevice,
    tpm_line: SoftwareTpmLine,
    policy: VerificationPolicy,
    clock: ManualClock,
) -> Gate:
    made = tpm_line.provision(tpm)
    with store.transaction() as tx:
        tx.manifest.add(made.manifest_record("tpm/000001"), clock.now())
    return Gate(store=store, tpm=tpm, line=tpm_line, identity=made, policy=policy, clock=clock)


def _tpm_csr(
    tpm: TpmDevice, nonce: bytes, *, duplicable: bool = False
) -> x509.CertificateSigningRequest:
    handle = tpm.create_key(duplicable=duplicable)
    return build_attested_csr(
        subject=SUBJECT, signer=tpm.signer(handle), bundle=tpm.evidence(handle, nonce)
    )


def _with_statement(bundle: AttestationBundle, statement: TcgAttestCertify) -> AttestationBundle:
    return AttestationBundle(
        statements=(
            AttestationStatement(
                type=TCG_ATTEST_CERTIFY_OID, statement=encode_tcg_attest_certify(statement)
            ),
        ),
        certificates=bundle.certificates,
    )


def _statement(bundle: AttestationBundle) -> TcgAttestCertify:
    return decode_tcg_attest_certify(bundle.statements[0].statement)


# --- the genuine case ---------------------------------------------------------------------------


def test_genuine_tpm_evidence_is_accepted_and_spends_the_challenge(gate: Gate) -> None:
    nonce = gate.challenge()
    csr = _tpm_csr(gate.tpm, nonce)
    result = gate.verify(csr)
    assert result.format == "tcg-tpm-certify"
    assert result.device_id == gate.identity.serial
    assert result.idevid == gate.identity.ak_certificate
    assert result.challenge == nonce
    assert result.public_key.public_numbers() == csr.public_key().public_numbers()  # type: ignore[union-attr]
    with gate.store.transaction() as tx:
        record = tx.challenges.get(nonce)
    assert record is not None and record.used_at == gate.clock.now()


# --- four refusals: a wrong nonce, a software key, fixedTPM clear, a replayed challenge ----


def test_a_certify_with_the_wrong_nonce_is_refused(gate: Gate) -> None:
    gate.challenge()  # the one the authority issued
    csr = _tpm_csr(gate.tpm, secrets.token_bytes(32))  # the TPM was given another
    with pytest.raises(e.ChallengeUnknownError, match="not issued here"):
        gate.verify(csr)


def test_a_software_key_with_a_forged_certify_is_refused(gate: Gate) -> None:
    """The attacker holds a software key and no AK: it builds the TPMS_ATTEST a TPM would have
    made for it (pytss's structures, a TPMT_PUBLIC claiming fixedTPM) and signs it itself."""
    import tpm2_pytss as tss

    nonce = gate.challenge()
    genuine = gate.tpm.evidence(gate.tpm.create_key(), nonce)
    software = SoftwareSigner(new_private_key())
    numbers = software.public_key().public_numbers()
    public, _ = tss.TPMT_PUBLIC.unmarshal(_statement(genuine).public)
    public.unique.ecc.x = numbers.x.to_bytes(32, "big")
    public.unique.ecc.y = numbers.y.to_bytes(32, "big")
    attest, _ = tss.TPMS_ATTEST.unmarshal(_statement(genuine).attest)
    attest.attested.certify.name = public.get_name()
    forged_attest = bytes(attest.marshal())
    r, s = decode_dss_signature(software.sign(forged_attest))
    signature, _ = tss.TPMT_SIGNATURE.unmarshal(_statement(genuine).signature)
    signature.signature.ecdsa.signatureR = r.to_bytes(32, "big")
    signature.signature.ecdsa.signatureS = s.to_bytes(32, "big")
    bundle = _with_statement(
        genuine,
        TcgAttestCertify(
            attest=forged_attest,
            signature=bytes(signature.marshal()),
            public=bytes(public.marshal()),
        ),
    )
    csr = build_attested_csr(subject=SUBJECT, signer=software, bundle=bundle)
    with pytest.raises(e.AttestationSignatureError, match="not certified by a TPM"):
        gate.verify(csr)


def test_a_software_key_beside_a_genuine_certify_is_refused(gate: Gate) -> None:
    nonce = gate.challenge()
    genuine = gate.tpm.evidence(gate.tpm.create_key(), nonce)
    csr = build_attested_csr(
        subject=SUBJECT, signer=SoftwareSigner(new_private_key()), bundle=genuine
    )
    with pytest.raises(e.KeyMismatchError, match="not the attested key"):
        gate.verify(csr)


def test_a_tpm_key_with_fixed_tpm_clear_is_refused(gate: Gate) -> None:
    nonce = gate.challenge()
    csr = _tpm_csr(gate.tpm, nonce, duplicable=True)
    with pytest.raises(e.KeyExportableError, match="fixedTPM"):
        gate.verify(csr)
    with gate.store.transaction() as tx:
        record = tx.challenges.get(nonce)
    assert record is not None and record.used_at is None  # refused before the records


def test_a_replayed_challenge_is_refused(gate: Gate) -> None:
    nonce = gate.challenge()
    csr = _tpm_csr(gate.tpm, nonce)
    gate.verify(csr)
    with pytest.raises(e.ChallengeReplayedError, match="used at"):
        gate.verify(csr)


def test_an_expired_challenge_is_refused(gate: Gate) -> None:
    nonce = gate.challenge()
    csr = _tpm_csr(gate.tpm, nonce)
    gate.clock.advance(timedelta(minutes=6))
    with pytest.raises(e.ChallengeExpiredError):
        gate.verify(csr)


# --- the EK behind the AK, and the manufacturer ---------------------------------------------------


def test_an_ak_certificate_naming_another_tpms_ek_is_refused(
    gate: Gate, other_tpm: TpmDevice
) -> None:
    other = gate.line.provision(other_tpm)
    nonce = gate.challenge()
    handle = gate.tpm.create_key()
    genuine = gate.tpm.evidence(handle, nonce)
    swapped = AttestationBundle(
        statements=genuine.statements,
        certificates=(*genuine.certificates[:-1], other.ek_certificate),
    )
    csr = build_attested_csr(subject=SUBJECT, signer=gate.tpm.signer(handle), bundle=swapped)
    with pytest.raises(e.ChipSerialMismatchError, match="EK certificate is not in the bundle"):
        gate.verify(csr)


def test_evidence_without_an_ek_certificate_is_refused(gate: Gate) -> None:
    nonce = gate.challenge()
    handle = gate.tpm.create_key()
    genuine = gate.tpm.evidence(handle, nonce)
    bare = AttestationBundle(statements=genuine.statements, certificates=genuine.certificates[:-1])
    csr = build_attested_csr(subject=SUBJECT, signer=gate.tpm.signer(handle), bundle=bare)
    with pytest.raises(e.EvidenceMalformedError, match="no EK certificate"):
        gate.verify(csr)


def test_a_tpm_of_an_untrusted_manufacturer_is_refused(gate: Gate) -> None:
    stranger = SoftwareTpmLine.create(clock=gate.clock)
    nonce = gate.challenge()
    csr = _tpm_csr(gate.tpm, nonce)
    with pytest.raises(e.UnknownManufacturerError):
        gate.verify(csr, VerificationPolicy(manufacturer_roots=(stranger.root,)))


def test_a_tpm_not_on_the_manifest_is_refused(gate: Gate, other_tpm: TpmDevice) -> None:
    gate.line.provision(other_tpm)  # made by the same line, never listed here
    nonce = gate.challenge()
    with pytest.raises(e.NotOnManifestError):
        gate.verify(_tpm_csr(other_tpm, nonce))


# --- the structure ------------------------------------------------------------------------------


def _ak_signed(attest: bytes, ak: SoftwareSigner) -> bytes:
    """A TPMT_SIGNATURE over ``attest`` by a software AK the line certified (pytss's type)."""
    import tpm2_pytss as tss

    r, s = decode_dss_signature(ak.sign(attest))
    signature = tss.TPMT_SIGNATURE(sigAlg=tss.TPM2_ALG.ECDSA)
    signature.signature.ecdsa.hash = tss.TPM2_ALG.SHA256
    signature.signature.ecdsa.signatureR = r.to_bytes(32, "big")
    signature.signature.ecdsa.signatureS = s.to_bytes(32, "big")
    return bytes(signature.marshal())


@pytest.mark.parametrize(
    ("field", "value", "refusal", "match"),
    [
        ("magic", 0x12345678, e.EvidenceMalformedError, "not TPM_GENERATED_VALUE"),
        # TPM_ST_ATTEST_CREATION: a TPM2_CertifyCreation, whose body has the same two TPM2Bs
        ("type", 0x801A, e.EvidenceMalformedError, "not TPM_ST_ATTEST_CERTIFY"),
    ],
)
def test_a_structure_the_tpm_did_not_make_as_a_certify_is_refused(
    gate: Gate, field: str, value: int, refusal: type[Exception], match: str
) -> None:
    """The AK signs only what the TPM makes; a key the line certified as an AK but held in
    software (a line error, or a stolen AK) shows that the rule on the structure holds alone."""
    import tpm2_pytss as tss

    nonce = gate.challenge()
    handle = gate.tpm.create_key()
    genuine = gate.tpm.evidence(handle, nonce)
    ak = SoftwareSigner(new_private_key())
    ak_certificate = IdevidIssuer(
        line_ca=gate.line.line_ca,
        line_ca_signer=gate.line.line_signer,
        organization=gate.line.organization,
        hw_type=TPM_HW_TYPE,
    ).issue(
        public_key=ak.public_key(),
        device_serial=gate.identity.serial,
        chip_serial=hardware_module_name_of(gate.identity.ak_certificate).hw_serial,
        now=gate.clock.now(),
    )
    attest, _ = tss.TPMS_ATTEST.unmarshal(_statement(genuine).attest)
    setattr(attest, field, value)
    changed = bytes(attest.marshal())
    bundle = AttestationBundle(
        statements=_with_statement(
            genuine,
            TcgAttestCertify(
                attest=changed,
                signature=_ak_signed(changed, ak),
                public=_statement(genuine).public,
            ),
        ).statements,
        certificates=(ak_certificate, *genuine.certificates[1:]),
    )
    csr = build_attested_csr(subject=SUBJECT, signer=gate.tpm.signer(handle), bundle=bundle)
    with pytest.raises(refusal, match=match):
        gate.verify(csr)


def test_a_public_area_other_than_the_certified_one_is_refused(gate: Gate) -> None:
    """A genuine certify of one TPM key, carried with the public area of another."""
    nonce = gate.challenge()
    certified = gate.tpm.evidence(gate.tpm.create_key(), nonce)
    other = gate.tpm.create_key()
    statement = _statement(certified)
    bundle = _with_statement(
        certified,
        TcgAttestCertify(
            attest=statement.attest,
            signature=statement.signature,
            public=gate.tpm.key_public(other),
        ),
    )
    csr = build_attested_csr(subject=SUBJECT, signer=gate.tpm.signer(other), bundle=bundle)
    with pytest.raises(e.KeyMismatchError, match="Names differ"):
        gate.verify(csr)


@pytest.mark.parametrize(
    "statement",
    [b"\x04\x03abc", encode_tcg_attest_certify(TcgAttestCertify(attest=b"\x00", signature=b""))],
    ids=["not-a-sequence", "no-public-area"],
)
def test_malformed_tpm_evidence_is_refused(gate: Gate, statement: bytes) -> None:
    handle = gate.tpm.create_key()
    bundle = AttestationBundle(
        statements=(AttestationStatement(type=TCG_ATTEST_CERTIFY_OID, statement=statement),),
        certificates=gate.tpm.evidence(handle, b"n").certificates,
    )
    csr = build_attested_csr(subject=SUBJECT, signer=gate.tpm.signer(handle), bundle=bundle)
    with pytest.raises(e.EvidenceMalformedError):
        gate.verify(csr)


def test_an_authority_without_the_tpm_stack_says_it_cannot_read_tpm_evidence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No TPM needed: the stack is made absent, as on an authority installed without the extra."""
    from fleetid.authority.attestation import examine_attested_csr
    from fleetid.tpm import evidence

    def absent() -> None:
        raise e.TpmError("the TPM stack is not installed (No module named 'tpm2_pytss')")

    monkeypatch.setattr(evidence, "tss", absent)
    line = SoftwareTpmLine.create(clock=ManualClock())
    statement = TcgAttestCertify(attest=b"attest", signature=b"signature", public=b"public")
    bundle = AttestationBundle(
        statements=(
            AttestationStatement(
                type=TCG_ATTEST_CERTIFY_OID, statement=encode_tcg_attest_certify(statement)
            ),
        ),
        certificates=(line.line_ca,),
    )
    csr = build_attested_csr(
        subject=SUBJECT, signer=SoftwareSigner(new_private_key()), bundle=bundle
    )
    policy = VerificationPolicy(manufacturer_roots=(line.root,))
    with pytest.raises(e.EvidenceFormatUnsupportedError, match="tpm2_pytss"):
        examine_attested_csr(csr, policy=policy, now=line.clock.now())
