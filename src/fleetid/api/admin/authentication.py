"""Who is asking: the operator a request's TLS client certificate names, and whether its role
allows the route's action.

The certificate is the one the TLS server verified (``fleetid.api.peer_certificate``; uvicorn
under ``fleetid serve --https`` asks for one optionally, the operator CA among the trust
anchors); ``OperatorCa.authenticate`` checks it again against the operator CA alone, its
validity and its record. The request's log fields name the operator and role
(``fleetid.structured_logs.annotate``). The operator CA is opened (made, the first time) on the
first admin request, or by ``fleetid serve`` before it listens.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from fastapi import Request

from fleetid.api.peer_certificate import peer_certificate
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_ca import Action, Operator, OperatorCa, missing_certificate
from fleetid.structured_logs import annotate

__all__ = ["allowed", "operator_ca"]

_LOCK = threading.Lock()
_OPENED: weakref.WeakKeyDictionary[FleetCa, OperatorCa] = weakref.WeakKeyDictionary()


def operator_ca(ca: FleetCa) -> OperatorCa:
    """The operator CA of ``ca`` (one per CA object, made on first use)."""
    with _LOCK:
        found = _OPENED.get(ca)
        if found is None:
            found = OperatorCa.ensure(ca.settings.data_dir, ca.hsm, ca.store, ca.clock)
            _OPENED[ca] = found
        return found


def allowed(action: Action) -> Callable[[Request], Operator]:
    """A FastAPI dependency: the authenticated operator, if its role allows ``action``."""

    def dependency(request: Request) -> Operator:
        ca: FleetCa = request.app.state.ca
        certificate = peer_certificate(request)
        if certificate is None:  # refused before the operator CA is opened (or made)
            raise missing_certificate()
        who = operator_ca(ca).authenticate(certificate, ca.clock.now())
        # The access-log line names who asked, refused or not (an identifier, no secret).
        annotate(operator=who.name, operator_role=str(who.role))
        who.require(action)
        request.state.operator = who
        return who

    return dependency
