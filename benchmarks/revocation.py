"""Revocation at fleet scale, the three channels from one registry: OCSP, CRLs and the filter.

For each population N (default 1 M and 10 M) a real fleet CA (software HSM, SQLite) gets N
certificate rows bulk-loaded under its issuing CA, r·N of them revoked (registry watermark
r·N), then:

* **OCSP** (``fleetid.revocation.ocsp``): pre-signing rate (signatures/s), responses/s served
  from pre-signed responses (``OcspResponder.respond``, the server's share of ``POST /ocsp``),
  responses/s with a nonce (signed per request), and the response size;
* **CRLs** (``fleetid.revocation.crl``, 16 shards): a forced full + delta publication, the full
  CRL size (all shards, and per shard), then a day of revocations (r·N/365) and the delta CRLs;
* **filter from the registry** (``fleetid.revocation.publish``): full filter build time
  end to end (registry stream + build + sign), size against log2 C(N, R) and bits per revoked
  entry, the cumulative delta after the same day of revocations, and the check latency of
  ``FilterVerifier.status`` next to a bare ECDSA P-256 verify measured in the same run;
* **filter alone** at 0.1 %, 1 % and 5 %: ``benchmarks/revocation_filter.py``'s run (reused, not
  duplicated), over random ids.

Run: ``.venv/bin/python benchmarks/revocation.py [--populations 1000000,10000000]
[--fraction 0.01] [--filter-fractions 0.001,0.01,0.05] [--ocsp 2000]``. 10 M takes minutes
and about 2 GB of disk in a temporary directory.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import revocation_filter
from certificate_rows import load, naive

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.revoke import revoke_serial
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.crypto.signer import SoftwareSigner
from fleetid.revocation.check.filter import FilterVerifier, Verdict
from fleetid.revocation.crl import CrlKind, publisher_for
from fleetid.revocation.filter.builder import information_bound_bits
from fleetid.revocation.filter.format import certificate_id, parse_filter
from fleetid.revocation.ocsp import responder_for
from fleetid.revocation.publish import FilterPublisher


def _rows(
    count: int, revoked: int, issuer_id: int, start: datetime
) -> Iterator[tuple[object, ...]]:
    for n in range(count):
        issued = start + timedelta(microseconds=n)
        is_revoked = n < revoked
        yield (
            f"{int.from_bytes(secrets.token_bytes(20), 'big') >> 1 | 1:040x}",
            issuer_id,
            "operational",
            "revoked" if is_revoked else "valid",
            "CN=d",
            secrets.token_bytes(32),
            naive(issued - timedelta(minutes=5)),
            naive(issued + timedelta(days=300)),
            naive(issued),
            naive(issued + timedelta(hours=1)) if is_revoked else None,
            "keyCompromise" if is_revoked else None,
            n + 1 if is_revoked else None,
            b"\x30\x00",
        )


def _load(ca: FleetCa, count: int, revoked: int, start: datetime) -> list[int]:
    """Bulk-load the rows; returns a sample of valid serials (for OCSP and later revocations)."""
    sample: list[int] = []

    def sampled(rows: Iterator[tuple[object, ...]]) -> Iterator[tuple[object, ...]]:
        for row in rows:
            if row[3] == "valid" and len(sample) < 20_000:
                sample.append(int(str(row[0]), 16))
            yield row

    load(ca, sampled(_rows(count, revoked, ca.issuing.record.id, start)))
    return sample


def _ocsp(ca: FleetCa, serials: list[int], requests: int) -> None:
    responder = responder_for(ca)
    issuer = ca.issuing.certificate
    picked = serials[:requests]
    start = time.perf_counter()
    done = responder.presign(limit=requests)
    presign_s = time.perf_counter() - start
    ders = [
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            _hash(issuer.subject.public_bytes()),
            _hash(_point(issuer)),
            serial,
            hashes.SHA256(),
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
        for serial in picked
    ]
    start = time.perf_counter()
    for der in ders:  # whatever presign did not cover is signed here and cached
        responder.respond(der)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    answers = [responder.respond(der) for der in ders]
    served_s = time.perf_counter() - start
    nonce_ders = [
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            _hash(issuer.subject.public_bytes()),
            _hash(_point(issuer)),
            serial,
            hashes.SHA256(),
        )
        .add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
        .build()
        .public_bytes(serialization.Encoding.DER)
        for serial in picked[: max(1, requests // 4)]
    ]
    start = time.perf_counter()
    for der in nonce_ders:
        responder.respond(der)
    nonce_s = time.perf_counter() - start
    size = len(answers[0].der)
    print(
        f"  OCSP: pre-signed {done:,} certificates ({responder.signatures:,} signatures incl. "
        f"SHA-1 CertIDs) at {done * 2 / presign_s:,.0f} sig/s; first pass "
        f"{len(ders) / first_s:,.0f} responses/s; served {len(ders) / served_s:,.0f} "
        f"responses/s from pre-signed; "
        f"{len(nonce_ders) / nonce_s:,.0f} responses/s with a nonce; {size} B per response",
        flush=True,
    )


def _hash(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _point(issuer: x509.Certificate) -> bytes:
    key = issuer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _crl_sizes(ca: FleetCa, kind: CrlKind) -> tuple[int, int]:
    crls = publisher_for(ca)
    total, largest = 0, 0
    for shard in range(crls.policy.shards):
        publication = crls.latest(ca.issuing.record.id, shard, kind)
        assert publication is not None
        total += len(publication.der)
        largest = max(largest, len(publication.der))
    return total, largest


def run(population: int, fraction: float, ocsp_requests: int, workdir: Path) -> None:
    revoked = round(population * fraction)
    daily = max(1, revoked // 365)
    print(f"N={population:,} r={fraction:.2%} R={revoked:,} (daily d={daily:,})", flush=True)
    start_time = datetime(2027, 1, 1, tzinfo=UTC)
    clock = ManualClock(start_time)
    settings = Settings.load(
        workdir / f"n{population}", environ={"FLEETID_PUBLIC_URL": "http://bench.invalid"}
    )
    ca = FleetCa.init(settings, clock=clock, name="Bench Fleet")
    began = time.perf_counter()
    valid_serials = _load(ca, population, revoked, start_time - timedelta(days=1))
    print(f"  loaded {population:,} rows in {time.perf_counter() - began:.1f} s", flush=True)
    clock.advance(timedelta(hours=1))

    _ocsp(ca, valid_serials, ocsp_requests)

    crls = publisher_for(ca)
    began = time.perf_counter()
    crls.publish(force=True)
    crl_s = time.perf_counter() - began
    full_total, full_max = _crl_sizes(ca, CrlKind.FULL)
    print(
        f"  CRL: full + delta for 16 shards in {crl_s:.1f} s; full CRLs {full_total:,} B in all "
        f"(largest shard {full_max:,} B, {full_total / max(1, revoked):.1f} B per entry)",
        flush=True,
    )

    publisher = FilterPublisher.for_ca(ca, rebase_after=10 * daily + 1)
    began = time.perf_counter()
    full = publisher.publish_full()
    filter_s = time.perf_counter() - began
    header = full.header
    bound = information_bound_bits(header.revoked_count + header.valid_count, revoked)
    ratio = header.body_bits / bound if bound else float("nan")
    print(
        f"  filter from the registry: {len(full.data):,} B (body/log2 C(N,R) {ratio:.3f}, "
        f"{8 * len(full.data) / max(1, revoked):.2f} bits per revoked entry incl. header) "
        f"built end to end in {filter_s:.1f} s",
        flush=True,
    )

    clock.advance(timedelta(days=1))
    for serial in valid_serials[ocsp_requests : ocsp_requests + daily]:
        revoke_serial(ca.store, f"{serial:x}", "keyCompromise", clock=clock)
    crls.publish()
    delta_total, delta_max = _crl_sizes(ca, CrlKind.DELTA)
    began = time.perf_counter()
    delta = publisher.publish_delta()
    delta_s = time.perf_counter() - began
    print(
        f"  a day later (d={daily:,}): delta CRLs {delta_total:,} B in all (largest shard "
        f"{delta_max:,} B); cumulative delta filter {len(delta.data):,} B built in {delta_s:.1f} s",
        flush=True,
    )

    verifier = FilterVerifier(ca.issuing.certificate.public_key())  # type: ignore[arg-type]
    verifier.load(full.data)
    verifier.load(delta.data)
    key_id = ca.issuing.record.subject_key_id
    checks = [certificate_id(key_id, s) for s in valid_serials[ocsp_requests + daily :]]
    issued = parse_filter(full.data).header.coverage_until - timedelta(hours=1)
    began = time.perf_counter()
    verdicts = [verifier.status(cid, issued) for cid in checks]
    check_us = (time.perf_counter() - began) / len(checks) * 1e6
    if any(v is not Verdict.VALID for v in verdicts):
        raise SystemExit("a valid certificate was not answered VALID")
    ecdsa_us = revocation_filter.ecdsa_verify_us(2_000)
    print(
        f"  check (full + delta): {check_us:.1f} µs per certificate over {len(checks):,}; "
        f"bare ECDSA P-256 verify {ecdsa_us:.1f} µs in the same run "
        f"({check_us / ecdsa_us:.2f}×)",
        flush=True,
    )
    ca.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", default="1000000,10000000", help="comma-separated N")
    parser.add_argument("--fraction", type=float, default=0.01, help="revoked fraction (store)")
    parser.add_argument(
        "--filter-fractions", default="0.001,0.01,0.05", help="fractions for the filter alone"
    )
    parser.add_argument("--ocsp", type=int, default=2_000, help="OCSP requests timed")
    parser.add_argument("--no-filter-only", action="store_true", help="skip the filter-only runs")
    args = parser.parse_args()
    populations = [int(n) for n in args.populations.split(",")]
    with tempfile.TemporaryDirectory(prefix="fleetid-bench-revocation-") as directory:
        for population in populations:
            run(population, args.fraction, args.ocsp, Path(directory))
    if not args.no_filter_only:
        print("filter alone (benchmarks/revocation_filter.py):", flush=True)
        signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
        for population in populations:
            for fraction in (float(f) for f in args.filter_fractions.split(",")):
                revocation_filter.run(population, fraction, 20_000, True, signer)


if __name__ == "__main__":
    main()
