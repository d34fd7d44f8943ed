"""Publishing the offline filter from a real fleet CA (software HSM, SQLite): full and cumulative
delta at the registry watermark, the coverage rule, the issuing-CA signer (checked by OpenSSL),
rollover, the HTTP route and ``fleetid filter publish|check``."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.authority_server import require_tool

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import roll_issuing_ca
from fleetid.authority.revoke import revoke_serial
from fleetid.cli import main
from fleetid.cli.filter import EXIT_NOT_COVERED, EXIT_REVOKED
from fleetid.clock import ManualClock, SystemClock
from fleetid.config import Settings
from fleetid.device.truststore import TrustStore
from fleetid.device.verifier import PeerStatus, PeerVerifier
from fleetid.errors import CertificateRevokedError, PolicyError, VerificationError
from fleetid.policy import CredentialType
from fleetid.policy.connectivity import policy_for
from fleetid.revocation.channels import HttpFilterSource
from fleetid.revocation.filter.format import FilterKind, parse_filter
from fleetid.revocation.publish import FULL_FILE, FilterPublisher, filter_directory
from fleetid.revocation.registry import RevocationRegistry


@dataclass
class Fleet:
    ca: FleetCa
    clock: ManualClock

    def issue(self, count: int) -> list[x509.Certificate]:
        out = []
        with self.ca.store.transaction() as tx:
            for index in range(count):
                certificate, _ = self.ca.issue(
                    tx,
                    public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                    credential_type=CredentialType.OPERATIONAL,
                    common_name=f"device-{index}",
                    device_id=None,
                )
                out.append(certificate)
        return out

    def revoke(self, certificate: x509.Certificate) -> int:
        serial = f"{certificate.serial_number:x}"
        return revoke_serial(self.ca.store, serial, "keyCompromise", clock=self.clock).sequence

    def device(self) -> PeerVerifier:
        return PeerVerifier(
            trust=TrustStore([self.ca.root]),
            policy=policy_for("offline"),
            clock=self.clock,
            issuers=[self.ca.issuing.certificate],
        )


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    settings = Settings.load(tmp_path / "ca", environ={"FLEETID_PUBLIC_URL": "http://ca.test"})
    clock = ManualClock(SystemClock().now() - timedelta(hours=2))
    ca = FleetCa.init(settings, clock=clock, name="Filter Fleet")
    yield Fleet(ca=ca, clock=clock)
    ca.close()


def _publisher(fleet: Fleet) -> FilterPublisher:
    return FilterPublisher.for_ca(fleet.ca, directory=filter_directory(fleet.ca.settings.data_dir))


def test_full_then_delta_follow_the_registry(fleet: Fleet) -> None:
    certificates = fleet.issue(6)
    fleet.clock.advance(timedelta(minutes=10))
    publisher = _publisher(fleet)
    full = publisher.publish_full()
    assert (full.kind, full.watermark) == (FilterKind.FULL, 0)
    assert (full.header.revoked_count, full.header.valid_count) == (0, 6)
    device = fleet.device()
    device.load_filter(full.data)
    assert all(device.verify(c).status is PeerStatus.VALID for c in certificates)

    last = [fleet.revoke(c) for c in certificates[:2]][-1]
    delta = publisher.publish_delta()
    assert (delta.kind, delta.watermark) == (FilterKind.DELTA, last)
    assert delta.watermark == RevocationRegistry(fleet.ca.store).watermark()
    assert delta.header.revoked_count == 2
    device.load_filter(delta.data)
    for certificate in certificates[:2]:
        with pytest.raises(CertificateRevokedError):
            device.assess(certificate)
    assert all(device.verify(c).status is PeerStatus.VALID for c in certificates[2:])


def test_coverage_rule_leaves_later_certificates_not_covered(fleet: Fleet) -> None:
    fleet.issue(2)
    fleet.clock.advance(timedelta(minutes=10))
    published = _publisher(fleet).publish_full()
    now = fleet.clock.now()
    backdate = fleet.ca.settings.policy.backdate
    assert published.header.coverage_until <= now - backdate - timedelta(seconds=1)
    (late,) = fleet.issue(1)  # issued at the same instant the filter was built
    device = fleet.device()
    device.load_filter(published.data)
    verdict = device.assess(late)
    assert verdict.status is PeerStatus.NOT_COVERED and not verdict.acceptable


def test_delta_needs_a_full_filter_and_the_same_signer(fleet: Fleet) -> None:
    fleet.issue(1)
    publisher = FilterPublisher.for_ca(fleet.ca)
    with pytest.raises(PolicyError, match="full filter first"):
        publisher.publish_delta()
    publisher.publish_full()
    rolled = roll_issuing_ca(fleet.ca)
    publisher.use_signer(rolled.issuing.signer)
    with pytest.raises(PolicyError, match="signer changed"):
        publisher.publish_delta()
    assert publisher.publish().kind is FilterKind.FULL  # publish() rebases on a new signer


def test_rollover_device_follows_the_new_issuing_key(fleet: Fleet) -> None:
    (old,) = fleet.issue(1)
    publisher = FilterPublisher.for_ca(fleet.ca)
    device = fleet.device()
    device.load_filter(publisher.publish_full().data)
    rolled = roll_issuing_ca(fleet.ca)
    fleet.revoke(old)
    publisher.use_signer(rolled.issuing.signer)
    fleet.clock.advance(timedelta(minutes=10))
    full = publisher.publish()
    with pytest.raises(VerificationError, match="not a validated issuing CA"):
        device.load_filter(full.data)  # the device has not learnt the new issuing CA yet
    device.add_issuer(rolled.issuing.certificate)
    device.load_filter(full.data)
    with pytest.raises(CertificateRevokedError):
        device.assess(old)


def test_publisher_resumes_from_its_directory_and_drops_expired(fleet: Fleet) -> None:
    fleet.issue(3)
    fleet.clock.advance(timedelta(minutes=10))
    _publisher(fleet).publish_full()
    resumed = _publisher(fleet)
    assert resumed.full is not None
    assert resumed.publish().kind is FilterKind.DELTA
    fleet.clock.advance(timedelta(days=31))  # operational certificates live 30 days
    assert _publisher(fleet).publish_full().header.valid_count == 0


def test_store_behind_published_watermark_is_refused(fleet: Fleet) -> None:
    (certificate,) = fleet.issue(1)
    fleet.revoke(certificate)
    publisher = FilterPublisher.for_ca(fleet.ca)
    publisher.publish_full()
    fleet.clock.set(fleet.clock.now() - timedelta(hours=1))  # a clock set back: coverage regresses
    with pytest.raises(PolicyError, match="behind"):
        publisher.publish_full()


def _asgi_client(app: Any) -> httpx.Client:
    """A synchronous httpx client over the ASGI app in this process (no socket)."""
    asgi = httpx.ASGITransport(app=app)

    def handle(request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=asgi, base_url="http://ca.test") as client:
                response = await client.send(request)
                await response.aread()
                return response

        response = asyncio.run(send())
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )

    return httpx.Client(base_url="http://ca.test", transport=httpx.MockTransport(handle))


# --- HTTP -----------------------------------------------------------------------------------------


def test_http_route_serves_the_pair_with_etags(fleet: Fleet) -> None:
    app = create_app(fleet.ca.settings, clock=fleet.clock, ca=fleet.ca)
    with _asgi_client(app) as client:
        assert client.get("/revocation/filter/full").status_code == 404
        assert client.get("/revocation/filter/other").status_code == 400  # RFC 9457 problem
        fleet.issue(2)
        fleet.clock.advance(timedelta(minutes=10))
        publisher = _publisher(fleet)
        full = publisher.publish_full()
        source = HttpFilterSource(client)
        assert source.fetch() == [full.data]
        assert source.fetch() == []  # 304: nothing changed, no body
        delta = publisher.publish_delta()
        assert source.fetch() == [delta.data]
        response = client.get("/revocation/filter/delta")
        assert response.headers["Fleetid-Filter-Watermark"] == str(delta.watermark)
        assert response.headers["Content-Type"] == "application/octet-stream"


def test_http_source_raises_on_server_errors() -> None:
    client = httpx.Client(
        base_url="http://x.test", transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    with pytest.raises(Exception, match="HTTP 500"):
        HttpFilterSource(client).fetch()


# --- the CLI --------------------------------------------------------------------------------------


def _pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


@pytest.fixture
def cli_fleet(fleet: Fleet, tmp_path: Path) -> tuple[Fleet, list[x509.Certificate], Path]:
    certificates = fleet.issue(3)
    fleet.revoke(certificates[0])
    fleet.ca.close()
    data_dir = fleet.ca.settings.data_dir
    fleet.ca = FleetCa.open(fleet.ca.settings, clock=fleet.clock)
    return fleet, certificates, data_dir


def test_cli_publish_and_check(
    cli_fleet: tuple[Fleet, list[x509.Certificate], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet, (revoked, valid, _), data_dir = cli_fleet
    out = tmp_path / "fleet.fidf"
    assert main(["filter", "publish", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert out.read_bytes() == (filter_directory(data_dir) / FULL_FILE).read_bytes()
    assert "watermark 1" in capsys.readouterr().out
    trust = _pem(tmp_path / "issuing.pem", fleet.ca.issuing.certificate)
    check = ["filter", "check", "--filter", str(out), "--trust", str(trust), "--cert"]
    assert main([*check, str(_pem(tmp_path / "v.pem", valid))]) == 0
    assert capsys.readouterr().out.startswith("valid")
    assert main([*check, str(_pem(tmp_path / "r.pem", revoked))]) == EXIT_REVOKED
    assert capsys.readouterr().out.startswith("revoked")
    # Trust from the authority's directory, and from a chain file (said to be unanchored).
    by_dir = ["filter", "check", "--filter", str(out), "--data-dir", str(data_dir)]
    assert main([*by_dir, "--cert", str(tmp_path / "r.pem")]) == EXIT_REVOKED
    chain = _pem(tmp_path / "chain.pem", valid, fleet.ca.issuing.certificate)
    assert main(["filter", "check", "--filter", str(out), "--cert", str(chain)]) == 0
    assert "not from a trust anchor" in capsys.readouterr().err


def test_cli_check_refuses_other_signers_and_reports_not_covered(
    cli_fleet: tuple[Fleet, list[x509.Certificate], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet, (_, valid, _), data_dir = cli_fleet
    out = tmp_path / "fleet.fidf"
    assert main(["filter", "publish", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    fleet.clock.set(SystemClock().now())  # the CLI published on the wall clock: issue after it
    (late,) = fleet.issue(1)
    late_pem = _pem(tmp_path / "late.pem", late)
    trust = _pem(tmp_path / "issuing.pem", fleet.ca.issuing.certificate)
    args = ["filter", "check", "--filter", str(out), "--trust", str(trust), "--cert"]
    assert main([*args, str(late_pem)]) == EXIT_NOT_COVERED
    root_only = _pem(tmp_path / "root.pem", fleet.ca.root)
    wrong = ["filter", "check", "--filter", str(out), "--trust", str(root_only), "--cert"]
    assert main([*wrong, str(_pem(tmp_path / "v.pem", valid))]) == 1
    assert "not signed by a trusted issuing CA" in capsys.readouterr().err
    tampered = bytearray(out.read_bytes())
    tampered[-10] ^= 1
    (tmp_path / "bad.fidf").write_bytes(bytes(tampered))
    bad = ["filter", "check", "--filter", str(tmp_path / "bad.fidf"), "--trust", str(trust)]
    assert main([*bad, "--cert", str(tmp_path / "v.pem")]) == 1
    assert main(["filter", "check", "--filter", str(out), "--cert", str(late_pem)]) == 1


def test_filter_signature_verifies_under_openssl(fleet: Fleet, tmp_path: Path) -> None:
    """The signature is plain ECDSA over the bytes before the trailer: OpenSSL agrees."""
    openssl = require_tool("openssl")
    fleet.issue(2)
    data = FilterPublisher.for_ca(fleet.ca).publish_full().data
    parsed = parse_filter(data)
    (tmp_path / "signed.bin").write_bytes(parsed.signed_bytes)
    (tmp_path / "sig.der").write_bytes(parsed.signature)
    (tmp_path / "key.pem").write_bytes(
        fleet.ca.issuing.certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    command = [openssl, "dgst", "-sha256", "-verify", str(tmp_path / "key.pem"), "-signature"]
    ok = subprocess.run(
        [*command, str(tmp_path / "sig.der"), str(tmp_path / "signed.bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "Verified OK" in ok.stdout
    (tmp_path / "signed.bin").write_bytes(
        parsed.signed_bytes[:-1] + bytes([parsed.signed_bytes[-1] ^ 1])
    )
    bad = subprocess.run(
        [*command, str(tmp_path / "sig.der"), str(tmp_path / "signed.bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0
