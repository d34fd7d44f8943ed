"""``fleetid v2x init`` + ``fleetid serve``: TS 102 941 over real HTTP on loopback.

The server is the real CLI in a subprocess; the vehicles come off a (test) line with every key in
their secure elements, the EA imports them from the manifest (in this process, on the same
on-disk EA database the server uses), and they enrol, fetch ATs and exchange CAMs over sockets.
``fleetid v2x publish --revoke-ca`` while the server runs changes the CRL it serves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.authority_server import fleetid, free_port, serving
from tests.v2x_fixtures import FAMILY_NAMES

from fleetid.authority.v2x.manufactured import import_manufactured, its_id_of
from fleetid.authority.v2x.on_disk import open_v2x
from fleetid.clock import SystemClock
from fleetid.device.v2x import CamReceiver, ItsStation, SecureElementV2xKeys
from fleetid.errors import PolicyError, VerificationError
from fleetid.factory.line import CANONICAL_KEY_HANDLE
from fleetid.se.client import SecureElementSigner
from fleetid.se.state import Curve
from fleetid.sim.software_line import SoftwareLine
from fleetid.trust.v2x import V2xTrustStore

pytestmark = pytest.mark.slow

PASSPHRASE = "correct horse battery staple"
ITS_REQUEST = "application/x-its-request"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    env.update(extra)
    return env


@dataclass
class Served:
    data_dir: Path
    base: str
    family: str

    def post(self, path: str) -> Callable[[bytes], bytes]:
        def send(body: bytes) -> bytes:
            response = httpx.post(
                self.base + path, content=body, headers={"Content-Type": ITS_REQUEST}, timeout=30
            )
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/x-its-response"
            return response.content

        return send

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30)


@pytest.fixture(params=FAMILY_NAMES)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    data_dir = tmp_path / "authority"
    env = _env(FLEETID_V2X_PASSPHRASE=PASSPHRASE)
    for args in (("ca", "init"), ("v2x", "init", "--family", request.param)):
        result = fleetid(*args, "--data-dir", str(data_dir), env=env)
        assert result.returncode == 0, result.stderr
    port = free_port()
    with serving(data_dir, [port], ["--http", f"127.0.0.1:{port}"], env=env):
        yield Served(data_dir, f"http://127.0.0.1:{port}", request.param)


def _vehicles(served: Served, count: int) -> tuple[list[ItsStation], bytes]:
    """Vehicles off a test line, imported by the on-disk EA; trust from the served CTL/CRL."""
    clock = SystemClock()
    line = SoftwareLine(clock=clock)
    curve = Curve.P256 if served.family == "nist" else Curve.BRAINPOOL_P256
    devices = [line.make_device(canonical_curve=curve) for _ in range(count)]
    store = open_v2x(served.data_dir, passphrase=PASSPHRASE.encode(), clock=clock)
    try:
        report = import_manufactured(
            store.hierarchy.ea,
            [d.manifest_entry() for d in devices],
            intermediates=[line.line_ca],
            trusted_roots=[line.root],
        )
        assert len(report.imported) == count and not report.refused
        root = store.hierarchy.root.certificate.encoded
        aa_id = store.hierarchy.aa.certificate.hashed_id8
    finally:
        store.close()
    stations = []
    for device in devices:
        trust = V2xTrustStore(root, clock=clock)
        trust.apply_ctl(served.get("/v2x/ctl").content)
        trust.apply_crl(served.get("/v2x/crl").content)
        client = device.client()
        stations.append(
            ItsStation(
                its_id=its_id_of(device.serial),
                canonical_key=SecureElementSigner(client, CANONICAL_KEY_HANDLE),
                keys=SecureElementV2xKeys(client),
                family=store.hierarchy.family,
                trust=trust,
                clock=clock,
            )
        )
    return stations, aa_id


def test_enrol_authorize_and_exchange_cams_over_fleetid_serve(served: Served) -> None:
    (a, b), aa_id = _vehicles(served, 2)
    for station in (a, b):
        station.enrol(served.post("/v2x/ea/enrolment"))
        station.request_tickets(2, served.post("/v2x/aa/authorization"))
    clock = SystemClock()
    assert CamReceiver(b.trust, clock).verify(a.sign_cam(b"hello from A")).payload == (
        b"hello from A"
    )
    # The operator revokes the AA while the server runs; the served CRL now lists it.
    revoked = fleetid(
        "v2x",
        "publish",
        "--data-dir",
        str(served.data_dir),
        "--revoke-ca",
        aa_id.hex(),
        env=_env(FLEETID_V2X_PASSPHRASE=PASSPHRASE),
    )
    assert revoked.returncode == 0, revoked.stderr
    receiver = CamReceiver(b.trust, clock)
    receiver.trust.apply_crl(served.get("/v2x/crl").content)
    with pytest.raises(VerificationError):
        receiver.verify(a.sign_cam(b"after the AA was revoked"))


def test_a_vehicle_not_on_the_manifest_is_refused_over_http(served: Served) -> None:
    (station,), _ = _vehicles(served, 1)
    stranger = ItsStation(
        its_id=b"NOT-MANUFACTURED-HERE",
        canonical_key=station._canonical_key,
        keys=station._keys,
        family=station.family,
        trust=station.trust,
        clock=SystemClock(),
    )
    with pytest.raises(PolicyError, match="unknownits"):
        stranger.enrol(served.post("/v2x/ea/enrolment"))
    garbage = httpx.post(
        served.base + "/v2x/ea/enrolment",
        content=b"\x03\x82\x01",
        headers={"Content-Type": ITS_REQUEST},
        timeout=30,
    )
    assert garbage.status_code == 400


def test_serve_without_the_v2x_passphrase_keeps_the_ca_up_and_v2x_answers_503(
    tmp_path: Path,
) -> None:
    """Regression: once V2X was initialised, ``serve`` would not start without its passphrase,
    taking the EST CA, OCSP and CRLs down with it."""
    data_dir = tmp_path / "authority"
    env = _env(FLEETID_V2X_PASSPHRASE=PASSPHRASE)
    for args in (("ca", "init"), ("v2x", "init", "--family", "nist")):
        assert fleetid(*args, "--data-dir", str(data_dir), env=env).returncode == 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving(data_dir, [port], ["--http", f"127.0.0.1:{port}"], env=_env()):
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200
        assert httpx.get(f"{base}/.well-known/est/cacerts", timeout=30).status_code == 200
        for method, path in (
            ("GET", "/v2x/ctl"),
            ("GET", "/v2x/crl"),
            ("POST", "/v2x/ea/enrolment"),
        ):
            answer = httpx.request(
                method, f"{base}{path}", content=b"\x03", headers={"Content-Type": ITS_REQUEST}
            )
            assert answer.status_code == 503, (path, answer.text)
            assert "FLEETID_V2X_PASSPHRASE" in answer.json()["detail"]
    log = (data_dir / "serve.log").read_text()
    assert "warning:" in log and "FLEETID_V2X_PASSPHRASE" in log and "503" in log
    assert "Traceback" not in log


def test_serve_refuses_a_wrong_v2x_passphrase(tmp_path: Path) -> None:
    data_dir = tmp_path / "authority"
    env = _env(FLEETID_V2X_PASSPHRASE=PASSPHRASE)
    for args in (("ca", "init"), ("v2x", "init", "--family", "nist")):
        assert fleetid(*args, "--data-dir", str(data_dir), env=env).returncode == 0
    port = free_port()
    with (
        pytest.raises(AssertionError, match="wrong passphrase"),
        serving(
            data_dir,
            [port],
            ["--http", f"127.0.0.1:{port}"],
            env=_env(FLEETID_V2X_PASSPHRASE="not it"),
        ),
    ):
        pass


def test_a_data_dir_without_v2x_serves_no_v2x_routes(tmp_path: Path) -> None:
    data_dir = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data_dir), env=_env()).returncode == 0
    port = free_port()
    with serving(data_dir, [port], ["--http", f"127.0.0.1:{port}"], env=_env()):
        assert httpx.get(f"http://127.0.0.1:{port}/v2x/ctl", timeout=30).status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200
