"""SCP03 session keys from static keys the HSM holds: the line's ``SessionKeySource``."""

from __future__ import annotations

from functools import partial

from fleetid.hsm.base import DerivedKey, Hsm
from fleetid.se.scp03 import SessionKeys, session_keys_by_prf

__all__ = ["HsmSessionKeys"]


class HsmSessionKeys:
    """SCP03 session keys (Amd D §6.2.1) derived with the HSM's AES-CMAC over static keys it holds.

    The one SCP03 KDF (``fleetid.crypto.symmetric.scp03_kdf``, Amd D §4.1.5) runs with the HSM's
    AES-CMAC under the static key's handle as its PRF: each 16-byte block is one CMAC the HSM
    computes. The static keys stay in the HSM; the session keys reach the host, as the spec
    intends.
    """

    def __init__(self, hsm: Hsm, *, enc: DerivedKey | str, mac: DerivedKey | str, length: int):
        self._hsm, self._enc, self._mac, self._length = hsm, enc, mac, length

    def session_keys(self, host_challenge: bytes, card_challenge: bytes) -> SessionKeys:
        return session_keys_by_prf(
            partial(self._hsm.aes_cmac, self._enc),
            partial(self._hsm.aes_cmac, self._mac),
            host_challenge,
            card_challenge,
            self._length * 8,
        )
