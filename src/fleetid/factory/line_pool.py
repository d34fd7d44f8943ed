"""Several line processes on one data directory (``fleetid line run --workers N``).

Python runs one core per process, so a line on N cores is N processes. The units are split into
N contiguous slices, one per worker. Each worker opens the line exactly as a single process does
(its own activated HSM handle, its own database engine, its own card source) and runs its slice.
The workers share the manifest and the audit log: their commits serialise on ``line.lock``, and a
serial is checked against the manifest inside each commit, so a chip presenting a serial that a
unit in another slice already holds is still refused as a duplicate.

Nothing about durability changes: each worker is the ordinary resumable line on its own units. A
worker killed at any step leaves what a killed single line leaves, the pool then fails, and the
next run (with any number of workers) resumes every unit without a final state, once.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from fleetid.errors import ConfigError, LineWorkerError
from fleetid.factory.line import NO_CRASH, CardSource, CrashPlan, LineConfig, LineReport

__all__ = ["LineWorkerError", "run_pool", "split_units"]


def split_units(units: Sequence[str], workers: int) -> list[list[str]]:
    """``units`` in at most ``workers`` contiguous, non-empty slices of near-equal size."""
    if workers < 1:
        raise ConfigError(f"a line needs at least one worker, not {workers}")
    count = min(workers, len(units))
    size, extra = divmod(len(units), count) if count else (0, 0)
    slices, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        slices.append(list(units[start:end]))
        start = end
    return slices


def run_pool(
    data_dir: Path,
    units: Sequence[str],
    cards: Callable[[], CardSource],
    *,
    workers: int,
    config: LineConfig | None = None,
    crash: CrashPlan = NO_CRASH,
    pkcs11_module: str | None = None,
) -> LineReport:
    """Run ``units`` through the line of ``data_dir`` in ``workers`` processes; one report.

    ``cards`` makes each worker's card source (it must pickle: e.g. ``partial(Wafer.open,
    directory)``). ``crash`` is the crash tests' plan and ``pkcs11_module`` the PKCS#11 library
    the command was given, both handed to every worker. Each worker runs
    with ``fewer_collections``, as ``fleetid line run`` does. With one worker, or one unit, the
    line runs in this process.
    """
    slices = split_units(units, workers)
    if len(slices) <= 1:
        return _run_slice(data_dir, list(units), cards, config, crash, pkcs11_module)
    context = multiprocessing.get_context("spawn")  # no fork of an activated HSM or open engine
    try:
        with ProcessPoolExecutor(max_workers=len(slices), mp_context=context) as pool:
            futures = [
                pool.submit(_run_slice, data_dir, part, cards, config, crash, pkcs11_module)
                for part in slices
            ]
            reports = [future.result() for future in futures]
    except BrokenProcessPool as exc:
        raise LineWorkerError("a line worker died; run the line again to resume its units") from exc
    return LineReport(
        processed=sum(r.processed for r in reports),
        secured=sum(r.secured for r in reports),
        quarantined=sum(r.quarantined for r in reports),
        duplicates=sum(r.duplicates for r in reports),
        already_done=sum(r.already_done for r in reports),
    )


def _run_slice(
    data_dir: Path,
    units: list[str],
    cards: Callable[[], CardSource],
    config: LineConfig | None,
    crash: CrashPlan,
    pkcs11_module: str | None,
) -> LineReport:
    """A worker's entry: its own line, with the plan and the collector policy of the run."""
    from fleetid.clock import SystemClock
    from fleetid.factory.line import fewer_collections, open_line

    line = open_line(
        data_dir,
        clock=SystemClock(),
        config=config,
        crash=crash,
        collections=fewer_collections,
        pkcs11_module=pkcs11_module,
    )
    return line.run(units, cards())
