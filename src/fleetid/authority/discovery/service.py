"""The discovery service: SM-DS in shape (GSMA SGP.22 §3.6 ES11 and ES12).

Preparation services register events (ES12 RegisterEvent): "the device with discovery reference
R has event E at address A". R is the SHA-256 of the device's manufacturer identity
(``discovery_reference``), never the identity; no package content reaches this service. Several
preparation services (an operator's, a second authority's) register with one discovery service.

A device polls in two steps (ES11 InitiateAuthentication, AuthenticateClient): the service
answers a transaction ID and a fresh challenge; the device answers an SE key attestation bound
to it. The service checks the attestation against the manufacturer roots, computes R from the
attested IDevID and answers R's event records (event ID, address) and nothing else. Every
failed poll gets the same answer, so an unauthenticated or foreign poll learns nothing, not even
whether an event exists. The answer is signed by the discovery service over the poll's
transaction ID and challenge (``discovery_signed``), with the service's certificate chain: the
device checks it against its fleet trust anchors, so an answer altered on the way, or made by
a service the device does not trust, is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509

from fleetid.authority.attestation.base import VerificationPolicy
from fleetid.authority.attestation.key_proof import KeyProofVerifier
from fleetid.clock import Clock
from fleetid.crypto.signer import Signer
from fleetid.errors import AuthenticationError, FleetIdError
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.package_messages import (
    CHALLENGE_LENGTH,
    attestation_challenge,
    discovery_reference,
    discovery_signed,
)
from fleetid.store.package_repository import (
    DiscoveryEvent,
    EventRegistration,
    PackageRepository,
)

__all__ = ["DiscoveryAnswer", "DiscoveryService"]

_REFUSED = "the poll does not authenticate"


@dataclass(frozen=True, kw_only=True)
class DiscoveryAnswer:
    """The polling device's event records, signed (``discovery_signed``) by the service whose
    certificate comes first in ``chain``."""

    events: tuple[DiscoveryEvent, ...]
    signature: bytes
    chain: tuple[x509.Certificate, ...]


class DiscoveryService:
    """One discovery service over the event index of ``repository``."""

    def __init__(
        self,
        *,
        repository: PackageRepository,
        clock: Clock,
        attestation_policy: Callable[[], VerificationPolicy],
        identity: Callable[[], tuple[Signer, tuple[x509.Certificate, ...]]],
        session_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        self.repository = repository
        self._identity = identity
        self.clock = clock
        self._policy = attestation_policy
        self._ttl = session_ttl
        self._proofs = KeyProofVerifier()

    # --- ES12 -----------------------------------------------------------------------------------

    def register_events(self, events: Sequence[EventRegistration]) -> None:
        """ES12 RegisterEvent for a batch of orders: one commit for the batch."""
        self.repository.register_events(events, self.clock.now())

    def delete_event(self, event_id: str) -> None:
        self.repository.delete_event(event_id)

    def events(self) -> list[tuple[str, DiscoveryEvent]]:
        """Every record with its device reference: the operator's ``fleetid discovery list``."""
        return self.repository.all_events()

    # --- ES11 -----------------------------------------------------------------------------------

    def initiate_authentication(self) -> tuple[bytes, bytes]:
        """A new poll session: (transaction ID, server challenge)."""
        transaction_id = secrets.token_bytes(16)
        challenge = secrets.token_bytes(CHALLENGE_LENGTH)
        self.repository.add_discovery_session(
            transaction_id.hex(), challenge, self.clock.now() + self._ttl
        )
        return transaction_id, challenge

    def authenticate_client(
        self, transaction_id: bytes, attestation: bytes, chain: list[bytes]
    ) -> DiscoveryAnswer:
        """The polling device's event records, signed; one refusal for every failure."""
        now = self.clock.now()
        challenge = self.repository.spend_discovery_session(transaction_id.hex(), now)
        if challenge is None:
            raise AuthenticationError(_REFUSED)
        try:
            attested = self._proofs.verify(
                attestation=attestation,
                chain=chain,
                policy=self._policy(),
                usage=KeyUsage.SIGN,
                challenge=attestation_challenge(transaction_id, challenge),
                now=now,
            )
        except FleetIdError:
            raise AuthenticationError(_REFUSED) from None
        events = self.repository.events_for(discovery_reference(attested.device_id))
        signer, certificates = self._identity()
        signed = discovery_signed(
            transaction_id=transaction_id,
            server_challenge=challenge,
            events=[(e.event_id, e.service_address) for e in events],
        )
        return DiscoveryAnswer(
            events=tuple(events), signature=signer.sign(signed), chain=certificates
        )
