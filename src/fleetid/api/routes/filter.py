"""The offline filter over HTTP: ``GET /revocation/filter/full`` and ``/revocation/filter/delta``.

The bodies are the files ``fleetid.revocation.publish`` keeps in ``<data-dir>/revocation/filter``
(``fleetid filter publish`` writes them), served as ``application/octet-stream`` with a strong
``ETag`` (the artefact's SHA-256, RFC 9110 §8.8.3) so that ``If-None-Match`` answers 304 with no
body, and ``Fleetid-Filter-Watermark`` naming the registry watermark. Filters are signed: the
route needs no authentication, and a CDN may cache them (``Cache-Control: public``). 404 when
nothing is published yet (problem details).
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

from fastapi import APIRouter, FastAPI, Request, Response

from fleetid.api.openapi import problem_responses
from fleetid.errors import NotFoundError
from fleetid.revocation.filter.format import parse_filter
from fleetid.revocation.publish import DELTA_FILE, FULL_FILE, filter_directory

__all__ = ["WATERMARK_HEADER", "install", "router"]

WATERMARK_HEADER: Final = "Fleetid-Filter-Watermark"
_MAX_AGE: Final = 300

router = APIRouter(tags=["revocation (offline filter)"])


def install(app: FastAPI) -> None:
    """Mount the routes; they read the filter directory of ``app.state.settings.data_dir``."""
    app.include_router(router)


@router.get(
    "/revocation/filter/{kind}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        304: {"description": "Not Modified (If-None-Match)"},
        **problem_responses(404),
    },
)
def get_filter(kind: Literal["full", "delta"], request: Request) -> Response:
    """The current signed full filter, or the cumulative delta over it."""
    directory = filter_directory(request.app.state.settings.data_dir)
    path = directory / (FULL_FILE if kind == "full" else DELTA_FILE)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no {kind} filter is published yet") from None
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={_MAX_AGE}",
        WATERMARK_HEADER: str(parse_filter(data).header.watermark),
    }
    if etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type="application/octet-stream", headers=headers)
