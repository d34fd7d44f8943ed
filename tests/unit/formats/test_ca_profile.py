"""Every kind of CA certificate fleetid issues, decoded: which extensions it carries, in which
order, which are critical, its key usage and its path length (RFC 5280 §4.2.1.1-4.2.1.3,
§4.2.1.9, §4.2.1.13). These are the certificates ``fleetid.formats.ca_profile`` builds for the
fleet CA (root and issuing CA, at init and at rollover, with the RFC 4210 §4.4 link
certificates) and for the manufacturer (root and line CA); each is also checked to be signed
by its issuer's key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import roll_issuing_ca, roll_root
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.crypto.pkix import issued_by
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import VerificationError
from fleetid.factory import manufacturer as mfr
from fleetid.formats.ca_profile import CaProfile
from fleetid.formats.x509_sign import key_usage
from fleetid.policy import DEFAULT_POLICY

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
BC = ExtensionOID.BASIC_CONSTRAINTS
KU = ExtensionOID.KEY_USAGE
SKI = ExtensionOID.SUBJECT_KEY_IDENTIFIER
AKI = ExtensionOID.AUTHORITY_KEY_IDENTIFIER
CRL_DP = ExtensionOID.CRL_DISTRIBUTION_POINTS
NC = ExtensionOID.NAME_CONSTRAINTS
FLEET_USAGE = {"digital_signature", "key_cert_sign", "crl_sign"}
MANUFACTURER_USAGE = {"key_cert_sign", "crl_sign"}
USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def _shape(certificate: x509.Certificate) -> list[tuple[x509.ObjectIdentifier, bool]]:
    return [(e.oid, e.critical) for e in certificate.extensions]


def _path_length(certificate: x509.Certificate) -> int | None:
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    return constraints.path_length


def _usage(certificate: x509.Certificate) -> set[str]:
    value = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    return {bit for bit in USAGE_BITS if getattr(value, bit)}


def _key_ids_chain(certificate: x509.Certificate, issuer: x509.Certificate) -> None:
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert aki.authority_cert_issuer is None and aki.authority_cert_serial_number is None


@pytest.fixture(params=[None, "http://ca.test"], ids=["no-public-url", "public-url"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetCa]:
    environ = {} if request.param is None else {"FLEETID_PUBLIC_URL": request.param}
    settings = Settings.load(tmp_path / "ca", environ=environ)
    ca = FleetCa.init(settings, clock=ManualClock(NOW), name="Profile Fleet")
    yield ca
    ca.close()


def test_fleet_root_and_issuing_ca_at_init(fleet: FleetCa) -> None:
    root, issuing = fleet.root, fleet.issuing.certificate
    assert _shape(root) == [(BC, True), (KU, True), (SKI, False)]
    assert _path_length(root) == 1 and _usage(root) == FLEET_USAGE
    assert issued_by(root, root)
    crl = [(CRL_DP, False)] if fleet.settings.public_url else []
    assert _shape(issuing) == [(BC, True), (KU, True), (SKI, False), (AKI, False), *crl]
    assert _path_length(issuing) == 0 and _usage(issuing) == FLEET_USAGE
    assert issued_by(issuing, root)
    _key_ids_chain(issuing, root)
    if crl:
        points = issuing.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert [str(n.value) for p in points for n in p.full_name or ()] == [
            "http://ca.test/crl/root-1.crl"
        ]


def test_fleet_rollovers(fleet: FleetCa) -> None:
    old_root = fleet.root
    rolled = roll_issuing_ca(fleet)
    issuing = rolled.issuing.certificate
    crl = [(CRL_DP, False)] if fleet.settings.public_url else []
    assert _shape(issuing) == [(BC, True), (KU, True), (SKI, False), (AKI, False), *crl]
    assert _path_length(issuing) == 0 and _usage(issuing) == FLEET_USAGE
    assert issued_by(issuing, old_root)

    after, rollover = roll_root(rolled)
    new_root = rollover.new_root
    assert _shape(new_root) == [(BC, True), (KU, True), (SKI, False)]
    assert _path_length(new_root) == 2 and issued_by(new_root, new_root)
    for link, issuer, length in (
        (rollover.new_with_old, old_root, 2),
        (rollover.old_with_new, new_root, 1),
    ):
        assert _shape(link) == [(BC, True), (KU, True), (SKI, False), (AKI, False)]
        assert _path_length(link) == length and _usage(link) == FLEET_USAGE
        assert issued_by(link, issuer)
        _key_ids_chain(link, issuer)
    assert rollover.old_with_new.not_valid_after_utc <= old_root.not_valid_after_utc
    assert _shape(rollover.issuing)[:4] == [(BC, True), (KU, True), (SKI, False), (AKI, False)]
    assert issued_by(rollover.issuing, new_root)
    assert after.root == new_root


def test_manufacturer_root_and_line_ca() -> None:
    names = mfr.ManufacturerNames(organization="Acme Devices")
    root_signer = SoftwareSigner(ec.generate_private_key(ec.SECP384R1()))
    root = mfr.issue_root(names=names, signer=root_signer, now=NOW)
    # The manufacturer's root names its own key as its authority key too.
    assert _shape(root) == [(BC, True), (KU, True), (SKI, False), (AKI, False)]
    assert _path_length(root) is None and _usage(root) == MANUFACTURER_USAGE
    assert issued_by(root, root)
    _key_ids_chain(root, root)
    line_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    line = mfr.issue_line_ca(
        names=names,
        line_id="L1",
        line_ca_public_key=line_key,
        root=root,
        root_signer=root_signer,
        now=NOW,
    )
    assert _shape(line) == [(BC, True), (KU, True), (SKI, False), (AKI, False)]
    assert _path_length(line) == 0 and _usage(line) == MANUFACTURER_USAGE
    assert issued_by(line, root)
    _key_ids_chain(line, root)
    assert line.not_valid_after_utc <= root.not_valid_after_utc


def _profile(**changes: object) -> CaProfile:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    name = x509.Name.from_rfc4514_string("CN=Test CA,O=fleetid TEST")
    fields: dict[str, object] = {
        "subject": name,
        "issuer": name,
        "public_key": key,
        "serial_number": 7,
        "not_before": NOW,
        "not_after": NOW + timedelta(days=1),
        "path_length": 0,
        "key_usage": key_usage(key_cert_sign=True, crl_sign=True),
        "authority_key": None,
    }
    fields.update(changes)
    return CaProfile(**fields)  # type: ignore[arg-type]


def test_name_constraints_are_critical_and_last() -> None:
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("fleet.example")], excluded_subtrees=None
    )
    built = _profile(name_constraints=constraints).builder()
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    certificate = _profile(name_constraints=constraints, public_key=signer.public_key()).issue(
        signer
    )
    assert _shape(certificate) == [(BC, True), (KU, True), (SKI, False), (NC, True)]
    assert built is not None


def test_a_profile_refuses_a_key_usage_without_key_cert_sign() -> None:
    with pytest.raises(ValueError, match="keyCertSign"):
        _profile(key_usage=key_usage(digital_signature=True))


def test_a_profile_refuses_a_negative_path_length() -> None:
    with pytest.raises(ValueError, match="path length"):
        _profile(path_length=-1)


def test_a_signer_that_is_not_the_issuers_key_is_refused() -> None:
    issuer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    other = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    profile = _profile(authority_key=issuer.public_key())
    with pytest.raises(VerificationError):
        profile.issue(other)


def test_an_issuing_ca_made_at_init_never_outlives_its_root(tmp_path: Path) -> None:
    """Rollover always capped an issuing CA at its root's notAfter; init did not, so a policy
    whose issuing lifetime exceeds the root's made an issuing CA that outlived every path
    through it. Both now follow the one rule (``fleet_ca_profile``)."""
    policy = replace(
        DEFAULT_POLICY, root_lifetime=timedelta(days=365), issuing_lifetime=timedelta(days=3 * 365)
    )
    settings = replace(Settings.load(tmp_path / "ca"), policy=policy)
    ca = FleetCa.init(settings, clock=ManualClock(NOW), name="Capped")
    try:
        assert ca.issuing.certificate.not_valid_after_utc == ca.root.not_valid_after_utc
        rolled = roll_issuing_ca(ca)
        assert rolled.issuing.certificate.not_valid_after_utc == ca.root.not_valid_after_utc
    finally:
        ca.close()
