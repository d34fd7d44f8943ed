"""The preparation and discovery services' signing keys on the CA's PKCS#11 token (SoftHSM2):
made there once, not extractable, found again by the next process; a device downloads a
package and polls discovery under signatures made on the token. SQLite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tests.hsm_fixtures import SO_PIN, make_softhsm, softhsm_session

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.preparation import PackageKind
from fleetid.authority.preparation.for_ca import PackageServices, order_for_device
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.device.package_transport import HttpPackageTransport, in_process_client
from fleetid.device.truststore import TrustStore
from fleetid.device.unattended import UnattendedDownloader
from fleetid.sim.software_line import SoftwareLine

pytestmark = [pytest.mark.softhsm]
URL = "http://fleet-hsm.test"
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from softhsm_session(tmp_path_factory)


def _settings(data: Path, token: tuple[str, str]) -> Settings:
    label, module = token
    environ = {
        "FLEETID_PUBLIC_URL": URL,
        "FLEETID_HSM": "pkcs11",
        "FLEETID_PKCS11_MODULE": module,
        "FLEETID_PKCS11_TOKEN": label,
        "FLEETID_PKCS11_SO_PIN": SO_PIN,
    }
    return Settings.load(data, environ={**os.environ, **environ})


def test_the_services_sign_with_keys_held_on_the_token(tmp_path: Path, softhsm_conf: Path) -> None:
    from pkcs11 import Attribute, ObjectClass

    token = make_softhsm(softhsm_conf)
    clock = ManualClock()
    line = SoftwareLine(clock=clock)
    device = line.make_device()
    data = tmp_path / "authority"
    ca = FleetCa.init(_settings(data, token), clock=clock, name="Token Fleet")
    try:
        trust_manufacturer(data, line.root)
        import_manifest(ca.store, [device.manifest_record()], clock.now())
        app = create_app(ca.settings, clock=clock, ca=ca)
        services: PackageServices = app.state.packages
        order = order_for_device(
            ca, services.preparation, serial=device.serial, kind=PackageKind.CONFIGURATION,
            content=b'{"apn": "fleet.example"}',
        )  # fmt: skip
        client = in_process_client(app, URL)
        transport = HttpPackageTransport(client, {URL: client})
        agent = UnattendedDownloader(se=device.client(), trust=TrustStore([ca.root]), clock=clock)
        # Discovery's answer and the package are checked by the device against those keys.
        assert [e for e, _ in agent.discover(transport)] == [order.event_id]
        assert [p.event_id for p in agent.run_once(transport)] == [order.event_id]
        client.close()
        session = ca.hsm._session  # type: ignore[attr-defined]
        for label in ("preparation-service-1", "discovery-service-1"):
            (key,) = session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
            )
            assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
            assert key[Attribute.TOKEN]  # persistent, for the next process
        signer, chain = services.preparation._identity()
        assert chain[0].public_key().public_bytes(DER, SPKI) == ca.hsm.public_key(
            "preparation-service-1"
        ).public_bytes(DER, SPKI)
        assert signer.public_key().public_bytes(DER, SPKI) == chain[0].public_key().public_bytes(
            DER, SPKI
        )
        first = ca.hsm.public_key("preparation-service-1").public_bytes(DER, SPKI)
    finally:
        ca.close()
    # The next process finds the same key on the token instead of making another.
    import pkcs11

    pkcs11.lib(token[1]).reinitialize()
    again = FleetCa.open(_settings(data, token), clock=clock)
    try:
        services = create_app(again.settings, clock=clock, ca=again).state.packages
        _, chain = services.preparation._identity()
        assert chain[0].public_key().public_bytes(DER, SPKI) == first
        assert again.hsm.labels().count("preparation-service-1") == 1
    finally:
        again.close()


def test_the_embedded_default_keeps_a_software_key_in_the_process(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = Settings.load(tmp_path / "a", environ={"FLEETID_PUBLIC_URL": URL})
    ca = FleetCa.init(settings, clock=clock, name="Software Fleet")
    try:
        services: PackageServices = create_app(settings, clock=clock, ca=ca).state.packages
        signer, chain = services.preparation._identity()
        assert type(signer).__name__ == "SoftwareSigner"
        assert "preparation-service-1" not in ca.hsm.labels()  # nothing was put in the CA's HSM
        assert chain[0].issuer == ca.issuing.certificate.subject
    finally:
        ca.close()
