"""ECs/s and ATs/s per core through the V2X PKI, beside the raw primitive rates of the same run.

Per curve family (NIST P-256/P-384 and brainpoolP256r1/P384r1), on one core (one process, one
thread, in-memory SQLite per authority):

* ``EC end to end``: the station builds the EnrolmentRequest (encode, POP and outer signature,
  ECIES + CCM), the EA opens, verifies and issues, the station opens and validates the response
  and the EC;
* ``AT end to end``: the same for one AT: station request (EC signature encrypted to the EA, POP,
  encryption to the AA), AA, AA->EA validation, EA, AA issuance, station validation;
* ``EC server`` / ``AT server``: only the authorities' share (requests prepared beforehand): the
  capacity of one core of EA (+ AA).

Then the raw rates (pyca, same run) of ECDSA sign and verify, ECDH and key generation on each
curve, and for the server rows the *primitive-bound limit*: the rate at which one core could go if
it did nothing but the public-key operations the flow needs. Those operations are counted while
the flow runs (counting wrappers on the authorities' keys and on the 1609.2 verify and ECIES wrap
entry points), not assumed; the ratio measured / limit is the share of time spent in them.

Run: ``.venv/bin/python benchmarks/v2x.py [seconds-per-row]``.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

import fleetid.formats.etsi102941 as etsi
import fleetid.formats.ieee1609.certificate as certificate_module
import fleetid.formats.ieee1609.signed_data as signed_data_module
from fleetid.authority.v2x import FAMILIES, CurveFamily
from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hierarchy import V2xHierarchy, build_hierarchy
from fleetid.clock import ManualClock
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.crypto.v2xkeys import CURVES, curve_name_of, generate_key
from fleetid.device.v2x import ItsStation, SoftwareV2xKeys

OPS: Counter[tuple[str, str]] = Counter()  # (operation, curve) -> count


def rate(operation: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(5):
            operation()
        count += 5
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


# ------------------------------------------------------------------ counting the primitives


class CountingSigner:
    def __init__(self, inner: Signer) -> None:
        self._inner = inner
        self._curve = curve_name_of(inner.public_key())

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._inner.public_key()

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._inner.hash_algorithm

    def sign(self, data: bytes) -> bytes:
        OPS["sign", self._curve] += 1
        return self._inner.sign(data)


class CountingEcdh:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._curve = curve_name_of(inner)

    @property
    def curve(self) -> ec.EllipticCurve:
        curve: ec.EllipticCurve = self._inner.curve
        return curve

    def exchange(self, algorithm: ec.ECDH, peer: ec.EllipticCurvePublicKey) -> bytes:
        OPS["ecdh", self._curve] += 1
        secret: bytes = self._inner.exchange(algorithm, peer)
        return secret


def _install_counters() -> None:
    for module in (certificate_module, signed_data_module):
        original = module.verify_1609

        def counted(key: Any, *args: Any, _original: Any = original) -> None:
            OPS["verify", curve_name_of(key)] += 1
            _original(key, *args)

        module.verify_1609 = counted  # type: ignore[assignment]
    original_wrap = etsi.ecies_wrap

    def counted_wrap(key: bytes, recipient: Any, p1: bytes, **kw: Any) -> Any:
        OPS["keygen", curve_name_of(recipient)] += 1
        OPS["ecdh", curve_name_of(recipient)] += 1
        return original_wrap(key, recipient, p1, **kw)

    etsi.ecies_wrap = counted_wrap  # type: ignore[assignment]


def _counting(authority: Any) -> None:
    keys: AuthorityKeys = authority._keys
    authority._keys = AuthorityKeys(
        signer=CountingSigner(keys.signer),
        decryption_key=CountingEcdh(keys.decryption_key),
        certificate=keys.certificate,
    )


# ------------------------------------------------------------------ the flows


def _engine() -> Any:
    return create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )


class Bench:
    def __init__(self, family: CurveFamily) -> None:
        self.family = family
        self.clock = ManualClock()
        self.pki: V2xHierarchy = build_hierarchy(
            family=family, clock=self.clock, ea_engine=_engine(), aa_engine=_engine()
        )
        _counting(self.pki.ea)
        _counting(self.pki.aa)
        self.trust = self.pki.trust_store()
        self.serial = 0

    def station(self) -> ItsStation:
        self.serial += 1
        canonical = SoftwareSigner(generate_key(self.family.end_entity))
        its_id = b"BENCH-%08d" % self.serial
        self.pki.ea.register_canonical_key(its_id, canonical.public_key())
        return ItsStation(
            its_id=its_id,
            canonical_key=canonical,
            keys=SoftwareV2xKeys(),
            family=self.family,
            trust=self.trust,
            clock=self.clock,
        )

    def ec_end_to_end(self) -> None:
        self.station().enrol(self.pki.ea.handle_enrolment)

    def at_end_to_end(self, station: ItsStation) -> None:
        station.request_tickets(1, self.pki.aa.handle_authorization)


def server_rate(
    prepare: Callable[[], bytes], handle: Callable[[bytes], bytes], seconds: float
) -> tuple[float, Counter[tuple[str, str]], int]:
    """Requests prepared first (untimed), then handled; returns (rate, ops, requests)."""
    requests = [prepare()]
    start = time.perf_counter()
    handle(requests[0])
    single = time.perf_counter() - start
    count = max(20, int(seconds / max(single, 1e-4)))
    requests = [prepare() for _ in range(count)]
    OPS.clear()
    start = time.perf_counter()
    for request in requests:
        handle(request)
    elapsed = time.perf_counter() - start
    return count / elapsed, Counter(OPS), count


def _curve_rates(
    name: str, curve: ec.EllipticCurve, seconds: float
) -> dict[tuple[str, str], float]:
    key = ec.generate_private_key(curve)
    peer = ec.generate_private_key(curve).public_key()
    algorithm = ec.ECDSA(Prehashed(hashes.SHA384() if curve.key_size == 384 else hashes.SHA256()))
    digest = b"\x01" * (48 if curve.key_size == 384 else 32)
    signature = key.sign(digest, algorithm)
    public = key.public_key()
    return {
        ("sign", name): rate(lambda: key.sign(digest, algorithm), seconds),
        ("verify", name): rate(lambda: public.verify(signature, digest, algorithm), seconds),
        ("ecdh", name): rate(lambda: key.exchange(ec.ECDH(), peer), seconds),
        ("keygen", name): rate(lambda: ec.generate_private_key(curve), seconds),
    }


def primitive_rates(seconds: float) -> dict[tuple[str, str], float]:
    rates: dict[tuple[str, str], float] = {}
    for name, curve in CURVES.items():
        rates.update(_curve_rates(name, curve, seconds))
    return rates


def limit(
    ops: Counter[tuple[str, str]], requests: int, rates: dict[tuple[str, str], float]
) -> float:
    seconds_per_request = sum(n / requests / rates[op] for op, n in ops.items())
    return 1 / seconds_per_request


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    _install_counters()
    print(f"V2X PKI throughput on one core ({seconds:.1f} s per row)\n")
    rates = primitive_rates(seconds / 2)
    print("raw primitives (pyca, this run), operations/s:")
    print(f"  {'curve':<16}{'ECDSA sign':>12}{'verify':>12}{'ECDH':>12}{'keygen':>12}")
    for name in CURVES:
        print(
            f"  {name:<16}{rates['sign', name]:>12,.0f}{rates['verify', name]:>12,.0f}"
            f"{rates['ecdh', name]:>12,.0f}{rates['keygen', name]:>12,.0f}"
        )
    print()
    for family_name in ("nist", "brainpool"):
        _family_rows(FAMILIES[family_name], rates, seconds)


def _family_rows(family: CurveFamily, rates: dict[tuple[str, str], float], seconds: float) -> None:
    bench = Bench(family)
    ec_e2e = rate(bench.ec_end_to_end, seconds)
    enrolled = bench.station()
    enrolled.enrol(bench.pki.ea.handle_enrolment)
    at_e2e = rate(lambda: bench.at_end_to_end(enrolled), seconds)

    def prepare_ec() -> bytes:
        return bench.station().enrolment_request().encoded

    def prepare_at() -> bytes:
        return enrolled.authorization_request().encoded

    ec_server, ec_ops, ec_n = server_rate(prepare_ec, bench.pki.ea.handle_enrolment, seconds)
    at_server, at_ops, at_n = server_rate(prepare_at, bench.pki.aa.handle_authorization, seconds)
    ec_limit, at_limit = limit(ec_ops, ec_n, rates), limit(at_ops, at_n, rates)
    print(f"{family.name} family ({family.end_entity} end entities, {family.ca} CAs):")
    print(f"  EC end to end (station + EA)        {ec_e2e:>8,.1f} ECs/s")
    print(f"  AT end to end (station + AA + EA)   {at_e2e:>8,.1f} ATs/s")
    for label, measured, bound, ops, n in (
        ("EC server (EA)", ec_server, ec_limit, ec_ops, ec_n),
        ("AT server (AA + EA)", at_server, at_limit, at_ops, at_n),
    ):
        per = ", ".join(
            f"{op} {curve} x{count / n:g}" for (op, curve), count in sorted(ops.items())
        )
        print(
            f"  {label:<36}{measured:>8,.1f} /s; primitive-bound limit {bound:,.1f} /s; "
            f"ratio {measured / bound:.2f}"
        )
        print(f"    public-key operations per request: {per}")
    print()


if __name__ == "__main__":
    main()
