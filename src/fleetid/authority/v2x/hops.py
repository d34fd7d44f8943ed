"""Signed messages between the butterfly authorities: RA -> pseudonym CA, RA -> LA, CA -> LA.

IEEE 1609.2.1 gives the RA-ACA request and response shapes (``RaAcaCertRequest``,
``AcaRaCertResponse``, §6.3.5.2-3) and leaves the RA-LA and ACA-LA interfaces NULL; our shapes
for those are in ``FleetidButterfly.asn`` (``RaLaRequest``, ``LaRaResponse``, ``AcaLaRequest``,
``LaAcaResponse``, ``AcaRaResponse``). Each request is IEEE 1609.2 signed data (psid 35, the
1609.2.1 SecurityMgmtPsid, generationTime in the header) by the calling authority, naming its
certificate by digest (the receiver knows it; a self-signed or certificate-carrying message is
refused). The receiving side (``HopReceiver``) refuses a message whose signer is not
the one authority it expects (``AuthorityHopError``), a stale one and a replay (the HashedId8
of the message, remembered for the freshness window: ``BatchRefusedError`` ``stale`` /
``replay``). Every answer names the request it answers by that hash; the CA signs its answers
too, and so do the LAs, with the 1609.2 certificates the V2X root issues them at ``fleetid v2x
init`` (``batch_pki.issue_hop_authority``); what they answer is also sealed by them (chain
tokens) or encrypted to the CA (pre-linkage values), so a forged answer would open nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final, Protocol

from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.clock import Clock
from fleetid.errors import AuthorityHopError, BatchRefusedError, EncodingError, VerificationError
from fleetid.formats.butterfly_messages import decode_message, encode_message
from fleetid.formats.ieee1609 import (
    Certificate,
    hashed_id8_of,
    open_signed_data,
    time64,
    verify_signed_data,
)
from fleetid.formats.ieee1609.signed_data import sign_data, unsecured

__all__ = [
    "HOP_PSID",
    "HopReceiver",
    "HopTransport",
    "MemorySeen",
    "SeenList",
    "check_answers",
    "sign_hop",
]

#: SecurityMgmtPsid (IEEE 1609.2.1): the psid of SCMS management messages.
HOP_PSID: Final = 35

#: How an authority reaches another's route: (path, request body) -> response body.
HopTransport = Callable[[str, bytes], bytes]


class SeenList(Protocol):
    def remember(self, request_hash: bytes, *, now: int, expires: int) -> bool: ...


class MemorySeen:
    """Seen request hashes in memory (an authority without a database), as ``SeenRequests``."""

    def __init__(self) -> None:
        self._until: dict[bytes, int] = {}

    def remember(self, request_hash: bytes, *, now: int, expires: int) -> bool:
        for old in [b for b, until in self._until.items() if until < now]:
            del self._until[old]
        if request_hash in self._until:
            return False
        self._until[request_hash] = expires
        return True


def sign_hop(keys: AuthorityKeys, type_name: str, value: Any, clock: Clock) -> bytes:
    """``value`` as COER ``type_name``, signed by the authority (digest of its certificate)."""
    return sign_data(
        {"data": unsecured(encode_message(type_name, value))},
        {"psid": HOP_PSID, "generationTime": time64(clock.now())},
        keys.signer,
        signer_identifier=("digest", keys.certificate.hashed_id8),
        signer_certificate=keys.certificate.encoded,
    )


class HopReceiver:
    """Opens the signed requests one authority sends to another."""

    def __init__(
        self,
        *,
        sender: Certificate,
        seen: SeenList,
        clock: Clock,
        freshness: timedelta = timedelta(minutes=5),
    ) -> None:
        self._sender = sender
        self._seen = seen
        self._clock = clock
        self._window = int(freshness.total_seconds())

    def open(self, message: bytes, type_name: str) -> tuple[Any, bytes]:
        """(the decoded request, its HashedId8); refuses as the module docstring says."""
        signed = open_signed_data(message)
        kind, identifier = signed.signer
        expected = self._sender
        if kind != "digest" or bytes(identifier) != expected.hashed_id8:
            raise AuthorityHopError("the message is not signed by the expected authority")
        try:
            verify_signed_data(signed, expected.verification_key(), expected.encoded)
        except VerificationError:
            raise AuthorityHopError("the authority's signature does not verify") from None
        header = signed.header_info
        if header.get("psid") != HOP_PSID or "generationTime" not in header:
            raise EncodingError("an authority message has psid 35 and a generationTime")
        now = self._clock.now()
        drift = abs(time64(now) - int(header["generationTime"])) // 1_000_000
        if drift > self._window:
            raise BatchRefusedError("stale", "generationTime outside the freshness window")
        request_hash = hashed_id8_of(message)
        seconds = int(now.timestamp())
        if not self._seen.remember(request_hash, now=seconds, expires=seconds + self._window + 1):
            raise BatchRefusedError("replay", "this authority message was already accepted")
        return decode_message(type_name, signed.unsecured_payload()), request_hash


def check_answers(value: Any, request: bytes) -> Any:
    """``value`` if its requestHash names ``request``; ``VerificationError`` otherwise."""
    if bytes(value["requestHash"]) != hashed_id8_of(request):
        raise VerificationError("the answer is for another request")
    return value
