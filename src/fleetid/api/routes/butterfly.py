"""Butterfly batches and linked CRLs over HTTP (IEEE 1609.2.1 §6.3.5, §7).

The batch request is the raw COER body of a POST, as for the other ITS messages
(``application/x-its-request``): signed by the vehicle's EC, encrypted to the RA. The RA answers
its acknowledgement encrypted under the request's AES key. The vehicle downloads the batch by its
id (the HashedId8 of the request as sent, hex): it is the capability, and every entry in it is
encrypted to a cocoon key only the vehicle can compute. Errors are problem documents: a request
the RA cannot open or verify is 400, a replayed or stale one or a blocked device 403
(``BatchRefusedError``), a download before the batch is issued 404 (``BatchPendingError``,
retry later).

The authorities reach each other on routes of the same app (``fleetid.authority.v2x.hops``):
each request is 1609.2 signed data by the calling authority; a signer other than the one the
route expects is 401 (``AuthorityHopError``), a replayed or stale message 403. A misbehaviour
report is signed likewise by the misbehaviour authority ``fleetid v2x init`` certified
(``fleetid.authority.v2x.misbehaviour_reports``): a certificate the pseudonym CA did not issue is
404, one of a period not begun 403; an accepted one revokes the vehicle, publishes the linked
CRL and blocks its next batch.

Routes (under ``/v2x``)::

    POST /v2x/ra/batch                  EeRaCertRequest (signed, encrypted) -> RaEeCertAck;
                                        or ETSI TS 102 941 V2 ButterflyAuthorizationRequestMessage
                                        -> ButterflyAuthorizationResponseMessage (RaEeCertInfo)
    GET  /v2x/ra/batch/{batch_id}       RaEeCertBatch (application/octet-stream)
    POST /v2x/ra/download               ETSI ButterflyAtDownloadRequestMessage -> RaEeCertBatch
                                        encrypted under the request's AES key
    GET  /v2x/linked-crl/{full|delta}   the CRACA's current linked CRL (application/x-its-crl)
    POST /v2x/aca/batch                 RaAcaCertRequestBatch signed by the RA -> AcaRaResponse
                                        signed by the CA
    POST /v2x/la/{1|2}/request          RaLaRequest signed by the RA -> LaRaResponse
    POST /v2x/la/{1|2}/ca-key           AcaLaRequest signed by the CA -> LaAcaResponse
    POST /v2x/ma/report                 MaReport signed by the MA -> MaReportResponse signed
                                        by the pseudonym CA
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from fleetid.api.openapi import problem_responses
from fleetid.api.routes.etsi import ITS_RESPONSE, V2X_PREFIX, V2xServices, its_body
from fleetid.authority.v2x.butterfly_on_disk import ButterflyStore, has_butterfly, open_butterfly
from fleetid.authority.v2x.hop_services import CaHop, LaHop, hop_routes, issue_in_process
from fleetid.authority.v2x.hops import HopReceiver
from fleetid.authority.v2x.misbehaviour_reports import MisbehaviourDesk
from fleetid.authority.v2x.ra import DEFAULT_DELIVERED_RETENTION, RegistrationAuthority
from fleetid.clock import Clock
from fleetid.config import Settings
from fleetid.errors import EncodingError, NotFoundError
from fleetid.revocation.linked_crl_channel import (
    LINKED_CRL_DELTA_FILE,
    LINKED_CRL_FULL_FILE,
    LinkedCrlPublisher,
)
from fleetid.store.butterfly_state import la_seen_requests, pca_seen_requests

__all__ = ["BATCH_MEDIA_TYPE", "ButterflyServices", "install", "router", "services_for"]

BATCH_MEDIA_TYPE: Final = "application/octet-stream"
_CRL_MEDIA_TYPE: Final = "application/x-its-crl"

router = APIRouter(prefix=V2X_PREFIX, tags=["V2X butterfly batches (IEEE 1609.2.1)"])


@dataclass(kw_only=True)
class ButterflyServices:
    """The RA, where downloads come from (the RA itself or the shared queue), the CRL files;
    the CA's and the LAs' hop routes; ``issue_pending`` runs before a download (a deployment
    that issues in process: the RA forwards what is pending, all vehicles' requests shuffled)."""

    ra: RegistrationAuthority | None = None
    download: Callable[[bytes], bytes] | None = None
    linked_crl_directory: Path | None = None
    ca: CaHop | None = None
    las: dict[int, LaHop] = field(default_factory=dict)
    issue_pending: Callable[[], object] | None = None
    misbehaviour: MisbehaviourDesk | None = None


def services_for(settings: Settings, clock: Clock, v2x: V2xServices) -> ButterflyServices | None:
    """The butterfly authorities ``fleetid v2x init`` configured in ``settings.data_dir``,
    beside the hierarchy's EA (whose ECs the RA checks), or None when there are none or the
    key store is locked. The RA forwards what is pending to the CA in process before each
    download; the CA and the LAs answer their hop routes too."""
    data_dir = Path(settings.data_dir)
    if v2x.ea is None or settings.v2x_passphrase is None or not has_butterfly(data_dir):
        return None
    store = open_butterfly(
        data_dir,
        passphrase=settings.v2x_passphrase,
        clock=clock,
        ec_lookup=v2x.ea.current_enrolment_credential,
        delivered_retention=settings.v2x_delivered_retention or DEFAULT_DELIVERED_RETENTION,
    )
    engines = {"pca": store.engines.ca, "la1": store.engines.la1, "la2": store.engines.la2}
    ca, las = hop_routes(
        store.authorities,
        clock,
        seen=lambda owner: (pca_seen_requests if owner == "pca" else la_seen_requests)(
            engines[owner]
        ),
    )
    return ButterflyServices(
        ra=store.authorities.ra,
        linked_crl_directory=store.linked_crl_directory,
        ca=ca,
        las=las,
        issue_pending=issue_in_process(store.authorities, clock),
        misbehaviour=_misbehaviour_desk(store, clock),
    )


def _misbehaviour_desk(store: ButterflyStore, clock: Clock) -> MisbehaviourDesk | None:
    """The report route's service, when ``init`` certified a misbehaviour authority: the
    pseudonym CA signs the linked CRL (it is the CRACA) into the served directory, after
    taking back the chains its earlier CRLs there revoke."""
    if store.misbehaviour_certificate is None:
        return None
    ca = store.authorities.ca
    publisher = LinkedCrlPublisher(
        signer=ca.keys.signer,
        craca_certificate=ca.keys.certificate,
        directory=store.linked_crl_directory,
    )
    publisher.restore()
    return MisbehaviourDesk(
        authorities=store.authorities,
        from_ma=HopReceiver(
            sender=store.misbehaviour_certificate,
            seen=pca_seen_requests(store.engines.ca),
            clock=clock,
        ),
        publisher=publisher,
        certificates_per_period=store.authorities.ra.certificates_per_period,
        clock=clock,
    )


def install(app: FastAPI, services: ButterflyServices) -> None:
    app.state.butterfly = services
    app.include_router(router)


async def _services(request: Request) -> ButterflyServices:
    services: ButterflyServices = request.app.state.butterfly
    return services


Services = Annotated[ButterflyServices, Depends(_services)]


@router.post("/ra/batch", response_class=Response, responses=problem_responses(403, 404, 415))
async def batch_request(request: Request, services: Services) -> Response:
    """A butterfly batch request; the acknowledgement, encrypted to the request's key."""
    if services.ra is None:
        raise NotFoundError("this deployment has no registration authority")
    return await _answer(request, services.ra.handle_batch_request)


async def _answer(request: Request, handle: Callable[[bytes], bytes]) -> Response:
    """The ITS request body through ``handle`` (in a worker thread), as an ITS response."""
    body = await its_body(request)
    return Response(await run_in_threadpool(handle, body), media_type=ITS_RESPONSE)


@router.post("/ra/download", response_class=Response, responses=problem_responses(403, 404, 415))
async def etsi_download(request: Request, services: Services) -> Response:
    """ETSI TS 102 941 V2's download request (signed by the EC, encrypted to the RA); the
    batch's RaEeCertBatch encrypted under the request's AES key, once it is issued."""
    ra = services.ra
    if ra is None:
        raise NotFoundError("this deployment has no registration authority")
    if services.issue_pending is not None:
        await run_in_threadpool(services.issue_pending)
    return await _answer(request, ra.handle_download_request)


@router.get("/ra/batch/{batch_id}", response_class=Response, responses=problem_responses(404))
def batch_download(batch_id: str, services: Services) -> Response:
    """The batch's RaEeCertBatch, once every certificate of it is issued."""
    try:
        identifier = bytes.fromhex(batch_id)
    except ValueError:
        raise EncodingError("a batch id is 16 hex digits") from None
    if len(identifier) != 8:
        raise EncodingError("a batch id is 16 hex digits")
    if services.issue_pending is not None:
        services.issue_pending()
    download = services.download
    if download is None:
        if services.ra is None:
            raise NotFoundError("this deployment has no registration authority")
        download = services.ra.download
    return Response(download(identifier), media_type=BATCH_MEDIA_TYPE)


@router.get("/linked-crl/{kind}", response_class=Response, responses=problem_responses(404))
def linked_crl(kind: Literal["full", "delta"], services: Services) -> Response:
    """The current full linked CRL, or the cumulative delta over it."""
    if services.linked_crl_directory is None:
        raise NotFoundError("this deployment publishes no linked CRL")
    name = LINKED_CRL_FULL_FILE if kind == "full" else LINKED_CRL_DELTA_FILE
    path = services.linked_crl_directory / name
    if not path.exists():
        raise NotFoundError(f"no {kind} linked CRL published")
    return Response(path.read_bytes(), media_type=_CRL_MEDIA_TYPE)


@router.post("/aca/batch", response_class=Response, responses=problem_responses(401, 403, 404, 415))
async def aca_batch(request: Request, services: Services) -> Response:
    """The RA's shuffled batch for the pseudonym CA; the CA's signed answers."""
    if services.ca is None:
        raise NotFoundError("this deployment has no pseudonym CA")
    return await _answer(request, services.ca.handle)


def _la(services: ButterflyServices, number: int) -> LaHop:
    la = services.las.get(number)
    if la is None:
        raise NotFoundError(f"this deployment has no linkage authority {number}")
    return la


@router.post(
    "/la/{number}/{hop}", response_class=Response, responses=problem_responses(401, 403, 404, 415)
)
async def la_hop(
    number: int, hop: Literal["request", "ca-key"], request: Request, services: Services
) -> Response:
    """An LA's routes: the RA asks for a new chain or a period's pre-linkage values
    (``request``), the CA for the key they share, encrypted to the CA (``ca-key``)."""
    la = _la(services, number)
    return await _answer(request, la.handle_ra if hop == "request" else la.handle_ca)


@router.post("/ma/report", response_class=Response, responses=problem_responses(401, 403, 404, 415))
async def misbehaviour_report(request: Request, services: Services) -> Response:
    """A misbehaviour authority's signed report of one pseudonym certificate; the pseudonym
    CA's signed answer once the vehicle is revoked and the linked CRL published."""
    if services.misbehaviour is None:
        raise NotFoundError("this deployment has no misbehaviour authority")
    return await _answer(request, services.misbehaviour.handle)
