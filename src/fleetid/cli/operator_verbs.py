"""The operator's verb groups (spec 23, "CLI"): inspection, completion, doctor, backup, reload."""

from __future__ import annotations

from fleetid.cli import backup, cert, completion, doctor, reload

__all__ = ["VERBS"]

VERBS = (cert, completion, doctor, backup, reload)
