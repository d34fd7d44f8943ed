"""How fast revocation contains a compromised device, on each connectivity profile.

One relying party per profile (``fleetid.policy.connectivity``) checks the compromised device's
certificate with its ``PeerVerifier``, through the fleet's real channels: the OCSP responder
(always-on), the sharded CRLs fetched on contact (intermittent), the signed filter pushed over
the broadcast channel (offline). The device is revoked (keyCompromise) and the simulated clock
runs in ``STEP`` steps, each step doing what the fleet's schedule does: the responder polls the
registry, the CRL publisher publishes what is due on the hour (a delta every hour),
intermittent parties make contact every ``CONTACT_EVERY`` and the filter is pushed every
``PUSH_EVERY``. The figure per profile is the simulated time from the revocation to the first
refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
from cryptography import x509

from fleetid.authority.revoke import revoke_device
from fleetid.device.crl_client import CrlClient
from fleetid.device.transport import in_process_client
from fleetid.device.truststore import TrustStore
from fleetid.device.verifier import PeerVerifier, fetch_staple
from fleetid.errors import CertificateRevokedError
from fleetid.policy.connectivity import ConnectivityProfile, policy_for
from fleetid.revocation.channels import BroadcastChannel, FilterReceiver
from fleetid.revocation.crl import publisher_for
from fleetid.revocation.ocsp import OcspResponder
from fleetid.revocation.publish import FilterPublisher, filter_directory
from fleetid.sim.threats.target_fleet import TargetFleet

__all__ = ["CONTACT_EVERY", "PUSH_EVERY", "STEP", "containment_times"]

STEP = timedelta(minutes=15)
CONTACT_EVERY = timedelta(hours=1)  # inside a delta CRL's 2 h validity
PUSH_EVERY = timedelta(hours=12)
_HORIZON = timedelta(days=3)


def containment_times(
    target: TargetFleet, certificate: x509.Certificate, device_id: str
) -> dict[ConnectivityProfile, timedelta | None]:
    """Revoke ``device_id`` now (every certificate it holds); the simulated time until each
    profile refuses ``certificate``, its current one."""
    http = in_process_client(target.app, target.ca.settings.base_url)
    try:
        return _measure(target, certificate, device_id, http)
    finally:
        http.close()


def _measure(
    target: TargetFleet, certificate: x509.Certificate, device_id: str, http: httpx.Client
) -> dict[ConnectivityProfile, timedelta | None]:
    ca, clock = target.ca, target.clock
    issuing = ca.issuing.certificate

    def get(url: str) -> bytes:
        return http.get(url).raise_for_status().content

    def party(profile: ConnectivityProfile, **kwargs: object) -> PeerVerifier:
        return PeerVerifier(
            trust=TrustStore([ca.root]),
            policy=policy_for(profile),
            clock=clock,
            issuers=[issuing],
            **kwargs,  # type: ignore[arg-type]
        )

    always_on = party(
        ConnectivityProfile.ALWAYS_ON,
        ocsp_fetcher=lambda leaf, issuer: fetch_staple(http, leaf, issuer),
    )
    intermittent = party(ConnectivityProfile.INTERMITTENT)
    crl_client = CrlClient(issuing, fetch=get, max_age=timedelta(days=2))
    intermittent.use_crl_client(issuing, crl_client)
    offline = party(ConnectivityProfile.OFFLINE)
    channel = BroadcastChannel()
    channel.subscribe(FilterReceiver(offline).receive)

    clock.advance(timedelta(minutes=10))  # the filter covers issuance up to now - backdate
    crls = publisher_for(ca)
    crls.publish(force=True)
    filters = FilterPublisher.for_ca(ca, directory=filter_directory(ca.settings.data_dir))
    channel.publish(filters.publish_full().data)
    crl_client.refresh(certificate, clock.now())
    responder: OcspResponder = target.app.state.ocsp_responder
    responder.sync()
    parties: dict[ConnectivityProfile, Callable[[], object]] = {
        ConnectivityProfile.ALWAYS_ON: lambda: always_on.verify(certificate),
        ConnectivityProfile.INTERMITTENT: lambda: intermittent.verify(certificate),
        ConnectivityProfile.OFFLINE: lambda: offline.verify(certificate),
    }
    for check in parties.values():
        check()  # every party accepts the device before it is revoked (raises otherwise)

    revoked_at = clock.now()
    revoke_device(ca.store, device_id, "keyCompromise", clock=clock)
    contained: dict[ConnectivityProfile, timedelta | None] = dict.fromkeys(parties)
    elapsed = timedelta(0)
    while elapsed <= _HORIZON and any(v is None for v in contained.values()):
        responder.sync()  # `fleetid serve` polls the registry every 0.5 s
        if elapsed % crls.policy.delta_interval == timedelta(0):
            crls.publish()  # the publisher's schedule: what is due at the hour
        if elapsed and elapsed % CONTACT_EVERY == timedelta(0):
            crl_client.refresh(certificate, clock.now())
        if elapsed and elapsed % PUSH_EVERY == timedelta(0):
            channel.publish(filters.publish().data)
        for profile, check in parties.items():
            if contained[profile] is not None:
                continue
            try:
                check()
            except CertificateRevokedError:
                contained[profile] = clock.now() - revoked_at
        clock.advance(STEP)
        elapsed += STEP
    return contained
