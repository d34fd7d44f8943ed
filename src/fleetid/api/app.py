"""``create_app(settings)``: the authority's FastAPI application, with its OpenAPI document."""

from __future__ import annotations

from fastapi import FastAPI

from fleetid import __version__
from fleetid.api import admin, console, est, openapi, writes
from fleetid.api.access_log import AccessLog
from fleetid.api.body_limits import BodyLimit
from fleetid.api.errors import install_error_handlers
from fleetid.api.head_requests import HeadAsGet
from fleetid.api.openapi import problem_responses
from fleetid.api.rate_limits import RateLimit
from fleetid.api.request_timeout import RequestTimeout
from fleetid.api.routes import butterfly, crl, enrol, etsi, fido, ocsp, renewal_info
from fleetid.api.routes import filter as filter_routes
from fleetid.api.routes import packages as package_routes
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import lifecycle_service
from fleetid.authority.preparation.for_ca import package_services
from fleetid.clock import Clock, SystemClock
from fleetid.config import Settings
from fleetid.revocation.crl import publisher_for
from fleetid.revocation.ocsp import responder_for

__all__ = ["create_app"]


def create_app(
    settings: Settings, *, clock: Clock | None = None, ca: FleetCa | None = None
) -> FastAPI:
    """The app for the fleet CA in ``settings.data_dir`` (opened, HSM activated, DB migrated)."""
    clock = clock or SystemClock()
    ca = ca or FleetCa.open(settings, clock=clock)
    app = FastAPI(
        title="fleetid authority",
        version=__version__,
        summary="Fleet device identity: EST enrolment (RFC 7030), RFC 9457 errors.",
        # FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN: not served.
        # The document itself is at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    openapi.install(app)  # every route's problem statuses; 400, not FastAPI's 422
    app.state.settings = settings
    app.state.ca = ca
    install_error_handlers(app)
    app.add_middleware(BodyLimit)  # one body limit per route, enforced while reading
    timeout = settings.limits.request_timeout
    app.add_middleware(RequestTimeout, seconds=timeout.total_seconds() if timeout else None)
    app.add_middleware(RateLimit, limits=settings.limits)  # 429 before a body is read
    app.add_middleware(HeadAsGet)
    app.add_middleware(AccessLog)  # outermost: request ID, access log, HTTP metrics
    writes.install(app, ca.store)  # enrolment's transactions are group-committed
    app.include_router(est.router)
    # EST plus attestation-gated enrolment, refresh/re-key proofs and release (/enrol/...).
    lifecycle = lifecycle_service(ca)
    enrol.install(app, lifecycle)
    # Revocation: OCSP (/ocsp) and the CRL distribution points certificates name (/crl/...).
    crl_publisher = publisher_for(ca)
    ocsp.install(app, responder_for(ca), clock, background=crl.scheduled(crl_publisher))
    crl.install(app, crl_publisher, clock)
    # The signed offline revocation filter (GET /revocation/filter/{full,delta}).
    filter_routes.install(app)
    renewal_info.install(app)  # when each certificate should be renewed (RFC 9773)
    # The V2X PKI (ETSI TS 102 941, /v2x/...) when the data dir holds one (fleetid v2x init).
    v2x = etsi.services_for(settings, clock)
    if v2x is not None:
        etsi.install(app, v2x)
        # Its butterfly authorities (RA, pseudonym CA, LA1, LA2), when init made them.
        pipeline = butterfly.services_for(settings, clock, v2x)
        if pipeline is not None:
            butterfly.install(app, pipeline)
    # FIDO registration of operators' authenticators when configured (fleetid fido init).
    operators = fido.registration_for(settings, ca.store, clock)
    if operators is not None:
        fido.install(app, operators)

    # Credential packages: ES9+ download and ES11 discovery (/preparation, /discovery).
    package_routes.install(app, package_services(ca, lifecycle))
    # The operators' admin API (/admin/...): TLS client certificates of the operator CA, roles.
    admin.install(app)
    console.install(app)  # the same operators' web console (/ui), HTML, no script

    @app.get("/health", tags=["operations"], responses=problem_responses())
    async def health() -> dict[str, str]:
        # async: a route that does no I/O is not handed to a worker thread
        return {"status": "ok"}

    return app
