"""The butterfly authorities' hops as services: what each route does with a signed request,
and the clients the RA and the CA use to reach the other authorities' routes.

* RA -> LA (``LinkageClient``, a ``LinkageService``; ``LaHop.from_ra``): open a chain, or the
  pre-linkage values of a period;
* CA -> LA (``fetch_la_key``; ``LaHop.from_ca``): the LA-CA key, encrypted to the CA;
* RA -> CA (``forward_to_ca``; ``CaHop``): the shuffled ``RaAcaCertRequestBatch``, answered by
  a signed ``AcaRaResponse``.

Each LA signs its answers as the callers sign their requests, with the 1609.2 certificate the
V2X root issued it at ``fleetid v2x init`` (``LaHop.keys``); ``LinkageClient`` and
``fetch_la_key`` accept an answer only if it is signed by the LA certificate they were given,
fresh, and names their request (``AuthorityHopError`` for another signer; an unsigned answer
does not parse as signed data: ``EncodingError``). Messages and their checks:
``fleetid.authority.v2x.hops``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from fleetid.authority.v2x.batch_pki import ButterflyAuthorities
from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hops import (
    HopReceiver,
    HopTransport,
    MemorySeen,
    SeenList,
    check_answers,
    sign_hop,
)
from fleetid.authority.v2x.la import LinkageAuthority
from fleetid.authority.v2x.pseudonym_ca import PseudonymCa
from fleetid.authority.v2x.ra import RegistrationAuthority
from fleetid.clock import Clock
from fleetid.errors import EncodingError
from fleetid.formats.butterfly_messages import encode_message
from fleetid.formats.ieee1609 import Certificate

__all__ = [
    "ACA_BATCH_PATH",
    "FORWARD_CHUNK",
    "CaHop",
    "LaHop",
    "LinkageClient",
    "fetch_la_key",
    "forward_to_ca",
    "hop_routes",
    "issue_in_process",
    "la_path",
    "signed_answer",
]

ACA_BATCH_PATH: Final = "/v2x/aca/batch"
#: The most certificates one RA -> CA message asks for (the route's body limit allows them).
FORWARD_CHUNK: Final = 2000


def la_path(number: int, what: str) -> str:
    """The route of LA ``number`` (1 or 2): ``request`` (from the RA) or ``ca-key``."""
    return f"/v2x/la/{number}/{what}"


@dataclass(frozen=True, kw_only=True)
class LaHop:
    """One LA behind its routes: requests from the RA and from the CA."""

    la: LinkageAuthority
    from_ra: HopReceiver
    from_ca: HopReceiver
    ca_certificate: bytes
    # The LA's signing keys and certificate; None (an LA certified before answers were
    # signed) answers unsigned, which the clients refuse.
    keys: AuthorityKeys | None = None
    clock: Clock | None = None

    def _answer(self, type_name: str, value: dict[str, Any]) -> bytes:
        if self.keys is None or self.clock is None:
            return encode_message(type_name, value)
        return sign_hop(self.keys, type_name, value, self.clock)

    def handle_ra(self, message: bytes) -> bytes:
        (kind, body), request_hash = self.from_ra.open(message, "RaLaRequest")
        content: tuple[str, Any]
        if kind == "newChain":
            content = ("chainToken", self.la.new_chain())
        else:
            values = self.la.pre_linkage_values(
                bytes(body["chainToken"]), int(body["iValue"]), int(body["count"])
            )
            content = ("preLinkageValues", values)
        return self._answer("LaRaResponse", {"requestHash": request_hash, "content": content})

    def handle_ca(self, message: bytes) -> bytes:
        _, request_hash = self.from_ca.open(message, "AcaLaRequest")
        key = self.la.key_for_ca(self.ca_certificate)
        return self._answer("LaAcaResponse", {"requestHash": request_hash, "laCaKey": key})


@dataclass(frozen=True, kw_only=True)
class CaHop:
    """The pseudonym CA behind its route: batches from the RA, answered signed."""

    ca: PseudonymCa
    from_ra: HopReceiver
    clock: Clock

    def handle(self, message: bytes) -> bytes:
        requests, request_hash = self.from_ra.open(message, "RaAcaCertRequestBatch")
        responses = self.ca.issue_requests(requests, self.clock.now())
        value = {"requestHash": request_hash, "responses": responses}
        return sign_hop(self.ca.keys, "AcaRaResponse", value, self.clock)


class LinkageClient:
    """An LA reached over its route, as the RA's ``LinkageService``."""

    def __init__(
        self,
        *,
        la_id: bytes,
        number: int,
        keys: AuthorityKeys,
        la_certificate: Certificate,
        transport: HopTransport,
        clock: Clock,
    ) -> None:
        """``keys`` are the RA's: it signs every request; ``la_certificate`` must sign every
        answer."""
        self.la_id = la_id
        self._path = la_path(number, "request")
        self._ra_keys = keys
        self._transport = transport
        self._clock = clock
        self._from_la = HopReceiver(sender=la_certificate, seen=MemorySeen(), clock=clock)

    def _ask(self, request: tuple[str, Any], kind: str) -> Any:
        message = sign_hop(self._ra_keys, "RaLaRequest", request, self._clock)
        answer = signed_answer(
            self._from_la, "LaRaResponse", self._transport(self._path, message), message
        )
        got, value = answer["content"]
        if got != kind:
            raise EncodingError(f"the LA answered {got}, not {kind}")
        return value

    def new_chain(self) -> bytes:
        return bytes(self._ask(("newChain", None), "chainToken"))

    def pre_linkage_values(self, reference: bytes, i: int, count: int) -> list[dict[str, Any]]:
        body = {"chainToken": reference, "iValue": i, "count": count}
        values: list[dict[str, Any]] = self._ask(("preLinkageValues", body), "preLinkageValues")
        return values


def forward_to_ca(
    ra: RegistrationAuthority,
    transport: HopTransport,
    *,
    ca_certificate: Certificate,
    clock: Clock,
) -> int:
    """Send every pending item of the RA (shuffled, in messages of at most ``FORWARD_CHUNK``)
    to the CA's route and keep its answers; the number answered. If a message fails, its
    items go back to the pending list and the error propagates."""
    total = 0
    while ra.pending_count():
        total += _forward_chunk(ra, transport, ca_certificate=ca_certificate, clock=clock)
    return total


def _forward_chunk(
    ra: RegistrationAuthority, transport: HopTransport, *, ca_certificate: Certificate, clock: Clock
) -> int:
    items = ra.take_pending(FORWARD_CHUNK)
    try:
        message = sign_hop(
            ra.keys, "RaAcaCertRequestBatch", [ra.expand(item) for item in items], clock
        )
        receiver = HopReceiver(sender=ca_certificate, seen=MemorySeen(), clock=clock)
        answer, _ = receiver.open(transport(ACA_BATCH_PATH, message), "AcaRaResponse")
        check_answers(answer, message)
        ra.accept_response_values(answer["responses"])
    except BaseException:
        ra.return_pending(items)
        raise
    return len(items)


def fetch_la_key(
    ca: PseudonymCa,
    transport: HopTransport,
    *,
    number: int,
    la_certificate: Certificate,
    clock: Clock,
) -> None:
    """The CA asks LA ``number`` for the key they share (once; it keeps it); the answer must
    be signed by ``la_certificate``."""
    message = sign_hop(ca.keys, "AcaLaRequest", ("laCaKey", None), clock)
    receiver = HopReceiver(sender=la_certificate, seen=MemorySeen(), clock=clock)
    answer = signed_answer(
        receiver, "LaAcaResponse", transport(la_path(number, "ca-key"), message), message
    )
    ca.accept_la_key(bytes(answer["laCaKey"]))


def signed_answer(receiver: HopReceiver, type_name: str, answer: bytes, request: bytes) -> Any:
    """An answer signed by the receiver's expected authority that names ``request``."""
    value, _ = receiver.open(answer, type_name)
    return check_answers(value, request)


def hop_routes(
    authorities: ButterflyAuthorities,
    clock: Clock,
    *,
    seen: Callable[[str], SeenList] | None = None,
) -> tuple[CaHop, dict[int, LaHop]]:
    """The CA's and both LAs' route services; ``seen(owner)`` gives each receiver its seen
    list (``"pca"``, ``"la1"``, ``"la2"``; in memory by default)."""
    a = authorities
    ra_certificate = a.ra.certificate
    ca_certificate = a.ca.keys.certificate

    def receiver(sender: Certificate, owner: str) -> HopReceiver:
        seen_list = MemorySeen() if seen is None else seen(owner)
        return HopReceiver(sender=sender, seen=seen_list, clock=clock)

    ca = CaHop(ca=a.ca, from_ra=receiver(ra_certificate, "pca"), clock=clock)
    las = {
        number: LaHop(
            la=la,
            from_ra=receiver(ra_certificate, f"la{number}"),
            from_ca=receiver(ca_certificate, f"la{number}"),
            ca_certificate=a.ca.certificate,
            keys=None if a.la_keys is None else a.la_keys[number - 1],
            clock=clock,
        )
        for number, la in ((1, a.la1), (2, a.la2))
    }
    return ca, las


def issue_in_process(authorities: ButterflyAuthorities, clock: Clock) -> Callable[[], int]:
    """A step that forwards whatever the RA holds pending to the CA in process (one operator
    running both, as ``create_app`` does) and stores the answers; it returns the count."""
    lock = threading.Lock()
    ra, ca = authorities.ra, authorities.ca

    def step() -> int:
        with lock:
            count = ra.pending_count()
            if count:
                ra.accept_responses(ca.issue_batch(ra.forward(), clock.now()))
            return count

    return step
