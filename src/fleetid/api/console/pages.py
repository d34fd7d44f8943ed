"""The console's pages and form actions (``/ui``); see ``fleetid.api.console``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from fleetid.api.admin.authentication import allowed
from fleetid.api.console.html import bar_chart, page, table, text
from fleetid.authority import operator_actions
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_ca import Action, Operator
from fleetid.authority.operator_views import (
    as_json,
    certificate_document,
    certificate_list,
    device_document,
    device_list,
    token_list,
)
from fleetid.errors import OperatorRequestError, PolicyError
from fleetid.revocation.crl import CrlPublisher
from fleetid.store.engine import database_errors
from fleetid.store.inspection import Inspection
from fleetid.store.repositories import REVOCATION_REASONS

__all__ = ["router"]

_SOON: Final = timedelta(days=30)
_ROWS: Final = 200
_MAX_FORM: Final = 4096

router = APIRouter(prefix="/ui", include_in_schema=False)
Reader = Annotated[Operator, Depends(allowed(Action.READ))]


def _ca(request: Request) -> FleetCa:
    ca: FleetCa = request.app.state.ca
    return ca


def _read(request: Request, fn: Any) -> Any:
    with database_errors(), Inspection.open(_ca(request).store.engine) as db:
        return as_json(fn(db))


def _may(who: Operator, action: Action) -> bool:
    return who.role.rank >= action.least.rank


async def _form(request: Request) -> dict[str, str]:
    """A same-origin urlencoded form (module docstring: the Origin check)."""
    origin = request.headers.get("origin")
    here = f"{request.url.scheme}://{request.url.netloc}"
    if origin != here:
        raise PolicyError("a console form is accepted from the console's own origin only")
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise OperatorRequestError("the form is too large")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _status(value: str) -> str:
    return f'<span class="{text(value)}">{text(value)}</span>'


def _certificate_rows(who: Operator, rows: list[dict[str, Any]]) -> list[list[str]]:
    reasons = "".join(f"<option>{text(r)}</option>" for r in REVOCATION_REASONS)
    out = []
    for c in rows:
        serial = text(c["serial"])
        action = "-"
        if _may(who, Action.REVOKE) and c["status"] == "valid":
            action = (
                f'<form class="inline" method="post" action="/ui/certificates/{serial}/revoke">'
                f'<select name="reason" aria-label="reason">{reasons}</select> '
                f'<button type="submit" id="revoke-{serial}">Revoke</button></form>'
            )
        out.append(
            [
                f'<a href="/ui/certificates/{serial}">{serial[:16]}…</a>',
                _status(c["status"]),
                text(c["profile"]),
                f'<a href="/ui/devices/{quote(str(c["device_id"]), safe="")}">'
                f"{text(c['device_id'])}</a>"
                if c["device_id"]
                else "-",
                text(c["not_after"]),
                action,
            ]
        )
    return out


_CERT_HEADINGS: Final = ("serial", "status", "profile", "device", "not after", "action")


@router.get("", response_class=HTMLResponse)
def overview(request: Request, who: Reader) -> HTMLResponse:
    now = _ca(request).clock.now()

    def facts(db: Inspection) -> Any:
        return {
            "devices": db.device_status_counts(),
            "certificates": db.certificate_status_counts(now),
            "soon": certificate_list(db, now, expiring_within=_SOON, limit=_ROWS),
        }

    found = _read(request, facts)
    publish = ""
    if _may(who, Action.PUBLISH):
        publish = (
            '<form method="post" action="/ui/publish">'
            '<button type="submit" id="publish">Publish CRLs now</button></form>'
        )
    body = (
        bar_chart("Devices by state", found["devices"], chart_id="devices-by-state")
        + bar_chart("Certificates by status", found["certificates"], chart_id="certs-by-status")
        + f"<h2>Expiring within {_SOON.days} days</h2>"
        + table(_CERT_HEADINGS, _certificate_rows(who, found["soon"]), row_id="expiring")
        + publish
    )
    return page("Fleet overview", body, who=who.identity())


@router.get("/certificates", response_class=HTMLResponse)
def certificates(request: Request, who: Reader, status: str | None = None) -> HTMLResponse:
    if status not in (None, "valid", "revoked", "expired"):
        raise OperatorRequestError("status is valid, revoked or expired")
    now = _ca(request).clock.now()
    rows = _read(request, lambda db: certificate_list(db, now, status=status, limit=_ROWS))
    filters = " ".join(
        f'<a href="/ui/certificates?status={s}">{s}</a>' for s in ("valid", "revoked", "expired")
    )
    body = f"<p>{filters}</p>" + table(
        _CERT_HEADINGS, _certificate_rows(who, rows), row_id="certificates"
    )
    return page("Certificates", body, who=who.identity())


@router.get("/certificates/{serial}", response_class=HTMLResponse)
def certificate(request: Request, serial: str, who: Reader) -> HTMLResponse:
    now = _ca(request).clock.now()
    c = _read(request, lambda db: certificate_document(db, serial, now))
    facts = [
        ["serial", text(c["serial"])],
        ["subject", text(c["subject"])],
        ["issuer", text(c["issuer"])],
        ["status", _status(c["status"])],
        ["reason", text(c["revocation_reason"])],
        ["revoked at", text(c["revoked_at"])],
        ["validity", f"{text(c['not_before'])} .. {text(c['not_after'])}"],
        ["sha256", text(c["sha256"])],
    ]
    audit = [
        [text(e["seq"]), text(e["logged_at"]), text(e["kind"]), text(e["body"].get("operator"))]
        for e in c["audit"]
    ]
    body = (
        table(("", ""), facts, row_id="certificate")
        + "<h2>Audit log</h2>"
        + table(("#", "logged", "kind", "operator"), audit, row_id="audit")
        + table(_CERT_HEADINGS, _certificate_rows(who, [c]), row_id="actions")
    )
    return page(f"Certificate {c['serial'][:16]}…", body, who=who.identity())


@router.get("/devices", response_class=HTMLResponse)
def devices(request: Request, who: Reader) -> HTMLResponse:
    rows = _read(request, lambda db: device_list(db, limit=_ROWS))
    cells = [
        [
            f'<a href="/ui/devices/{quote(d["device_id"], safe="")}">{text(d["device_id"])}</a>',
            text(d["status"]),
            text(d["provisioner"]),
            text(d["certificates"]),
        ]
        for d in rows
    ]
    body = table(("device", "state", "provisioner", "certificates"), cells, row_id="devices")
    return page("Devices", body, who=who.identity())


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device(request: Request, device_id: str, who: Reader) -> HTMLResponse:
    now = _ca(request).clock.now()
    d = _read(request, lambda db: device_document(db, device_id, now))
    timeline = [[text(e["at"]), text(e["event"]), text(e["detail"])] for e in d["timeline"]]
    audit = [[text(e["seq"]), text(e["logged_at"]), text(e["kind"])] for e in d["audit"]]
    body = (
        f"<p>state {text(d['status'])}, provisioner {text(d['provisioner'])}</p>"
        + "<h2>Lifecycle</h2>"
        + table(("at", "event", "detail"), timeline, row_id="timeline")
        + "<h2>Certificates</h2>"
        + table(_CERT_HEADINGS, _certificate_rows(who, d["certificates"]), row_id="certificates")
        + "<h2>Audit log</h2>"
        + table(("#", "logged", "kind"), audit, row_id="audit")
    )
    return page(f"Device {d['device_id']}", body, who=who.identity())


def _token_page(request: Request, who: Operator, issued: list[Any]) -> HTMLResponse:
    now = _ca(request).clock.now()
    rows = _read(request, lambda db: token_list(db, now, limit=_ROWS))
    body = ""
    if issued:
        credentials = [[text(t.device_id), f"<code>{text(str(t))}</code>"] for t in issued]
        body += "<h2>Issued: copy them now, they are not shown again</h2>" + table(
            ("device", "user:password"), credentials, row_id="issued"
        )
    if _may(who, Action.TOKENS):
        body += (
            '<form method="post" action="/ui/tokens">'
            '<label>device prefix <input name="device_prefix" required maxlength="100"></label> '
            '<label>count <input name="count" type="number" min="1" max="1000" value="1"></label> '
            '<button type="submit" id="issue-tokens">Issue tokens</button></form>'
        )
    cells = [
        [text(t["username"]), text(t["device_id"]), text(t["state"]), text(t["expires_at"])]
        for t in rows
    ]
    body += table(("user", "device", "state", "expires"), cells, row_id="tokens")
    return page("Enrolment tokens", body, who=who.identity())


@router.get("/tokens", response_class=HTMLResponse)
def tokens(request: Request, who: Reader) -> HTMLResponse:
    return _token_page(request, who, [])


@router.post("/tokens", response_class=HTMLResponse)
async def issue_tokens(
    request: Request, who: Annotated[Operator, Depends(allowed(Action.TOKENS))]
) -> HTMLResponse:
    form = await _form(request)
    try:
        count = int(form.get("count", "1"))
    except ValueError:
        raise OperatorRequestError("count is a number") from None
    if not 1 <= count <= 1000:
        raise OperatorRequestError("count is 1 to 1000")
    ids = operator_actions.numbered_device_ids(form.get("device_prefix", ""), count, 1)
    ca = _ca(request)
    with database_errors():
        issued = operator_actions.create_tokens(ca, who, ids, ca.settings.policy.token_ttl)
    return _token_page(request, who, issued)


@router.post("/certificates/{serial}/revoke")
async def revoke(
    request: Request, serial: str, who: Annotated[Operator, Depends(allowed(Action.REVOKE))]
) -> RedirectResponse:
    form = await _form(request)
    reason = form.get("reason", "")
    if reason not in REVOCATION_REASONS:
        raise OperatorRequestError("choose an RFC 5280 §5.3.1 reason")
    with database_errors():
        done = operator_actions.revoke_certificate(_ca(request), who, serial, reason)
    # Post/Redirect/Get: a reload of the page does not send the form again.
    return RedirectResponse(f"/ui/certificates/{quote(done.serial, safe='')}", status_code=303)


@router.post("/publish")
async def publish(
    request: Request, who: Annotated[Operator, Depends(allowed(Action.PUBLISH))]
) -> RedirectResponse:
    await _form(request)
    publisher: CrlPublisher = request.app.state.crl_publisher
    with database_errors():
        operator_actions.publish_crls(_ca(request), who, publisher)
    return RedirectResponse("/ui", status_code=303)
