"""A short fuzz run of every parser (``make fuzz`` runs each for 10 minutes), and the replay of
every crash the fuzzer has found (tests/vectors/fuzz/<harness>/): success or a ``FleetIdError``,
never another exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from fleetid.errors import FleetIdError
from tests.fuzz.engine import CRASHES, check, inputs
from tests.fuzz.harnesses import HARNESSES, Harness, by_name

_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))


@pytest.mark.parametrize("name", [h.name for h in HARNESSES])
def test_seeds_parse_and_mutations_end_in_success_or_a_clean_refusal(name: str) -> None:
    harness = by_name(name)
    seeds = list(harness.seeds())
    # The seeds are valid inputs: the fuzzer starts from what the parser accepts.
    assert seeds and all(check(harness, seed).startswith("ok") for seed in seeds)
    outcomes: set[str] = set()

    @settings(
        max_examples=_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(seeds))
    def fuzz(data: bytes) -> None:
        outcomes.add(check(harness, data))

    fuzz()
    # Both ways out were reached: acceptance (the seeds, checked above) and at least one other
    # outcome among the mutations, a refusal (an exception of the tree, or an answer such as
    # OCSP's malformedRequest). A signed input whose every change is refused by its one check
    # reaches a single kind of refusal: the seeds' outcome counts beside it.
    outcomes.update(check(harness, seed) for seed in seeds)
    assert len(outcomes) >= 2, outcomes


def _vectors() -> list[Path]:
    return sorted(CRASHES.glob("*/*.bin"))


@pytest.mark.parametrize("path", _vectors(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_crash_found_is_now_a_clean_refusal(path: Path) -> None:
    assert check(by_name(path.parent.name), path.read_bytes()) != ""


def test_there_are_regression_vectors_and_each_names_a_harness() -> None:
    names = {h.name for h in HARNESSES}
    assert _vectors()
    assert {p.parent.name for p in _vectors()} <= names


def test_a_crash_is_not_taken_for_a_clean_refusal() -> None:
    def crashes(data: bytes) -> object:
        return data[10]  # IndexError on short input: a crash, not a refusal

    def refuses(data: bytes) -> object:
        raise FleetIdError("refused")

    with pytest.raises(IndexError):
        check(Harness("crash", crashes, list), b"short")
    assert check(Harness("refusal", refuses, list), b"x") == "FleetIdError"
