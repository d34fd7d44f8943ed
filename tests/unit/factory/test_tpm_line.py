"""The line's TPM steps: the EK certificate (TCG EK Credential Profile; OpenSSL and pkilint check
it), the AK certificate naming the EK, and no AK certificate without credential activation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.optional import require_tool
from tests.tpm_fixtures import (
    tpm_fixture,  # noqa: F401 - the "tpm" fixture
    tpm_line_fixture,  # noqa: F401 - the "tpm_line" fixture
    two_tpms_fixture,  # noqa: F401 - the "other_tpm" fixture
)

from fleetid.errors import TpmError, VerificationError
from fleetid.factory.manufacturer import hardware_module_name_of
from fleetid.factory.tpm_line import (
    TCG_KP_EK_CERTIFICATE,
    TPM_HW_TYPE,
    endorsement_id,
    provision_tpm,
)
from fleetid.sim.demo_tpm import SoftwareTpmLine
from fleetid.tpm.device import TpmDevice
from fleetid.tpm.evidence import public_key_of

PEM = serialization.Encoding.PEM


def _pem(path: Path, *certificates: x509.Certificate) -> str:
    path.write_bytes(b"".join(c.public_bytes(PEM) for c in certificates))
    return str(path)


def test_the_ek_certificate_follows_the_tcg_profile(
    tpm: TpmDevice, tpm_line: SoftwareTpmLine
) -> None:
    ek = tpm_line.provision(tpm).ek_certificate
    assert ek.subject == x509.Name([])
    assert ek.public_key() == public_key_of(tpm.endorsement_public())
    san = ek.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical  # an empty subject needs a critical subjectAltName (RFC 5280 §4.2.1.6)
    (tpm_name,) = san.value.get_values_for_type(x509.DirectoryName)
    assert {a.oid.dotted_string for a in tpm_name} == {
        "2.23.133.2.1",
        "2.23.133.2.2",
        "2.23.133.2.3",
    }
    constraints = ek.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = ek.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_agreement and not usage.value.digital_signature
    purposes = ek.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(purposes) == [TCG_KP_EK_CERTIFICATE]


def test_openssl_and_pkilint_accept_the_ek_certificate(
    tpm: TpmDevice, tpm_line: SoftwareTpmLine, tmp_path: Path
) -> None:
    openssl = require_tool("openssl")
    ek = tpm_line.provision(tpm).ek_certificate
    result = subprocess.run(
        [
            openssl,
            "verify",
            "-CAfile",
            _pem(tmp_path / "root.pem", tpm_line.root),
            "-untrusted",
            _pem(tmp_path / "line.pem", tpm_line.line_ca),
            "-attime",
            str(int(tpm_line.clock.now().timestamp())),
            _pem(tmp_path / "ek.pem", ek),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    linter = Path(sys.executable).with_name("lint_pkix_cert")
    lint = subprocess.run(
        [str(linter), "lint", "-s", "NOTICE", str(tmp_path / "ek.pem")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_ak_certificate_names_the_ek(tpm: TpmDevice, tpm_line: SoftwareTpmLine) -> None:
    identity = tpm_line.provision(tpm)
    hw = hardware_module_name_of(identity.ak_certificate)
    assert hw.hw_type == TPM_HW_TYPE
    ek_key = identity.ek_certificate.public_key()
    assert hw.hw_serial == endorsement_id(ek_key)  # type: ignore[arg-type]
    assert identity.serial == f"TPM-{hw.hw_serial[:8].hex().upper()}"
    assert identity.ak_certificate.public_key() == public_key_of(tpm.attestation_public())


class _AnotherAk:
    """This TPM's EK presented with another AK (the line told of a key not beside the EK)."""

    def __init__(self, tpm: TpmDevice, ak_public: bytes) -> None:
        self._tpm = tpm
        self._ak_public = ak_public

    def endorsement_public(self) -> bytes:
        return self._tpm.endorsement_public()

    def attestation_public(self) -> bytes:
        return self._ak_public

    def activate_credential(self, blob: bytes, secret: bytes) -> bytes:
        return self._tpm.activate_credential(blob, secret)


def _provision(line: SoftwareTpmLine, tpm: _AnotherAk) -> None:
    provision_tpm(
        tpm,  # type: ignore[arg-type]  # the TPM's methods the line calls
        line_ca=line.line_ca,
        line_ca_signer=line.line_signer,
        organization=line.organization,
        now=line.clock.now(),
    )


def test_no_ak_certificate_for_an_ak_of_another_tpm(
    tpm: TpmDevice, other_tpm: TpmDevice, tpm_line: SoftwareTpmLine
) -> None:
    mixed = _AnotherAk(tpm, other_tpm.attestation_public())
    with pytest.raises(TpmError, match="activating the credential"):
        _provision(tpm_line, mixed)


def test_no_ak_certificate_for_an_unrestricted_key(
    tpm: TpmDevice, tpm_line: SoftwareTpmLine
) -> None:
    mixed = _AnotherAk(tpm, tpm.key_public(tpm.create_key()))
    with pytest.raises(VerificationError, match="not a restricted"):
        _provision(tpm_line, mixed)
