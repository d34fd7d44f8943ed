"""A linkage authority (IEEE 1609.2.1 §9.4; the SCMS LA1 and LA2).

For every device chain the registration authority opens, the LA draws a random initial seed
ls(0); the seed of period i is the hash chain ls(i) (``fleetid.crypto.linkage``). The RA names
the chain by the token ``new_chain`` gave it. For each certificate (i, j) the LA gives the RA the
pre-linkage value plv(i, j), encrypted to the pseudonym CA
(``fleetid.formats.butterfly_messages.seal_plv``), and a chain reference for the CA to keep: the
chain sealed under this LA's own key, then encrypted to the *other* LA, fresh for every
certificate. So the RA never sees a plv; the CA sees plv1 and plv2 of one certificate but no
chain; neither LA sees a certificate; and the CA's records, even with one LA's keys, do not tell
which certificates share a chain: each reference takes both LAs to open.

To revoke, the other LA first ``peel``s the outer layer of the reference the CA recorded for the
reported certificate; this LA then ``reveal``s ls(i) of the chain (nothing before it) and the
token the RA holds for it, so that the RA can block the device.

Given an ``engine``, the LA keeps its chains, its LA-CA and reference keys and the other LA's
key in its database (``fleetid.store.butterfly_state``), every seed and key sealed with AES-GCM
under a key derived from its wrapping key (``fleetid.crypto.sealed_state``), which stays in the
passphrase-protected key store: a restarted LA continues every chain where it was.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.linkage import linkage_seed_at, pre_linkage_value
from fleetid.crypto.opaque_reference import open_reference, seal_reference
from fleetid.crypto.sealed_state import StateSealer
from fleetid.crypto.v2xkeys import PrivateKey, generate_key
from fleetid.errors import EncodingError, NotFoundError, PolicyError, VerificationError
from fleetid.formats.butterfly_messages import open_from_key, seal_plv, seal_to_key
from fleetid.formats.etsi102941 import encrypt
from fleetid.store.butterfly_state import ChainRow, LaChains, SealedSecrets
from fleetid.store.engine import Engine

__all__ = ["MAX_PERIOD", "LinkageAuthority"]

#: The last period an LA walks its chains to: 1609.2 IValue is 16 bits.
MAX_PERIOD: Final = 0xFFFF
_CHAIN_ID_SIZE: Final = 16


@dataclass(kw_only=True)
class _Chain:
    token: bytes  # what the RA holds for this chain
    initial: bytes = field(repr=False)
    at: int = 0  # the period of ``seed``, the latest reached: walking on starts from it
    seed: bytes = field(default=b"", repr=False)


class LinkageAuthority:
    """One LA, identified by its 2-byte ``la_id``, sharing an AES-128 key with the CA."""

    def __init__(
        self,
        *,
        la_id: bytes,
        wrapping_key: PrivateKey | None = None,
        engine: Engine | None = None,
    ) -> None:
        if len(la_id) != 2:
            raise EncodingError("an LA identifier is 2 bytes")
        if engine is not None and wrapping_key is None:
            raise EncodingError("an LA with a database needs its wrapping key from its key store")
        self.la_id = la_id
        # The other LA encrypts references to the wrapping key.
        self._wrapping_key = wrapping_key or generate_key("nistP256")
        self._peer: ec.EllipticCurvePublicKey | None = None
        self._chains: dict[bytes, _Chain] = {}
        self._sealer = StateSealer.for_key(self._wrapping_key)
        self._stored: LaChains | None = None
        self._secrets: SealedSecrets | None = None
        keys: dict[str, bytes] = {}
        if engine is not None:
            self._stored = LaChains(engine, la_id)
            self._secrets = SealedSecrets(engine, f"la-{la_id.hex()}")
            keys = {n: self._sealer.open(v, n.encode()) for n, v in self._secrets.all().items()}
        for name in ("ca-key", "reference-key"):
            if name not in keys:
                keys[name] = secrets.token_bytes(16)
                self._keep(name, keys[name])
        self._ca_key, self._reference_key = keys["ca-key"], keys["reference-key"]
        if "peer" in keys:
            peer = serialization.load_der_public_key(keys["peer"])
            if not isinstance(peer, ec.EllipticCurvePublicKey):
                raise EncodingError("the stored peer LA key is not an EC key")
            self._peer = peer

    def _keep(self, name: str, value: bytes) -> None:
        if self._secrets is not None:
            self._secrets.put(name, self._sealer.seal(value, name.encode()))

    def _context(self, chain_id: bytes, what: bytes, at: int) -> bytes:
        return self.la_id + chain_id + what + at.to_bytes(2, "big")

    @property
    def wrapping_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._wrapping_key.public_key()

    @property
    def paired(self) -> bool:
        return self._peer is not None

    def pair_with(self, other: ec.EllipticCurvePublicKey) -> None:
        """The other LA's key, which every chain reference for the CA is encrypted to."""
        self._peer = other
        der = other.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._keep("peer", der)

    def key_for_ca(self, ca_certificate: bytes) -> bytes:
        """The LA-CA key, encrypted to the CA's certificate (EtsiTs103097Data-Encrypted)."""
        return encrypt(self.la_id + self._ca_key, ca_certificate).encoded

    def new_chain(self) -> bytes:
        """Open a chain for a device (the RA asks once per device); its sealed reference."""
        chain_id = secrets.token_bytes(_CHAIN_ID_SIZE)
        initial = secrets.token_bytes(16)
        token = seal_reference(self._reference_key, chain_id)
        if self._stored is not None:
            self._stored.add(
                ChainRow(
                    chain_id=chain_id,
                    token=token,
                    initial_seed=self._sealer.seal(initial, self._context(chain_id, b"ls", 0)),
                    at=0,
                    seed=self._sealer.seal(initial, self._context(chain_id, b"ls", 0)),
                )
            )
        self._chains[chain_id] = _Chain(token=token, initial=initial, seed=initial)
        return token

    def _chain(self, reference: bytes) -> tuple[bytes, _Chain]:
        try:
            chain_id = open_reference(self._reference_key, reference)
        except (EncodingError, VerificationError):
            raise VerificationError("not a chain reference of this linkage authority") from None
        chain = self._chains.get(chain_id)
        if chain is None and self._stored is not None:
            row = self._stored.get(chain_id)
            if row is not None:
                chain = _Chain(
                    token=row.token,
                    initial=self._sealer.open(row.initial_seed, self._context(chain_id, b"ls", 0)),
                    at=row.at,
                    seed=self._sealer.open(row.seed, self._context(chain_id, b"ls", row.at)),
                )
                self._chains[chain_id] = chain
        if chain is None:
            raise NotFoundError("no such linkage chain")
        return chain_id, chain

    def _seed(self, chain_id: bytes, chain: _Chain, i: int) -> bytes:
        if not 0 <= i <= MAX_PERIOD:
            raise EncodingError(f"a period is a 16-bit IValue, got {i}")
        if i >= chain.at:
            if i > chain.at:
                chain.seed = linkage_seed_at(chain.seed, self.la_id, i - chain.at)
                chain.at = i
                if self._stored is not None:
                    sealed = self._sealer.seal(chain.seed, self._context(chain_id, b"ls", i))
                    self._stored.advance(chain_id, i, sealed)
            return chain.seed
        return linkage_seed_at(chain.initial, self.la_id, i)

    def pre_linkage_values(self, reference: bytes, i: int, count: int) -> list[dict[str, Any]]:
        """EncryptedPlv values for (i, 0) .. (i, count - 1), each with a fresh chain reference."""
        if self._peer is None:
            raise PolicyError("this LA is not paired with the other LA yet")
        chain_id, chain = self._chain(reference)
        seed = self._seed(chain_id, chain, i)
        values = []
        for j in range(count):
            nonce, ciphertext = seal_plv(
                self._ca_key, self.la_id, i, j, pre_linkage_value(seed, self.la_id, j)
            )
            values.append(
                {
                    "laId": self.la_id,
                    "chainReference": seal_to_key(
                        seal_reference(self._reference_key, chain_id), self._peer
                    ),
                    "nonce": nonce,
                    "ccmCiphertext": ciphertext,
                }
            )
        return values

    def peel(self, reference: bytes) -> bytes:
        """The other LA's inner reference from a chain reference the CA recorded.

        Raises ``VerificationError`` if the reference is not encrypted to this LA.
        """
        return open_from_key(reference, self._wrapping_key, self.wrapping_public_key)

    def reveal(self, inner: bytes, i: int) -> tuple[bytes, bytes]:
        """(ls(i), the RA's token) of the chain behind an inner reference (``peel``ed by the
        other LA): what a linked CRL publishes, and what the RA blocks."""
        chain_id, chain = self._chain(inner)
        return self._seed(chain_id, chain, i), chain.token

    def reveal_seed(self, token: bytes, i: int) -> bytes:
        """ls(i) of the chain behind the RA's token (the RA and this LA cooperating)."""
        chain_id, chain = self._chain(token)
        return self._seed(chain_id, chain, i)

    def chain_count(self) -> int:
        return len(self._chains) if self._stored is None else self._stored.count()
