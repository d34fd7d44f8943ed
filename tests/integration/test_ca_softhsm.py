"""The fleet CA on a PKCS#11 token: ``FLEETID_HSM=pkcs11 fleetid ca init`` on SoftHSM2 makes the
root and issuing keys on the token (sensitive, not extractable), ``ca certs`` and issuance follow
the recorded backend, ``openssl verify`` accepts what it signs; and each misconfiguration is
refused with its own error. SQLite (the HSM choice is independent of the database)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.authority_server import fleetid, require_tool
from tests.hsm_fixtures import SO_PIN, make_softhsm, softhsm_session

from fleetid.authority.enrolment import EnrolmentService
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners import BasicCredentials
from fleetid.authority.provisioners.token import create_token
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.errors import ConfigError

pytestmark = [pytest.mark.softhsm, pytest.mark.slow]
PEM = serialization.Encoding.PEM


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from softhsm_session(tmp_path_factory)


@pytest.fixture
def token(softhsm_conf: Path) -> tuple[str, str]:
    return make_softhsm(softhsm_conf)


def _env(softhsm_conf: Path, token: tuple[str, str], **extra: str) -> dict[str, str]:
    label, module = token
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLEETID_HSM", "FLEETID_PKCS11"))
    }
    return {
        **base,
        "SOFTHSM2_CONF": str(softhsm_conf),
        "FLEETID_HSM": "pkcs11",
        "FLEETID_PKCS11_MODULE": module,
        "FLEETID_PKCS11_TOKEN": label,
        "FLEETID_PKCS11_SO_PIN": SO_PIN,
        **extra,
    }


def test_ca_init_on_softhsm(tmp_path: Path, softhsm_conf: Path, token: tuple[str, str]) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    data = tmp_path / "authority"
    made = fleetid("ca", "init", "--data-dir", str(data), env=_env(softhsm_conf, token))
    assert made.returncode == 0, made.stdout + made.stderr
    assert not (data / "ca" / "hsm").exists()  # no software HSM was made
    assert '"backend": "pkcs11"' in (data / "ca" / "hsm.json").read_text()

    # `ca certs` needs no HSM setting: it follows the data dir's record.
    plain = {k: v for k, v in _env(softhsm_conf, token).items() if not k.startswith("FLEETID_")}
    listed = fleetid("ca", "certs", "--data-dir", str(data), env=plain)
    assert listed.returncode == 0, listed.stderr
    issuing, root = x509.load_pem_x509_certificates(listed.stdout.encode())

    # Issue through the token-held issuing key (in process, the same recorded backend), and have
    # OpenSSL check the chain.
    # SoftHSM2 reads a token's PIN when the library is initialised; this process initialised it
    # before the `ca init` subprocess set the user PIN.
    pkcs11.lib(token[1]).reinitialize()
    settings = Settings.load(data, environ={"FLEETID_PUBLIC_URL": "http://fleet.test"})
    ca = FleetCa.open(settings, clock=SystemClock())
    try:
        session = ca.hsm._session  # type: ignore[attr-defined]
        for name in ("fleet-root-1", "fleet-issuing-1"):
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=name)
            assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
            assert key[Attribute.TOKEN]  # a persistent token object, not a session one
        with ca.store.transaction() as tx:
            issued = create_token(tx, device_id="gw-1", clock=ca.clock, ttl=timedelta(hours=1))
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-1")]))
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        )
        basic = BasicCredentials(username=issued.username, password=issued.password)
        leaf = EnrolmentService(ca).simple_enroll(
            basic, csr.public_bytes(serialization.Encoding.DER)
        )
    finally:
        ca.close()
    (tmp_path / "root.pem").write_bytes(root.public_bytes(PEM))
    (tmp_path / "issuing.pem").write_bytes(issuing.public_bytes(PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(PEM))
    verify = [require_tool("openssl"), "verify", "-CAfile", str(tmp_path / "root.pem")]
    result = subprocess.run(
        [*verify, "-untrusted", str(tmp_path / "issuing.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pkcs11_without_a_token_label_is_refused(tmp_path: Path, softhsm_conf: Path) -> None:
    env = _env(softhsm_conf, ("unused", "unused"), FLEETID_PKCS11_TOKEN="")
    made = fleetid("ca", "init", "--data-dir", str(tmp_path / "a"), env=env)
    assert made.returncode == 1
    assert "ConfigError" in made.stderr and "FLEETID_PKCS11_TOKEN" in made.stderr


def test_pkcs11_without_the_so_pin_is_refused(
    tmp_path: Path, softhsm_conf: Path, token: tuple[str, str]
) -> None:
    env = _env(softhsm_conf, token, FLEETID_PKCS11_SO_PIN="")
    made = fleetid("ca", "init", "--data-dir", str(tmp_path / "a"), env=env)
    assert made.returncode == 1
    assert "FLEETID_PKCS11_SO_PIN" in made.stderr


def test_wrong_so_pin_is_refused_by_the_token(
    tmp_path: Path, softhsm_conf: Path, token: tuple[str, str]
) -> None:
    env = _env(softhsm_conf, token, FLEETID_PKCS11_SO_PIN="not-the-so-pin")
    made = fleetid("ca", "init", "--data-dir", str(tmp_path / "a"), env=env)
    assert made.returncode == 1
    assert "HsmError" in made.stderr
    assert not (tmp_path / "a" / "ca" / "activation.key").exists()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match="FLEETID_HSM"):
        Settings.load(Path("unused"), environ={"FLEETID_HSM": "tpm"})


def test_opening_with_a_contradicting_backend_is_refused(
    tmp_path: Path, softhsm_conf: Path, token: tuple[str, str]
) -> None:
    data = tmp_path / "authority"
    assert (
        fleetid("ca", "init", "--data-dir", str(data), env=_env(softhsm_conf, token)).returncode
        == 0
    )
    with pytest.raises(ConfigError, match="pkcs11 HSM; FLEETID_HSM says software"):
        FleetCa.open(Settings.load(data, environ={"FLEETID_HSM": "software"}), clock=SystemClock())
    with pytest.raises(ConfigError, match="on token"):
        FleetCa.open(
            Settings.load(data, environ={"FLEETID_PKCS11_TOKEN": "another"}), clock=SystemClock()
        )


def test_software_is_still_the_default(tmp_path: Path) -> None:
    data = tmp_path / "authority"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLEETID_HSM", "FLEETID_PKCS11"))
    }
    assert fleetid("ca", "init", "--data-dir", str(data), env=env).returncode == 0
    assert (data / "ca" / "hsm").is_dir()
    assert '"backend": "software"' in (data / "ca" / "hsm.json").read_text()
    with pytest.raises(ConfigError, match="software HSM; FLEETID_HSM says pkcs11"):
        FleetCa.open(Settings.load(data, environ={"FLEETID_HSM": "pkcs11"}), clock=SystemClock())
