"""A linkage authority (IEEE 1609.2.1 §9.4; the SCMS LA1 and LA2).

For every device chain the registration authority opens, the LA draws a random initial seed
ls(0); the seed of period i is the hash chain ls(i) (``fleetid.crypto.linkage``). For each
certificate (i, j) it gives the RA the pre-linkage value plv(i, j), encrypted to the pseudonym
CA (``fleetid.formats.butterfly_messages.seal_plv``), together with a fresh sealed reference to
the chain that only this LA can open. So the RA never sees a plv, the CA sees plv1 and plv2 of
one certificate but no chain, and neither LA sees a certificate.

To revoke, the misbehaviour process brings this LA the chain reference the CA recorded for the
reported certificate and the period; the LA answers ls(i) of that chain, nothing before it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from fleetid.crypto.linkage import linkage_seed_at, pre_linkage_value
from fleetid.crypto.opaque_reference import open_reference, seal_reference
from fleetid.errors import EncodingError, NotFoundError, VerificationError
from fleetid.formats.butterfly_messages import seal_plv
from fleetid.formats.etsi102941 import encrypt

__all__ = ["MAX_PERIOD", "LinkageAuthority"]

#: The last period an LA walks its chains to: 1609.2 IValue is 16 bits.
MAX_PERIOD: Final = 0xFFFF
_CHAIN_ID_SIZE: Final = 16


@dataclass(kw_only=True)
class _Chain:
    initial: bytes = field(repr=False)
    at: int = 0  # the period of ``seed``, the latest reached: walking on starts from it
    seed: bytes = field(default=b"", repr=False)


class LinkageAuthority:
    """One LA, identified by its 2-byte ``la_id``, sharing an AES-128 key with the CA."""

    def __init__(self, *, la_id: bytes) -> None:
        if len(la_id) != 2:
            raise EncodingError("an LA identifier is 2 bytes")
        self.la_id = la_id
        self._ca_key = secrets.token_bytes(16)
        self._reference_key = secrets.token_bytes(16)
        self._chains: dict[bytes, _Chain] = {}

    def key_for_ca(self, ca_certificate: bytes) -> bytes:
        """The LA-CA key, encrypted to the CA's certificate (EtsiTs103097Data-Encrypted)."""
        return encrypt(self.la_id + self._ca_key, ca_certificate).encoded

    def new_chain(self) -> bytes:
        """Open a chain for a device (the RA asks once per device); its sealed reference."""
        chain_id = secrets.token_bytes(_CHAIN_ID_SIZE)
        initial = secrets.token_bytes(16)
        self._chains[chain_id] = _Chain(initial=initial, seed=initial)
        return seal_reference(self._reference_key, chain_id)

    def _chain(self, reference: bytes) -> tuple[bytes, _Chain]:
        try:
            chain_id = open_reference(self._reference_key, reference)
        except (EncodingError, VerificationError):
            raise VerificationError("not a chain reference of this linkage authority") from None
        chain = self._chains.get(chain_id)
        if chain is None:
            raise NotFoundError("no such linkage chain")
        return chain_id, chain

    def _seed(self, chain: _Chain, i: int) -> bytes:
        if not 0 <= i <= MAX_PERIOD:
            raise EncodingError(f"a period is a 16-bit IValue, got {i}")
        if i >= chain.at:
            chain.seed = linkage_seed_at(chain.seed, self.la_id, i - chain.at)
            chain.at = i
            return chain.seed
        return linkage_seed_at(chain.initial, self.la_id, i)

    def pre_linkage_values(self, reference: bytes, i: int, count: int) -> list[dict[str, Any]]:
        """EncryptedPlv values for (i, 0) .. (i, count - 1), each with a fresh chain reference."""
        chain_id, chain = self._chain(reference)
        seed = self._seed(chain, i)
        values = []
        for j in range(count):
            nonce, ciphertext = seal_plv(
                self._ca_key, self.la_id, i, j, pre_linkage_value(seed, self.la_id, j)
            )
            values.append(
                {
                    "laId": self.la_id,
                    "chainReference": seal_reference(self._reference_key, chain_id),
                    "nonce": nonce,
                    "ccmCiphertext": ciphertext,
                }
            )
        return values

    def reveal_seed(self, reference: bytes, i: int) -> bytes:
        """ls(i) of the chain behind ``reference``: what a linked CRL publishes to revoke it."""
        _, chain = self._chain(reference)
        return self._seed(chain, i)

    def chain_count(self) -> int:
        return len(self._chains)
