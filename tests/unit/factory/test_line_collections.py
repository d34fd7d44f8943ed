"""The line's collector policies: ``fewer_collections`` triggers the cyclic collector less often
and freezes what existed before, both restored afterwards, a caller's own freeze left alone;
``default_collections`` changes nothing. The line enters the policy its entry point chose."""

from __future__ import annotations

import gc

import pytest

from fleetid.factory.line import collector


def test_threshold_and_freeze_are_restored() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with collector.fewer_collections():
        assert gc.get_threshold()[0] >= collector.GEN0_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restored_when_the_run_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collector.fewer_collections():
        raise RuntimeError("a unit failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_callers_freeze_is_left_alone() -> None:
    gc.freeze()
    try:
        # Frozen objects that are freed leave the count, so it may only fall: a second freeze
        # would raise it, an unfreeze would empty it.
        frozen = gc.get_freeze_count()
        with collector.fewer_collections():
            assert 0 < gc.get_freeze_count() <= frozen
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_the_default_policy_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    with collector.default_collections():
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
