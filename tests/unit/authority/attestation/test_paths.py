"""``IdevidPaths``: a remembered line CA shortens validation but never accepts what the full
RFC 5280 validation would refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import VerificationError

from fleetid.authority.attestation import paths
from fleetid.authority.attestation.paths import IdevidPaths
from fleetid.formats.x509_sign import key_usage

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_after: datetime = NOW + timedelta(days=365),
    name_constraints: x509.NameConstraints | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            key_usage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if name_constraints is not None:
        builder = builder.add_extension(name_constraints, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


class _Line:
    def __init__(
        self,
        *,
        line_not_after: datetime = NOW + timedelta(days=365),
        name_constraints: x509.NameConstraints | None = None,
    ) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _certificate(
            "root", self.root_key, "root", self.root_key, ca=True, name_constraints=name_constraints
        )
        self.line_key = ec.generate_private_key(ec.SECP256R1())
        self.line_ca = _certificate(
            "line CA", self.line_key, "root", self.root_key, ca=True, not_after=line_not_after
        )

    def idevid(
        self, serial: str, signer: ec.EllipticCurvePrivateKey | None = None
    ) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        return _certificate(serial, key, "line CA", signer or self.line_key, ca=False)


@pytest.fixture
def anchors_used(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The trust anchor each validation started from: the root (full) or a line CA."""
    seen: list[str] = []
    real = paths.path_verifier

    def recording(anchors, now, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(a.subject.rfc4514_string() for a in anchors)
        return real(anchors, now, **kwargs)

    monkeypatch.setattr(paths, "path_verifier", recording)
    return seen


def test_the_second_device_of_a_line_starts_from_the_remembered_line_ca(
    anchors_used: list[str],
) -> None:
    line, validator = _Line(), IdevidPaths()
    roots = (line.root,)
    validator.validate(line.idevid("dev-1"), [line.line_ca, line.root], roots, NOW)
    validator.validate(line.idevid("dev-2"), [line.line_ca, line.root], roots, NOW)
    assert anchors_used == ["CN=root", "CN=line CA"]


def test_a_forged_idevid_under_a_remembered_line_ca_is_refused() -> None:
    line, validator = _Line(), IdevidPaths()
    roots = (line.root,)
    validator.validate(line.idevid("dev-1"), [line.line_ca], roots, NOW)
    forged = line.idevid("dev-2", signer=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(VerificationError):
        validator.validate(forged, [line.line_ca], roots, NOW)


def test_a_remembered_line_ca_does_not_serve_other_roots() -> None:
    line, other, validator = _Line(), _Line(), IdevidPaths()
    validator.validate(line.idevid("dev-1"), [line.line_ca], (line.root,), NOW)
    with pytest.raises(VerificationError):
        validator.validate(line.idevid("dev-2"), [line.line_ca], (other.root,), NOW)


def test_a_remembered_line_ca_is_not_used_after_it_expires(anchors_used: list[str]) -> None:
    line = _Line(line_not_after=NOW + timedelta(days=1))
    validator, roots = IdevidPaths(), (line.root,)
    validator.validate(line.idevid("dev-1"), [line.line_ca], roots, NOW)
    with pytest.raises(VerificationError):
        validator.validate(line.idevid("dev-2"), [line.line_ca], roots, NOW + timedelta(days=2))
    assert anchors_used == ["CN=root", "CN=root"]  # the second went the full way, and failed


def test_a_path_with_name_constraints_is_validated_in_full_every_time(
    anchors_used: list[str],
) -> None:
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("devices.example")], excluded_subtrees=None
    )
    line = _Line(name_constraints=constraints)
    validator, roots = IdevidPaths(), (line.root,)
    validator.validate(line.idevid("dev-1"), [line.line_ca], roots, NOW)
    validator.validate(line.idevid("dev-2"), [line.line_ca], roots, NOW)
    assert anchors_used == ["CN=root", "CN=root"]
