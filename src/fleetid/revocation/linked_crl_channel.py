"""Linked CRLs on the offline channel: the CRACA's full and delta CRLs, and the receiver's end.

``LinkedCrlPublisher`` keeps the revoked device chains (their two seeds at the period they were
revealed) and publishes IEEE 1609.2 linked CRLs signed by the CRACA, like the filter publisher
(``fleetid.revocation.publish``): a **full** CRL of every entry, and a **cumulative delta** of
the entries added since that full one. Each publication moves the seeds forward to the CRL's
iRev (the current period), so a CRL never reveals a seed older than it must: certificates of
periods before iRev stay unlinkable. A new period, or a delta grown past ``rebase_after``
entries, makes the next publication full.

The watermark is (iRev, indexWithinI): each publication of a period has the next index, a full
CRL and its deltas share the counter, and a receiver (``LinkedCrlReceiver``) refuses anything not
newer than what it holds of that kind, or a delta older than its full CRL (a rollback). Both
artefacts travel on the same channels as the filter: the in-process broadcast, MQTT retained
messages (``kind_of=linked_crl_kind``), and files served over HTTP (``full.crl``,
``delta.crl``).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from fleetid.crypto.linkage import linkage_seed_at
from fleetid.crypto.signer import Signer
from fleetid.errors import VerificationError
from fleetid.formats.ieee1609 import Certificate, time32
from fleetid.formats.ieee1609.crl import (
    CrlContents,
    IMaxGroup,
    IndividualRevocation,
    JMaxGroup,
    LaGroup,
    LinkedCrl,
    open_secured_crl,
    sign_crl,
)
from fleetid.revocation.filter.format import FilterKind
from fleetid.revocation.linkage import DEFAULT_MAX_FORWARD, LinkedRevocation, LinkedRevocationSet
from fleetid.revocation.linked_crl import linked_revocations

__all__ = [
    "LINKED_CRL_DELTA_FILE",
    "LINKED_CRL_FULL_FILE",
    "LinkedCrlPublisher",
    "LinkedCrlReceiver",
    "linked_crl_kind",
]

LINKED_CRL_FULL_FILE: Final = "full.crl"
LINKED_CRL_DELTA_FILE: Final = "delta.crl"


def linked_crl_kind(data: bytes) -> FilterKind:
    """FULL or DELTA for a SecuredCrl (what the channels retain it as); not verified."""
    return FilterKind.DELTA if open_secured_crl(data).contents.delta else FilterKind.FULL


class LinkedCrlPublisher:
    """The CRACA's linked CRL series: revoke chains, publish full and delta CRLs."""

    def __init__(
        self,
        *,
        signer: Signer,
        craca_certificate: Certificate,
        crl_series: int = 0,
        next_crl: timedelta = timedelta(days=1),
        rebase_after: int = 64,
        directory: Path | None = None,
    ) -> None:
        self._signer = signer
        self._craca = craca_certificate
        self._series = crl_series
        self._next_crl = next_crl
        self._rebase_after = rebase_after
        self._directory = directory
        self._entries: list[LinkedRevocation] = []
        self._in_full = 0  # how many entries the current full CRL holds
        self._full_period: int | None = None
        self._index = 0
        self._rebase = False  # the next publication must be full (after ``restore``)

    def revoke(
        self,
        *,
        i: int,
        la1_id: bytes,
        la2_id: bytes,
        seed1: bytes,
        seed2: bytes,
        j_max: int,
        i_max: int,
    ) -> None:
        """Add a chain: its seeds of period ``i``, ``j_max`` certificates a period, up to
        period ``i_max``."""
        self._entries.append(
            LinkedRevocation(  # checks sizes and ranges
                i_rev=i,
                la1_id=la1_id,
                la2_id=la2_id,
                seed1=seed1,
                seed2=seed2,
                j_max=j_max,
                i_max=i_max,
            )
        )

    def revokes(self, *, i: int, la1_id: bytes, la2_id: bytes, seed1: bytes) -> bool:
        """Whether an entry already covers the chain whose LA1 seed of period ``i`` is
        ``seed1`` (the same chain revealed again, at its period or a later one)."""
        return any(
            entry.la1_id == la1_id
            and entry.la2_id == la2_id
            and entry.i_rev <= i
            and linkage_seed_at(entry.seed1, la1_id, i - entry.i_rev) == seed1
            for entry in self._entries
        )

    def restore(self) -> int:
        """Take back the entries of the full and delta CRLs this publisher wrote to its
        directory (each verified under the CRACA's certificate), so that a restarted CRACA
        publishes every chain it had revoked; the number of entries restored. The next
        publication is full."""
        if self._directory is None:
            return 0
        restored: list[LinkedRevocation] = []
        for name in (LINKED_CRL_FULL_FILE, LINKED_CRL_DELTA_FILE):
            path = self._directory / name
            if path.exists():
                contents = open_secured_crl(path.read_bytes()).verify(self._craca)
                restored.extend(linked_revocations(contents))
                body = contents.body
                if isinstance(body, LinkedCrl) and (
                    self._full_period is None
                    or (self._full_period, self._index) < (body.i_rev, body.index_within_i)
                ):
                    # Keep the watermark moving forward: receivers refuse an older one.
                    self._full_period, self._index = body.i_rev, body.index_within_i
        for entry in restored:
            if not self.revokes(
                i=entry.i_rev, la1_id=entry.la1_id, la2_id=entry.la2_id, seed1=entry.seed1
            ):
                self._entries.append(entry)
        self._in_full = 0
        self._rebase = True
        return len(self._entries)

    def publish(self, now: datetime, current_period: int) -> bytes:
        """The next SecuredCrl: full on a new period or a long delta, else a cumulative delta."""
        if any(entry.i_rev > current_period for entry in self._entries):
            raise VerificationError("a chain revealed for a period after the current one")
        delta_size = len(self._entries) - self._in_full
        full = (
            self._rebase or self._full_period != current_period or delta_size > self._rebase_after
        )
        self._rebase = False
        if self._full_period != current_period:
            self._index = 0
        else:
            self._index += 1
        chosen = self._entries if full else self._entries[self._in_full :]
        if full:
            self._in_full, self._full_period = len(self._entries), current_period
        data = self._sign(chosen, now, current_period, delta=not full)
        if self._directory is not None:
            _write(
                self._directory / (LINKED_CRL_DELTA_FILE if not full else LINKED_CRL_FULL_FILE),
                data,
            )
            if full:
                (self._directory / LINKED_CRL_DELTA_FILE).unlink(missing_ok=True)
        return data

    def _sign(
        self, entries: list[LinkedRevocation], now: datetime, i_rev: int, *, delta: bool
    ) -> bytes:
        groups: dict[tuple[int, bytes, bytes, int], list[IndividualRevocation]] = {}
        for entry in entries:
            if entry.i_max < i_rev:
                continue  # its certificates have all expired
            steps = i_rev - entry.i_rev
            groups.setdefault((entry.j_max, entry.la1_id, entry.la2_id, entry.i_max), []).append(
                IndividualRevocation(
                    seed1=linkage_seed_at(entry.seed1, entry.la1_id, steps),
                    seed2=linkage_seed_at(entry.seed2, entry.la2_id, steps),
                )
            )
        individual = tuple(
            JMaxGroup(
                j_max=j_max,
                la_groups=(
                    LaGroup(
                        la1_id=la1,
                        la2_id=la2,
                        i_max_groups=(IMaxGroup(i_max=i_max, revocations=tuple(revocations)),),
                    ),
                ),
            )
            for (j_max, la1, la2, i_max), revocations in sorted(groups.items())
        )
        issued = time32(now)
        contents = CrlContents(
            crl_series=self._series,
            craca_id=self._craca.hashed_id8,
            issue_date=issued,
            next_crl=issued + int(self._next_crl.total_seconds()),
            body=LinkedCrl(i_rev=i_rev, index_within_i=self._index, individual=individual),
            delta=delta,
        )
        return sign_crl(contents, self._signer, self._craca)


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (a reader sees the old CRL or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".crl-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


class LinkedCrlReceiver:
    """A receiver's linked CRLs: verified, watermark-checked, expanded once per period."""

    def __init__(
        self,
        craca_certificate: Certificate,
        *,
        max_forward: int = DEFAULT_MAX_FORWARD,
    ) -> None:
        self._craca = craca_certificate
        self._max_forward = max_forward
        self._full: CrlContents | None = None
        self._delta: CrlContents | None = None
        self._sets: dict[int, LinkedRevocationSet] = {}

    @staticmethod
    def _mark(contents: CrlContents) -> tuple[int, int]:
        body = contents.body
        if not isinstance(body, LinkedCrl):
            raise VerificationError("a hash-based CRL is not a linked CRL")
        return body.i_rev, body.index_within_i

    def load(self, data: bytes) -> CrlContents:
        """Verify and keep a full or delta linked CRL.

        Raises ``EncodingError``/``ProfileError`` for bytes that are not one, and
        ``VerificationError`` for another CRACA's, a bad signature, or a rollback.
        """
        contents = open_secured_crl(data).verify(self._craca)
        mark = self._mark(contents)
        if contents.delta:
            if self._full is None or mark <= self._mark(self._full):
                raise VerificationError("a delta linked CRL not newer than its full CRL")
            if self._delta is not None and mark <= self._mark(self._delta):
                raise VerificationError("a delta linked CRL older than the one held")
            if mark[0] != self._mark(self._full)[0]:
                raise VerificationError("a delta linked CRL of another period than its full CRL")
            self._delta = contents
        else:
            if self._full is not None and mark <= self._mark(self._full):
                raise VerificationError("a full linked CRL older than the one held")
            self._full = contents
            if self._delta is not None and self._mark(self._delta) <= mark:
                self._delta = None
        self._sets.clear()
        return contents

    def revocation_set(self, current_period: int) -> LinkedRevocationSet:
        """Every entry held, for a receiver whose own period is ``current_period``."""
        revocation_set = self._sets.get(current_period)
        if revocation_set is None:
            entries = [
                entry
                for contents in (self._full, self._delta)
                if contents is not None
                for entry in linked_revocations(contents)
            ]
            revocation_set = LinkedRevocationSet(
                entries, current_period=current_period, max_forward=self._max_forward
            )
            self._sets[current_period] = revocation_set
        return revocation_set

    def check(self, current_period: int, i: int, linkage_value: bytes) -> None:
        """Raise ``CertificateRevokedError`` if pseudonym (i, lv) is revoked."""
        self.revocation_set(current_period).check(i, linkage_value)
