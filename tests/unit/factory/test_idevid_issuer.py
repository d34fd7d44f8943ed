"""IdevidIssuer: the TBS it builds from its once-encoded parts is byte for byte the TBS pyca builds
from ``idevid_builder`` for the same values, and what it issues is signed, parsed back and
verified like ``issue_idevid``'s certificates."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetid.crypto.pkix import issued_by
from fleetid.crypto.signer import SoftwareSigner, verify_signature
from fleetid.errors import EncodingError, VerificationError
from fleetid.factory import manufacturer as mfr
from fleetid.hsm.software import SoftwareHsm

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def _line_ca(organization: str, signer: SoftwareSigner) -> x509.Certificate:
    names = mfr.ManufacturerNames(organization=organization)
    return mfr.issue_root(names=names, signer=signer, now=NOW)


CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_SIGNER = SoftwareSigner(CA_KEY)
ORGANIZATIONS = ["Acme Devices", "Müller Fahrzeugbau GmbH", "O" * 40]
ISSUERS = {
    org: mfr.IdevidIssuer(
        line_ca=_line_ca(org, CA_SIGNER), line_ca_signer=CA_SIGNER, organization=org
    )
    for org in ORGANIZATIONS
}
KEYS = [ec.generate_private_key(curve).public_key() for curve in (ec.SECP256R1(), ec.SECP384R1())]


@settings(max_examples=150, deadline=None)
@given(
    organization=st.sampled_from(ORGANIZATIONS),
    key=st.sampled_from(KEYS),
    device_serial=st.text("0123456789ABCDEF -", min_size=1, max_size=16),
    chip_serial=st.binary(min_size=0, max_size=200),
    seconds=st.integers(0, 200 * 365 * 86400),
    micro=st.integers(0, 999_999),
)
def test_tbs_equals_pyca(
    organization: str,
    key: ec.EllipticCurvePublicKey,
    device_serial: str,
    chip_serial: bytes,
    seconds: int,
    micro: int,
) -> None:
    now = datetime(1955, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micro)
    issuer = ISSUERS[organization]
    draft = mfr.idevid_builder(
        line_ca=issuer.line_ca,
        public_key=key,
        device_serial=device_serial,
        chip_serial=chip_serial,
        now=now,
        organization=organization,
    ).sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    tbs = issuer.tbs(
        mfr.IdevidFields(
            public_key=key,
            device_serial=device_serial,
            chip_serial=chip_serial,
            now=now,
            serial=draft.serial_number,
        )
    )
    assert tbs == draft.tbs_certificate_bytes


def test_issued_like_issue_idevid_with_an_hsm_signer() -> None:
    hsm = SoftwareHsm.initialise(None, os.urandom(32))
    hsm.generate_ec_key("ca", "P-256")
    signer = hsm.signer("ca")
    line_ca = _line_ca("Acme Devices", signer)  # type: ignore[arg-type]
    issuer = mfr.IdevidIssuer(line_ca=line_ca, line_ca_signer=signer, organization="Acme Devices")
    key = KEYS[0]
    chip = bytes.fromhex("4790D5010203040506A1")
    made = issuer.issue(public_key=key, device_serial=chip.hex().upper(), chip_serial=chip, now=NOW)
    reference = mfr.issue_idevid(
        line_ca=line_ca,
        line_ca_signer=signer,
        public_key=key,
        device_serial=chip.hex().upper(),
        chip_serial=chip,
        organization="Acme Devices",
        now=NOW,
    )
    assert made.subject == reference.subject and made.issuer == reference.issuer
    assert made.not_valid_before_utc == reference.not_valid_before_utc
    assert made.not_valid_after_utc == reference.not_valid_after_utc
    assert list(made.extensions) == list(reference.extensions)
    assert made.serial_number != reference.serial_number  # each draws its own
    verify_signature(
        signer.public_key(), made.signature, made.tbs_certificate_bytes, hashes.SHA256()
    )
    assert mfr.hardware_module_name_of(made).hw_serial == chip


def test_a_serial_outside_printable_string_is_refused_as_pyca_does() -> None:
    for issue in (
        lambda: ISSUERS["Acme Devices"].issue(
            public_key=KEYS[0], device_serial="dev_1", chip_serial=b"\x01", now=NOW
        ),
        lambda: mfr.issue_idevid(
            line_ca=ISSUERS["Acme Devices"].line_ca,
            line_ca_signer=CA_SIGNER,
            public_key=KEYS[0],
            device_serial="dev_1",
            chip_serial=b"\x01",
            organization="Acme Devices",
            now=NOW,
        ),
    ):
        with pytest.raises(ValueError, match="PrintableString"):
            issue()


def test_a_common_name_over_64_characters_is_refused_as_pyca_does() -> None:
    with pytest.raises(ValueError, match="64"):
        ISSUERS["Acme Devices"].issue(
            public_key=KEYS[0], device_serial="A" * 60, chip_serial=b"\x01", now=NOW
        )


class _BadSigner(SoftwareSigner):
    def sign(self, data: bytes) -> bytes:
        return super().sign(data + b"not the tbs")


def test_a_signature_that_does_not_verify_is_refused() -> None:
    bad = _BadSigner(CA_KEY)
    issuer = mfr.IdevidIssuer(
        line_ca=_line_ca("Acme Devices", CA_SIGNER), line_ca_signer=bad, organization="Acme Devices"
    )
    with pytest.raises(VerificationError):
        issuer.issue(public_key=KEYS[0], device_serial="01", chip_serial=b"\x01", now=NOW)


def test_an_encoding_that_does_not_rebuild_pyca_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mfr.der, "time", lambda when: mfr.encode_tlv(0x18, b"20270101000000Z"))
    with pytest.raises(EncodingError):
        mfr.IdevidIssuer(
            line_ca=_line_ca("Acme Devices", CA_SIGNER),
            line_ca_signer=CA_SIGNER,
            organization="Acme Devices",
        )


def test_a_common_name_over_64_utf8_bytes_is_refused_as_pyca_does() -> None:
    # "Müller device " is 14 characters and 15 UTF-8 bytes: 50 more make 64 characters, 65 bytes.
    organization = "Müller"
    issuer = mfr.IdevidIssuer(
        line_ca=_line_ca(organization, CA_SIGNER),
        line_ca_signer=CA_SIGNER,
        organization=organization,
    )
    with pytest.raises(ValueError, match="64"):
        issuer.issue(public_key=KEYS[0], device_serial="A" * 50, chip_serial=b"\x01", now=NOW)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["P-256", "P-384"])
def test_an_idevid_verifies_under_its_line_ca_whatever_the_curve(curve: ec.EllipticCurve) -> None:
    """The template's signature algorithm is its signer's: with a P-384 line CA (a ceremony may
    choose one) the IDevIDs say ecdsa-with-SHA384 and verify. The template used to draft with
    SHA-256 whatever the signer, while the signer signed with SHA-384: certificates that never
    verified."""
    root_signer = SoftwareSigner(ec.generate_private_key(ec.SECP384R1()))
    names = mfr.ManufacturerNames(organization="Acme Devices")
    root = mfr.issue_root(names=names, signer=root_signer, now=NOW)
    line_signer = SoftwareSigner(ec.generate_private_key(curve))
    line_ca = mfr.issue_line_ca(
        names=names,
        line_id="L1",
        line_ca_public_key=line_signer.public_key(),
        root=root,
        root_signer=root_signer,
        now=NOW,
    )
    issuer = mfr.IdevidIssuer(
        line_ca=line_ca, line_ca_signer=line_signer, organization="Acme Devices"
    )
    made = issuer.issue(public_key=KEYS[0], device_serial="0A1B", chip_serial=b"\x01", now=NOW)
    assert made.signature_hash_algorithm is not None
    assert made.signature_hash_algorithm.name == line_signer.hash_algorithm.name
    assert issued_by(made, line_ca)
    other = mfr.issue_root(
        names=names, signer=SoftwareSigner(ec.generate_private_key(curve)), now=NOW
    )
    assert not issued_by(made, other)
