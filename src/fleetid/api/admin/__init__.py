"""The authenticated admin API (``/admin/...``): what the operator's CLI does, over HTTPS.

Operators authenticate with TLS client certificates from the operator CA
(``fleetid.authority.operator_ca``; ``authentication``); each route names the action it performs
and the least role allowed to (``Action``). Reads (``reads``) answer the same documents as
``fleetid cert|device|token ... --json`` (``fleetid.authority.operator_views``), lists paginated
(``pagination``); writes (``actions``) go through ``fleetid.authority.operator_actions``, which
names the operator in every audit-log entry. Errors are RFC 9457 problem details: 401 for a
missing, foreign, expired, revoked or unknown certificate (``reason`` says which), 403 for a role
that does not allow the action.
"""

from __future__ import annotations

from fastapi import FastAPI

from fleetid.api.admin import actions, reads

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Mount the admin routes (they find the CA in ``app.state.ca``)."""
    app.include_router(reads.router)
    app.include_router(actions.router)
