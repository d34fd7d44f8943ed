"""The RA, the pseudonym CA and both LAs keep their state in their databases: a restart
mid-week loses nothing, and the databases hold no seed and no key in the clear."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.butterfly_fixtures import BatchPki
from tests.v2x_fixtures import new_pki

from fleetid.authority.v2x.batch_pki import (
    LA1_ID,
    LA2_ID,
    ButterflyEngines,
    ButterflyKeys,
    assemble_butterfly,
    new_butterfly_keys,
)
from fleetid.authority.v2x.la import LinkageAuthority
from fleetid.authority.v2x.misbehaviour import revoke_reported_pseudonym
from fleetid.authority.v2x.pseudonym_ca import PeriodSchedule
from fleetid.crypto.linkage import linkage_value, next_linkage_seed, pre_linkage_value
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import BatchRefusedError, EncodingError, NotFoundError, VerificationError
from fleetid.formats.ieee1609 import time32
from fleetid.store.butterfly_state import RaRecords
from fleetid.store.butterfly_state_tables import butterfly_la_chains
from fleetid.store.engine import Engine, open_engine
from fleetid.store.metadata import metadata

pytest_plugins = ["tests.db_fixtures"]

PER_PERIOD = 4


@dataclass
class Deployment:
    """Four databases and the authorities' keys; ``start`` (re)opens everything."""

    urls: dict[str, str]
    keys: ButterflyKeys
    batch: BatchPki
    schedule: PeriodSchedule
    engines: ButterflyEngines | None = None

    def start(self) -> BatchPki:
        self.stop()
        self.engines = ButterflyEngines(**{k: open_engine(u) for k, u in self.urls.items()})
        pki = self.batch.pki
        self.batch.authorities = assemble_butterfly(
            self.keys,
            ec_lookup=pki.hierarchy.ea.current_enrolment_credential,
            clock=pki.clock,
            schedule=self.schedule,
            engines=self.engines,
            certificates_per_period=PER_PERIOD,
        )
        return self.batch

    def stop(self) -> None:
        if self.engines is not None:
            for engine in (self.engines.ra, self.engines.ca, self.engines.la1, self.engines.la2):
                engine.dispose()
            self.engines = None


@pytest.fixture
def deployment(backend: str, database_url_for: Callable[[str], str]) -> Iterator[Deployment]:
    pki = new_pki("nist")
    keys = new_butterfly_keys(pki.hierarchy)
    schedule = PeriodSchedule(origin=time32(pki.clock.now()))
    urls = {name: database_url_for(backend) for name in ("ra", "ca", "la1", "la2")}
    placeholder = BatchPki(pki=pki, authorities=None, implicit=False)  # type: ignore[arg-type]
    found = Deployment(urls=urls, keys=keys, batch=placeholder, schedule=schedule)
    found.start()
    yield found
    found.stop()


def _tokens(engine: Engine, its_id: bytes) -> tuple[bytes, bytes]:
    (device,) = [d for d in RaRecords(engine).devices() if d.its_id == its_id]
    return device.chains


def test_a_restart_mid_week_loses_nothing(deployment: Deployment) -> None:
    batch = deployment.batch
    first, second = batch.vehicle(b"VIN-A"), batch.vehicle(b"VIN-B")
    week0 = batch.week(first)
    assert deployment.engines is not None
    tokens = _tokens(deployment.engines.ra, b"VIN-A")
    seeds0 = (
        batch.authorities.la1.reveal_seed(tokens[0], 0),
        batch.authorities.la2.reveal_seed(tokens[1], 0),
    )
    unsent = batch.prepare(second, 3)
    pending_b = batch.prepare(second)
    second.read_ack(pending_b, batch.authorities.ra.handle_batch_request(pending_b.message))
    # B's batch is accepted, not issued: the RA, CA and LAs go down and come back.
    batch = deployment.start()
    authorities = batch.authorities
    assert authorities.ra.device_count() == 2
    assert authorities.la1.chain_count() == 2 and authorities.la2.chain_count() == 2
    assert authorities.ra.pending_count() == PER_PERIOD
    with pytest.raises(BatchRefusedError) as refused:
        authorities.ra.handle_batch_request(pending_b.message)
    assert refused.value.code == "replay"
    batch.issue_pending()
    assert len(second.reconstruct(pending_b, authorities.ra.download(pending_b.batch_id))) == 4
    # The next week continues the same chains: lv(1, j) from ls(1) = next(ls(0)) of each LA.
    week1 = batch.week(first, 1)
    assert authorities.la1.chain_count() == 2
    seeds1 = (next_linkage_seed(seeds0[0], LA1_ID), next_linkage_seed(seeds0[1], LA2_ID))
    expected = {
        linkage_value(
            pre_linkage_value(seeds1[0], LA1_ID, j), pre_linkage_value(seeds1[1], LA2_ID, j)
        )
        for j in range(PER_PERIOD)
    }
    assert {p.linkage_value for p in week1} == expected
    # The CA's records survived too: a week-0 pseudonym is revoked after the restart, and the
    # block survives the next one.
    revoke_reported_pseudonym(
        week0[0].certificate.encoded,
        ca=authorities.ca,
        la1=authorities.la1,
        la2=authorities.la2,
        ra=authorities.ra,
    )
    batch = deployment.start()
    with pytest.raises(BatchRefusedError) as blocked:
        batch.request(first, 2)
    assert blocked.value.code == "revoked"
    # B's request prepared before the restart and never sent is fresh and unseen: accepted.
    second.read_ack(unsent, batch.authorities.ra.handle_batch_request(unsent.message))


def _dump(engine: Engine) -> bytes:
    """Every value of every table of the database, as bytes."""
    out = bytearray()
    with engine.connect() as conn:
        for table in metadata.sorted_tables:  # every authority migrates its database to head
            for row in conn.execute(select(table)).all():
                for value in row:
                    out += value if isinstance(value, bytes) else str(value).encode()
    return bytes(out)


def test_the_databases_hold_no_seed_and_no_key_in_the_clear(deployment: Deployment) -> None:
    batch = deployment.batch
    vehicle = batch.vehicle(b"VIN-A")
    batch.week(vehicle)
    batch.week(vehicle, 1)
    assert deployment.engines is not None
    tokens = _tokens(deployment.engines.ra, b"VIN-A")
    a = batch.authorities
    secrets = [
        a.la1.reveal_seed(tokens[0], 0),
        a.la1.reveal_seed(tokens[0], 1),
        a.la2.reveal_seed(tokens[1], 0),
        a.la2.reveal_seed(tokens[1], 1),
        a.la1._ca_key,  # the LA's own keys, from its memory
        a.la1._reference_key,
        a.la2._ca_key,
        a.la2._reference_key,
    ]
    for key in (deployment.keys.la1_wrapping, deployment.keys.la2_wrapping):
        secrets.append(key.private_numbers().private_value.to_bytes(32, "big"))
    engines = deployment.engines
    dumps = b"".join(_dump(e) for e in (engines.ra, engines.ca, engines.la1, engines.la2))
    assert len(dumps) > 1000
    # The chain rows are there (sealed), so the search is over the right rows.
    with engines.la1.connect() as conn:
        assert len(conn.execute(select(butterfly_la_chains)).all()) == 1
    for secret in secrets:
        assert len(secret) == 16 or len(secret) == 32
        assert secret not in dumps
        assert secret.hex().encode() not in dumps
    raw_files = b"".join(
        Path(url.removeprefix("sqlite:///")).read_bytes()
        for url in deployment.urls.values()
        if url.startswith("sqlite:///")
    )
    for secret in secrets:
        assert secret not in raw_files


def test_an_la_under_another_key_opens_nothing(deployment: Deployment) -> None:
    assert deployment.engines is not None
    with pytest.raises(VerificationError):
        LinkageAuthority(
            la_id=LA1_ID, wrapping_key=generate_key("nistP256"), engine=deployment.engines.la1
        )
    with pytest.raises(EncodingError):
        LinkageAuthority(la_id=LA1_ID, engine=deployment.engines.la1)


def test_a_sealed_seed_moved_to_another_chain_does_not_open(deployment: Deployment) -> None:
    batch = deployment.batch
    batch.request(batch.vehicle(b"VIN-A"))
    batch.request(batch.vehicle(b"VIN-B"))
    assert deployment.engines is not None
    engine = deployment.engines.la1
    with engine.begin() as conn:
        rows = conn.execute(select(butterfly_la_chains)).all()
        assert len(rows) == 2
        conn.execute(
            butterfly_la_chains.update()
            .where(butterfly_la_chains.c.chain_id == rows[0].chain_id)
            .values(seed=rows[1].seed, initial_seed=rows[1].initial_seed)
        )
    tokens = _tokens(deployment.engines.ra, b"VIN-A")
    batch = deployment.start()
    with pytest.raises(VerificationError):
        batch.authorities.la1.reveal_seed(tokens[0], 0)


def test_a_restarted_la_knows_no_foreign_chain(deployment: Deployment) -> None:
    batch = deployment.start()
    stranger = LinkageAuthority(la_id=LA1_ID)
    token = stranger.new_chain()
    with pytest.raises(VerificationError):
        batch.authorities.la1.reveal_seed(token, 0)
    with pytest.raises(NotFoundError):
        batch.authorities.ca.record_for(batch.authorities.ra.certificate.encoded)


def test_a_request_forwarded_but_unanswered_at_a_crash_is_pending_again(
    deployment: Deployment,
) -> None:
    batch = deployment.batch
    vehicle = batch.vehicle(b"VIN-A")
    pending = batch.request(vehicle)
    forwarded = batch.authorities.ra.forward()  # the CA never answers: the RA goes down
    assert batch.authorities.ra.pending_count() == 0
    batch = deployment.start()
    assert batch.authorities.ra.pending_count() == PER_PERIOD
    with pytest.raises(VerificationError):  # the answer to the lost message finds nothing
        batch.authorities.ra.accept_responses(
            batch.authorities.ca.issue_batch(forwarded, batch.pki.clock.now())
        )
    batch.issue_pending()
    assert len(vehicle.reconstruct(pending, batch.authorities.ra.download(pending.batch_id))) == 4


def test_a_delivered_batch_is_pruned_after_its_retention_across_restarts(
    deployment: Deployment,
) -> None:
    batch = deployment.batch
    vehicle, late = batch.vehicle(b"VIN-A"), batch.vehicle(b"VIN-B")
    pending = batch.request(vehicle)
    undelivered = batch.request(late)
    batch.issue_pending()
    first = batch.authorities.ra.download(pending.batch_id)
    assert deployment.engines is not None
    assert set(RaRecords(deployment.engines.ra).queue.delivered()) == {pending.batch_id}
    # Within the retention a restarted RA still serves the download (a lost answer is repeated).
    batch.pki.clock.advance(timedelta(hours=23))
    batch = deployment.start()
    assert batch.authorities.ra.download(pending.batch_id) == first
    # Past it, the reopened RA forgets the batch and its rows; the batch nobody downloaded stays.
    batch.pki.clock.advance(timedelta(hours=2))
    batch = deployment.start()
    with pytest.raises(NotFoundError):
        batch.authorities.ra.download(pending.batch_id)
    assert deployment.engines is not None
    kept = {work.batch_id for work, _ in RaRecords(deployment.engines.ra).requests()}
    assert kept == {undelivered.batch_id}
    assert (
        len(late.reconstruct(undelivered, batch.authorities.ra.download(undelivered.batch_id))) == 4
    )
