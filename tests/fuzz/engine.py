"""The fuzzing engine: Hypothesis drives each harness with random and mutated inputs.

``inputs(seeds)`` draws either free bytes or a seed changed by a few mutations (a flipped bit,
an interesting byte, a cut, an insertion, a truncation, a repeated slice), the operations of
mutational fuzzers, so that inputs reach past the first length check; Hypothesis shrinks any
crash to a small input. ``check`` is the rule: success or a ``FleetIdError``, nothing else.

``python -m tests.fuzz.engine`` (``make fuzz``) runs every harness for ``FUZZ_SECONDS`` each
(600 by default), prints executions and distinct outcomes per harness, and writes each crash it
finds to ``tests/vectors/fuzz/<harness>/<sha256>.bin``, which ``test_fuzz.py`` replays.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetid.errors import FleetIdError
from tests.fuzz.harnesses import HARNESSES, Harness

__all__ = ["CRASHES", "check", "inputs", "main", "run"]

CRASHES = Path(__file__).parent.parent / "vectors" / "fuzz"
_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0xFF)


@st.composite
def _mutated(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(st.integers(0, 5))
        at = draw(st.integers(0, len(data)))
        if operation == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif operation == 1 and data:
            data[min(at, len(data) - 1)] = draw(st.sampled_from(_INTERESTING))
        elif operation == 2:
            del data[at : at + draw(st.integers(1, 16))]
        elif operation == 3:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif operation == 4:
            del data[at:]
        else:
            size = draw(st.integers(1, 32))
            data[at:at] = data[at : at + size]
    return bytes(data)


def inputs(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Free bytes one time in four, else a mutated seed."""
    free = st.binary(max_size=512)
    return st.one_of(free, _mutated(seeds), _mutated(seeds), _mutated(seeds)) if seeds else free


def check(harness: Harness, data: bytes) -> str:
    """The outcome of one input: ``ok`` or the refusal's class; any other exception escapes."""
    try:
        result = harness.target(data)
    except FleetIdError as exc:
        return type(exc).__name__
    return f"ok {result}" if isinstance(result, enum.Enum) else "ok"


@dataclass
class Report:
    name: str
    executions: int = 0
    seconds: float = 0.0
    outcomes: set[str] = field(default_factory=set)
    crash: Path | None = None


def run(harness: Harness, seconds: float) -> Report:
    """Fuzz ``harness`` for ``seconds``; stop at its first crash, which is saved as a vector."""
    report = Report(harness.name)
    seeds = list(harness.seeds())
    last: list[bytes] = []

    @settings(
        max_examples=2000,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(seeds))
    def one_round(data: bytes) -> None:
        last[:] = [data]
        report.executions += 1
        report.outcomes.add(check(harness, data))

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            one_round()
        except Exception:  # the harness's crash, after Hypothesis shrank it
            traceback.print_exc()
            report.crash = _save(harness.name, last[0])
            break
    report.seconds = time.monotonic() - started
    return report


def _save(name: str, data: bytes) -> Path:
    directory = CRASHES / name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz fleetid's parsers (make fuzz).")
    parser.add_argument("harness", nargs="*", help="harness names (default: all)")
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", "600"))
    )
    args = parser.parse_args(argv)
    chosen = [h for h in HARNESSES if not args.harness or h.name in args.harness]
    crashed = 0
    print(f"{'harness':<24} {'executions':>10} {'exec/s':>8} {'outcomes':>8}  crash")
    for harness in chosen:
        report = run(harness, args.seconds)
        rate = report.executions / report.seconds if report.seconds else 0.0
        crash = str(report.crash) if report.crash else "-"
        crashed += report.crash is not None
        print(
            f"{report.name:<24} {report.executions:>10} {rate:>8.0f} "
            f"{len(report.outcomes):>8}  {crash}",
            flush=True,
        )
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
