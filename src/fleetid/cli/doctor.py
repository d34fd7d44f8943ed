"""``fleetid doctor``: is this authority fit to run? (docs/operations.md, "Doctor").

Each check says ``ok``, ``warn`` or ``FAIL`` with a reason; the command exits non-zero when any
check fails, and its last line names the failing ones:

* ``database``: reachable, and migrated to this fleetid's Alembic head (doctor never migrates);
* ``hsm``: the CA's HSM opens and activates, and holds every key the database names (each CA
  generation's, and the audit log's);
* ``public-url``: certificates would name a URL relying parties can reach (not loopback);
* ``clock``: not behind the newest audit-log entry (a clock that went back would backdate what
  it signs) and inside the issuing CA's validity;
* ``ca-expiry`` and ``certificates``: the active root and issuing CA are not within
  ``--ca-within`` (365d) of expiry; how many device certificates expire within ``--within``;
* ``revocation``: every CRL shard of the issuing CA has a published full CRL whose nextUpdate
  is still ahead (RFC 5280 §5.1.2.5).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from fleetid.cli.output import (
    add_authority_arguments,
    add_json_flag,
    emit,
    format_span,
    parse_span,
)

__all__ = ["Check", "register"]

OK: Final = "ok"
WARN: Final = "warn"
FAIL: Final = "FAIL"
# An audit entry this far after the clock still counts as the clock's own (two hosts' skew).
_CLOCK_TOLERANCE: Final = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check the database, HSM, public URL, clock, expiries and CRLs"
    )
    add_authority_arguments(parser)
    parser.add_argument(
        "--within",
        type=parse_span,
        default=timedelta(days=7),
        metavar="D",
        help="warn about device certificates expiring within D (7d)",
    )
    parser.add_argument(
        "--ca-within",
        type=parse_span,
        default=timedelta(days=365),
        metavar="D",
        help="fail when the root or issuing CA expires within D (365d)",
    )
    add_json_flag(parser)
    parser.set_defaults(func=_doctor)


class _Doctor:
    """The checks, in order; each later one uses what the earlier ones found."""

    def __init__(self, args: argparse.Namespace, now: datetime) -> None:
        self.args = args
        self.now = now
        self.settings: Any = None
        self.engine: Any = None
        self.migrated = False
        self.generations: list[Any] = []

    def run(self) -> Iterator[Check]:
        from fleetid.cli.output import load_settings
        from fleetid.errors import FleetIdError

        try:
            self.settings = load_settings(self.args)
        except FleetIdError as exc:
            yield Check(name="config", status=FAIL, detail=str(exc))
            return
        source = self.settings.config_file or "no config file"
        yield Check(name="config", status=OK, detail=f"{source}")
        steps: tuple[Callable[[], Check], ...] = (
            self.database,
            self.hsm,
            self.public_url,
            self.clock,
            self.ca_expiry,
            self.certificates,
            self.revocation,
        )
        try:
            for step in steps:
                yield step()
        finally:
            if self.engine is not None:
                self.engine.dispose()

    def database(self) -> Check:
        from fleetid.errors import FleetIdError
        from fleetid.store.engine import database_errors, engine_from_settings
        from fleetid.store.inspection import Inspection
        from fleetid.store.migrate import current_revision, head_revision

        try:
            with database_errors():
                self.engine = engine_from_settings(self.settings)
                current = current_revision(self.engine)
        except FleetIdError as exc:
            self.engine = None
            return Check(name="database", status=FAIL, detail=str(exc))
        head = head_revision()
        if current != head:
            return Check(
                name="database",
                status=FAIL,
                detail=f"schema at {current or 'nothing'}, this fleetid needs {head}"
                " (any fleetid command that opens the CA migrates it)",
            )
        self.migrated = True
        with Inspection.open(self.engine) as db:
            self.generations = db.ca_generations()
        return Check(
            name="database",
            status=OK,
            detail=f"{self.engine.url.render_as_string()} at {head}",  # password masked
        )

    def hsm(self) -> Check:
        from fleetid.authority.ca_audit import AUDIT_KEY_LABEL
        from fleetid.authority.ca_hsm import open_ca_hsm
        from fleetid.authority.ca_init import ACTIVATION_FILE, CA_DIR
        from fleetid.errors import FleetIdError

        ca_dir = self.settings.data_dir / CA_DIR
        try:
            kek = bytes.fromhex((ca_dir / ACTIVATION_FILE).read_text().strip())
            hsm = open_ca_hsm(self.settings, ca_dir, kek)
        except (OSError, ValueError, KeyError, FleetIdError) as exc:
            return Check(name="hsm", status=FAIL, detail=f"cannot open the CA's HSM: {exc}")
        try:
            present = set(hsm.labels())
        finally:
            hsm.lock()
        wanted = {g.hsm_label for g in self.generations} | {AUDIT_KEY_LABEL}
        missing = sorted(wanted - present)
        if missing:
            return Check(name="hsm", status=FAIL, detail=f"keys missing: {', '.join(missing)}")
        return Check(name="hsm", status=OK, detail=f"{len(wanted)} keys present")

    def public_url(self) -> Check:
        from fleetid.errors import ConfigError

        try:
            url = self.settings.certificate_base_url
        except ConfigError as exc:
            return Check(name="public-url", status=FAIL, detail=str(exc))
        return Check(name="public-url", status=OK, detail=url)

    def _active(self, role: str) -> Any:
        return next((g for g in self.generations if g.role == role and g.active), None)

    def clock(self) -> Check:
        from fleetid.store.inspection import Inspection

        if not self.migrated:
            return Check(name="clock", status=WARN, detail="not checked: no database")
        with Inspection.open(self.engine) as db:
            latest = db.latest_audit_entry()
        if latest is not None:
            logged = datetime.fromisoformat(latest.logged_at.replace("Z", "+00:00"))
            if logged > self.now + _CLOCK_TOLERANCE:
                return Check(
                    name="clock",
                    status=FAIL,
                    detail=f"now is {self.now.isoformat()}, before audit entry #{latest.seq}"
                    f" at {latest.logged_at}: the clock went back",
                )
        issuing = self._active("issuing")
        if issuing is not None and not issuing.not_before <= self.now <= issuing.not_after:
            return Check(
                name="clock", status=FAIL, detail="now is outside the issuing CA's validity"
            )
        return Check(name="clock", status=OK, detail=self.now.isoformat(timespec="seconds"))

    def ca_expiry(self) -> Check:
        if not self.migrated:
            return Check(name="ca-expiry", status=WARN, detail="not checked: no database")
        soon = [
            f"{g.subject} on {g.not_after.date().isoformat()}"
            for g in (self._active("root"), self._active("issuing"))
            if g is not None and g.not_after <= self.now + self.args.ca_within
        ]
        if soon:
            return Check(
                name="ca-expiry",
                status=FAIL,
                detail="expiring: " + "; ".join(soon) + " (fleetid ca rollover)",
            )
        return Check(name="ca-expiry", status=OK, detail="root and issuing CA well inside validity")

    def certificates(self) -> Check:
        from fleetid.store.inspection import Inspection

        if not self.migrated:
            return Check(name="certificates", status=WARN, detail="not checked: no database")
        with Inspection.open(self.engine) as db:
            expiring = db.certificates(now=self.now, expiring_within=self.args.within)
        if expiring:
            return Check(
                name="certificates",
                status=WARN,
                detail=f"{len(expiring)} expire within {format_span(self.args.within)}"
                " (fleetid cert list --expiring-within)",
            )
        return Check(
            name="certificates",
            status=OK,
            detail=f"none expire within {format_span(self.args.within)}",
        )

    def revocation(self) -> Check:
        from fleetid.authority.urls import CRL_SHARDS
        from fleetid.store.inspection import Inspection

        issuing = self._active("issuing") if self.migrated else None
        if issuing is None:
            return Check(name="revocation", status=WARN, detail="not checked: no issuing CA")
        with Inspection.open(self.engine) as db:
            next_updates = db.crl_next_updates(issuing.id)
        missing = sorted(set(range(CRL_SHARDS)) - set(next_updates))
        stale = sorted(shard for shard, when in next_updates.items() if when <= self.now)
        if missing or stale:
            parts = []
            if missing:
                parts.append(f"{len(missing)} CRL shards never published")
            if stale:
                parts.append(f"shards {', '.join(map(str, stale))} past nextUpdate")
            return Check(
                name="revocation",
                status=FAIL,
                detail="; ".join(parts) + " (fleetid serve publishes them; fleetid crl publish)",
            )
        return Check(
            name="revocation",
            status=OK,
            detail=f"{CRL_SHARDS} CRL shards fresh until {min(next_updates.values()).isoformat()}",
        )


def _doctor(args: argparse.Namespace) -> int:
    from fleetid.clock import SystemClock

    checks = list(_Doctor(args, SystemClock().now()).run())
    failing = [c.name for c in checks if c.status == FAIL]

    def text() -> Iterator[str]:
        for check in checks:
            yield f"{check.status:<4}  {check.name:<12}  {check.detail}"
        if not failing:
            yield "all checks pass"

    emit(args, {"ok": not failing, "failing": failing, "checks": checks}, text)
    if failing:
        print(f"fleetid: doctor: failing checks: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0
