"""The public plain-HTTP face of the authority: revocation artefacts only.

RFC 5280 §4.2.1.13 / RFC 5019 §5 practice serves CRLs and OCSP over plain ``http``: they are
signed, and https would be circular for the TLS certificate of the server that serves them.
``fleetid serve --public-http ADDR:PORT`` runs this wrapper around the authority's app on a
public address; it passes only the CRL distribution points (``/crl/…``), the CA certificates
(``/ca/…crt``) and OCSP (``/ocsp``, ``/ocsp/…``) through, and answers anything else (EST,
enrolment, V2X, the API docs) with a 404 problem: enrolment stays on the TLS listener.
"""

from __future__ import annotations

import re
from typing import Any, Final

from fleetid.api.errors import problem_response

__all__ = ["revocation_only"]

_PASSED: Final = re.compile(r"^/(crl/[^/]+(/[^/]+)?|ca/[^/]+\.crt|ocsp(/.*)?)$")

Scope = dict[str, Any]
App = Any  # an ASGI application: async (scope, receive, send) -> None


def revocation_only(app: App) -> App:
    """``app`` with every HTTP request outside the revocation routes refused (404)."""

    async def public(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not _PASSED.match(scope["path"]):
            response = problem_response(
                404,
                "not-found",
                "Not found",
                "this listener serves CRLs, CA certificates and OCSP only; enrolment is on TLS",
            )
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return public
