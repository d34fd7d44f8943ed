"""CPU cost of one card-state serialisation (``CardState.to_bytes``, run on every card write),
with the FIDO section a constant (the applet never used) beside the same state with the section
formatted afresh (as every card did before the constant), in the same run.

Prints microseconds of CPU time per call (best of five rounds each, the rounds alternating) and
the ratio, with the load average: the machine is shared.

Usage: python benchmarks/card_state_write.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from fleetid.se.state import CardState, FidoState
from fleetid.sim.test_card import manufacture_test_card


class _FormattedAfresh(FidoState):
    """The same empty section, formatted with json.dumps on every call."""

    def pristine(self) -> bool:
        return False


def per_call_us(op: Callable[[], object], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        op()
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    card = manufacture_test_card().card
    state: CardState = CardState.from_bytes(card.flash.read(card._silicon))
    afresh = CardState.from_bytes(state.to_bytes())
    afresh.fido = _FormattedAfresh()
    assert state.to_bytes() == afresh.to_bytes()  # the same bytes either way
    constant, formatted = [], []
    for _ in range(5):
        constant.append(per_call_us(state.to_bytes, args.calls))
        formatted.append(per_call_us(afresh.to_bytes, args.calls))
    best_constant, best_formatted = min(constant), min(formatted)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"to_bytes, FIDO section formatted afresh (baseline): {best_formatted:.2f} us CPU")
    print(f"to_bytes, FIDO section constant (applet unused):    {best_constant:.2f} us CPU")
    print(f"ratio constant / afresh: {best_constant / best_formatted:.2f}")


if __name__ == "__main__":
    main()
