"""``fleetid device enrol|renew|rekey|status`` end to end: a factory line makes a wafer lot
(``fleetid line run``), an authority serves over TLS on loopback (``fleetid ca init``,
``fleetid serve --https``), and the device CLI enrols, renews, re-keys and reports a unit of
that lot; SQLite and PostgreSQL. Every CLI call is a subprocess, as an integrator runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.authority_server import fleetid, free_port, require_tool, serving

from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.clock import SystemClock
from fleetid.factory import ceremony
from fleetid.factory.line import ManifestReader, UnitState
from fleetid.store.engine import open_engine
from fleetid.store.repositories import ManifestRecord, Store
from fleetid.store.schema import CertificateStatus

pytestmark = pytest.mark.slow

DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@dataclass(frozen=True, kw_only=True)
class Site:
    factory: Path
    authority: Path
    root_pem: Path
    url: str
    env: dict[str, str]
    db_url: str
    enrolled_unit: str  # on the authority's manifest
    stranger_unit: str  # secured by the line, never imported by the authority

    def device(
        self, verb: str, unit: str, state: Path, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        args = ["device", verb, "--wafer", str(self.factory / "wafer"), "--unit", unit]
        args += ["--state", str(state)]
        if verb != "status":
            args += ["--ca-url", self.url]
        return fleetid(*args, *extra, env=self.env)

    def certificates(self, device_id: str) -> list[object]:
        store = Store(open_engine(self.db_url))
        try:
            with store.transaction() as tx:
                return list(tx.certificates.for_device(device_id))
        finally:
            store.dispose()


def _factory(tmp: Path) -> Path:
    clock = SystemClock()
    config = ceremony.write_example_config(tmp / "cfg")
    data = tmp / "factory"
    outcome = ceremony.init_ceremony(ceremony.CeremonyConfig.load(config), data, clock=clock)
    ceremony.activate(data, ceremony.read_shares(outcome.share_files[1:4]), clock=clock)
    keys = tmp / "cfg" / "transport-keys.toml"
    made = fleetid(
        "line", "run", "--devices", "2", "--data-dir", str(data), "--transport-keys", str(keys)
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return data


def _manifest_record(entry: object) -> ManifestRecord:
    assert entry.attestation_public_key is not None  # type: ignore[attr-defined]
    return ManifestRecord(
        unit=entry.unit,  # type: ignore[attr-defined]
        serial=entry.serial,  # type: ignore[attr-defined]
        state=str(entry.state),  # type: ignore[attr-defined]
        idevid_fingerprint=entry.idevid_fingerprint,  # type: ignore[attr-defined]
        attestation_public_key=entry.attestation_public_key.public_bytes(DER, SPKI),  # type: ignore[attr-defined]
        idevid=entry.idevid.public_bytes(DER),  # type: ignore[attr-defined]
    )


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[Site]:
    factory = _factory(tmp_path)
    entries = ManifestReader(open_engine(factory)).entries()
    secured = [e for e in entries if e.state is UnitState.SECURED]
    assert len(secured) == 2
    authority = tmp_path / "authority"
    env = {**os.environ, "FLEETID_DATABASE_URL": db_url}
    assert fleetid("ca", "init", "--data-dir", str(authority), env=env).returncode == 0
    chain = x509.load_pem_x509_certificates(
        fleetid("ca", "certs", "--data-dir", str(authority), env=env).stdout.encode()
    )
    root_pem = tmp_path / "fleet-root.pem"
    root_pem.write_bytes(chain[-1].public_bytes(serialization.Encoding.PEM))
    # The operator's configuration: trust the manufacturer, accept the first unit only.
    trust_manufacturer(authority, ceremony.load_record(factory).root_certificate)
    store = Store(open_engine(db_url))
    import_manifest(store, [_manifest_record(secured[0])], SystemClock().now())
    store.dispose()
    port = free_port()
    with serving(authority, [port], ["--https", f"127.0.0.1:{port}"], env=env):
        yield Site(
            factory=factory,
            authority=authority,
            root_pem=root_pem,
            url=f"https://127.0.0.1:{port}",
            env=env,
            db_url=db_url,
            enrolled_unit=secured[0].unit,
            stranger_unit=secured[1].unit,
        )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _credential(state: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates((state / "credential.pem").read_bytes())[0]


def _openssl_verify(tmp: Path, root_pem: Path, state: Path) -> None:
    openssl = require_tool("openssl")
    leaf, *intermediates = x509.load_pem_x509_certificates((state / "credential.pem").read_bytes())
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / "chain.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in intermediates)
    )
    args = [openssl, "verify", "-CAfile", str(root_pem), "-untrusted", str(tmp / "chain.pem")]
    result = subprocess.run(
        [*args, str(tmp / "leaf.pem")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_enrol_renew_rekey_status(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    unit = site.enrolled_unit
    assert "factory (not enrolled)" in _ok(site.device("status", unit, state))

    enrolled = _ok(site.device("enrol", unit, state, "--root", str(site.root_pem)))
    first = _credential(state)
    assert f"credential {first.serial_number:040x}" in enrolled
    _openssl_verify(tmp_path, site.root_pem, state)
    saved = json.loads((state / "state.json").read_text())
    assert saved["state"] == "enrolled"
    # Public material only on the host: no private key anywhere in the agent's state.
    for path in state.iterdir():
        assert b"PRIVATE KEY" not in path.read_bytes(), path

    status = _ok(site.device("status", unit, state))
    device_id = first.subject.rfc4514_string().removeprefix("CN=")
    assert f"device {device_id}: enrolled" in status
    assert f"credential {first.serial_number:040x}" in status

    not_due = _ok(site.device("renew", unit, state))  # the anchors saved by enrol suffice
    assert "not due" in not_due
    assert _credential(state).serial_number == first.serial_number

    _ok(site.device("renew", unit, state, "--force"))
    renewed = _credential(state)
    assert renewed.serial_number != first.serial_number
    assert renewed.public_key() == first.public_key()  # refresh: same SE key

    _ok(site.device("rekey", unit, state))
    rekeyed = _credential(state)
    assert rekeyed.public_key() != renewed.public_key()  # re-key: a new SE key
    assert json.loads((state / "state.json").read_text())["state"] == "rekeyed"
    _openssl_verify(tmp_path, site.root_pem, state)

    records = {r.serial: r for r in site.certificates(device_id)}  # type: ignore[attr-defined]
    # A refresh leaves the old credential to expire (D1); a re-key revokes it.
    assert records[f"{first.serial_number:040x}"].status == CertificateStatus.VALID
    assert records[f"{first.serial_number:040x}"].superseded_by is not None
    assert records[f"{renewed.serial_number:040x}"].revocation_reason == "superseded"
    assert records[f"{rekeyed.serial_number:040x}"].status == CertificateStatus.VALID


def test_enrol_of_a_unit_not_on_the_manifest_is_refused(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "stranger"
    refused = site.device("enrol", site.stranger_unit, state, "--root", str(site.root_pem))
    assert refused.returncode == 1
    assert "VerificationError" in refused.stderr
    assert "[not-on-manifest]" in refused.stderr
    assert "factory" in _ok(site.device("status", site.stranger_unit, state))


def test_first_enrol_without_a_root_is_refused(site: Site, tmp_path: Path) -> None:
    refused = site.device("enrol", site.enrolled_unit, tmp_path / "agent")
    assert refused.returncode == 1
    assert "no trust anchors yet" in refused.stderr


def test_enrol_against_an_authority_with_another_root_fails_tls(site: Site, tmp_path: Path) -> None:
    """The --root given is not the authority's: the TLS handshake is refused before any request."""
    other = tmp_path / "other"
    assert fleetid("ca", "init", "--data-dir", str(other)).returncode == 0
    wrong = tmp_path / "wrong-root.pem"
    other_root = x509.load_pem_x509_certificates(
        fleetid("ca", "certs", "--data-dir", str(other)).stdout.encode()
    )[-1]
    wrong.write_bytes(other_root.public_bytes(serialization.Encoding.PEM))
    refused = site.device("enrol", site.enrolled_unit, tmp_path / "agent", "--root", str(wrong))
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert not (tmp_path / "agent" / "credential.pem").exists()


def test_renew_after_revocation_is_refused_and_the_state_says_revoked(
    site: Site, tmp_path: Path
) -> None:
    state = tmp_path / "agent"
    _ok(site.device("enrol", site.enrolled_unit, state, "--root", str(site.root_pem)))
    serial = f"{_credential(state).serial_number:040x}"
    revoked = fleetid(
        "revoke",
        "--data-dir",
        str(site.authority),
        serial,
        "--reason",
        "keyCompromise",
        env=site.env,
    )
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    refused = site.device("renew", site.enrolled_unit, state, "--force")
    assert refused.returncode == 1
    assert "AuthenticationError" in refused.stderr and "keyCompromise" in refused.stderr
    assert json.loads((state / "state.json").read_text())["state"] == "revoked"
    assert ": revoked" in _ok(site.device("status", site.enrolled_unit, state))
    device_id = _credential(state).subject.rfc4514_string().removeprefix("CN=")
    (record,) = site.certificates(device_id)
    assert record.revocation_reason == "keyCompromise"  # type: ignore[attr-defined]
