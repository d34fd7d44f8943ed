"""The operator's verb groups (docs/operations.md): cert, completion, doctor, backup, reload."""

from __future__ import annotations

from fleetid.cli import backup, cert, completion, doctor, reload

__all__ = ["VERBS"]

VERBS = (cert, completion, doctor, backup, reload)
