"""The registration authority of butterfly batches (IEEE 1609.2.1 §4; the EA's role in ETSI
TS 102 941 v2).

It knows the device: the batch request is signed by the device's enrolment credential (EC)
and encrypted to the RA. It checks the EC with the enrolment authority, opens one linkage chain
per device at each LA, and for every certificate (i, j) of the batch expands the caterpillar
keys into cocoon keys (``fleetid.crypto.butterfly``). It pools the per-certificate requests of
many devices and shuffles them before forwarding them to the pseudonym CA, so the CA sees no
order and no device. It never sees a certificate: the CA's answers are encrypted to the cocoon
encryption keys, and the RA only stores them for the device's download.

What it keeps per device: its itsId, its two sealed chain references (which only the LAs can
open) and whether misbehaviour has blocked it. Per request: the batch until it has been
downloaded and ``delivered_retention`` has passed since the first download (a lost download can
be repeated until then; the next download or ``prune_delivered`` forgets it). Given
``records`` (``fleetid.store.butterfly_state.RaRecords``) it keeps all of that, the seen batch
requests and its per-certificate requests with their answers in its database, and a restarted RA
reloads them: nothing accepted is lost, a replay is still refused, a device keeps its chains.
"""

from __future__ import annotations

import functools
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Protocol

from fleetid.authority.v2x.common import Authority, AuthorityKeys, open_request, sign_as
from fleetid.authority.v2x.hops import MemorySeen
from fleetid.authority.v2x.pseudonym_ca import PeriodSchedule
from fleetid.clock import Clock
from fleetid.crypto.butterfly import expand_public
from fleetid.errors import (
    BatchPendingError,
    BatchRefusedError,
    ConfigError,
    EncodingError,
    NotFoundError,
    ProfileError,
    RequestRefusedError,
    VerificationError,
)
from fleetid.formats.butterfly_messages import decode_message, encode_message
from fleetid.formats.etsi102941 import decode_etsi102941_data, encrypt_with_key, open_pki_data
from fleetid.formats.ieee1609 import (
    Certificate,
    hashed_id8_of,
    open_signed_data,
    time32,
    verify_signed_data,
)
from fleetid.formats.ieee1609.keys import (
    encryption_key_value,
    public_key_from_encryption_key,
    public_key_from_verification_key,
    verification_key_value,
)
from fleetid.store.butterfly_queue import ButterflyQueue, WorkRow
from fleetid.store.butterfly_state import DeviceRow, RaRecords

__all__ = [
    "DEFAULT_DELIVERED_RETENTION",
    "BatchItem",
    "LinkageService",
    "RegistrationAuthority",
    "batch_item",
    "download_message",
    "expand_item",
    "work_row",
]

_log = logging.getLogger(__name__)

#: How the RA finds a current EC by its HashedId8: (EC, itsId), raising for unknown or revoked.
EcLookup = Callable[[bytes], tuple[Certificate, bytes]]
_PSID_REQUEST: Final = 623
_ETSI_DATA_V1: Final = b"\x01"  # EtsiTs102941Data version v1
#: How long a downloaded batch stays downloadable (and its rows stored) after its first download.
DEFAULT_DELIVERED_RETENTION: Final = timedelta(days=1)


class LinkageService(Protocol):
    """What the RA asks of a linkage authority (in process or over the wire)."""

    la_id: bytes

    def new_chain(self) -> bytes: ...

    def pre_linkage_values(self, reference: bytes, i: int, count: int) -> list[dict[str, Any]]: ...


@dataclass(kw_only=True)
class _Device:
    its_id: bytes
    chains: tuple[bytes, bytes] = field(repr=False)
    blocked: bool = False


@dataclass(frozen=True, kw_only=True)
class BatchItem:
    """One certificate (i, j) of one device's batch, before expansion."""

    request_id: bytes
    batch_id: bytes
    i: int
    j: int
    implicit: bool
    caterpillar: bytes  # COER EeRaCertRequest: the keys and expansion keys
    plvs: tuple[dict[str, Any], dict[str, Any]] = field(repr=False)


def work_row(item: BatchItem) -> WorkRow:
    """The queue row of an item (its two EncryptedPlv in COER)."""
    return WorkRow(
        request_id=item.request_id,
        batch_id=item.batch_id,
        i=item.i,
        j=item.j,
        implicit=item.implicit,
        caterpillar=item.caterpillar,
        plv1=encode_message("EncryptedPlv", item.plvs[0]),
        plv2=encode_message("EncryptedPlv", item.plvs[1]),
    )


def batch_item(row: WorkRow) -> BatchItem:
    """The item of a queue row."""
    return BatchItem(
        request_id=row.request_id,
        batch_id=row.batch_id,
        i=row.i,
        j=row.j,
        implicit=row.implicit,
        caterpillar=row.caterpillar,
        plvs=(decode_message("EncryptedPlv", row.plv1), decode_message("EncryptedPlv", row.plv2)),
    )


@dataclass(kw_only=True)
class _Batch:
    slots: set[tuple[int, int]] = field(default_factory=set)
    entries: dict[tuple[int, int], bytes] = field(default_factory=dict)
    delivered_at: int | None = None  # Time32 of the first download


class RegistrationAuthority(Authority):
    """Accepts batch requests, expands, shuffles, forwards; serves the downloads."""

    def __init__(
        self,
        *,
        keys: AuthorityKeys,
        ec_lookup: EcLookup,
        linkage: tuple[LinkageService, LinkageService],
        schedule: PeriodSchedule,
        clock: Clock,
        certificates_per_period: int = 20,
        freshness: timedelta = timedelta(minutes=5),
        rng: random.Random | None = None,
        records: RaRecords | None = None,
        delivered_retention: timedelta = DEFAULT_DELIVERED_RETENTION,
    ) -> None:
        if linkage[0].la_id == linkage[1].la_id:
            raise EncodingError("the two linkage authorities need different identifiers")
        super().__init__(keys=keys, clock=clock)
        self._ec_lookup = ec_lookup
        self._linkage = linkage
        self._schedule = schedule
        self._per_period = certificates_per_period
        self._freshness = int(freshness.total_seconds())
        self._rng = rng if rng is not None else random.SystemRandom()
        self._records = records
        if delivered_retention < timedelta(0):
            raise ConfigError("the retention of delivered batches is not negative")
        self._retention = int(delivered_retention.total_seconds())
        self._devices: dict[bytes, _Device] = {}
        self._seen = MemorySeen() if records is None else records.seen
        self._pending: list[BatchItem] = []
        self._in_flight: dict[bytes, BatchItem] = {}
        self._batches: dict[bytes, _Batch] = {}
        if records is not None:
            self._reload(records)

    def _reload(self, records: RaRecords) -> None:
        """Devices, batches and unanswered requests as the database holds them (a request
        forwarded before a restart but not answered is pending again)."""
        for row in records.devices():
            self._devices[row.its_id] = _Device(
                its_id=row.its_id, chains=row.chains, blocked=row.blocked
            )
        for work, answer in records.requests():
            batch = self._batches.setdefault(work.batch_id, _Batch())
            batch.slots.add((work.i, work.j))
            if answer is None:
                self._pending.append(batch_item(work))
            else:
                batch.entries[(work.i, work.j)] = answer
        for batch_id, at in records.queue.delivered().items():
            self._batches[batch_id].delivered_at = at
        self.prune_delivered()

    @property
    def queue(self) -> ButterflyQueue | None:
        """The queue the RA's requests are in as they arrive (with ``records``), or None."""
        return None if self._records is None else self._records.queue

    # ---------------------------------------------------------------------------- requests

    def handle_batch_request(self, message: bytes) -> bytes:
        """A butterfly batch request in (signed by the EC, encrypted to the RA); the
        RaEeCertAck out, encrypted under the request's AES key.

        The signed payload is the 1609.2.1 EeRaCertRequest itself, or (ETSI TS 102 941 V2,
        ButterflyAuthorizationRequestMessage) an EtsiTs102941Data whose content is
        butterflyAuthorizationRequest: that one is answered as the ETSI text says, by a
        ButterflyAuthorizationResponseMessage (RaEeCertInfo signed by the RA, not encrypted).

        Raises ``EncodingError``/``ProfileError`` for bytes that are not such a request,
        ``VerificationError`` for a request not to this RA or not signed by a current EC,
        ``BatchRefusedError`` for a replayed or stale request or a blocked device.
        """
        request = open_request(self._keys, message)
        signed = open_signed_data(request.plaintext)
        kind, ec_id = signed.signer
        if kind != "digest":
            raise VerificationError("a batch request is signed by the EC, named by digest")
        try:
            ec, its_id = self._ec_lookup(bytes(ec_id))
        except RequestRefusedError as refusal:
            raise VerificationError(f"the signing EC is not current ({refusal.code})") from None
        verify_signed_data(signed, ec.verification_key(), ec.encoded)
        if signed.header_info.get("psid") != _PSID_REQUEST:
            raise EncodingError("a batch request has psid 623")
        payload = signed.unsecured_payload()
        # EtsiTs102941Data opens with its version v1; an EeRaCertRequest with its preamble,
        # whose low six bits are always zero (X.696 §16.2): the first octet tells them apart.
        etsi = payload[:1] == _ETSI_DATA_V1
        if etsi:
            kind, body = decode_etsi102941_data(payload)
            if kind != "butterflyAuthorizationRequest":
                raise ProfileError(f"{kind} is not a butterfly authorization request")
            payload = encode_message("EeRaCertRequest", body)
        else:
            body = decode_message("EeRaCertRequest", payload)
        now = time32(self._clock.now())
        if abs(now - int(body["generationTime"])) > self._freshness:
            raise BatchRefusedError("stale", "generationTime outside the freshness window")
        batch_id = hashed_id8_of(message)
        device = self._device(its_id)
        if device.blocked:
            raise BatchRefusedError("revoked", "this device's pseudonyms are revoked")
        validity = body["tbsCert"]["validityPeriod"]
        i = self._schedule.period_at(int(validity["start"]))
        if validity != {"start": self._schedule.start(i), "duration": self._schedule.duration}:
            raise BatchRefusedError("validity", "the validity asked for is not a pseudonym period")
        self._check_caterpillar(body)
        if not self._seen.remember(batch_id, now=now, expires=now + self._freshness + 1):
            raise BatchRefusedError("replay", "this batch request was already accepted")
        self._queue(batch_id, device, i, body, payload)
        _log.info("batch request accepted for period %d", i)
        if etsi:
            info = {
                "version": 2,
                "generationTime": now,
                "currentI": i,
                "requestHash": batch_id,
                "nextDlTime": now,
            }
            return sign_as(self._keys, ("butterflyAuthorizationResponse", info), self._clock.now())
        ack = {
            "version": 2,
            "generationTime": now,
            "requestHash": batch_id,
            "firstI": i,
            "nextDlTime": now,
        }
        return encrypt_with_key(encode_message("RaEeCertAck", ack), request.aes_key)

    def _device(self, its_id: bytes) -> _Device:
        device = self._devices.get(its_id)
        if device is None:
            chains = (self._linkage[0].new_chain(), self._linkage[1].new_chain())
            device = _Device(its_id=its_id, chains=chains)
            if self._records is not None:
                self._records.add_device(DeviceRow(its_id=its_id, chains=chains, blocked=False))
            self._devices[its_id] = device
        return device

    @staticmethod
    def _check_caterpillar(body: dict[str, Any]) -> None:
        kind, key = body["tbsCert"]["verifyKeyIndicator"]
        if kind != "verificationKey":
            raise EncodingError("the caterpillar key is a verificationKey")
        public_key_from_verification_key(key)
        params = body.get("additionalParams")
        if params is None:
            raise EncodingError("a batch request carries butterfly parameters (additionalParams)")
        if params[0] == "original":
            public_key_from_encryption_key(params[1]["encryptionKey"])

    def _queue(
        self, batch_id: bytes, device: _Device, i: int, body: dict[str, Any], raw: bytes
    ) -> None:
        plvs = [
            la.pre_linkage_values(chain, i, self._per_period)
            for la, chain in zip(self._linkage, device.chains, strict=True)
        ]
        items = [
            BatchItem(
                request_id=secrets.token_bytes(16),
                batch_id=batch_id,
                i=i,
                j=j,
                implicit=body["type"] == "implicit",
                caterpillar=raw,
                plvs=(plvs[0][j], plvs[1][j]),
            )
            for j in range(self._per_period)
        ]
        if self._records is not None:
            self._records.queue.enqueue(work_row(item) for item in items)
        self._batches[batch_id] = _Batch(slots={(i, j) for j in range(self._per_period)})
        self._pending.extend(items)

    # ---------------------------------------------------------------------------- to the CA

    def pending_count(self) -> int:
        return len(self._pending)

    def take_pending(self, limit: int | None = None) -> list[BatchItem]:
        """Shuffle every pending item (all devices together) and take up to ``limit``."""
        self._rng.shuffle(self._pending)
        count = len(self._pending) if limit is None else min(limit, len(self._pending))
        taken, self._pending = self._pending[:count], self._pending[count:]
        for item in taken:
            self._in_flight[item.request_id] = item
        return taken

    def return_pending(self, items: list[BatchItem]) -> None:
        """Put taken items back (their forwarding failed); they go out with the next batch."""
        for item in items:
            if self._in_flight.pop(item.request_id, None) is not None:
                self._pending.append(item)

    def forward(self, limit: int | None = None) -> bytes:
        """A shuffled RaAcaCertRequestBatch of pending items (cocoon keys expanded here)."""
        items = self.take_pending(limit)
        return encode_message("RaAcaCertRequestBatch", [self.expand(item) for item in items])

    def expand(self, item: BatchItem) -> dict[str, Any]:
        """The RaAcaCertRequest of one item: its cocoon signing (and encryption) key."""
        return expand_item(item, self._schedule)

    def accept_responses(self, batch: bytes) -> None:
        """Store the CA's AcaRaCertResponseBatch; the responses stay encrypted."""
        self.accept_response_values(decode_message("AcaRaCertResponseBatch", batch))

    def accept_response_values(self, responses: list[dict[str, Any]]) -> None:
        """Store decoded AcaRaCertResponse values (all or none of them)."""
        answers = [
            (bytes(response["requestId"]), bytes(response["acaResponse"])) for response in responses
        ]
        if any(request_id not in self._in_flight for request_id, _ in answers):
            raise VerificationError("a response to no request in flight")
        if self._records is not None:
            self._records.answer(answers)
        for request_id, aca_response in answers:
            item = self._in_flight.pop(request_id)
            self._batches[item.batch_id].entries[(item.i, item.j)] = aca_response

    def accept_response(self, request_id: bytes, aca_response: bytes) -> None:
        """Store one encrypted answer; ``VerificationError`` if no such request is in flight."""
        item = self._in_flight.get(request_id)
        if item is None:
            raise VerificationError("a response to no request in flight")
        if self._records is not None:
            self._records.answer([(request_id, aca_response)])
        del self._in_flight[request_id]
        self._batches[item.batch_id].entries[(item.i, item.j)] = aca_response

    # ---------------------------------------------------------------------------- downloads

    def handle_download_request(self, message: bytes) -> bytes:
        """An ETSI TS 102 941 V2 ButterflyAtDownloadRequestMessage in (EeRaDownloadRequest
        signed by a current EC, encrypted to the RA; the filename is the batch id in hex); the
        batch's RaEeCertBatch out, encrypted under the request's AES key.

        Raises as ``handle_batch_request`` for what does not open or verify,
        ``BatchRefusedError`` for a stale request, ``BatchPendingError`` and ``NotFoundError``
        as ``download``.
        """
        request = open_request(self._keys, message)
        data = open_pki_data(
            request.plaintext,
            signer_kinds=frozenset({"digest"}),
            expected=frozenset({"butterflyAtDownloadRequest"}),
        )
        ec_id = data.signer_digest
        if ec_id is None:
            raise ProfileError("a download request is signed by the EC, named by digest")
        try:
            ec, _ = self._ec_lookup(ec_id)
        except RequestRefusedError as refusal:
            raise VerificationError(f"the signing EC is not current ({refusal.code})") from None
        data.verify(ec.verification_key(), ec.encoded)
        body = data.content[1]
        if abs(time32(self._clock.now()) - int(body["generationTime"])) > self._freshness:
            raise BatchRefusedError("stale", "generationTime outside the freshness window")
        try:
            batch_id = bytes.fromhex(body["filename"])
        except ValueError:
            raise EncodingError("the file name is a batch id, 16 hex digits") from None
        if len(batch_id) != 8:
            raise EncodingError("the file name is a batch id, 16 hex digits")
        return encrypt_with_key(self.download(batch_id), request.aes_key)

    def download(self, batch_id: bytes) -> bytes:
        """The RaEeCertBatch of a complete batch; ``BatchPendingError`` before that, and
        ``NotFoundError`` for an unknown batch or one pruned after its retention.

        The first download marks the batch delivered; it can be downloaded again until
        ``delivered_retention`` has passed since then.
        """
        self.prune_delivered()
        batch = self._batches.get(batch_id)
        if batch is None:
            raise NotFoundError("no such batch")
        answers: list[tuple[int, int, bytes | None]] = [
            (i, j, batch.entries.get((i, j))) for i, j in sorted(batch.slots)
        ]
        message = download_message(batch_id, answers)
        if batch.delivered_at is None:
            batch.delivered_at = time32(self._clock.now())
            if self._records is not None:
                self._records.queue.mark_delivered(batch_id, batch.delivered_at)
        return message

    def prune_delivered(self) -> int:
        """Forget every batch first downloaded more than ``delivered_retention`` ago, in memory
        and in the database; the number of batches forgotten."""
        cutoff = time32(self._clock.now()) - self._retention
        expired = [
            batch_id
            for batch_id, batch in self._batches.items()
            if batch.delivered_at is not None and batch.delivered_at < cutoff
        ]
        for batch_id in expired:
            del self._batches[batch_id]
        if self._records is not None:
            self._records.queue.prune_delivered(cutoff)
        if expired:
            _log.info("pruned %d delivered batches", len(expired))
        return len(expired)

    def batch_count(self) -> int:
        """The batches the RA holds (pending, issued or delivered within the retention)."""
        return len(self._batches)

    # ---------------------------------------------------------------------------- misbehaviour

    def block_chain(self, tokens: tuple[bytes, bytes]) -> None:
        """Refuse every later batch of the device whose chains are ``tokens`` (as LA1 and LA2
        reveal them for a reported certificate); ``NotFoundError`` if no device has both."""
        for device in self._devices.values():
            if device.chains == tokens:
                if self._records is not None:
                    self._records.block(device.its_id)
                device.blocked = True
                _log.info("device blocked after a misbehaviour report")
                return
        raise NotFoundError("no device holds these linkage chains")

    @property
    def certificates_per_period(self) -> int:
        return self._per_period

    def device_count(self) -> int:
        return len(self._devices)


def download_message(batch_id: bytes, answers: list[tuple[int, int, bytes | None]]) -> bytes:
    """RaEeCertBatch from every (i, j, answer) of a batch; ``BatchPendingError`` if one is
    still unanswered, ``NotFoundError`` for a batch with no request."""
    if not answers:
        raise NotFoundError("no such batch")
    missing = sum(1 for _, _, answer in answers if answer is None)
    if missing:
        raise BatchPendingError(f"{len(answers) - missing} of {len(answers)} issued")
    entries = [{"i": i, "j": j, "acaResponse": answer} for i, j, answer in answers]
    return encode_message("RaEeCertBatch", {"requestHash": batch_id, "entries": entries})


@functools.lru_cache(maxsize=1024)
def _request_body(raw: bytes) -> Any:
    """The decoded EeRaCertRequest (one per batch, read by its 20 items; never modified)."""
    return decode_message("EeRaCertRequest", raw)


def expand_item(item: BatchItem, schedule: PeriodSchedule) -> dict[str, Any]:
    """RaAcaCertRequest value for one (device, i, j): B = A + f_k(i, j)·G, and Q likewise for
    the original variant's encryption caterpillar (a pure function: workers call it)."""
    body = _request_body(item.caterpillar)
    tbs_in = body["tbsCert"]
    kind, params = body["additionalParams"]
    caterpillar = public_key_from_verification_key(tbs_in["verifyKeyIndicator"][1])
    signing_key = bytes(params["signingExpansion"][1] if kind == "original" else params[1])
    cocoon = expand_public(caterpillar, signing_key, item.i, item.j)
    request: dict[str, Any] = {
        # Not the device's generationTime: the CA would learn when each device asked.
        "generationTime": schedule.start(item.i),
        "type": "implicit" if item.implicit else "explicit",
        "requestId": item.request_id,
        "iCert": item.i,
        "linkageInfo": list(item.plvs),
        "tbsCert": {
            "id": ("none", None),
            "cracaId": tbs_in["cracaId"],
            "crlSeries": tbs_in["crlSeries"],
            "validityPeriod": {"start": schedule.start(item.i), "duration": schedule.duration},
            "appPermissions": tbs_in["appPermissions"],
            "verifyKeyIndicator": ("verificationKey", verification_key_value(cocoon)),
        },
    }
    if kind == "original":
        _, encryption_caterpillar = public_key_from_encryption_key(params["encryptionKey"])
        expansion = bytes(params["encryptionExpansion"][1])
        encryption = expand_public(
            encryption_caterpillar, expansion, item.i, item.j, encryption=True
        )
        request["certEncKey"] = encryption_key_value(encryption)
    return request
