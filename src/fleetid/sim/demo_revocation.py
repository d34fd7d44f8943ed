"""Demo stage: one revocation system, three connectivity profiles.

A fleet authority (SQLite in a temporary directory, reached in process through its ASGI app)
issues a credential to every device; the devices are split into three profiles, and each checks
every other device's certificate with its ``PeerVerifier``:

* **always-on** devices ask the OCSP responder (``POST /ocsp``) for the peer's status, and staple
  their own (a revoked device's old "good" staple is refused once a newer answer was seen);
* **intermittent** devices hold the CRL shards of their peers and fetch what is missing (the
  delta, or the full shard) on contact (``fleetid.device.crl_client``);
* **offline** devices hold the signed filter, pushed to them in advance over a broadcast channel
  (``fleetid.revocation.channels.BroadcastChannel``); they check with no network.

Then a few devices are revoked, and the stage shows when each profile converges: always-on at
once, intermittent at their next contact, offline when the next filter push arrives, with the
bytes each profile transferred.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from rich.table import Table

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.revoke import revoke_serial
from fleetid.clock import ManualClock, SystemClock
from fleetid.config import Settings
from fleetid.crypto.keys import new_private_key
from fleetid.device.crl_client import CrlClient
from fleetid.device.truststore import TrustStore
from fleetid.device.verifier import PeerVerifier, fetch_staple
from fleetid.errors import CertificateRevokedError, ReplayError, VerificationError
from fleetid.policy import CredentialType
from fleetid.policy.connectivity import ConnectivityProfile, policy_for
from fleetid.revocation.channels import BroadcastChannel, FilterReceiver
from fleetid.revocation.crl import publisher_for
from fleetid.revocation.ocsp import OcspResponder
from fleetid.revocation.publish import FilterPublisher, filter_directory
from fleetid.sim.demo import DemoContext, drill, stage_directory

__all__ = ["CountingClient", "stage_revocation"]

_BASE_URL = "http://revocation.fleetid.invalid"


class CountingClient:
    """An httpx client over the app in this process that counts the bytes both ways."""

    def __init__(self, app: Any) -> None:
        asgi = httpx.ASGITransport(app=app)

        def handle(request: httpx.Request) -> httpx.Response:
            async def send() -> httpx.Response:
                async with httpx.AsyncClient(transport=asgi, base_url=_BASE_URL) as client:
                    response = await client.send(request)
                    await response.aread()
                    return response

            response = asyncio.run(send())
            self.bytes += len(request.content) + len(response.content)
            return httpx.Response(
                response.status_code, headers=response.headers, content=response.content
            )

        self.bytes = 0
        self.client = httpx.Client(base_url=_BASE_URL, transport=httpx.MockTransport(handle))

    def get(self, url: str) -> bytes:
        response = self.client.get(url)
        if response.status_code != 200:
            raise VerificationError(f"GET {url}: HTTP {response.status_code}")
        return response.content


@dataclass
class _Device:
    name: str
    profile: ConnectivityProfile
    certificate: x509.Certificate
    verifier: PeerVerifier
    link: CountingClient | None = None  # always-on, intermittent
    crl: CrlClient | None = None  # intermittent
    receiver: FilterReceiver | None = None  # offline
    staple: bytes | None = None  # always-on: its own OCSP status

    @property
    def bytes(self) -> int:
        if self.receiver is not None:
            return self.receiver.bytes_received
        return self.link.bytes if self.link else 0


@dataclass
class _Fleet:
    ca: FleetCa
    clock: ManualClock
    app: Any
    devices: list[_Device] = field(default_factory=list)
    broadcast: BroadcastChannel = field(default_factory=BroadcastChannel)


def stage_revocation(ctx: DemoContext) -> None:
    clock = ManualClock(SystemClock().now())
    with stage_directory("revocation") as root_dir:
        _run(ctx, clock, root_dir)
    ctx.console.print()


def _issue(ca: FleetCa, count: int) -> list[x509.Certificate]:
    with ca.store.transaction() as tx:
        return [
            ca.issue(
                tx,
                public_key=new_private_key().public_key(),
                credential_type=CredentialType.OPERATIONAL,
                common_name=f"device-{index}",
                device_id=None,
            )[0]
            for index in range(count)
        ]


def _make_device(
    fleet: _Fleet, name: str, profile: ConnectivityProfile, cert: x509.Certificate
) -> _Device:
    issuing = fleet.ca.issuing.certificate
    trust = TrustStore([fleet.ca.root])
    if profile is ConnectivityProfile.ALWAYS_ON:
        link = CountingClient(fleet.app)
        verifier = PeerVerifier(
            trust=trust,
            policy=policy_for(profile),
            clock=fleet.clock,
            issuers=[issuing],
            ocsp_fetcher=lambda leaf, issuer: fetch_staple(link.client, leaf, issuer),
        )
        return _Device(name, profile, cert, verifier, link=link)
    verifier = PeerVerifier(
        trust=trust, policy=policy_for(profile), clock=fleet.clock, issuers=[issuing]
    )
    if profile is ConnectivityProfile.INTERMITTENT:
        link = CountingClient(fleet.app)
        crl = CrlClient(issuing, fetch=link.get, max_age=timedelta(days=2))
        verifier.use_crl_client(issuing, crl)
        return _Device(name, profile, cert, verifier, link=link, crl=crl)
    receiver = FilterReceiver(verifier)
    fleet.broadcast.subscribe(receiver.receive)
    return _Device(name, profile, cert, verifier, receiver=receiver)


def _contact(fleet: _Fleet) -> None:
    """Intermittent devices come into range: each fetches what it lacks for its peers' shards."""
    for device in fleet.devices:
        if device.crl is not None:
            for peer in fleet.devices:
                device.crl.refresh(peer.certificate, fleet.clock.now())


def _rejects(device: _Device, peer: _Device) -> bool:
    try:
        device.verifier.verify(peer.certificate)
    except CertificateRevokedError:
        return True
    return False


def _converged(fleet: _Fleet, revoked: set[str], profile: ConnectivityProfile) -> str:
    """How many devices of ``profile`` reject exactly the revoked peers."""
    members = [d for d in fleet.devices if d.profile is profile]
    right = 0
    for device in members:
        peers = [p for p in fleet.devices if p is not device]
        if all(_rejects(device, p) == (p.name in revoked) for p in peers):
            right += 1
    return f"{right}/{len(members)}"


def _run(ctx: DemoContext, clock: ManualClock, root_dir: Path) -> None:
    console = ctx.console
    settings = Settings.load(root_dir, environ={"FLEETID_PUBLIC_URL": _BASE_URL})
    ca = FleetCa.init(settings, clock=clock, name="Fleet R")
    fleet = _Fleet(ca=ca, clock=clock, app=create_app(settings, clock=clock, ca=ca))
    per_profile = max(3, ctx.devices // 3)
    profiles = list(ConnectivityProfile)
    certificates = _issue(ca, per_profile * len(profiles))
    clock.advance(timedelta(minutes=10))  # the filter covers issuance up to now − backdate

    filters = FilterPublisher.for_ca(ca, directory=filter_directory(settings.data_dir))
    crls = publisher_for(ca)
    crls.publish(force=True)
    fleet.broadcast.publish(filters.publish_full().data)  # before any device subscribes: retained
    for index, certificate in enumerate(certificates):
        profile = profiles[index % len(profiles)]
        fleet.devices.append(
            _make_device(fleet, f"{profile.value}-{index // len(profiles)}", profile, certificate)
        )
    for device in fleet.devices:
        if device.profile is ConnectivityProfile.ALWAYS_ON:
            assert device.link is not None  # noqa: S101 - always-on devices have a link
            device.staple = fetch_staple(
                device.link.client, device.certificate, ca.issuing.certificate
            )
    _contact(fleet)
    console.print(
        f"  {len(fleet.devices)} devices, {per_profile} per profile; each checks every peer"
    )

    rows: list[tuple[str, dict[ConnectivityProfile, str]]] = []
    no_one: set[str] = set()
    rows.append(("before revocation", {p: _converged(fleet, no_one, p) for p in profiles}))

    clock.advance(timedelta(minutes=5))
    # Revoke one device of each profile (keyCompromise).
    victims = [next(d for d in fleet.devices if d.profile is p) for p in profiles]
    for victim in victims:
        revoke_serial(
            ca.store, f"{victim.certificate.serial_number:x}", "keyCompromise", clock=clock
        )
    revoked = {v.name for v in victims}
    responder: OcspResponder = fleet.app.state.ocsp_responder
    responder.sync()  # the responder's registry poll (every 0.5 s in `fleetid serve`)
    clock.advance(timedelta(minutes=1))
    rows.append(("right after revocation", {p: _converged(fleet, revoked, p) for p in profiles}))

    # Stapling: the revoked always-on device's old "good" staple after a newer answer was seen.
    staple_victim = victims[0]
    checker = next(
        d for d in fleet.devices if d.profile is ConnectivityProfile.ALWAYS_ON and d not in victims
    )
    assert staple_victim.staple is not None  # noqa: S101 - fetched above
    try:
        checker.verifier.assess(staple_victim.certificate, ocsp_response=staple_victim.staple)
        replay = "accepted (!)"
    except ReplayError:
        replay = "refused as a replay"

    crls.publish()  # a delta for the shards that moved
    clock.advance(timedelta(hours=1))
    _contact(fleet)
    rows.append(
        ("intermittent: next contact", {p: _converged(fleet, revoked, p) for p in profiles})
    )

    clock.advance(timedelta(minutes=10))
    push = filters.publish()
    fleet.broadcast.publish(push.data)
    rows.append(
        ("offline: filter push arrives", {p: _converged(fleet, revoked, p) for p in profiles})
    )

    table = Table(
        title=drill("one device per profile revoked; devices that reject exactly those peers"),
        expand=False,
    )
    table.add_column("moment")
    for profile in profiles:
        table.add_column(profile.value, justify="right")
    for moment, values in rows:
        table.add_row(moment, *(values[p] for p in profiles))
    traffic = {p: sum(d.bytes for d in fleet.devices if d.profile is p) for p in profiles}
    table.add_row(
        "bytes transferred (all devices)", *(f"{traffic[p]:,}" for p in profiles), style="bold"
    )
    console.print(table)
    console.print(
        f"  {drill('revoked (keyCompromise)')}: {', '.join(sorted(revoked))}; "
        f"filter push: {push.kind.name.lower()} at watermark {push.watermark}, "
        f"{len(push.data)} bytes; "
        f"{drill('a revoked device replays its old OCSP staple')}: {replay}"
    )
    for profile in profiles:
        ctx.record(f"revocation: {profile.value} devices converged", rows[-1][1][profile])
        ctx.record(f"revocation: {profile.value} bytes transferred", f"{traffic[profile]:,}")
    ctx.record(drill("revocation: old OCSP staple of a revoked device"), replay)
    for key, values in (("right after revocation", rows[1][1]), ("after next contact", rows[2][1])):
        ctx.record(
            f"revocation: converged {key} (always-on / intermittent / offline)",
            " / ".join(values[p] for p in profiles),
        )
    ca.close()
