"""The simulated life of the fleet after the factory: attested enrolment of every device, then
day after day on a ``ManualClock``:

* the day's one-off events from the queue (revocations, re-keys, moves to authority B, devices
  going silent or decommissioned), then every renewal that falls due (refresh on the
  credential's cadence, recovery by attestation past expiry); the issuing CA rolls over once;
* in the evening the authority publishes: the OCSP responder syncs with the registry, the CRL
  shards and deltas that are due, and on push days the filter;
* then the devices whose contact (intermittent) or push (offline) falls on the day take what
  they lack, and the figures of the day are written.

Each batch of devices commits its rows, the events it consumed and its figures together, and the
day's cursor is written when the day is done: a run killed anywhere resumes in the day it was in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from cryptography import x509

from fleetid.device.verifier import fetch_staple
from fleetid.revocation.crl import CrlPolicy
from fleetid.sim.demo_revocation import CountingClient
from fleetid.sim.fleet.devices import LIVE, PUBLISH_HOUR, SYNC_HOUR, DeviceWorld, time_of
from fleetid.sim.fleet.plan import plan_for, sync_interval
from fleetid.store.fleet_sim_repository import FleetSimStore, SimDevice

__all__ = ["FILTER_PUSH_EVERY", "enrol_fleet", "run_day"]

FILTER_PUSH_EVERY: Final = 7  # days between filter pushes to offline devices
DELTA_WINDOW_DAYS: Final = CrlPolicy(shards=1).delta_window.days

Daily = Counter[tuple[int, str]]


def _issued(daily: Daily, day: int, action: str) -> None:
    daily[(day, "issued:operational")] += 1
    daily[(day, f"action:{action}")] += 1


def _batches(fetch: Callable[[int], list[SimDevice]]) -> Iterator[list[SimDevice]]:
    """Batches from ``fetch(after)`` until it returns none (rows in index order)."""
    after = -1
    while batch := fetch(after):
        yield batch
        after = batch[-1].idx


def enrol_fleet(world: DeviceWorld, store: FleetSimStore, advance: Callable[[int], None]) -> None:
    """Every manufactured device enrols with its IDevID; its fate goes into the queue."""
    options = world.options
    world.clock.set(world.start)
    for batch in _batches(
        lambda after: store.devices_in_state("made", after=after, limit=options.batch_size)
    ):
        changes, events, daily = [], [], Counter[tuple[int, str]]()
        for row in batch:
            first_sync = None if row.profile == "always-on" else 0
            changes.append({"idx": row.idx, **world.enrol(row), "next_sync_day": first_sync})
            _issued(daily, 0, "enrol")
            plan = plan_for(options, row.idx)
            if plan.fate is not None:
                events.append(
                    {"id": row.idx, "day": plan.fate_day, "idx": row.idx, "kind": plan.fate}
                )
        store.commit_batch(devices=changes, daily=daily, new_events=events)
        advance(len(batch))


def _apply_event(
    world: DeviceWorld, row: SimDevice, kind: str, day: int, daily: Daily
) -> dict[str, Any]:
    if kind == "revoke":
        daily[(day, "revoked:keyCompromise")] += 1
        return world.revoke(row, "keyCompromise", day)
    if kind == "decommission":
        daily[(day, "decommissioned")] += 1
        return world.revoke(row, "cessationOfOperation", day)
    if kind == "silent":
        daily[(day, "silent")] += 1
        return {"state": "silent", "renew_day": None, "next_sync_day": None}
    if kind == "rekey":
        _issued(daily, day, "rekey")
        return world.rekey(row)
    _issued(daily, day, "transfer")
    return world.transfer(row)


def run_day(
    world: DeviceWorld,
    store: FleetSimStore,
    day: int,
    count: Callable[[int], None],
    reopen_a: Callable[[], None],
) -> None:
    """One simulated day (see the module docstring); ``count`` takes the units done."""
    options = world.options
    meta = store.meta()
    world.clock.set(time_of(world.start, day))
    if day == max(1, options.days // 2) and meta.get("rolled") != "1":
        world.authorities["a"].roll_issuing_ca()
        reopen_a()
        store.set_meta({"rolled": "1"})
    # The queue's events, then the renewals that fall due.
    while events := store.events_due(day, limit=options.batch_size):
        rows = store.devices(e.idx for e in events)
        changes, daily = [], Counter[tuple[int, str]]()
        for event in events:
            row = rows[event.idx]
            if row.state in LIVE:
                changes.append({"idx": row.idx, **_apply_event(world, row, event.kind, day, daily)})
        store.commit_batch(devices=changes, done_events=[e.id for e in events], daily=daily)
        count(len(events))
    for batch in _batches(
        lambda after: store.due("renew_day", day, LIVE, after=after, limit=options.batch_size)
    ):
        changes, daily = [], Counter[tuple[int, str]]()
        for row in batch:
            action, columns = world.renew(row)
            if action is not None:
                _issued(daily, day, action)
            changes.append({"idx": row.idx, **columns})
        store.commit_batch(devices=changes, daily=daily)
        count(len(batch))
    world.clock.set(time_of(world.start, day, PUBLISH_HOUR))
    _publish(world, store, day)
    world.clock.set(time_of(world.start, day, SYNC_HOUR))
    _sync(world, store, day, count)
    stale = store.staleness(day, LIVE)
    store.commit_batch(
        daily={(day, f"staleness:{p}"): v for p, v in stale.items()}, meta={"day_done": str(day)}
    )


def _publish(world: DeviceWorld, store: FleetSimStore, day: int) -> None:
    """The evening's publications at authority A (``broken_channel`` stops one after day 0)."""
    broken = world.options.broken_channel if day > 0 else None
    a = world.authorities["a"]
    a.responder.sync()
    if broken != "crl":
        published = a.crls.publish()
        store.add_artefacts(
            day,
            "crl",
            [(f"{p.issuer_id}/{p.shard}/{p.kind.value}", p.der) for p in published],
        )
    if broken != "filter" and day % FILTER_PUSH_EVERY == 0:
        push = a.filters.publish()
        store.add_artefacts(day, "filter", [(push.kind.name.lower(), push.data)])


def _ocsp_bytes(world: DeviceWorld, store: FleetSimStore) -> int:
    """Bytes of one real OCSP exchange for a live always-on device (request and response)."""
    a = world.authorities["a"]
    for row in store.devices_in_state("enrolled", after=-1, limit=1):
        if row.certificate is None:
            continue
        client = CountingClient(a.app)
        leaf = x509.load_der_x509_certificate(row.certificate)
        issuer = next(
            (c for c in a.ca.chain() if c.subject == leaf.issuer), a.ca.issuing.certificate
        )
        fetch_staple(client.client, leaf, issuer)
        return client.bytes
    return 0


def _sync(world: DeviceWorld, store: FleetSimStore, day: int, count: Callable[[int], None]) -> None:
    """Intermittent devices in range and offline devices reached by the push take what they
    lack; always-on devices ask OCSP as they go (one exchange a day each)."""
    options = world.options
    crl = {url: (d, len(data)) for url, (d, data) in store.latest_artefacts(day, "crl").items()}
    filters = {u: (d, len(data)) for u, (d, data) in store.latest_artefacts(day, "filter").items()}
    for batch in _batches(
        lambda after: store.due("next_sync_day", day, LIVE, after=after, limit=options.batch_size)
    ):
        changes, daily = [], Counter[tuple[int, str]]()
        syncs: Counter[tuple[str, int, int]] = Counter()
        for row in batch:
            last = -1 if row.last_sync_day is None else row.last_sync_day
            if row.profile == "intermittent":
                size = _crl_bytes(crl, last, day)
            else:
                size = _filter_bytes(filters, last)
            daily[(day, f"bytes:{row.profile}")] += size
            syncs[(row.profile, last, day)] += 1
            changes.append(
                {
                    "idx": row.idx,
                    "last_sync_day": day,
                    "next_sync_day": day + sync_interval(options, row.idx, row.profile, day),
                }
            )
        store.commit_batch(devices=changes, daily=daily, syncs=syncs)
        count(len(batch))
    always_on = sum(n for p, _, n in store.sync_views(LIVE) if p == "always-on")
    if always_on:
        exchange = _ocsp_bytes(world, store)
        store.commit_batch(
            daily={(day, "bytes:always-on"): float(always_on * exchange)},
            syncs={("always-on", day - 1, day): always_on},
        )


def _crl_bytes(crl: Mapping[str, tuple[int, int]], last: int, day: int) -> int:
    """What an intermittent device that last made contact on day ``last`` fetches: the newer
    delta of every shard, and the full CRLs too once what it holds is older than the delta
    window (``CrlPolicy.delta_window``, 7 days: a delta no longer reaches back to it)."""
    stale = last < 0 or day - last > DELTA_WINDOW_DAYS
    return sum(
        size
        for url, (published, size) in crl.items()
        if published > last and (stale or not url.endswith("full"))
    )


def _filter_bytes(filters: Mapping[str, tuple[int, int]], last: int) -> int:
    """What an offline device that last took a push on day ``last`` needs: the current delta,
    and the full filter too when that is newer than what it holds."""
    full_day, full_size = filters.get("full", (-1, 0))
    delta_day, delta_size = filters.get("delta", (-1, 0))
    size = delta_size if delta_day > full_day and delta_day > last else 0
    return size + (full_size if full_day > last else 0)
