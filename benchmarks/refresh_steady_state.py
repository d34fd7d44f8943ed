"""CRL and filter sizes at steady state under the refresh cadence: the old credential of each
routine refresh revoked as superseded (the old behaviour) against left to expire (now).

A fleet of N devices on the operational cadence (``DEFAULT_POLICY``: 30-day credentials renewed
10 days before expiry, so every 20 days) is laid out at steady state: each device at a uniform
phase of its refresh period holds its current credential and, for the first 10 days after a
refresh, its unexpired predecessor. A background fraction of the devices (``--compromised``) has
its current credential revoked as keyCompromise under both policies. Two authorities (real fleet
CA, software HSM, SQLite) are loaded in the same run, one per policy; each publishes every
shard's full CRL and a full filter from the registry, and the sizes are printed.

Run: ``.venv/bin/python benchmarks/refresh_steady_state.py [--devices 100000]
[--compromised 0.001]``.
"""

from __future__ import annotations

import argparse
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from certificate_rows import load, naive

from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.policy import DEFAULT_POLICY, CredentialType
from fleetid.revocation.crl import CrlKind, publisher_for
from fleetid.revocation.publish import FilterPublisher


def _fleet(
    devices: int,
    compromised: float,
    now: datetime,
    *,
    issuer_id: int,
    revoke_on_refresh: bool,
    seed: int,
) -> Iterator[tuple[object, ...]]:
    cadence = DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence
    period = cadence.lifetime - cadence.renewal_window
    backdate = DEFAULT_POLICY.backdate
    rng = random.Random(seed)  # the same fleet for both policies
    sequence = 0
    for _ in range(devices):
        issued = now - timedelta(seconds=1) - period * rng.random()
        previous = issued - period
        credentials = [(issued, rng.random() < compromised)]
        if previous + cadence.lifetime > now:  # the predecessor has not expired yet
            credentials.append((previous, revoke_on_refresh))
        for at, revoked in credentials:
            sequence += revoked
            superseded = at is previous
            yield (
                f"{int.from_bytes(secrets.token_bytes(20), 'big') >> 1 | 1:040x}",
                issuer_id,
                "operational",
                "revoked" if revoked else "valid",
                "CN=d",
                secrets.token_bytes(32),
                naive(at - backdate),
                naive(at + cadence.lifetime),
                naive(at),
                naive(issued if superseded else now) if revoked else None,
                ("superseded" if superseded else "keyCompromise") if revoked else None,
                sequence if revoked else None,
                b"\x30\x00",
            )


def _measure(directory: Path, args: argparse.Namespace, *, revoke_on_refresh: bool) -> None:
    now = datetime(2027, 6, 1, tzinfo=UTC)
    clock = ManualClock(now - timedelta(days=60))
    settings = Settings.load(
        directory,
        environ={"FLEETID_PUBLIC_URL": "http://crl.example"},
    )
    ca = FleetCa.init(settings, clock=clock, name="Steady Fleet")
    clock.set(now)
    try:
        rows = list(
            _fleet(
                args.devices,
                args.compromised,
                now,
                issuer_id=ca.issuing.record.id,
                revoke_on_refresh=revoke_on_refresh,
                seed=args.seed,
            )
        )
        revoked = load(ca, rows)
        started = time.perf_counter()
        publications = publisher_for(ca).publish(force=True)
        full = sum(len(p.der) for p in publications if p.kind is CrlKind.FULL)
        filter_bytes = len(FilterPublisher.for_ca(ca).publish_full().data)
        label = "revoked on refresh (before)" if revoke_on_refresh else "left to expire (now)"
        print(
            f"  {label:28} {len(rows):>9,} unexpired certificates, {revoked:>8,} revoked; "
            f"full CRLs {full:>10,} B (16 shards); "
            f"filter {filter_bytes:>9,} B  [{time.perf_counter() - started:.1f} s]",
            flush=True,
        )
    finally:
        ca.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--compromised", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=5280)
    args = parser.parse_args()
    print(
        f"steady state, {args.devices:,} devices on the 30/10-day operational cadence, "
        f"{args.compromised:.1%} compromised:"
    )
    with tempfile.TemporaryDirectory(prefix="fleetid-bench-refresh-") as directory:
        for revoke_on_refresh in (True, False):
            sub = Path(directory) / ("before" if revoke_on_refresh else "now")
            _measure(sub, args, revoke_on_refresh=revoke_on_refresh)


if __name__ == "__main__":
    main()
