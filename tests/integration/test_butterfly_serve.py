"""``fleetid v2x init`` makes the butterfly authorities beside the EA and AA, and ``create_app``
mounts them by itself: a vehicle enrols, asks for a batch, downloads it, rebuilds its keys on
its card and signs with a pseudonym, all through the app; a restarted app refuses the replay."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.hashes import SHA256
from tests.revocation_fixtures import AsgiClient

from fleetid.api import create_app
from fleetid.api.routes.etsi import ITS_REQUEST, ITS_RESPONSE
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.v2x.butterfly_on_disk import has_butterfly
from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hop_services import la_path, signed_answer
from fleetid.authority.v2x.hops import HopReceiver, MemorySeen, sign_hop
from fleetid.authority.v2x.key_store import authority_keys, load_keys
from fleetid.authority.v2x.misbehaviour_reports import sign_report
from fleetid.authority.v2x.on_disk import init_v2x, open_v2x
from fleetid.clock import ManualClock
from fleetid.config import V2X_PASSPHRASE_ENV, Settings
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import CURVES, generate_key
from fleetid.device.pseudonyms import (
    PendingBatch,
    PseudonymRequester,
    SecureElementCaterpillar,
)
from fleetid.device.v2x import ItsStation, SoftwareV2xKeys
from fleetid.errors import AuthorityHopError, CertificateRevokedError, ConfigError
from fleetid.formats.ieee1609 import decode_certificate
from fleetid.policy.v2x import CAM_SSP, PSID_CAM
from fleetid.revocation.linked_crl_channel import LinkedCrlReceiver
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.sim.test_card import manufacture_test_card
from fleetid.trust.v2x import V2xTrustStore

PASSPHRASE = "correct horse battery staple"
_CAM = [{"psid": PSID_CAM, "ssp": ("bitmapSsp", CAM_SSP)}]
_ITS = {"content-type": ITS_REQUEST}


@dataclass
class Served:
    data_dir: Path
    clock: ManualClock
    fleet: FleetCa
    client: AsgiClient

    def post(self, path: str, body: bytes) -> bytes:
        answer = self.client.post(path, content=body, headers={"content-type": ITS_REQUEST})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == ITS_RESPONSE
        return answer.content

    def restart(self) -> None:
        settings = Settings.load(self.data_dir, environ={V2X_PASSPHRASE_ENV: PASSPHRASE})
        self.client = AsgiClient(create_app(settings, clock=self.clock, ca=self.fleet))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    clock = ManualClock()
    fleet = FleetCa.init(Settings.load(tmp_path, environ={}), clock=clock, name="Test Fleet")
    init_v2x(tmp_path, family_name="nist", passphrase=PASSPHRASE.encode(), clock=clock).close()
    assert has_butterfly(tmp_path)
    found = Served(data_dir=tmp_path, clock=clock, fleet=fleet, client=None)  # type: ignore[arg-type]
    found.restart()
    yield found
    fleet.close()


def _vehicle(served: Served) -> tuple[PseudonymRequester, SecureElementClient]:
    store = open_v2x(served.data_dir, passphrase=PASSPHRASE.encode(), clock=served.clock)
    try:
        hierarchy = store.hierarchy
        trust = V2xTrustStore(hierarchy.root.certificate.encoded, clock=served.clock)
        trust.apply_ctl(served.client.get("/v2x/ctl").content)
        trust.apply_crl(served.client.get("/v2x/crl").content)
        canonical = SoftwareSigner(generate_key(hierarchy.family.end_entity))
        hierarchy.ea.register_canonical_key(b"VIN-SERVED", canonical.public_key())
        config = json.loads((served.data_dir / "v2x" / "butterfly.json").read_text())
    finally:
        store.close()
    station = ItsStation(
        its_id=b"VIN-SERVED",
        canonical_key=canonical,
        keys=SoftwareV2xKeys(),
        family=hierarchy.family,
        trust=trust,
        clock=served.clock,
    )
    station.enrol(lambda body: served.post("/v2x/ea/enrolment", body))
    assert station.enrolment_credential is not None
    card = SecureElementClient(manufacture_test_card().card)
    card.select_identity()
    curve = CURVES[hierarchy.family.end_entity]
    vehicle = PseudonymRequester(
        ec_signer=station.enrolment_signer(),
        ec_certificate=station.enrolment_credential.encoded,
        ra_certificate=bytes.fromhex(config["ra_certificate"]),
        ca_certificate=bytes.fromhex(config["pca_certificate"]),
        curve=curve,
        caterpillar=SecureElementCaterpillar(card, curve),
    )
    return vehicle, card


def _first_week(served: Served, vehicle: PseudonymRequester) -> tuple[PendingBatch, Any]:
    """The vehicle's batch of period 0 through the app: (its request, the download answer)."""
    config = json.loads((served.data_dir / "v2x" / "butterfly.json").read_text())
    pending = vehicle.batch_request(
        period_start=int(config["origin"]),
        duration=("hours", 168),
        app_permissions=_CAM,
        now=served.clock.now(),
    )
    vehicle.read_ack(pending, served.post("/v2x/ra/batch", pending.message))
    download = served.client.get(f"/v2x/ra/batch/{pending.batch_id.hex()}")
    assert download.status_code == 200, download.text
    return pending, download


def test_a_vehicle_gets_and_uses_pseudonyms_through_the_app(served: Served) -> None:
    vehicle, _ = _vehicle(served)
    pending, download = _first_week(served, vehicle)
    pseudonyms = vehicle.reconstruct(pending, download.content)
    assert len(pseudonyms) == 20
    for pseudonym in pseudonyms[:3]:
        assert isinstance(pseudonym.key, SecureElementSigner)
        signature = pseudonym.key.sign(b"CAM")
        pseudonym.certificate.verification_key().verify(
            signature, hashlib.sha256(b"CAM").digest(), ec.ECDSA(Prehashed(SHA256()))
        )
    # The app restarts: the RA still knows the request, and the batch is still there.
    served.restart()
    again = served.client.post(
        "/v2x/ra/batch", content=pending.message, headers={"content-type": ITS_REQUEST}
    )
    assert again.status_code == 403
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["detail"].startswith("replay")
    kept = served.client.get(f"/v2x/ra/batch/{pending.batch_id.hex()}")
    assert kept.content == download.content


def test_the_mounted_hops_refuse_a_foreign_signer(served: Served) -> None:
    stranger_hierarchy = open_v2x(
        served.data_dir, passphrase=PASSPHRASE.encode(), clock=served.clock
    )
    try:
        ea_keys = stranger_hierarchy.hierarchy.ea._keys  # the EA is no butterfly authority
    finally:
        stranger_hierarchy.close()
    message = sign_hop(ea_keys, "RaLaRequest", ("newChain", None), served.clock)
    answer = served.client.post(
        la_path(1, "request"), content=message, headers={"content-type": ITS_REQUEST}
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"


def test_without_the_passphrase_nothing_is_mounted(served: Served) -> None:
    settings = Settings.load(served.data_dir, environ={})
    client = AsgiClient(create_app(settings, clock=served.clock, ca=served.fleet))
    assert client.get("/v2x/ra/batch/0011223344556677").status_code == 404
    assert client.post("/v2x/aca/batch", content=b"x").status_code in (404, 405)


def test_init_twice_and_a_wrong_passphrase_are_refused(served: Served) -> None:
    with pytest.raises(ConfigError):
        init_v2x(
            served.data_dir, family_name="nist", passphrase=PASSPHRASE.encode(), clock=served.clock
        )
    settings = Settings.load(served.data_dir, environ={V2X_PASSPHRASE_ENV: "wrong passphrase!"})
    with pytest.raises(ConfigError):
        create_app(settings, clock=served.clock, ca=served.fleet)


def test_a_broken_configuration_or_key_store_is_one_config_error(served: Served) -> None:
    settings = Settings.load(served.data_dir, environ={V2X_PASSPHRASE_ENV: PASSPHRASE})
    config = served.data_dir / "v2x" / "butterfly.json"
    good = config.read_text()
    config.write_text(good.replace('"origin"', '"start"'))
    with pytest.raises(ConfigError, match="not a butterfly configuration"):
        create_app(settings, clock=served.clock, ca=served.fleet)
    config.write_text("{not json")
    with pytest.raises(ConfigError, match="not a butterfly configuration"):
        create_app(settings, clock=served.clock, ca=served.fleet)
    config.write_text(good)
    (served.data_dir / "v2x" / "keys" / "la2.p8").unlink()
    with pytest.raises(ConfigError, match=r"no la2\.p8"):
        create_app(settings, clock=served.clock, ca=served.fleet)


def test_a_misbehaviour_report_over_http_revokes_the_vehicle(served: Served) -> None:
    vehicle, _ = _vehicle(served)
    config = json.loads((served.data_dir / "v2x" / "butterfly.json").read_text())
    origin = int(config["origin"])
    pending, download = _first_week(served, vehicle)
    pseudonyms = vehicle.reconstruct(pending, download.content)
    # The MA's operator holds its keys; the server holds only its certificate.
    keys = load_keys(served.data_dir / "v2x" / "keys", ("ma", "ma-enc"), PASSPHRASE.encode())
    ma = authority_keys(keys, "ma", decode_certificate(bytes.fromhex(config["ma_certificate"])))

    def report(certificate: bytes, signer: AuthorityKeys = ma) -> Any:
        return served.client.post(
            "/v2x/ma/report",
            content=sign_report(signer, certificate, served.clock),
            headers={"content-type": ITS_REQUEST},
        )

    # Refused, each a problem document, nothing revoked: another signer, no report, a
    # certificate the pseudonym CA did not issue.
    store = open_v2x(served.data_dir, passphrase=PASSPHRASE.encode(), clock=served.clock)
    try:
        ea_keys = store.hierarchy.ea._keys
    finally:
        store.close()
    for answer, status in (
        (report(pseudonyms[0].certificate.encoded, ea_keys), 401),
        (served.client.post("/v2x/ma/report", content=b"junk", headers=_ITS), 400),
        (report(ma.certificate.encoded), 404),
    ):
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert served.client.get("/v2x/linked-crl/full").status_code == 404

    accepted = report(pseudonyms[0].certificate.encoded)
    assert accepted.status_code == 200, accepted.text
    pca = decode_certificate(bytes.fromhex(config["pca_certificate"]))
    neighbour = LinkedCrlReceiver(pca)
    neighbour.load(served.client.get("/v2x/linked-crl/full").content)
    with pytest.raises(CertificateRevokedError):
        neighbour.check(0, pseudonyms[7].i, pseudonyms[7].linkage_value)
    week1 = vehicle.batch_request(
        period_start=origin + 168 * 3600,
        duration=("hours", 168),
        app_permissions=_CAM,
        now=served.clock.now(),
    )
    refused = served.client.post("/v2x/ra/batch", content=week1.message, headers=_ITS)
    assert refused.status_code == 403 and refused.json()["detail"].startswith("revoked")
    # A restarted app still serves the CRL, and a second report of the vehicle adds nothing.
    published = served.client.get("/v2x/linked-crl/full").content
    served.restart()
    assert report(pseudonyms[3].certificate.encoded).status_code == 200
    assert served.client.get("/v2x/linked-crl/full").content == published


def test_the_served_las_sign_their_answers_with_the_certificates_init_made(served: Served) -> None:
    config = json.loads((served.data_dir / "v2x" / "butterfly.json").read_text())
    keys = load_keys(served.data_dir / "v2x" / "keys", ("ra", "ra-enc"), PASSPHRASE.encode())
    ra = authority_keys(keys, "ra", decode_certificate(bytes.fromhex(config["ra_certificate"])))
    for number in (1, 2):
        la = decode_certificate(bytes.fromhex(config[f"la{number}_certificate"]))
        message = sign_hop(ra, "RaLaRequest", ("newChain", None), served.clock)
        answer = served.post(la_path(number, "request"), message)
        value = signed_answer(
            HopReceiver(sender=la, seen=MemorySeen(), clock=served.clock),
            "LaRaResponse",
            answer,
            message,
        )
        assert value["content"][0] == "chainToken"
        other = decode_certificate(bytes.fromhex(config[f"la{3 - number}_certificate"]))
        with pytest.raises(AuthorityHopError):
            HopReceiver(sender=other, seen=MemorySeen(), clock=served.clock).open(
                answer, "LaRaResponse"
            )
