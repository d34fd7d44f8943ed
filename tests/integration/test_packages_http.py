"""Preparation, discovery and unattended download over the real HTTP app, SQLite and
PostgreSQL: every flow and its negative twin."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.attestation_fixtures import make_authority
from tests.package_fixtures import BASE, Setup, setup_fixture  # noqa: F401 - the fixture

from fleetid.authority.attestation.fleetid_se import spki_sha256
from fleetid.authority.preparation import Order, PackageKind, PackageState
from fleetid.authority.preparation.for_ca import (
    PackageServices,
    order_for_devices,
    preparation_service,
)
from fleetid.device.agent import DeviceAgent
from fleetid.device.package_transport import HttpPackageTransport, in_process_client
from fleetid.device.truststore import TrustStore
from fleetid.errors import AuthenticationError, FleetIdError, PolicyError, VerificationError
from fleetid.formats.package_messages import BoundPackage, discovery_reference
from fleetid.policy import DEFAULT_POLICY, CredentialType
from fleetid.policy.connectivity import ConnectivityProfile
from fleetid.se.wire import BoundPackageCommand
from fleetid.sim.software_line import SoftwareLine
from fleetid.store.package_repository import PackageRecord

SECOND = "http://fleet-b.test"
PEM = serialization.Encoding.PEM


def test_a_device_discovers_downloads_installs_and_notifies(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device)
    downloader = setup.downloader(device)
    done = downloader.run_once(setup.transport)
    assert [(p.event_id, p.kind, p.public) for p in done] == [
        (order.event_id, "configuration", b'{"apn": "fleet.example"}')
    ]
    record = setup.preparation.status(order.event_id)
    assert record.state == PackageState.INSTALLED
    # The event left the discovery service: the next wake-up finds nothing.
    assert downloader.discover(setup.transport) == []
    assert downloader.run_once(setup.transport) == []


def test_a_credential_package_installs_its_key_inside_the_se(setup: Setup) -> None:
    device = setup.device()
    setup.order(device, kind=PackageKind.CREDENTIAL, content=b"")
    downloader = setup.downloader(device)
    (installed,) = downloader.run_once(setup.transport)
    assert installed.handle != 0
    leaf = x509.load_pem_x509_certificates(installed.public)[0]
    on_card = device.client().get_public_key(installed.handle)
    assert on_card.public_key.public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    assert not on_card.generated_on_card  # imported from the package, by the card itself


def test_discovery_indexes_only_the_polling_devices_events(setup: Setup) -> None:
    first, second = setup.device(), setup.device()
    order = setup.order(first)
    assert setup.downloader(second).discover(setup.transport) == []
    assert setup.downloader(first).discover(setup.transport) == [
        (order.event_id, setup.preparation.address)
    ]


def test_discovery_without_authentication_learns_nothing(setup: Setup) -> None:
    device = setup.device()
    setup.order(device)
    client = setup.authority.transport._client
    answers = []
    for attestation in (b"", b"junk"):
        session = client.post("/discovery/initiate-authentication").json()
        body = {
            "transactionId": session["transactionId"],
            "attestation": base64.b64encode(attestation).decode(),
            "chain": [],
        }
        answer = client.post("/discovery/authenticate-client", json=body)
        answers.append((answer.status_code, answer.json()["detail"]))
    # A replayed session is refused alike.
    answer = client.post("/discovery/authenticate-client", json=body)
    answers.append((answer.status_code, answer.json()["detail"]))
    assert answers == [(401, "the poll does not authenticate")] * 3


class _Tampering(HttpPackageTransport):
    """Hands the device each discovery answer through ``change`` (a network in the middle)."""

    def __init__(
        self, inner: HttpPackageTransport, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        super().__init__(inner._discovery, inner._clients)
        self.change = change

    def discovery_authenticate(
        self, transaction_id: str, attestation: bytes, chain: list[bytes]
    ) -> dict[str, Any]:
        return self.change(super().discovery_authenticate(transaction_id, attestation, chain))


def test_the_discovery_answer_is_signed_and_a_tampered_one_is_refused(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device)
    events = [(order.event_id, setup.preparation.address)]
    assert setup.downloader(device).discover(_Tampering(setup.transport, lambda a: a)) == events

    def redirect(answer: dict[str, Any]) -> dict[str, Any]:
        answer["eventEntries"][0]["rspServerAddress"] = "http://attacker.test/preparation"
        return answer

    def drop(answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "eventEntries": []}

    def unsigned(answer: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in answer.items() if k != "discoverySignature"}

    def uncertified(answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "discoveryCertificates": []}

    cases = [(redirect, "does not verify"), (drop, "does not verify")]
    cases += [(unsigned, "malformed"), (uncertified, "no certificate")]
    for change, reason in cases:
        with pytest.raises(VerificationError, match=reason):
            setup.downloader(device).discover(_Tampering(setup.transport, change))
    # An answer signed for an earlier poll is refused in a later one (it names that poll).
    kept: list[dict[str, Any]] = []

    def keep(answer: dict[str, Any]) -> dict[str, Any]:
        kept.append(answer)
        return answer

    setup.downloader(device).discover(_Tampering(setup.transport, keep))

    def replay(answer: dict[str, Any]) -> dict[str, Any]:
        return kept[0]

    with pytest.raises(VerificationError, match="does not verify"):
        setup.downloader(device).discover(_Tampering(setup.transport, replay))


def test_a_discovery_answer_from_a_service_the_device_does_not_trust_is_refused(
    setup: Setup, tmp_path: Path, backend: str, database_url_for: Callable[[str], str]
) -> None:
    foreign = make_authority(
        tmp_path / "f", database_url_for(backend), setup.clock, [setup.line.root],
        name="Foreign", base_url=SECOND,
    )  # fmt: skip
    try:
        device = setup.device()
        foreign.import_devices(device)
        client = in_process_client(foreign.app, SECOND)
        transport = HttpPackageTransport(client, {SECOND: client})
        # The device holds only its own fleet's anchor; the foreign discovery service signs with
        # a certificate of another fleet root.
        with pytest.raises(VerificationError, match="does not chain"):
            setup.downloader(device).discover(transport)
        # The same device polling its own fleet's discovery service is answered.
        assert setup.downloader(device).discover(setup.transport) == []
        client.close()
    finally:
        foreign.close()


def test_a_package_for_another_device_is_refused_and_useless(setup: Setup) -> None:
    owner, thief = setup.device(), setup.device()
    order = setup.order(owner)
    thief_downloader = setup.downloader(thief)
    with pytest.raises(PolicyError, match="matching-id-refused"):
        thief_downloader.download(setup.transport, order.event_id, setup.preparation.address)
    # Even holding the owner's bound package, the thief's SE cannot open it.
    setup.downloader(owner).run_once(setup.transport)
    bound = BoundPackage.decode(setup.preparation.status(order.event_id).bound or b"")
    thief_client = thief.client()
    handle = thief_client.generate_key(thief_downloader.curve, 0x02).handle  # key agreement
    command = BoundPackageCommand(
        context=bound.transaction_id,
        point=bound.point,
        nonce=bound.nonce,
        ciphertext=bound.ciphertext,
    )
    with pytest.raises(FleetIdError, match="6A80"):
        thief_client.load_bound_package(handle, command)


def test_a_download_after_install_is_refused(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device)
    downloader = setup.downloader(device)
    downloader.run_once(setup.transport)
    with pytest.raises(PolicyError, match="already-installed"):
        downloader.download(setup.transport, order.event_id, setup.preparation.address)


def test_a_tampered_package_fails_to_install_and_is_reported(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device)
    downloader = setup.downloader(device)

    class Tampering:
        def __getattr__(self, name: str) -> object:
            return getattr(setup.transport, name)

        def get_bound_package(self, *args: object) -> bytes:
            real = setup.transport.get_bound_package(*args)  # type: ignore[arg-type]
            return real[:-80] + bytes([real[-80] ^ 1]) + real[-79:]

    with pytest.raises(FleetIdError):  # the service's signature no longer verifies
        downloader.run_once(Tampering())  # type: ignore[arg-type]
    assert downloader.pending_step == "prepared"
    # A package altered after signing cannot install even when the host skips the check:
    bound = BoundPackage.decode(setup.preparation.status(order.event_id).bound or b"")
    command = BoundPackageCommand(
        context=bound.transaction_id,
        point=bound.point,
        nonce=bound.nonce,
        ciphertext=bound.ciphertext[:-1] + bytes([bound.ciphertext[-1] ^ 1]),
    )
    handle = downloader._journal["one_time_handle"]
    with pytest.raises(FleetIdError, match="6A80"):
        device.client().load_bound_package(handle, command)
    # The honest copy, fetched again in the same transaction, still installs.
    assert len(downloader.run_once(setup.transport)) == 1
    assert setup.preparation.status(order.event_id).state == PackageState.INSTALLED


def test_an_expired_order_is_refused_and_marked_failed(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device, lifetime=timedelta(hours=1))
    setup.clock.advance(timedelta(hours=2))
    with pytest.raises(PolicyError, match="order-expired"):
        setup.downloader(device).download(
            setup.transport, order.event_id, setup.preparation.address
        )
    record = setup.preparation.status(order.event_id)
    assert (record.state, record.reason) == (PackageState.FAILED, "order-expired")
    assert setup.downloader(device).discover(setup.transport) == []


def test_a_replayed_notification_is_refused(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device)
    sent: list[bytes] = []

    class Recording:
        def __getattr__(self, name: str) -> object:
            return getattr(setup.transport, name)

        def handle_notification(self, address: str, notification: bytes) -> str:
            sent.append(notification)
            return setup.transport.handle_notification(address, notification)

    setup.downloader(device).run_once(Recording())  # type: ignore[arg-type]
    assert setup.preparation.status(order.event_id).state == PackageState.INSTALLED
    with pytest.raises(FleetIdError, match="was handled"):
        setup.transport.handle_notification(setup.preparation.address, sent[0])
    assert setup.preparation.status(order.event_id).state == PackageState.INSTALLED


def test_a_confirmation_code_guards_the_order(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device, code="4711")
    without = setup.downloader(device)
    with pytest.raises(PolicyError, match="confirmation code"):
        without.run_once(setup.transport)
    wrong = setup.downloader(device)
    wrong.confirmation_codes = {order.event_id: "0000"}
    with pytest.raises(PolicyError, match="confirmation-code-refused"):
        wrong.download(setup.transport, order.event_id, setup.preparation.address)
    right = setup.downloader(device)
    right.confirmation_codes = {order.event_id: "4711"}
    assert len(right.run_once(setup.transport)) == 1


def test_wrong_confirmation_codes_fail_the_order_at_the_limit(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device, code="4711")
    for attempt in range(1, 5):
        wrong = setup.downloader(device)
        wrong.confirmation_codes = {order.event_id: f"000{attempt}"}
        with pytest.raises(PolicyError, match=f"403 .* {attempt} of 5: {5 - attempt} left"):
            wrong.download(setup.transport, order.event_id, setup.preparation.address)
    pending = setup.preparation.status(order.event_id)
    assert (pending.state, pending.cc_attempts) == (PackageState.RELEASED, 4)
    last = setup.downloader(device)
    last.confirmation_codes = {order.event_id: "0005"}
    with pytest.raises(PolicyError, match=r"5 of 5: the order failed \[confirmation-code-att"):
        last.download(setup.transport, order.event_id, setup.preparation.address)
    failed = setup.preparation.status(order.event_id)
    assert (failed.state, failed.reason) == ("failed", "confirmation-code-attempts-exceeded")
    assert setup.services.discovery.events() == []  # the event left the discovery service
    # The right code now comes too late: refused at authentication, with the same reason.
    right = setup.downloader(device)
    right.confirmation_codes = {order.event_id: "4711"}
    with pytest.raises(PolicyError, match=r"403 .*\[confirmation-code-attempts-exceeded\]"):
        right.download(setup.transport, order.event_id, setup.preparation.address)


def test_a_missing_confirmation_code_is_refused_without_counting(setup: Setup) -> None:
    device = setup.device()
    order = setup.order(device, code="4711")
    preparation = setup.preparation
    downloader = setup.downloader(device)
    downloader.confirmation_codes = {order.event_id: "4711"}
    # The device asks for the package without hashCc (a device that lost its code).
    real = setup.transport.get_bound_package

    def without_code(
        address: str, tid: str, attestation: bytes, chain: list[bytes], _: bytes | None
    ) -> bytes:
        return real(address, tid, attestation, chain, None)

    setup.transport.get_bound_package = without_code  # type: ignore[method-assign,assignment]
    with pytest.raises(PolicyError, match=r"needs a confirmation code \[confirmation-code-ref"):
        downloader.download(setup.transport, order.event_id, preparation.address)
    assert preparation.status(order.event_id).cc_attempts == 0


class _PowerCut(Exception):
    pass


def test_a_crash_between_download_and_install_resumes(setup: Setup, tmp_path: Path) -> None:
    device = setup.device()
    order = setup.order(device)
    journal = tmp_path / "journal.json"
    first = setup.downloader(device, journal)

    def cut(step: str) -> None:
        if step == "downloaded":
            raise _PowerCut

    first.crash = cut
    with pytest.raises(_PowerCut):
        first.run_once(setup.transport)
    assert setup.preparation.status(order.event_id).state == PackageState.DOWNLOADED
    device.card.reset()  # the power cut: volatile state gone, flash kept
    again = setup.downloader(device, journal)
    assert again.pending_step == "downloaded"
    done = again.run_once(setup.transport)
    assert [p.event_id for p in done] == [order.event_id]
    assert setup.preparation.status(order.event_id).state == PackageState.INSTALLED


def test_a_lost_answer_after_download_is_resumed_by_the_same_transaction(
    setup: Setup, tmp_path: Path
) -> None:
    device = setup.device()
    order = setup.order(device)
    journal = tmp_path / "journal.json"

    class LostAnswer:
        def __getattr__(self, name: str) -> object:
            return getattr(setup.transport, name)

        def get_bound_package(self, *args: object) -> bytes:
            setup.transport.get_bound_package(*args)  # type: ignore[arg-type]
            raise AuthenticationError("connection reset")

    with pytest.raises(AuthenticationError):
        setup.downloader(device, journal).run_once(LostAnswer())  # type: ignore[arg-type]
    assert setup.preparation.status(order.event_id).state == PackageState.DOWNLOADED
    assert len(setup.downloader(device, journal).run_once(setup.transport)) == 1


def test_a_new_authority_s_anchors_come_by_package(setup: Setup) -> None:
    """Trust anchors from the current authority's service, then the device trusts the new one."""
    device = setup.device()
    new_root = setup.line.root  # any CA certificate the device did not trust before
    pem = new_root.public_bytes(serialization.Encoding.PEM)
    setup.order(device, kind=PackageKind.TRUST_ANCHORS, content=pem)
    downloader = setup.downloader(device)
    assert not downloader.trust.holds(new_root)
    downloader.run_once(setup.transport)
    assert downloader.trust.holds(new_root)


def test_a_second_authority_registers_with_the_same_discovery_service(
    setup: Setup, tmp_path: Path, backend: str, database_url_for: Callable[[str], str]
) -> None:
    """The authority-change flow: the current authority's service delivers the new authority's
    anchors; the new authority's service, registered with the same discovery service, then
    delivers a credential under the new root. Before the anchors, the device refuses it."""
    second = make_authority(
        tmp_path / "b", database_url_for(backend), setup.clock, [setup.line.root],
        name="Fleet B", base_url=SECOND,
    )  # fmt: skip
    try:
        own = second.app.state.packages
        second.app.state.packages = PackageServices(
            preparation=preparation_service(second.ca, second.service, setup.services.discovery),
            discovery=own.discovery,
        )
        second_client = in_process_client(second.app, SECOND)
        transport = HttpPackageTransport(
            setup.transport._discovery, {BASE: setup.transport._discovery, SECOND: second_client}
        )
        device = setup.device()
        second.import_devices(device)
        prep_b = second.app.state.packages.preparation
        credential = prep_b.order(
            Order(
                reference="new-authority",
                kind=PackageKind.CREDENTIAL,
                binding_sha256=spki_sha256(device.attestation_key),
                device_ref=discovery_reference(device.serial),
            )
        )
        downloader = setup.downloader(device)
        assert [a for _, a in downloader.discover(transport)] == [f"{SECOND}/preparation"]
        assert downloader.run_once(transport) == []
        # B's service does not chain to an anchor the device holds: refused, nothing prepared.
        assert "does not chain" in downloader.refused[credential.event_id]
        assert prep_b.status(credential.event_id).state == PackageState.RELEASED
        anchors = second.ca.root.public_bytes(serialization.Encoding.PEM)
        setup.order(device, kind=PackageKind.TRUST_ANCHORS, content=anchors)
        fresh = setup.downloader(device)
        done = fresh.run_once(transport)
        assert sorted(p.kind for p in done) == ["credential", "trust-anchors"]
        (installed,) = [p for p in done if p.kind == "credential"]
        leaf = x509.load_pem_x509_certificates(installed.public)[0]
        assert leaf.issuer == second.ca.issuing.certificate.subject
        assert prep_b.status(credential.event_id).state == PackageState.INSTALLED
        second_client.close()
    finally:
        second.close()


def test_the_schedule_polls_by_connectivity_profile_and_resumes_at_once(setup: Setup) -> None:
    device = setup.device()
    downloader = setup.downloader(device)
    downloader.profile = ConnectivityProfile.INTERMITTENT
    assert downloader.tick(setup.transport) == []  # first wake-up: nothing pending yet
    setup.order(device, lifetime=timedelta(days=7))
    setup.clock.advance(timedelta(hours=23))
    assert downloader.tick(setup.transport) == []  # not yet a day: no poll
    setup.clock.advance(timedelta(hours=1))
    assert len(downloader.tick(setup.transport)) == 1


def test_the_device_agent_exposes_the_unattended_download(setup: Setup) -> None:
    device = setup.device()
    agent = DeviceAgent(
        se=device.client(),
        clock=setup.clock,
        cadence=DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence,
        trust=TrustStore([setup.authority.ca.root]),
    )
    new_root = setup.line.root
    setup.order(device, kind=PackageKind.TRUST_ANCHORS, content=new_root.public_bytes(PEM))
    assert not agent.trust.holds(new_root)
    (installed,) = agent.unattended().run_once(setup.transport)
    assert installed.kind == "trust-anchors"
    assert agent.trust.holds(new_root)  # the agent adopted the anchors the package brought


def test_a_foreign_manufacturer_s_device_learns_nothing_from_discovery(setup: Setup) -> None:
    foreign = SoftwareLine(clock=setup.clock).make_device()  # a root this authority does not trust
    with pytest.raises(AuthenticationError, match="the poll does not authenticate"):
        setup.downloader(foreign).discover(setup.transport)


def test_only_a_settled_package_can_be_deleted_and_then_nothing_of_it_remains(
    setup: Setup,
) -> None:
    device = setup.device()
    order = setup.order(device)
    with pytest.raises(PolicyError, match="not-deletable"):
        setup.preparation.delete_package(order.event_id)  # still released
    setup.downloader(device).run_once(setup.transport)
    setup.preparation.delete_package(order.event_id)
    record = setup.preparation.status(order.event_id)
    assert (record.state, record.content, record.bound) == (PackageState.DELETED, None, None)
    with pytest.raises(PolicyError, match="not-deletable"):
        setup.preparation.delete_package(order.event_id)


def test_a_retried_order_is_the_same_package_and_a_conflicting_one_is_refused(
    setup: Setup,
) -> None:
    device = setup.device()
    first = setup.order(device)
    assert setup.order(device).event_id == first.event_id
    assert len(setup.downloader(device).discover(setup.transport)) == 1  # registered once
    with pytest.raises(PolicyError, match="reference-in-use"):
        setup.order(device, content=b'{"apn": "other"}')
    setup.downloader(device).run_once(setup.transport)
    assert setup.order(device).event_id != first.event_id  # a new order once it is installed


def test_a_cohort_is_ordered_as_one_batch_or_not_at_all(setup: Setup) -> None:
    devices = [setup.device() for _ in range(3)]
    ca, preparation = setup.authority.ca, setup.preparation

    def cohort(serials: list[str]) -> list[PackageRecord]:
        kind, content = PackageKind.CONFIGURATION, b'{"apn": "fleet.example"}'
        return order_for_devices(ca, preparation, serials=serials, kind=kind, content=content)

    serials = [d.serial for d in devices]
    # One device that is not on the manifest: nothing of the batch is ordered.
    with pytest.raises(FleetIdError, match="not on a manifest"):
        cohort([*serials, "NO-SUCH-SERIAL"])
    assert preparation.repository.packages() == [] and setup.services.discovery.events() == []
    # A batch with a bad order (no content) writes nothing either.
    bad = dataclasses.replace(setup.order_of(devices[0]), content=b"")
    with pytest.raises(FleetIdError, match="needs content"):
        preparation.order_batch([setup.order_of(devices[1]), bad])
    assert preparation.repository.packages() == []
    # The same device twice in a batch is one package; every device discovers its own event.
    records = cohort([*serials, serials[0]])
    assert records[0].event_id == records[3].event_id
    assert len({r.event_id for r in records}) == 3
    assert len(setup.services.discovery.events()) == 3
    for device, record in zip(devices, records, strict=False):
        assert [e for e, _ in setup.downloader(device).discover(setup.transport)] == [
            record.event_id
        ]
    # Ordered again while released: the same packages, registered once.
    again = cohort(serials)
    assert [r.event_id for r in again] == [r.event_id for r in records[:3]]
    assert len(setup.services.discovery.events()) == 3
