"""Reading a TPM2_Certify, cross-checked with independent tools: OpenSSL verifies the AK's
signature as we convert it, tpm2-tools' ``tpm2_print`` reads the structures as we do; and what
does not read is refused."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tests.optional import require_tool
from tests.tpm_fixtures import (
    require_tpm,
    tpm_fixture,  # noqa: F401 - the "tpm" fixture
)

from fleetid.errors import EncodingError, TpmError, VerificationError
from fleetid.formats.tcg_attest_certify import TcgAttestCertify
from fleetid.tpm.device import TpmDevice
from fleetid.tpm.evidence import public_key_of, read_certify, verify_certify_signature
from fleetid.tpm.swtpm import Swtpm


def _yaml_fields(text: str) -> dict[str, str]:
    return {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in text.splitlines())
        if value.strip()
    }


def test_openssl_verifies_the_ak_signature_as_we_read_it(tpm: TpmDevice, tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    statement = tpm.certify(tpm.create_key(), b"challenge")
    certified = read_certify(statement)
    ak = public_key_of(tpm.attestation_public())
    verify_certify_signature(ak, certified)
    (tmp_path / "ak.pem").write_bytes(
        ak.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "attest.bin").write_bytes(statement.attest)
    (tmp_path / "sig.der").write_bytes(certified.signature)
    args = [openssl, "dgst", "-sha256", "-verify", str(tmp_path / "ak.pem"), "-signature"]
    good = subprocess.run(
        [*args, str(tmp_path / "sig.der"), str(tmp_path / "attest.bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stdout + good.stderr
    (tmp_path / "attest.bin").write_bytes(statement.attest[:-1] + b"\x00")
    bad = subprocess.run(
        [*args, str(tmp_path / "sig.der"), str(tmp_path / "attest.bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0


def test_tpm2_print_reads_the_attestation_and_public_area_as_we_do(
    tpm: TpmDevice, tmp_path: Path
) -> None:
    tpm2_print = require_tool("tpm2_print")
    handle = tpm.create_key()
    statement = tpm.certify(handle, b"\x01\x02challenge")
    certified = read_certify(statement)
    (tmp_path / "attest.bin").write_bytes(statement.attest)
    assert statement.public is not None
    (tmp_path / "public.bin").write_bytes(statement.public)
    # tpm2-tools 5.x prints the TPMS_ATTEST header, then stops at the certify body it does not
    # print (and exits 1): the header is what we compare.
    attest = _yaml_fields(
        subprocess.run(
            [tpm2_print, "-t", "TPMS_ATTEST", str(tmp_path / "attest.bin")],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    )
    assert int(attest["magic"], 16) == certified.magic == 0xFF544347  # TPM_GENERATED_VALUE
    assert int(attest["type"], 16) == certified.attest_type == 0x8017  # TPM_ST_ATTEST_CERTIFY
    assert bytes.fromhex(attest["extraData"]) == certified.extra_data
    printed = subprocess.run(
        [tpm2_print, "-t", "TPMT_PUBLIC", str(tmp_path / "public.bin")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    public = _yaml_fields(printed)
    numbers = certified.public_key.public_numbers()
    assert int(public["x"], 16) == numbers.x and int(public["y"], 16) == numbers.y
    flags = set(re.search(r"attributes:\n\s+value: (\S+)", printed).group(1).split("|"))  # type: ignore[union-attr]
    attributes = certified.attributes
    assert ("fixedtpm" in flags) == attributes.fixed_tpm is True
    assert ("fixedparent" in flags) == attributes.fixed_parent is True
    assert ("sensitivedataorigin" in flags) == attributes.sensitive_data_origin is True
    assert ("sign" in flags) == attributes.sign is True
    assert "decrypt" not in flags and "restricted" not in flags


def test_a_changed_attestation_does_not_verify(tpm: TpmDevice) -> None:
    statement = tpm.certify(tpm.create_key(), b"challenge")
    tampered = bytearray(statement.attest)
    tampered[-1] ^= 0x01
    certified = read_certify(
        TcgAttestCertify(
            attest=bytes(tampered), signature=statement.signature, public=statement.public
        )
    )
    with pytest.raises(VerificationError):
        verify_certify_signature(public_key_of(tpm.attestation_public()), certified)


@pytest.mark.parametrize("part", ["attest", "signature", "public"])
def test_a_structure_with_trailing_bytes_is_refused(tpm: TpmDevice, part: str) -> None:
    statement = tpm.certify(tpm.create_key(), b"challenge")
    fields = {
        "attest": statement.attest,
        "signature": statement.signature,
        "public": statement.public,
    }
    fields[part] = (fields[part] or b"") + b"\x00"
    with pytest.raises(EncodingError, match="after its end"):
        read_certify(TcgAttestCertify(**fields))  # type: ignore[arg-type]


def test_a_signature_other_than_ecdsa_is_refused(tpm: TpmDevice) -> None:
    import tpm2_pytss as tss

    statement = tpm.certify(tpm.create_key(), b"challenge")
    hmac = tss.TPMT_SIGNATURE(sigAlg=tss.TPM2_ALG.HMAC)
    hmac.signature.hmac.hashAlg = tss.TPM2_ALG.SHA256
    hmac.signature.hmac.digest.sha256 = b"\x00" * 32
    with pytest.raises(EncodingError, match="not ECDSA"):
        read_certify(
            TcgAttestCertify(
                attest=statement.attest, signature=bytes(hmac.marshal()), public=statement.public
            )
        )


def test_garbage_is_refused() -> None:
    require_tpm()
    with pytest.raises(EncodingError):
        read_certify(TcgAttestCertify(attest=b"\xff\x54", signature=b"", public=b"\x00"))


def test_swtpm_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TpmError, match="apt-get install swtpm"):
        Swtpm()
