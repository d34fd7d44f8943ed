"""Fault injection for the line's crash tests: a plan that names where the process dies.

The line calls :meth:`CrashPlan.reached` at each of ``CRASH_POINTS``; a plan naming that point
ends the process there without unwinding (``os._exit``: no ``finally``, no flush), which is what
a power cut or SIGKILL leaves behind. Domain code never reads the environment: the entry points
(``fleetid line run``, the benchmark, the tests) build the plan, the command from
``FLEETID_LINE_CRASH`` through :meth:`CrashPlan.from_environment`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, NoReturn

from fleetid.errors import ConfigError

__all__ = ["CRASH_ENV", "CRASH_EXIT", "CRASH_POINTS", "NO_CRASH", "CrashPlan"]

CRASH_ENV: Final = "FLEETID_LINE_CRASH"
CRASH_POINTS: Final = (
    "identified",  # CPLC read, nothing done to the card
    "after-put-key",  # card holds the device keys, manifest does not know
    "after-generate",  # card holds an uncertified attestation key
    "after-issue",  # IDevID signed, not recorded
    "after-certified-commit",  # IDevID recorded, not installed
    "after-store-data",  # chain installed, card not locked
    "after-set-status",  # card SECURED, manifest does not know
    "after-secured-commit",  # everything recorded
)
#: The exit status of a planned crash.
CRASH_EXIT: Final = 86


def _hard_exit(status: int) -> NoReturn:
    os._exit(status)


@dataclass(frozen=True, slots=True)
class CrashPlan:
    """Die at ``point`` (one of ``CRASH_POINTS``), or never when it is None.

    ``exit`` ends the process; a test may pass one that raises instead.
    """

    point: str | None = None
    exit: Callable[[int], object] = _hard_exit

    def __post_init__(self) -> None:
        if self.point is not None and self.point not in CRASH_POINTS:
            raise ConfigError(
                f"{self.point!r} is not a line crash point: {', '.join(CRASH_POINTS)}"
            )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> CrashPlan:
        """The plan ``FLEETID_LINE_CRASH`` names in ``environ`` (unset or empty: none)."""
        return cls(environ.get(CRASH_ENV) or None)

    def reached(self, point: str) -> None:
        """The line is at ``point``: end the process if the plan says so."""
        if point == self.point:
            self.exit(CRASH_EXIT)


#: The plan of every production run: no crash.
NO_CRASH: Final = CrashPlan()
