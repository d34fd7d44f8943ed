"""Publishing the offline filter: a signed full or delta filter built from the store at a watermark.

The registry (``fleetid.revocation.registry``) gives the watermark ``W`` and the population the
builder needs (``docs/revocation-filter.md``), streamed in chunks:

* ``U``: every certificate with ``notBefore ≤ coverage_until`` and ``notAfter`` after the build
  time (expired certificates are left out; a verifier rejects them on expiry first);
* revoked: those in ``U`` whose revocation sequence number is at most ``W``; a revocation with a
  higher number committed while the snapshot ran is treated as not yet happened.

**Coverage rule.** ``coverage_until = build time − the policy's notBefore backdating − 1 s``.
A certificate issued after the snapshot carries ``notBefore = issue time − backdate``, so it can
never fall inside the coverage of a filter that does not know it (the one case in which a filter
answers arbitrarily).

**Signing key.** Filters are signed by the *active issuing CA's key in the HSM* (``FleetCa``'s
issuing signer), by reference, like CRLs. Every device already holds that CA certificate: each
credential it verifies chains through it to the fleet root it trusts. A device accepts a filter
whose signer key id (SHA-256 of the SPKI) names an issuing-CA certificate that it validated to
its trust anchors (``fleetid.device.verifier``). After an issuing-CA rollover the next
publication is a full filter signed by the new key; deltas never change signer.

**Deltas.** Each delta is *cumulative*: its base is the current full filter. A device that
holds the full filter and the latest delta is up to date, so a broadcast channel only has to keep
two retained artefacts (``fleetid.revocation.channels``). The publisher rebases (publishes a new
full filter) when there is none, when the signer changed, when a certificate was released from
hold since the full filter (a delta only adds revocations), or when the delta has grown past
``rebase_after`` revocations.

Each publication observes, per revocation it carries for the first time, the publication lag on
the ``filter`` channel (``fleetid.metrics``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from fleetid import metrics
from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import Clock
from fleetid.crypto.signer import Signer
from fleetid.errors import PolicyError
from fleetid.revocation.filter.builder import build_delta, build_filter
from fleetid.revocation.filter.format import (
    FilterHeader,
    FilterKind,
    certificate_id,
    key_id,
    parse_filter,
)
from fleetid.revocation.registry import RevocationRegistry
from fleetid.store.repositories import REMOVE_FROM_CRL, Store

__all__ = [
    "DELTA_FILE",
    "FILTER_DIR",
    "FULL_FILE",
    "FilterPublisher",
    "Population",
    "PublishedFilter",
    "filter_directory",
    "snapshot",
]

FILTER_DIR: Final = Path("revocation") / "filter"
FULL_FILE: Final = "full.fidf"
DELTA_FILE: Final = "delta.fidf"
_COVERAGE_MARGIN: Final = timedelta(seconds=1)


def filter_directory(data_dir: Path) -> Path:
    """Where an authority keeps its current full filter and delta (the HTTP route serves it)."""
    return data_dir / FILTER_DIR


@dataclass(frozen=True, kw_only=True)
class Population:
    """What one snapshot of the store says, as filter keys (16-byte certificate ids)."""

    watermark: int
    coverage_until: datetime
    built_at: datetime
    revoked: list[bytes]
    valid: list[bytes]


@dataclass(frozen=True, kw_only=True)
class PublishedFilter:
    """One signed artefact and the facts an operator (or a channel) needs about it."""

    data: bytes
    header: FilterHeader

    @property
    def kind(self) -> FilterKind:
        return self.header.kind

    @property
    def watermark(self) -> int:
        return self.header.watermark


def snapshot(
    registry: RevocationRegistry,
    *,
    now: datetime,
    coverage_until: datetime,
    backdate: timedelta,
    base: FilterHeader | None = None,
) -> Population:
    """The population at the current watermark, streamed from the registry.

    The registry selects by issuance time; a certificate's notBefore (what a verifier compares
    with the coverage) is its issuance time less ``backdate``, so the population is everything
    issued up to ``coverage_until + backdate``. With ``base`` (the full filter a delta follows),
    ``revoked`` holds only what the delta must encode: revoked after ``base``'s watermark, or
    issued after ``base``'s coverage.
    """
    watermark = registry.watermark()
    since_base: set[bytes] = set()
    base_issued_until: datetime | None = None
    if base is not None:
        key_ids = {issuer.id: issuer.subject_key_id for issuer in registry.issuers()}
        since_base = {
            certificate_id(key_ids[entry.issuer_id], entry.serial_number)
            for entry in registry.changes(base.watermark, watermark)
        }
        base_issued_until = base.coverage_until + backdate
    revoked: list[bytes] = []
    valid: list[bytes] = []
    for chunk in registry.population(
        watermark=watermark, issued_until=coverage_until + backdate, unexpired_at=now
    ):
        for cid, issued_at, is_revoked in zip(
            chunk.certificate_ids, chunk.issued_at, chunk.revoked, strict=True
        ):
            if not is_revoked:
                valid.append(cid)
            elif base_issued_until is None or cid in since_base or issued_at > base_issued_until:
                revoked.append(cid)
    return Population(
        watermark=watermark,
        coverage_until=coverage_until,
        built_at=now,
        revoked=revoked,
        valid=valid,
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FilterPublisher:
    """Builds and keeps the current full filter and cumulative delta of one authority.

    With ``directory`` the two artefacts are also written there (atomically), where
    ``fleetid filter publish`` and the ``/revocation/filter`` route find them.
    """

    def __init__(
        self,
        store: Store,
        signer: Signer,
        *,
        clock: Clock,
        backdate: timedelta,
        directory: Path | None = None,
        rebase_after: int = 10_000,
    ) -> None:
        self._registry = RevocationRegistry(store)
        self._signer = signer
        self._clock = clock
        self._backdate = backdate
        self._directory = directory
        self._rebase_after = rebase_after
        self._full: bytes | None = None
        self._delta: bytes | None = None
        if directory is not None:
            full, delta = directory / FULL_FILE, directory / DELTA_FILE
            self._full = full.read_bytes() if full.exists() else None
            self._delta = delta.read_bytes() if delta.exists() and self._full else None

    @classmethod
    def for_ca(
        cls, ca: FleetCa, *, directory: Path | None = None, rebase_after: int = 10_000
    ) -> FilterPublisher:
        """The publisher of ``ca``: its store, its issuing key, its clock and backdating."""
        return cls(
            ca.store,
            ca.issuing.signer,
            clock=ca.clock,
            backdate=ca.settings.policy.backdate,
            directory=directory,
            rebase_after=rebase_after,
        )

    def use_signer(self, signer: Signer) -> None:
        """After an issuing-CA rollover: the next publication is a full filter under ``signer``."""
        self._signer = signer

    @property
    def full(self) -> bytes | None:
        """The current full filter, if one was published."""
        return self._full

    @property
    def delta(self) -> bytes | None:
        """The current cumulative delta (its base is ``full``), if one was published."""
        return self._delta

    def coverage_until(self, now: datetime) -> datetime:
        """The coverage rule: before any notBefore a certificate issued after ``now`` can carry."""
        return now - self._backdate - _COVERAGE_MARGIN

    def publish_full(self) -> PublishedFilter:
        """A new full filter at the current watermark; the delta starts again from it."""
        population = self._population(base=None)
        data = build_filter(
            population.revoked,
            population.valid,
            watermark=population.watermark,
            coverage_until=population.coverage_until,
            signer=self._signer,
        )
        self._full, self._delta = data, None
        if self._directory is not None:
            (self._directory / DELTA_FILE).unlink(missing_ok=True)
            _write_atomic(self._directory / FULL_FILE, data)
        return PublishedFilter(data=data, header=parse_filter(data).header)

    def publish_delta(self) -> PublishedFilter:
        """A cumulative delta over the current full filter, at the current watermark."""
        if self._full is None:
            raise PolicyError("no full filter published yet: publish a full filter first")
        base = parse_filter(self._full).header
        if base.signer_key_id != key_id(self._signer.public_key()):
            raise PolicyError("the signer changed since the full filter: publish a full filter")
        if self._pending(base)[1]:
            raise PolicyError("a certificate was released from hold: publish a full filter")
        population = self._population(base=base)
        data = build_delta(
            population.revoked,
            population.valid,
            base=self._full,
            watermark=population.watermark,
            coverage_until=population.coverage_until,
            signer=self._signer,
        )
        self._delta = data
        if self._directory is not None:
            _write_atomic(self._directory / DELTA_FILE, data)
        return PublishedFilter(data=data, header=parse_filter(data).header)

    def _population(self, *, base: FilterHeader | None) -> Population:
        """The registry's revoked and valid sets now (since ``base`` for a delta), checked to
        move the watermark and the coverage forward."""
        now = self._clock.now()
        population = snapshot(
            self._registry,
            now=now,
            coverage_until=self.coverage_until(now),
            backdate=self._backdate,
            base=base,
        )
        published = self._check_forward(population.watermark, population.coverage_until)
        if population.watermark > published:
            changes = self._registry.changes(published, population.watermark)
            metrics.observe_publication_lag("filter", now, (e.revoked_at for e in changes))
        return population

    def publish(self) -> PublishedFilter:
        """A delta when one can follow the current full filter, otherwise a new full filter."""
        if self._full is None:
            return self.publish_full()
        base = parse_filter(self._full).header
        if base.signer_key_id != key_id(self._signer.public_key()):
            return self.publish_full()
        pending, released = self._pending(base)
        if released or pending >= self._rebase_after:
            return self.publish_full()
        return self.publish_delta()

    def _pending(self, base: FilterHeader) -> tuple[int, bool]:
        """Changes since ``base``, and whether one was a release from hold: a delta cannot
        express one (the verifier reads a delta only where its base says valid), so a release
        makes the next publication a full filter."""
        pending, released = 0, False
        for entry in self._registry.changes(base.watermark, self._registry.watermark()):
            pending += 1
            released = released or entry.reason == REMOVE_FROM_CRL
        return pending, released

    def _check_forward(self, watermark: int, coverage_until: datetime) -> int:
        """Refuse to go back; the watermark published so far (0: nothing yet)."""
        head = self._delta or self._full
        if head is None:
            return 0
        header = parse_filter(head).header
        if watermark < header.watermark or coverage_until < header.coverage_until:
            raise PolicyError(
                f"the store is at watermark {watermark}, behind the published {header.watermark}"
            )
        return header.watermark
