"""A downloaded batch stays downloadable for the RA's retention after its first download, and
is then forgotten; a batch nobody downloaded is kept (``RegistrationAuthority.download``,
``prune_delivered``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.butterfly_fixtures import BatchPki, new_batch_pki

from fleetid.authority.v2x.batch_pki import assemble_butterfly, new_butterfly_keys
from fleetid.authority.v2x.pseudonym_ca import PeriodSchedule
from fleetid.errors import ConfigError, NotFoundError
from fleetid.formats.ieee1609 import time32


@pytest.fixture
def batch() -> BatchPki:
    return new_batch_pki(per_period=4)


def test_a_download_is_repeatable_within_the_retention_and_gone_after(batch: BatchPki) -> None:
    vehicle = batch.vehicle()
    pending = batch.request(vehicle)
    batch.issue_pending()
    ra = batch.authorities.ra
    first = ra.download(pending.batch_id)
    batch.pki.clock.advance(timedelta(hours=23, minutes=59))
    assert ra.download(pending.batch_id) == first  # the first download's time counts
    assert len(vehicle.reconstruct(pending, first)) == 4
    batch.pki.clock.advance(timedelta(minutes=2))
    with pytest.raises(NotFoundError):
        ra.download(pending.batch_id)
    assert ra.batch_count() == 0


def test_batches_not_downloaded_are_kept_however_old(batch: BatchPki) -> None:
    delivered, waiting = batch.vehicle(b"VIN-1"), batch.vehicle(b"VIN-2")
    taken = batch.request(delivered)
    pending = batch.request(waiting)
    batch.issue_pending()
    ra = batch.authorities.ra
    ra.download(taken.batch_id)
    batch.pki.clock.advance(timedelta(days=30))
    assert ra.prune_delivered() == 1
    assert ra.prune_delivered() == 0
    assert ra.batch_count() == 1
    assert len(waiting.reconstruct(pending, ra.download(pending.batch_id))) == 4


def _with_retention(batch: BatchPki, retention: timedelta) -> BatchPki:
    pki = batch.pki
    batch.authorities = assemble_butterfly(
        new_butterfly_keys(pki.hierarchy),
        ec_lookup=pki.hierarchy.ea.current_enrolment_credential,
        clock=pki.clock,
        schedule=PeriodSchedule(origin=time32(pki.clock.now())),
        certificates_per_period=4,
        delivered_retention=retention,
    )
    return batch


def test_the_retention_is_a_setting(batch: BatchPki) -> None:
    batch = _with_retention(batch, timedelta(minutes=10))
    vehicle = batch.vehicle()
    pending = batch.request(vehicle)
    batch.issue_pending()
    batch.authorities.ra.download(pending.batch_id)
    batch.pki.clock.advance(timedelta(minutes=11))
    with pytest.raises(NotFoundError):
        batch.authorities.ra.download(pending.batch_id)


def test_a_negative_retention_is_refused(batch: BatchPki) -> None:
    with pytest.raises(ConfigError, match="retention"):
        _with_retention(batch, timedelta(seconds=-1))
