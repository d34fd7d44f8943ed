"""X.509 CRLs for intermittently connected devices: sharded full CRLs plus delta CRLs (RFC 5280).

Every end-entity certificate names, in its cRLDistributionPoints (§4.2.1.13), the CRL of its
*shard* (``fleetid.authority.fleet_ca.crl_shard``: serial mod ``CRL_SHARDS``), the Let's Encrypt
model: no CRL grows beyond its share of the fleet. For each issuing-CA generation and shard the
publisher keeps one CRL number sequence (§5.2.3) shared by the full and the delta CRLs (§5.2.4):

* a **full CRL** lists every unexpired certificate of the shard revoked at the registry watermark
  it covers. It carries its CRL number, a critical issuingDistributionPoint (§5.2.5) whose
  ``fullName`` is the shard's URL with ``onlyContainsUserCerts``, the issuer's
  authorityKeyIdentifier (§5.2.1), and a freshestCRL extension (§5.2.6) naming the delta URL;
* a **delta CRL** carries a critical deltaCRLIndicator whose BaseCRLNumber is the *oldest full
  CRL still inside the delta window* (§5.2.4 lets a delta be applied to any complete CRL
  numbered at or above its base), the same issuingDistributionPoint, and every revocation since
  that base's watermark. A device holding any full CRL from the window downloads only the delta;
  one further behind downloads the full shard (``fleetid.device.crl_client``).

Reason codes (§5.3.1) are written except ``unspecified``, which RFC 5280 says to leave out, and
the invalidity date (§5.3.2) when the operator gave one. Each
CRL also carries the registry watermark it covers in a private, non-critical extension
(``WATERMARK_OID``, an INTEGER), so that it can be compared with the other channels.

Publications are rows of ``crl_publications`` (``fleetid.store.crl_repository``, the only SQL); the
HTTP route serves the newest full and delta of a shard from there with caching headers
(``http_headers``). ``CrlPublisher.publish`` runs on a
schedule in ``fleetid serve`` (a full CRL every ``full_interval``, a delta whenever the registry
moves or every ``delta_interval``); ``fleetid crl publish`` forces both at once. Each delta
observes, per revocation it lists for the first time, the publication lag on the ``crl`` channel
(``fleetid.metrics``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ObjectIdentifier

from fleetid import metrics
from fleetid.authority.fleet_ca import (
    CRL_SHARDS,
    FleetCa,
    crl_path,
    crl_shard,
    delta_crl_path,
)
from fleetid.clock import Clock
from fleetid.config import PUBLIC_URL_ENV
from fleetid.crypto.signer import Signer
from fleetid.errors import ConfigError, NotFoundError, StoreError
from fleetid.formats.x509_sign import sign_crl
from fleetid.revocation.registry import (
    REASON_FLAGS,
    IssuerRecord,
    RevocationRegistry,
    RevokedEntry,
    issuer_certificate,
)
from fleetid.store.crl_repository import CrlKind, CrlPublicationRecord, CrlRepository
from fleetid.store.repositories import Store

__all__ = [
    "CRL_MEDIA_TYPE",
    "ROOT_SHARD",
    "WATERMARK_OID",
    "CrlKind",
    "CrlPolicy",
    "CrlPublisher",
    "Publication",
    "crl_watermark",
    "http_headers",
    "publisher_for",
]

CRL_MEDIA_TYPE: Final = "application/pkix-crl"  # RFC 2585 §4.2
# fleetid's private arc under the RFC 5612 documentation enterprise number (as SE_HW_TYPE is);
# an operator replaces 32473 with its own enterprise number.
WATERMARK_OID: Final = ObjectIdentifier("1.3.6.1.4.1.32473.1.5.1")
# The ``shard`` of a root's CRL publication: it is not one of the issuing CA's partitions.
ROOT_SHARD: Final = -1


@dataclass(frozen=True, kw_only=True)
class CrlPolicy:
    """When CRLs are issued and how long they are valid.

    A full CRL's nextUpdate covers the whole delta window, because a delta is applied to a
    complete CRL that must itself still be current (RFC 5280 §6.3.3 (a)); freshness comes from
    the delta, whose nextUpdate is short.
    """

    shards: int
    full_interval: timedelta = timedelta(hours=24)
    # A shard whose revocations moved gets a new full CRL at the next publication no sooner than
    # this after its last one: relying parties that read no deltas (``openssl verify -crl_check``
    # without ``-use_deltas``, Go's crypto/x509) see a revocation at the CDP within it.
    full_refresh: timedelta = timedelta(0)
    delta_interval: timedelta = timedelta(hours=1)
    delta_window: timedelta = timedelta(days=7)
    delta_validity: timedelta = timedelta(hours=2)
    max_age: timedelta = timedelta(seconds=60)  # HTTP caching of any CRL (full or delta)

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("at least one CRL shard")
        if not self.delta_interval < self.delta_validity:
            raise ValueError("a delta must stay valid past the next scheduled delta")
        if self.full_interval > self.delta_window:
            raise ValueError("the delta window must hold at least one full CRL")
        if self.full_refresh > self.full_interval:
            raise ValueError("a full CRL is refreshed on revocation at least as often as daily")

    @property
    def full_validity(self) -> timedelta:
        return self.delta_window + self.full_interval


#: One published CRL, as its row of ``crl_publications`` records it.
Publication = CrlPublicationRecord


def crl_watermark(crl: x509.CertificateRevocationList) -> int:
    """The registry watermark a fleetid CRL covers (its private extension)."""
    try:
        value = crl.extensions.get_extension_for_oid(WATERMARK_OID).value
    except x509.ExtensionNotFound:
        raise NotFoundError("the CRL carries no fleetid watermark") from None
    assert isinstance(value, x509.UnrecognizedExtension)  # noqa: S101 - private OID
    return _der_integer_value(value.value)


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # X.690 §8.3: a sign bit of 0
    return b"\x02" + bytes([len(body)]) + body


def _der_integer_value(der: bytes) -> int:
    if len(der) < 3 or der[0] != 0x02 or der[1] != len(der) - 2 or der[1] > 9:
        raise StoreError("the CRL watermark is not a small DER INTEGER")
    return int.from_bytes(der[2:], "big", signed=True)


def http_headers(publication: Publication, now: datetime, policy: CrlPolicy) -> dict[str, str]:
    """RFC 9111 caching headers for a CRL: validators plus a max-age that never outlives it.

    Full and delta CRLs alike are cached only briefly (``max_age``): a new one of either kind
    follows a revocation of the shard at the next publication. Never past nextUpdate.
    """
    remaining = max(0, int((publication.next_update - now).total_seconds()))
    max_age = min(remaining, int(policy.max_age.total_seconds()))
    return {
        "ETag": publication.etag,
        "Last-Modified": format_datetime(publication.this_update, usegmt=True),
        "Expires": format_datetime(publication.next_update, usegmt=True),
        "Cache-Control": f"public, max-age={max_age}, no-transform",
    }


def _due(last: Publication | None, now: datetime, interval: timedelta) -> bool:
    return last is None or now >= last.this_update + interval


class CrlPublisher:
    """Derives every shard's full and delta CRL from the registry and records them.

    ``signer_for(issuer_id)`` gives the issuing CA's signer (its key stays in the HSM; CRLs are
    signed by reference through ``fleetid.formats.x509_sign.sign_crl``). ``url_for(generation,
    shard, kind)`` gives the absolute URL of a shard's full or delta CRL, the one written into
    certificates.
    """

    def __init__(
        self,
        *,
        store: Store,
        registry: RevocationRegistry,
        signer_for: Callable[[int], Signer],
        url_for: Callable[[int, int, CrlKind], str],
        shard_of: Callable[[int], int],
        clock: Clock,
        policy: CrlPolicy,
        root_crls: bool = True,
    ) -> None:
        self._store = store
        self._publications = CrlRepository(store.engine)
        self._registry = registry
        self._signer_for = signer_for
        self._url_for = url_for
        self._root_crls = root_crls
        self._shard_of = shard_of
        self._clock = clock
        self.policy = policy

    # -- reading -------------------------------------------------------------------------------

    def latest(self, issuer_id: int, shard: int, kind: CrlKind) -> Publication | None:
        return self._publications.latest(issuer_id, shard, kind)

    def current(self, generation: int, shard: int, kind: CrlKind) -> Publication:
        """What the distribution point serves; published first if nothing is yet."""
        if not 0 <= shard < self.policy.shards:
            raise NotFoundError(f"no CRL shard {shard}")
        issuer = next((i for i in self._registry.issuers() if i.generation == generation), None)
        if issuer is None:
            raise NotFoundError(f"no issuing CA generation {generation}")
        found = self.latest(issuer.id, shard, kind)
        if found is None:
            self.publish()
            found = self.latest(issuer.id, shard, kind)
        if found is None:  # pragma: no cover - publish() just wrote every shard
            raise StoreError(f"no {kind} CRL for generation {generation} shard {shard}")
        return found

    def issuers(self) -> list[IssuerRecord]:
        """The issuing-CA generations whose CRLs this publisher signs."""
        return self._registry.issuers()

    def roots(self) -> list[IssuerRecord]:
        """The fleet-root generations whose CRLs this publisher signs."""
        return self._registry.roots()

    def current_root(self, generation: int) -> Publication:
        """The root CRL of root generation ``generation``; published first if there is none."""
        root = next((r for r in self._registry.roots() if r.generation == generation), None)
        if root is None or not self._root_crls:
            raise NotFoundError(f"no root CRL of generation {generation}")
        found = self.latest(root.id, ROOT_SHARD, CrlKind.FULL)
        if found is None:
            self.publish()
            found = self.latest(root.id, ROOT_SHARD, CrlKind.FULL)
        if found is None:  # pragma: no cover - publish() just wrote it
            raise StoreError(f"no root CRL of generation {generation}")
        return found

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, *, force: bool = False) -> list[Publication]:
        """Publish what is due (``force``: a new full and delta CRL for every shard now).

        Due: a full CRL when none exists or ``full_interval`` has passed since the last; a delta
        when a full CRL was just published, when the registry recorded a revocation of that
        shard since the last delta, or when ``delta_interval`` has passed.
        """
        now = self._clock.now()
        watermark = self._registry.watermark()
        done: list[Publication] = []
        for issuer in self._registry.issuers():
            if issuer_certificate(issuer).not_valid_after_utc <= now:
                continue  # an expired CA's certificates are all expired: nothing to say
            done.extend(self._publish_issuer(issuer, watermark, now, force=force))
        if self._root_crls:
            for root in self._registry.roots():
                last = self.latest(root.id, ROOT_SHARD, CrlKind.FULL)
                if issuer_certificate(root).not_valid_after_utc > now and (
                    force or _due(last, now, self.policy.full_interval)
                ):
                    done.append(self._publish_root(root, watermark, now))
        return done

    def _publish_root(self, root: IssuerRecord, watermark: int, now: datetime) -> Publication:
        """The root's complete CRL over the CA certificates it signed (RFC 5280 §5.2.5
        onlyContainsCACerts, no distributionPoint: OpenSSL's ``-crl_check_all`` also checks the
        root itself, which names no CDP), for relying parties that check the whole chain. fleetid
        retires an issuing CA by rollover and expiry, never by revocation: it lists nothing."""
        published = self._write(
            root,
            ROOT_SHARD,
            CrlKind.FULL,
            None,
            watermark,
            now,
            [],
            self._signer_for(root.id),
            issuer_certificate(root),
            scope_url=None,
            delta_url=None,
            only_ca=True,
        )
        self._prune(root.id, ROOT_SHARD, published.crl_number)
        return published

    def _publish_issuer(
        self, issuer: IssuerRecord, watermark: int, now: datetime, *, force: bool
    ) -> list[Publication]:
        shards = range(self.policy.shards)
        fulls = {s: self.latest(issuer.id, s, CrlKind.FULL) for s in shards}
        deltas = {s: self.latest(issuer.id, s, CrlKind.DELTA) for s in shards}
        since = min((p.watermark if p else 0) for p in (*fulls.values(), *deltas.values()))
        moved: dict[CrlKind, set[int]] = {CrlKind.FULL: set(), CrlKind.DELTA: set()}
        if since < watermark:
            for entry in self._registry.changes(since, watermark, issuer_id=issuer.id):
                shard = self._shard_of(entry.serial_number)
                for kind, last in ((CrlKind.FULL, fulls[shard]), (CrlKind.DELTA, deltas[shard])):
                    if last is None or entry.sequence > last.watermark:
                        moved[kind].add(shard)
        full_due = {
            s
            for s in shards
            if force
            or _due(fulls[s], now, self.policy.full_interval)
            or (s in moved[CrlKind.FULL] and _due(fulls[s], now, self.policy.full_refresh))
        }
        delta_due = {
            s
            for s in shards
            if s in full_due
            or s in moved[CrlKind.DELTA]
            or _due(deltas[s], now, self.policy.delta_interval)
        }
        if not delta_due:
            return []
        entries: dict[int, list[RevokedEntry]] = defaultdict(list)
        if full_due:
            for entry in self._registry.revoked(watermark, issuer_id=issuer.id, unexpired_at=now):
                entries[self._shard_of(entry.serial_number)].append(entry)
        signer = self._signer_for(issuer.id)
        certificate = issuer_certificate(issuer)
        done: list[Publication] = []
        for shard in sorted(delta_due):
            if shard in full_due:
                done.append(
                    self._write(
                        issuer,
                        shard,
                        CrlKind.FULL,
                        None,
                        watermark,
                        now,
                        entries[shard],
                        signer,
                        certificate,
                        scope_url=self._url_for(issuer.generation, shard, CrlKind.FULL),
                        delta_url=self._url_for(issuer.generation, shard, CrlKind.DELTA),
                    )
                )
            base = self._delta_base(issuer.id, shard, now)
            changes = [
                e
                for e in self._registry.changes(
                    base.watermark, watermark, issuer_id=issuer.id, unexpired_at=now
                )
                if self._shard_of(e.serial_number) == shard
            ]
            last = deltas[shard]
            metrics.observe_publication_lag(
                "crl",
                now,
                (e.revoked_at for e in changes if last is None or e.sequence > last.watermark),
            )
            done.append(
                self._write(
                    issuer,
                    shard,
                    CrlKind.DELTA,
                    base,
                    watermark,
                    now,
                    changes,
                    signer,
                    certificate,
                    scope_url=self._url_for(issuer.generation, shard, CrlKind.FULL),
                    delta_url=None,
                )
            )
            self._prune(issuer.id, shard, base.crl_number)
        return done

    def _delta_base(self, issuer_id: int, shard: int, now: datetime) -> Publication:
        """The oldest full CRL published inside the delta window (at least the newest one)."""
        oldest = self._publications.oldest_full_since(
            issuer_id, shard, now - self.policy.delta_window
        )
        if oldest is not None:
            return oldest
        latest = self.latest(issuer_id, shard, CrlKind.FULL)
        if latest is None:
            raise StoreError(f"no full CRL to base a delta on (issuer {issuer_id} shard {shard})")
        return latest

    def _write(
        self,
        issuer: IssuerRecord,
        shard: int,
        kind: CrlKind,
        base: Publication | None,
        watermark: int,
        now: datetime,
        entries: Iterable[RevokedEntry],
        signer: Signer,
        certificate: x509.Certificate,
        *,
        scope_url: str | None,
        delta_url: str | None,
        only_ca: bool = False,
    ) -> Publication:
        """Sign and record one CRL whose issuingDistributionPoint is ``scope_url``; a full CRL
        with ``delta_url`` names its delta in freshestCRL."""
        validity = self.policy.full_validity if kind is CrlKind.FULL else self.policy.delta_validity
        now = now.replace(microsecond=0)  # RFC 5280 §5.1.2.4: whole seconds
        next_update = now + validity
        with self._publications.numbering(issuer.id, shard) as numbering:
            number = numbering.number
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(certificate.subject)
                .last_update(now)
                .next_update(next_update)
                .add_extension(x509.CRLNumber(number), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                        x509.SubjectKeyIdentifier(issuer.subject_key_id)
                    ),
                    critical=False,
                )
                .add_extension(
                    x509.IssuingDistributionPoint(
                        full_name=(
                            None
                            if scope_url is None
                            else [x509.UniformResourceIdentifier(scope_url)]
                        ),
                        relative_name=None,
                        only_contains_user_certs=not only_ca,
                        only_contains_ca_certs=only_ca,
                        only_some_reasons=None,
                        indirect_crl=False,
                        only_contains_attribute_certs=False,
                    ),
                    critical=True,  # RFC 5280 §5.2.5
                )
                .add_extension(
                    x509.UnrecognizedExtension(WATERMARK_OID, _der_integer(watermark)),
                    critical=False,
                )
            )
            if kind is CrlKind.FULL and delta_url is not None:
                builder = builder.add_extension(
                    x509.FreshestCRL(
                        [
                            x509.DistributionPoint(
                                full_name=[x509.UniformResourceIdentifier(delta_url)],
                                relative_name=None,
                                reasons=None,
                                crl_issuer=None,
                            )
                        ]
                    ),
                    critical=False,  # RFC 5280 §5.2.6: MUST be non-critical
                )
            elif kind is CrlKind.DELTA:
                assert base is not None  # noqa: S101 - a delta always has a base
                builder = builder.add_extension(
                    x509.DeltaCRLIndicator(base.crl_number), critical=True
                )
            for entry in entries:
                revoked = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(entry.serial_number)
                    .revocation_date(entry.revoked_at)
                )
                if entry.reason in REASON_FLAGS:  # §5.3.1: unspecified SHOULD be absent
                    revoked = revoked.add_extension(
                        x509.CRLReason(REASON_FLAGS[entry.reason]), critical=False
                    )
                if entry.invalidity_date is not None:  # §5.3.2, non-critical
                    revoked = revoked.add_extension(
                        x509.InvalidityDate(entry.invalidity_date.replace(microsecond=0)),
                        critical=False,
                    )
                builder = builder.add_revoked_certificate(revoked.build())
            der = sign_crl(builder, signer).public_bytes(serialization.Encoding.DER)
            publication = Publication(
                issuer_id=issuer.id,
                shard=shard,
                kind=kind,
                crl_number=number,
                base_number=None if base is None else base.crl_number,
                watermark=watermark,
                this_update=now,
                next_update=next_update,
                der=der,
            )
            numbering.record(publication)
        return publication

    def _prune(self, issuer_id: int, shard: int, base_number: int) -> None:
        """Drop what no one needs any more: fulls older than the delta base, superseded deltas,
        and the fulls a revocation refreshed in between: of the fulls inside the window only
        those ``full_interval`` apart (the future delta bases) and the newest are kept.
        """
        latest_delta = self.latest(issuer_id, shard, CrlKind.DELTA)

        def refreshed(fulls: Sequence[tuple[int, datetime]]) -> list[int]:
            dropped: list[int] = []
            kept_at: datetime | None = None
            for number, this_update in fulls[:-1]:
                if kept_at is None or this_update >= kept_at + self.policy.full_interval:
                    kept_at = this_update
                else:
                    dropped.append(number)
            return dropped

        self._publications.prune(
            issuer_id,
            shard,
            base_number=base_number,
            superseded_deltas_below=latest_delta.crl_number if latest_delta else 0,
            refreshed=refreshed,
        )


def _base_url(ca: FleetCa) -> str:
    """The base URL certificates name: the settings', else the one in the newest certificate."""
    try:
        return ca.settings.base_url
    except ConfigError:
        pass
    der = RevocationRegistry(ca.store).newest_certificate_der()
    if der is not None:
        certificate = x509.load_der_x509_certificate(der)
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        name = (points.value[0].full_name or [None])[0]
        if isinstance(name, x509.UniformResourceIdentifier) and "/crl/" in name.value:
            return name.value.rsplit("/crl/", 1)[0]
    raise ConfigError(f"no public URL: set ${PUBLIC_URL_ENV} (the base URL certificates name)")


def publisher_for(
    ca: FleetCa,
    *,
    registry: RevocationRegistry | None = None,
    policy: CrlPolicy | None = None,
) -> CrlPublisher:
    """The CRL publisher of a fleet CA: its HSM signs, its base URL names the shards."""
    bases: list[str] = []  # found on first use: a server knows it only once it listens
    labels: dict[int, str] = {}

    def signer_for(issuer_id: int) -> Signer:
        if issuer_id not in labels:
            with ca.store.transaction() as tx:
                labels[issuer_id] = tx.ca_keys.by_id(issuer_id).hsm_label
        return ca.hsm.signer(labels[issuer_id])

    def url_for(generation: int, shard: int, kind: CrlKind) -> str:
        if not bases:
            bases.append(_base_url(ca))
        path = crl_path if kind is CrlKind.FULL else delta_crl_path
        return bases[0] + path(generation, shard)

    return CrlPublisher(
        store=ca.store,
        registry=registry or RevocationRegistry(ca.store),
        signer_for=signer_for,
        url_for=url_for,
        shard_of=crl_shard,
        clock=ca.clock,
        policy=policy or CrlPolicy(shards=CRL_SHARDS),
    )
