"""Privacy is tested, not claimed: an adversary holding the full EA and AA databases and logs.

N vehicles enrol, then each obtains k ATs, the N·k requests interleaved in a random order (as
vehicles on the road ask when their own policy says so). The adversary gets every row of both
databases (in their physical order) and every log line of both authorities (in order), and tries
every linking strategy we know of:

* identifiers: any byte string the EA knows about a vehicle (itsId, EC, EC key, canonical key)
  found in an AT or an AA row;
* order: the i-th AT in the AA's table or log against the i-th vehicle in the EA's;
* log adjacency: each "issued AT" line attributed to the vehicle of the nearest earlier line
  that names one;
* time: the AT validity start against the EC validity start.

Its accuracy at naming an AT's vehicle, and at telling whether two ATs share a vehicle, must be
that of chance (1/N and (k−1)/(Nk−1)) within five standard deviations. The control run, where each
vehicle asks for its ATs right after enrolling, shows the same adversary linking perfectly from
log order: that is the EA+AA+timing collusion docs/privacy.md describes.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from tests.v2x_fixtures import FAMILY_NAMES, new_pki

from fleetid.crypto.v2xkeys import compressed_point
from fleetid.device.v2x import ItsStation
from fleetid.formats.ieee1609 import decode_certificate
from fleetid.formats.ieee1609.validity import validity_bounds
from fleetid.store.schema import metadata

N_VEHICLES = 10
K_TICKETS = 5


@dataclass
class Evidence:
    ea_rows: dict[str, list[tuple[object, ...]]]
    aa_rows: dict[str, list[tuple[object, ...]]]
    log: list[str]  # both authorities' lines, in the order written


@dataclass
class Truth:
    vehicle_of_at: dict[bytes, bytes]  # AT HashedId8 -> itsId
    stations: list[ItsStation]


def _dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of one authority's database, in physical order."""
    with engine.connect() as conn:
        return {
            name: [tuple(row) for row in conn.execute(select(table))]
            for name, table in metadata.tables.items()
        }


def run_fleet(
    family: str, *, interleave: bool, caplog: pytest.LogCaptureFixture, seed: int
) -> tuple[Evidence, Truth]:
    rng = random.Random(seed)
    pki = new_pki(family)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fleetid.authority.v2x"):
        stations = [pki.station(f"VIN-{i:04d}".encode()) for i in range(N_VEHICLES)]
        if interleave:
            for station in stations:
                station.enrol(pki.ea.handle_enrolment)
                pki.clock.advance(timedelta(seconds=rng.randint(1, 30)))
            order = [s for s in stations for _ in range(K_TICKETS)]
            rng.shuffle(order)
            for station in order:
                station.request_tickets(1, pki.aa.handle_authorization)
                pki.clock.advance(timedelta(seconds=rng.randint(1, 30)))
        else:  # the control: ATs right after enrolment, vehicle by vehicle
            for station in stations:
                station.enrol(pki.ea.handle_enrolment)
                station.request_tickets(K_TICKETS, pki.aa.handle_authorization)
                pki.clock.advance(timedelta(seconds=rng.randint(1, 30)))
    log = [r.getMessage() for r in caplog.records if r.name.startswith("fleetid.authority.v2x")]
    truth = Truth(
        vehicle_of_at={t.hashed_id8: s.its_id for s in stations for t, _ in s.tickets},
        stations=stations,
    )
    evidence = Evidence(
        ea_rows=_dump(pki.ea_engine),
        aa_rows=_dump(pki.aa_engine),
        log=log,
    )
    return evidence, truth


# ------------------------------------------------------------------ the adversary

Guess = dict[bytes, bytes]  # AT HashedId8 -> guessed itsId


def _vehicles(ev: Evidence) -> list[tuple[bytes, bytes, bytes]]:
    """(itsId, EC id, EC certificate) in the EA's physical order."""
    rows = ev.ea_rows["v2x_ea_enrolment_credentials"]
    return [(bytes(r[1]), bytes(r[0]), bytes(r[2])) for r in rows]  # type: ignore[arg-type]


def _ats(ev: Evidence) -> list[tuple[bytes, bytes]]:
    return [(bytes(r[0]), bytes(r[1])) for r in ev.aa_rows["v2x_aa_issued_tickets"]]  # type: ignore[arg-type]


def by_identifiers(ev: Evidence) -> Guess:
    markers: list[tuple[bytes, bytes]] = []
    for its_id, ec_id, ec in _vehicles(ev):
        key = compressed_point(decode_certificate(ec).verification_key())
        markers += [(its_id, its_id), (ec_id, its_id), (key[1:], its_id)]
    for row in ev.ea_rows["v2x_ea_canonical_keys"]:
        markers.append((bytes(row[2])[1:], bytes(row[0])))  # type: ignore[arg-type]
    guess: Guess = {}
    for at_id, certificate in _ats(ev):
        for marker, its_id in markers:
            if marker in certificate:
                guess[at_id] = its_id
    return guess


def by_table_order(ev: Evidence) -> Guess:
    vehicles = [v[0] for v in _vehicles(ev)]
    ats = _ats(ev)
    per = max(1, len(ats) // max(1, len(vehicles)))
    return {at_id: vehicles[min(i // per, len(vehicles) - 1)] for i, (at_id, _) in enumerate(ats)}


def by_log_adjacency(ev: Evidence) -> Guess:
    ec_owner = {ec_id.hex(): its_id for its_id, ec_id, _ in _vehicles(ev)}
    guess: Guess = {}
    current: bytes | None = None
    for line in ev.log:
        if line.startswith("enrolled: EC "):
            current = ec_owner.get(line.removeprefix("enrolled: EC "))
        elif line.startswith("issued AT ") and current is not None:
            guess[bytes.fromhex(line.removeprefix("issued AT "))] = current
    return guess


def by_log_order(ev: Evidence) -> Guess:
    vehicles = [v[0] for v in _vehicles(ev)]
    issued = [
        bytes.fromhex(x.removeprefix("issued AT ")) for x in ev.log if x.startswith("issued AT ")
    ]
    per = max(1, len(issued) // max(1, len(vehicles)))
    return {at: vehicles[min(i // per, len(vehicles) - 1)] for i, at in enumerate(issued)}


def by_validity(ev: Evidence) -> Guess:
    starts = [
        (validity_bounds(decode_certificate(ec))[0], its_id) for its_id, _, ec in _vehicles(ev)
    ]
    guess: Guess = {}
    for at_id, certificate in _ats(ev):
        at_start = validity_bounds(decode_certificate(certificate))[0]
        earlier = [s for s in starts if s[0] <= at_start] or starts
        guess[at_id] = max(earlier)[1]
    return guess


STRATEGIES: dict[str, Callable[[Evidence], Guess]] = {
    "identifiers": by_identifiers,
    "table order": by_table_order,
    "log adjacency": by_log_adjacency,
    "log order": by_log_order,
    "validity": by_validity,
}


def vehicle_accuracy(guess: Guess, truth: Truth) -> float:
    hits = sum(guess.get(at) == vehicle for at, vehicle in truth.vehicle_of_at.items())
    return hits / len(truth.vehicle_of_at)


def pair_precision(guess: Guess, truth: Truth) -> float:
    """Of the AT pairs the adversary says share a vehicle, the fraction that do (0 if none)."""
    groups: dict[bytes, list[bytes]] = {}
    for at, vehicle in guess.items():
        groups.setdefault(vehicle, []).append(at)
    claimed = right = 0
    for members in groups.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                claimed += 1
                right += truth.vehicle_of_at[a] == truth.vehicle_of_at[b]
    return right / claimed if claimed else 0.0


def _bound(trials: int, p: float) -> float:
    return p + 5 * math.sqrt(p * (1 - p) / trials)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_full_ea_and_aa_records_do_not_link_ats(
    family: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    evidence, truth = run_fleet(family, interleave=True, caplog=caplog, seed=6)
    n_ats = N_VEHICLES * K_TICKETS
    assert len(_ats(evidence)) == n_ats and len(truth.vehicle_of_at) == n_ats
    chance = 1 / N_VEHICLES
    pair_chance = (K_TICKETS - 1) / (n_ats - 1)
    results = {}
    for name, strategy in STRATEGIES.items():
        guess = strategy(evidence)
        results[name] = (vehicle_accuracy(guess, truth), pair_precision(guess, truth))
    with capsys.disabled():
        for name, (acc, pairs) in results.items():
            print(
                f"\n[{family}] {name:<14} AT->vehicle {acc:.3f} (chance {chance:.3f}); "
                f"same-vehicle pairs {pairs:.3f} (chance {pair_chance:.3f})",
                end="",
            )
    assert results["identifiers"][0] == 0.0  # no identifier of the EA appears at the AA
    for name, (acc, pairs) in results.items():
        assert acc <= _bound(n_ats, chance), name
        assert pairs <= _bound(n_ats, pair_chance), name


@pytest.mark.parametrize("family", ["nist"])
def test_control_timing_collusion_links(family: str, caplog: pytest.LogCaptureFixture) -> None:
    """With requests right after enrolment, log order links every AT: the adversary works."""
    evidence, truth = run_fleet(family, interleave=False, caplog=caplog, seed=6)
    guess = by_log_adjacency(evidence)
    assert vehicle_accuracy(guess, truth) == 1.0
    assert pair_precision(guess, truth) == 1.0
    assert Counter(guess.values()) == Counter({s.its_id: K_TICKETS for s in truth.stations})
