"""``GET /renewal-info/{cert_id}``: when to renew a certificate, in ACME ARI's shape (RFC 9773).

The identifier is RFC 9773 §4.1's (``fleetid.formats.renewal_info.cert_id``); the answer is
§4.2's ``{"suggestedWindow": {"start", "end"}}`` with ``Retry-After`` saying when to ask again.
The window is deterministic per certificate (``fleetid.policy.renewal_window``), so any API
process answers alike and a cache may keep it. A malformed identifier is 400; an unknown
certificate 404 (problem details).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fleetid.api.openapi import problem_responses
from fleetid.authority.renewal_info import renewal_window
from fleetid.formats.renewal_info import window_json

__all__ = ["RENEWAL_INFO_PATH", "RETRY_AFTER_S", "install", "router"]

RENEWAL_INFO_PATH: Final = "/renewal-info"
RETRY_AFTER_S: Final = 6 * 3600  # RFC 9773 §4.3: ask again a few times a day

router = APIRouter(tags=["renewal"])


class SuggestedWindow(BaseModel):
    start: str
    end: str


class RenewalInfo(BaseModel):
    suggestedWindow: SuggestedWindow


def install(app: FastAPI) -> None:
    """Mount the route; it reads ``app.state.ca``."""
    app.include_router(router)


@router.get(
    RENEWAL_INFO_PATH + "/{cert_id}",
    response_model=RenewalInfo,
    responses=problem_responses(400, 404),
)
def get_renewal_info(cert_id: str, request: Request) -> Response:
    """The window in which to renew the certificate ``cert_id`` names (RFC 9773 §4.2)."""
    window = renewal_window(request.app.state.ca, cert_id)
    return JSONResponse(
        window_json(window),
        headers={
            "Retry-After": str(RETRY_AFTER_S),
            "Cache-Control": f"public, max-age={RETRY_AFTER_S}",
        },
    )
