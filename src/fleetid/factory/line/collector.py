"""How the line runs CPython's cyclic garbage collector: a policy its entry points choose.

A unit allocates thousands of short-lived objects (APDUs, session contexts, certificates, SQL
parameters); with the default threshold (700 net allocations) the collector runs every few
units and now and then walks the whole heap, which cost about 5 % of the line's CPU.
:func:`fewer_collections` raises the generation-0 threshold for the run and freezes
(``gc.freeze``) what exists when the run starts (the card source, the HSM, imported modules)
unless the caller froze something already, so the full collections that still come do not walk
it. Reference counting still frees everything acyclic at once; the cyclic collector still runs,
once per ``GEN0_THRESHOLD`` allocations. Both are restored afterwards. :func:`default_collections`
leaves the collector alone. The line takes the policy as an argument: ``fleetid line run``, its
pool workers and the benchmark pass :func:`fewer_collections`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Final

__all__ = ["GEN0_THRESHOLD", "CollectorPolicy", "default_collections", "fewer_collections"]

GEN0_THRESHOLD: Final = 10_000

CollectorPolicy = Callable[[], AbstractContextManager[None]]
"""A context manager factory the line enters around each run."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run with the cyclic collector triggered less often, restored afterwards."""
    before = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(before[0], GEN0_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freeze:
            gc.unfreeze()


def default_collections() -> AbstractContextManager[None]:
    """Leave the collector as it is."""
    return nullcontext()
