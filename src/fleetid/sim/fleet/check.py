"""The end-of-run check: every device's view of revocation, rebuilt from what it
fetched, must reject every revoked peer its profile has had the chance to learn of.

Devices that synchronised on the same day hold the same view, so the check builds one real
``PeerVerifier`` per view (not per device): always-on devices ask the OCSP responder now;
an intermittent device holds the CRLs (full and delta, every shard) current at its last contact;
an offline device holds the filter of the last push it took. Each view is checked at the moment
its newest artefact was published, against every peer revoked on or before its last sync day. A
peer it accepts is a failure, weighted by the devices that hold the view. Silent devices are not
checked: they have had no chance since they fell silent.

A channel broken on purpose (``FleetOptions.broken_channel``) stops publishing after day 0 while
its devices go on syncing: their views hold day 0's artefacts, read as fresh, and the check must
find the revoked peers they accept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from cryptography import x509

from fleetid.clock import ManualClock
from fleetid.device.truststore import TrustStore
from fleetid.device.verifier import PeerVerifier, fetch_staple
from fleetid.errors import FleetIdError, VerificationError
from fleetid.policy.connectivity import ConnectivityProfile, policy_for
from fleetid.revocation.channels import FilterReceiver
from fleetid.sim.demo_revocation import CountingClient
from fleetid.sim.fleet.devices import LIVE, SYNC_HOUR, DeviceWorld, time_of
from fleetid.store.fleet_sim_repository import FleetSimStore

__all__ = ["ConvergenceResult", "check_convergence"]

_PEER_BATCH: Final = 1024


@dataclass
class ConvergenceResult:
    """Per profile: views and devices checked, devices holding a view that accepted a revoked
    peer, and the checks made."""

    views: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    failing_devices: dict[str, int] = field(default_factory=dict)
    checks: int = 0
    revoked_peers: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # why views rejected, by error class

    @property
    def converged(self) -> bool:
        return not any(self.failing_devices.values())


def _revoked_peers(store: FleetSimStore) -> list[tuple[int, x509.Certificate]]:
    peers: list[tuple[int, x509.Certificate]] = []
    after = -1
    while batch := store.revoked(after=after, limit=_PEER_BATCH):
        for row in batch:
            if row.certificate is not None and row.revoked_day is not None:
                peers.append((row.revoked_day, x509.load_der_x509_certificate(row.certificate)))
        after = batch[-1].idx
    return peers


def _rejection(verifier: PeerVerifier, peer: x509.Certificate) -> str | None:
    """The error class the view rejects ``peer`` with, or None when it accepts it."""
    try:
        verifier.verify(peer)
    except FleetIdError as refused:
        return type(refused).__name__
    return None


def _view(
    world: DeviceWorld,
    store: FleetSimStore,
    profile: ConnectivityProfile,
    day: int,
    issuers: Sequence[x509.Certificate],
) -> PeerVerifier:
    a = world.authorities["a"]
    if profile is ConnectivityProfile.ALWAYS_ON:
        link = CountingClient(a.app)

        def fetch(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
            return fetch_staple(link.client, leaf, issuer)

        return PeerVerifier(
            trust=_trust(world),
            policy=policy_for(profile),
            clock=ManualClock(world.clock.now()),
            issuers=issuers,
            ocsp_fetcher=fetch,
        )
    channel = "crl" if profile is ConnectivityProfile.INTERMITTENT else "filter"
    held = store.latest_artefacts(day, channel)
    newest = max((d for d, _ in held.values()), default=0)
    clock = ManualClock(time_of(world.start, newest, SYNC_HOUR))
    verifier = PeerVerifier(
        trust=_trust(world),
        policy=policy_for(profile),
        clock=clock,
        issuers=[i for i in issuers if i.not_valid_before_utc <= clock.now()],
    )
    if channel == "crl":
        # Full CRLs before deltas: a delta is read over the full it names. The root's CRL of
        # CA certificates is no device's concern; a CRL the view cannot read only makes it
        # accept more, which the check then counts.
        for url in sorted(held, key=lambda u: (not u.endswith("full"), u)):
            with contextlib.suppress(VerificationError):
                verifier.load_crl(held[url][1])
    else:
        receiver = FilterReceiver(verifier)
        full_day, full = held.get("full", (-1, b""))
        delta_day, delta = held.get("delta", (-1, b""))
        if full:
            receiver.receive(full)
        if delta and delta_day > full_day:
            receiver.receive(delta)
    return verifier


def _trust(world: DeviceWorld) -> TrustStore:
    return TrustStore([world.authorities["a"].root])


def check_convergence(
    world: DeviceWorld, store: FleetSimStore, issuers: Sequence[x509.Certificate], end: datetime
) -> ConvergenceResult:
    world.clock.set(end)
    result = ConvergenceResult()
    peers = _revoked_peers(store)
    result.revoked_peers = len(peers)
    for profile_name, day, devices in store.sync_views(LIVE):
        profile = ConnectivityProfile(profile_name)
        result.views[profile_name] = result.views.get(profile_name, 0) + 1
        result.devices[profile_name] = result.devices.get(profile_name, 0) + devices
        result.failing_devices.setdefault(profile_name, 0)
        due = [p for d, p in peers if profile is ConnectivityProfile.ALWAYS_ON or d <= day]
        if not due:
            continue
        verifier = _view(world, store, profile, day, issuers)
        accepted = 0
        for peer in due:
            result.checks += 1
            reason = _rejection(verifier, peer)
            if reason is None:
                accepted += 1
            else:
                result.reasons[reason] = result.reasons.get(reason, 0) + 1
        if accepted:
            result.failing_devices[profile_name] += devices
    return result
