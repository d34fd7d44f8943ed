"""Offline revocation filter: size against log2 C(N, R), build time, and check latency.

For each population N and revoked fraction r it builds a signed full filter over N random
16-byte certificate ids with R = r·N revoked, then a daily delta (r·N/365 new revocations over the
same population), and prints:

* full and delta size in bytes, body bits against the information bound log2 C(N, R) (the ratio
  the filter's size goal is stated in), and bits per revoked entry;
* build time of each, and the peak resident memory of the process;
* ``FilterVerifier.load`` time (parse + ECDSA verify) and per-check latency of ``status`` on the
  device path, next to a bare ECDSA P-256 verify (pyca) measured in the same run.

Every sampled check is also compared with the truth, so a wrong verdict fails the run.

Run: ``.venv/bin/python benchmarks/revocation_filter.py [--populations 1000000,10000000]
[--fractions 0.001,0.01,0.05] [--checks 20000] [--no-delta]``. 10 M takes minutes.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import SoftwareSigner
from fleetid.revocation.check.filter import FilterVerifier, Verdict
from fleetid.revocation.filter.builder import build_delta, build_filter, information_bound_bits
from fleetid.revocation.filter.format import parse_filter

COVERAGE = datetime(2026, 3, 1, tzinfo=UTC)


def ecdsa_verify_us(rounds: int) -> float:
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    message = b"fleetid benchmark message"
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    start = time.perf_counter()
    for _ in range(rounds):
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    return (time.perf_counter() - start) / rounds * 1e6


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def describe(artefact: bytes, population: int, revoked: int) -> tuple[int, float, str]:
    header = parse_filter(artefact).header
    bound = information_bound_bits(population, revoked)
    ratio = f"{header.body_bits / bound:.3f}" if bound else "n/a"
    levels = " + ".join(f"k{level.value_bits}×{level.slots}" for level in header.levels)
    return header.body_bits, bound, f"{ratio} ({levels or 'empty'})"


def run(population: int, fraction: float, checks: int, delta: bool, signer: SoftwareSigner) -> None:
    rng = np.random.default_rng(population ^ int(fraction * 1e6))
    keys = rng.integers(0, 256, (population, 16), dtype=np.uint8)
    revoked = round(population * fraction)
    start = time.perf_counter()
    full = build_filter(
        keys[:revoked], keys[revoked:], watermark=1, coverage_until=COVERAGE, signer=signer
    )
    build_s = time.perf_counter() - start
    bits, bound, ratio = describe(full, population, revoked)
    per_revoked = 8 * len(full) / revoked if revoked else float("nan")
    print(
        f"N={population:>10,} r={fraction:6.2%} R={revoked:>9,}  full {len(full):>10,} B  "
        f"body {bits:>10,} bits  bound {bound:>12,.0f} bits  ratio {ratio}  "
        f"{per_revoked:6.2f} bits/revoked  build {build_s:7.2f} s",
        flush=True,
    )

    verifier = FilterVerifier(signer.public_key())
    start = time.perf_counter()
    verifier.load(full)
    load_ms = (time.perf_counter() - start) * 1e3

    daily = max(1, revoked // 365)
    if delta:
        newly = keys[revoked : revoked + daily]
        start = time.perf_counter()
        artefact = build_delta(
            newly,
            keys[revoked + daily :],
            base=full,
            watermark=1 + daily,
            coverage_until=COVERAGE + timedelta(days=1),
            signer=signer,
        )
        delta_s = time.perf_counter() - start
        remaining = population - revoked
        bits, bound, ratio = describe(artefact, remaining, daily)
        print(
            f"{'':>38}daily delta d={daily:>6,}  {len(artefact):>8,} B  body {bits:>8,} bits  "
            f"bound {bound:>10,.0f} bits  ratio {ratio}  build {delta_s:7.2f} s",
            flush=True,
        )
        verifier.load(artefact)
    else:
        daily = 0

    picks = rng.integers(0, population, checks)
    samples = [keys[i].tobytes() for i in picks]
    truth = [Verdict.REVOKED if i < revoked + daily else Verdict.VALID for i in picks.tolist()]
    start = time.perf_counter()
    verdicts = [verifier.status(key, COVERAGE) for key in samples]
    check_us = (time.perf_counter() - start) / checks * 1e6
    wrong = sum(v is not t for v, t in zip(verdicts, truth, strict=True))
    if wrong:
        raise SystemExit(f"{wrong} wrong verdicts out of {checks}")
    ecdsa_us = ecdsa_verify_us(max(200, checks // 10))
    print(
        f"{'':>38}load+verify {load_ms:6.2f} ms  check {check_us:6.2f} µs "
        f"({'full+delta' if delta else 'full'})  bare ECDSA P-256 verify {ecdsa_us:6.2f} µs  "
        f"peak RSS {peak_rss_mib():,.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", default="1000000", help="comma-separated N values")
    parser.add_argument("--fractions", default="0.001,0.01,0.05", help="revoked fractions")
    parser.add_argument("--checks", type=int, default=20_000, help="status() calls timed")
    parser.add_argument("--no-delta", action="store_true", help="skip the daily delta")
    args = parser.parse_args()
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    for population in (int(n) for n in args.populations.split(",")):
        for fraction in (float(f) for f in args.fractions.split(",")):
            run(population, fraction, args.checks, not args.no_delta, signer)


if __name__ == "__main__":
    main()
