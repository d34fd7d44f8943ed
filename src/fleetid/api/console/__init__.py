"""The operators' web console (``/ui``): server-rendered HTML pages with plain forms, no script
and nothing loaded from another origin, behind the admin API's authentication (TLS client
certificates of the operator CA, ``fleetid.api.admin.authentication``) and roles.

Views: the fleet overview (devices by state, certificates by status as an inline SVG chart,
certificates expiring within 30 days), certificates with their status and audit entries, devices
with their lifecycle timeline, and enrolment tokens. Actions, for the roles the admin API allows
them to: revoke a certificate with a reason, issue tokens, publish CRLs; a viewer sees no action
and a POST from one is refused (403). Every action goes through
``fleetid.authority.operator_actions``, so the audit log names the operator, as for the API.

A form POST carries the operator's TLS client certificate whichever page sent it, so every POST
must come from the console itself: its ``Origin`` header (Fetch standard, sent by browsers on
every POST) must be this server's, else 403 (cross-site request forgery).
"""

from __future__ import annotations

from fastapi import FastAPI

from fleetid.api.console import pages

__all__ = ["install"]


def install(app: FastAPI) -> None:
    app.include_router(pages.router)
