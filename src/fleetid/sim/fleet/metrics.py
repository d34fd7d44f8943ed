"""Stage measurement: wall and CPU seconds, units and peak RSS, and a Rich progress bar with
rate and ETA per stage.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["Measured", "StageMeter", "measure_stage", "peak_rss_bytes"]


def peak_rss_bytes() -> int:
    """The peak resident set of this process or its largest child so far, in bytes."""
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports kilobytes
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * scale


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class StageMeter:
    """What one stage did: its units (devices, events or days) advance the bar."""

    progress: Progress
    task: TaskID
    started: float
    units: int = 0

    def advance(self, units: int = 1) -> None:
        self.units += units
        elapsed = time.perf_counter() - self.started
        rate = f"{self.units / elapsed:>7.0f}/s" if elapsed > 0 else ""
        self.progress.update(self.task, advance=units, rate=rate)

    def count(self, units: int) -> None:
        """Units done that the bar does not show (the lifecycle's bar counts days)."""
        self.units += units

    def total(self, total: int) -> None:
        self.progress.update(self.task, total=total)


@dataclass(frozen=True, kw_only=True)
class Measured:
    seconds: float
    cpu_seconds: float
    units: int
    peak_rss_bytes: int


@contextmanager
def measure_stage(
    console: Console, title: str, total: int | None, result: list[Measured]
) -> Iterator[StageMeter]:
    """Run a stage under a progress bar; append its measurement to ``result`` when it ends."""
    columns = (
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    started, cpu = time.perf_counter(), _cpu_seconds()
    with Progress(*columns, console=console, transient=False, refresh_per_second=4) as progress:
        task = progress.add_task(title, total=total, rate="")
        meter = StageMeter(progress=progress, task=task, started=started)
        yield meter
    result.append(
        Measured(
            seconds=time.perf_counter() - started,
            cpu_seconds=_cpu_seconds() - cpu,
            units=meter.units,
            peak_rss_bytes=peak_rss_bytes(),
        )
    )
