"""Privacy of butterfly batches, measured: an adversary holding everything the RA and the
pseudonym CA keep (their records and logs) and all of one linkage authority (records and keys).

N vehicles each receive a week of k pseudonyms; the RA shuffles all N·k requests together
before the CA issues them. The adversary tries every linking strategy we know of:

* identifiers: any byte string the RA holds about a vehicle (itsId, its chain tokens, its
  caterpillar key, its expansion key) found in a certificate or in a CA record;
* cocoon keys: the RA recomputes every cocoon key B(i, j) of every vehicle and looks for it as a
  certificate's key;
* order: the CA's records in the order it wrote them, against the RA's vehicles in order;
* references: LA1 opens what it can of the CA's chain references (it can peel LA2's outer
  layer, never open its own) and looks for a vehicle's token;
* linkage values: LA1 knows each vehicle's chain (the RA's token opens with its key) and so
  plv1(i, j); it guesses the vehicle whose lv ⊕ plv1 looks least random;
* logs: an "issued"/"accepted" line attributed to the vehicle of the nearest line naming one.

Its accuracy at naming a pseudonym's vehicle must be that of chance (1/N) and at telling whether
two pseudonyms share a vehicle that of chance ((k−1)/(Nk−1)), within five standard deviations.
The control runs show the strategies can succeed: an RA that forwards requests in arrival
order is linked perfectly by order (why the RA must shuffle), and with the second LA's keys too
the references name every vehicle (the collusion revocation needs, docs/privacy.md).
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from tests.butterfly_fixtures import new_batch_pki

from fleetid.authority.v2x.la import LinkageAuthority
from fleetid.authority.v2x.ra import expand_item
from fleetid.crypto.butterfly import expand_public
from fleetid.crypto.linkage import pre_linkage_value
from fleetid.crypto.v2xkeys import compressed_point
from fleetid.errors import FleetIdError
from fleetid.formats.butterfly_messages import decode_message
from fleetid.formats.ieee1609 import decode_certificate
from fleetid.formats.ieee1609.keys import public_key_from_verification_key

_N, _K = 12, 20


class _NoShuffle(random.Random):
    def shuffle(self, x: list[object]) -> None:  # type: ignore[override]
        return None


@dataclass
class _World:
    truth: dict[bytes, int]  # certificate id -> vehicle index
    order: list[bytes]  # certificate ids as the CA recorded them
    certificates: dict[bytes, bytes]  # id -> COER
    ra_vehicles: list[dict[str, bytes]]  # what the RA holds per vehicle, in its order
    records: dict[bytes, tuple[bytes, bytes]]  # id -> the CA's two chain references
    la1: LinkageAuthority
    la2: LinkageAuthority  # not the adversary's: only the collusion control uses it
    logs: list[str]
    caterpillar_keys: list[tuple[str, object]]


def _world(*, shuffle: bool, caplog: pytest.LogCaptureFixture) -> _World:
    batch = new_batch_pki("nist", per_period=_K)
    a = batch.authorities
    if not shuffle:
        a.ra._rng = _NoShuffle()
    vehicles = [batch.vehicle(f"VIN-P{n:03d}".encode()) for n in range(_N)]
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    pendings = [batch.request(v) for v in vehicles]
    items = a.ra.take_pending()
    caterpillars = {item.batch_id: item.caterpillar for item in items}
    for item in items:
        response = a.ca.issue(expand_item(item, a.schedule), batch.pki.clock.now())
        a.ra.accept_response(bytes(response["requestId"]), bytes(response["acaResponse"]))
    truth: dict[bytes, int] = {}
    certificates: dict[bytes, bytes] = {}
    for index, (vehicle, pending) in enumerate(zip(vehicles, pendings, strict=True)):
        for p in vehicle.reconstruct(pending, a.ra.download(pending.batch_id)):
            truth[p.certificate.hashed_id8] = index
            certificates[p.certificate.hashed_id8] = p.certificate.encoded
    logs = [record.getMessage() for record in caplog.records]
    ra_devices = list(a.ra._devices.values())
    ra_vehicles, caterpillar_keys = [], []
    for device, pending in zip(ra_devices, pendings, strict=True):
        body = decode_message("EeRaCertRequest", caterpillars[pending.batch_id])
        key = body["tbsCert"]["verifyKeyIndicator"][1]
        caterpillar_keys.append(key)
        ra_vehicles.append(
            {
                "its_id": device.its_id,
                "token1": device.chains[0],
                "token2": device.chains[1],
                "caterpillar": bytes(key[1][1]),
                "expansion": bytes(body["additionalParams"][1][1]),
            }
        )
    records = {cid: r.chain_references for cid, r in a.ca.records.items()}
    return _World(
        truth=truth,
        order=list(a.ca.records),
        certificates=certificates,
        ra_vehicles=ra_vehicles,
        records=records,
        la1=a.la1,
        la2=a.la2,
        logs=logs,
        caterpillar_keys=caterpillar_keys,
    )


Strategy = Callable[[_World, random.Random], dict[bytes, int]]


def _by_identifiers(world: _World, rng: random.Random) -> dict[bytes, int]:
    guesses = {}
    for cid, certificate in world.certificates.items():
        stored = certificate + b"".join(world.records[cid])
        found = [
            n
            for n, v in enumerate(world.ra_vehicles)
            if any(value in stored for value in v.values())
        ]
        guesses[cid] = found[0] if found else rng.randrange(_N)
    return guesses


def _by_cocoon_keys(world: _World, rng: random.Random) -> dict[bytes, int]:
    cocoons: dict[bytes, int] = {}
    for n, v in enumerate(world.ra_vehicles):
        caterpillar = public_key_from_verification_key(world.caterpillar_keys[n])
        for j in range(_K):
            cocoons[compressed_point(expand_public(caterpillar, v["expansion"], 0, j))[1:]] = n
    guesses = {}
    for cid, certificate in world.certificates.items():
        found = [n for x, n in cocoons.items() if x in certificate]
        guesses[cid] = found[0] if found else rng.randrange(_N)
    return guesses


def _by_order(world: _World, rng: random.Random) -> dict[bytes, int]:
    return {cid: position // _K for position, cid in enumerate(world.order)}


def _by_references(world: _World, rng: random.Random) -> dict[bytes, int]:
    la1 = world.la1
    tokens = {v[name]: n for n, v in enumerate(world.ra_vehicles) for name in ("token1", "token2")}
    guesses = {}
    for cid, references in world.records.items():
        opened: list[bytes] = []
        for reference in references:
            for step in (la1.peel, lambda r: la1.reveal(r, 0)[1]):
                try:
                    opened.append(step(reference))
                except FleetIdError:
                    continue
        for inner in list(opened):
            try:
                opened.append(la1.reveal(inner, 0)[1])
            except FleetIdError:
                continue
        found = [tokens[value] for value in opened if value in tokens]
        guesses[cid] = found[0] if found else rng.randrange(_N)
    return guesses


def _by_linkage_values(world: _World, rng: random.Random) -> dict[bytes, int]:
    la1 = world.la1
    plv1 = {
        n: [pre_linkage_value(la1.reveal_seed(v["token1"], 0), la1.la_id, j) for j in range(_K)]
        for n, v in enumerate(world.ra_vehicles)
    }
    guesses = {}
    for cid, certificate in world.certificates.items():
        lv = int.from_bytes(bytes(decode_certificate(certificate).tbs["id"][1]["linkage-value"]))
        score = {
            n: min(bin(lv ^ int.from_bytes(p)).count("1") for p in plvs) for n, plvs in plv1.items()
        }
        best = min(score.values())
        guesses[cid] = rng.choice([n for n, s in score.items() if s == best])
    return guesses


def _by_logs(world: _World, rng: random.Random) -> dict[bytes, int]:
    guesses = {}
    for cid in world.certificates:
        named: int | None = None
        for line in world.logs:
            named = next(
                (n for n, v in enumerate(world.ra_vehicles) if v["its_id"].decode() in line), named
            )
            if cid.hex() in line and named is not None:
                break
        else:
            named = None
        guesses[cid] = named if named is not None else rng.randrange(_N)
    return guesses


_STRATEGIES: dict[str, Strategy] = {
    "identifiers": _by_identifiers,
    "cocoon keys": _by_cocoon_keys,
    "order": _by_order,
    "references": _by_references,
    "linkage values": _by_linkage_values,
    "logs": _by_logs,
}


def _accuracies(
    world: _World, guesses: dict[bytes, int], rng: random.Random
) -> tuple[float, float]:
    vehicle = sum(guesses[cid] == world.truth[cid] for cid in world.truth) / len(world.truth)
    by_guess: dict[int, list[bytes]] = {}
    for cid, n in guesses.items():
        by_guess.setdefault(n, []).append(cid)
    pairs = 0
    for cid in world.truth:
        others = [c for c in by_guess[guesses[cid]] if c != cid] or [
            c for c in world.truth if c != cid
        ]
        pairs += world.truth[rng.choice(others)] == world.truth[cid]
    return vehicle, pairs / len(world.truth)


def _bound(p: float, n: int) -> float:
    return p + 5 * math.sqrt(p * (1 - p) / n)


def test_one_la_with_the_ra_and_ca_records_links_no_better_than_chance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = _world(shuffle=True, caplog=caplog)
    rng = random.Random(1609)
    n = _N * _K
    results = {
        name: _accuracies(world, strategy(world, rng), rng)
        for name, strategy in _STRATEGIES.items()
    }
    for name, (vehicle, pair) in results.items():
        assert vehicle <= _bound(1 / _N, n), f"{name} names the vehicle: {vehicle:.3f}"
        assert pair <= _bound((_K - 1) / (n - 1), n), f"{name} pairs pseudonyms: {pair:.3f}"
    assert Counter(world.truth.values()) == {v: _K for v in range(_N)}


def test_control_an_ra_that_does_not_shuffle_is_linked_by_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = _world(shuffle=False, caplog=caplog)
    rng = random.Random(1609)
    vehicle, pair = _accuracies(world, _by_order(world, rng), rng)
    assert vehicle == 1.0 and pair == 1.0


def test_control_both_las_with_the_ra_and_ca_records_name_every_vehicle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The collusion revocation needs (docs/privacy.md) does link: the strategy can succeed."""
    world = _world(shuffle=True, caplog=caplog)
    tokens = {v["token1"]: n for n, v in enumerate(world.ra_vehicles)}
    guesses = {
        cid: tokens[world.la1.reveal(world.la2.peel(references[0]), 0)[1]]
        for cid, references in world.records.items()
    }
    rng = random.Random(1609)
    assert _accuracies(world, guesses, rng) == (1.0, 1.0)
