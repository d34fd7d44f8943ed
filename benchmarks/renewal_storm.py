"""A renewal storm: 100,000 devices whose certificates expire in the same hour, renewed with and
without the authority's renewal windows (RFC 9773 renewal information), in one run.

1. **Service time, measured**: a real fleet CA (software HSM, SQLite) and its app in this
   process; ``--sample`` devices from the software line enrol by attestation, then each
   refreshes (``simplereenroll`` with its proof of possession, as ``DeviceAgent.refresh`` does).
   The time of the authority's side of each refresh (the ``simplereenroll`` call through the
   in-process HTTP transport) is measured, wall clock and process CPU; the median is the service
   time of one renewal on one core of this machine.
2. **Arrivals, simulated**: ``--devices`` certificates with ``not_after`` uniform over one hour,
   on the operational cadence (30-day credentials, renewed in the 10 days before expiry). Each
   device's agent looks every ``--tick`` (1 h, at a random phase) and renews at its first look
   inside its window: *without windows* the window is the cadence's, which opens 10 days before
   expiry for every device of the hour at once; *with windows* it is the one the authority
   serves (``fleetid.policy.renewal_window.suggested_window``, from each certificate's serial).
3. **Queueing, simulated**: the arrivals meet ``--cores`` servers, each taking the measured
   service time per renewal, first come first served. The waits (p50, p99, max), the longest
   queue, the peak arrival rate against the capacity and the time to drain are printed for
   both, side by side.

Run: ``.venv/bin/python benchmarks/renewal_storm.py [--devices 100000] [--cores 2]``.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from fleetid.authority.provisioners.attestation import import_manifest
from fleetid.clock import ManualClock, SystemClock
from fleetid.device.agent import DeviceAgent
from fleetid.device.transport import HttpTransport
from fleetid.device.truststore import TrustStore
from fleetid.formats.proof import CredentialProof
from fleetid.policy import DEFAULT_POLICY, CredentialType
from fleetid.policy.renewal_window import suggested_window
from fleetid.sim.demo_fleet import demo_authority
from fleetid.sim.software_line import SoftwareLine


class _Timed:
    """The authority's transport, timing each ``simple_reenroll`` (the authority's work)."""

    def __init__(self, inner: HttpTransport) -> None:
        self.inner = inner
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def simple_reenroll(
        self, csr_der: bytes, proof: CredentialProof | None = None
    ) -> x509.Certificate:
        wall, cpu = time.perf_counter(), time.process_time()
        certificate = self.inner.simple_reenroll(csr_der, proof)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        return certificate


def measure_service_time(sample: int) -> tuple[float, float]:
    """The median wall and CPU seconds of the authority's side of one refresh."""
    clock = ManualClock(SystemClock().now())
    line = SoftwareLine(clock=clock)
    devices = [line.make_device() for _ in range(sample)]
    with tempfile.TemporaryDirectory() as directory:
        authority = demo_authority(Path(directory), "Storm Fleet", clock, line.root)
        import_manifest(authority.ca.store, [d.manifest_record() for d in devices], clock.now())
        cadence = authority.ca.settings.policy.profile(CredentialType.OPERATIONAL).cadence
        trust = TrustStore([authority.ca.root])
        agents = [
            DeviceAgent(se=d.client(), clock=clock, cadence=cadence, trust=trust) for d in devices
        ]
        for agent in agents:
            agent.enrol(authority.transport)
        timed = _Timed(authority.transport)
        for agent in agents[:4]:  # warm-up: first use compiles SQL and ASN.1
            agent.refresh(timed)  # type: ignore[arg-type]
        timed.wall.clear()
        timed.cpu.clear()
        for agent in agents[4:]:
            agent.refresh(timed)  # type: ignore[arg-type]
        authority.transport.close()
        authority.ca.close()
    return statistics.median(timed.wall), statistics.median(timed.cpu)


@dataclass(frozen=True)
class Queueing:
    peak_per_minute: int
    p50_wait: float
    p99_wait: float
    max_wait: float
    max_queue: int
    span_hours: float
    drained_hours: float


def arrivals(
    devices: int, tick: timedelta, *, windows: bool, aligned: bool, seed: int
) -> list[float]:
    """Seconds from the first renewal window's opening, one per device, sorted. A device looks
    every ``tick`` at a random phase, or (``aligned``) all on the same clock, at the top of each
    tick (a timer on the hour, devices woken by one broadcast)."""
    rng = random.Random(seed)
    cadence = DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence
    hour = datetime(2027, 1, 1, tzinfo=UTC)
    origin = cadence.renew_from(hour)
    out = []
    for _ in range(devices):
        not_after = hour + timedelta(seconds=rng.uniform(0, 3600))
        serial = rng.getrandbits(159) | 1
        if windows:
            start = suggested_window(cadence, not_after, serial).start
        else:
            start = cadence.renew_from(not_after)
        seconds, period = (start - origin).total_seconds(), tick.total_seconds()
        if aligned:
            out.append(-(-seconds // period) * period)  # the next top of a tick
        else:
            out.append(seconds + rng.uniform(0, period))
    return sorted(out)


def queue(times: list[float], service: float, cores: int) -> Queueing:
    """First come first served on ``cores`` servers of ``service`` seconds each."""
    free = [times[0]] * cores
    waits = []
    finishes: list[float] = []
    max_queue = 0
    for at in times:
        start = max(at, heapq.heappop(free))
        heapq.heappush(free, start + service)
        waits.append(start - at)
        # Renewals that arrived and are still waiting or in service when this one arrives.
        while finishes and finishes[0] <= at:
            heapq.heappop(finishes)
        heapq.heappush(finishes, start + service)
        max_queue = max(max_queue, len(finishes))
    per_minute: dict[int, int] = {}
    for at in times:
        per_minute[int(at // 60)] = per_minute.get(int(at // 60), 0) + 1
    waits.sort()
    return Queueing(
        peak_per_minute=max(per_minute.values()),
        p50_wait=waits[len(waits) // 2],
        p99_wait=waits[int(len(waits) * 0.99)],
        max_wait=waits[-1],
        max_queue=max_queue,
        span_hours=(times[-1] - times[0]) / 3600,
        drained_hours=(max(free) - times[0]) / 3600,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--sample", type=int, default=40, help="refreshes measured")
    parser.add_argument("--tick", type=float, default=3600, help="agent look interval, s")
    parser.add_argument("--seed", type=int, default=9773)
    parser.add_argument(
        "--service-ms",
        type=float,
        help="a service time per renewal and core measured elsewhere (e.g. over HTTPS by"
        " benchmarks/load_mixed.py) instead of the in-process one",
    )
    args = parser.parse_args()
    wall, cpu = measure_service_time(args.sample)
    load = os.getloadavg()
    print(f"service time of one renewal (median of {args.sample - 4}): wall {wall * 1000:.1f} ms,")
    print(f"  CPU {cpu * 1000:.1f} ms; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    service = cpu  # CPU time: steadier than wall time on a machine others load
    if args.service_ms:
        service = args.service_ms / 1000
        print(f"service time taken as {args.service_ms:.1f} ms per renewal and core (--service-ms)")
    capacity = args.cores / service
    print(f"capacity on {args.cores} cores: {capacity:.0f} renewals/s ({capacity * 60:.0f}/min)")
    tick = timedelta(seconds=args.tick)
    print(f"\n{args.devices} devices expiring within one hour; agents look every {tick}")
    header = f"{'':<30} {'peak/min':>9} {'p50 wait':>10} {'p99 wait':>10} {'max wait':>10}"
    print(header + f" {'max queue':>10} {'spread':>9} {'drained':>9}")
    for aligned in (False, True):
        for windows in (False, True):
            label = ("aligned looks, " if aligned else "random looks, ") + (
                "with windows" if windows else "without"
            )
            times = arrivals(args.devices, tick, windows=windows, aligned=aligned, seed=args.seed)
            result = queue(times, service, args.cores)
            print(
                f"{label:<30} {result.peak_per_minute:>9} {result.p50_wait:>9.1f}s "
                f"{result.p99_wait:>9.1f}s {result.max_wait:>9.1f}s {result.max_queue:>10} "
                f"{result.span_hours:>8.1f}h {result.drained_hours:>8.1f}h"
            )


if __name__ == "__main__":
    main()
