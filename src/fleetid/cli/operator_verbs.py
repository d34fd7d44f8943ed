"""The operator's verb groups (docs/operations.md): cert, completion, doctor, backup, reload,
operator (the admin API's credentials)."""

from __future__ import annotations

from fleetid.cli import backup, cert, completion, doctor, operator, reload

__all__ = ["VERBS"]

VERBS = (cert, completion, doctor, backup, reload, operator)
