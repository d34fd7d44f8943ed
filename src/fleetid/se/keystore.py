"""Sealed flash: the card state at rest, readable only with the chip it was written by.

Two objects stand for two physical parts:

* ``Silicon`` is the chip: it holds a 32-byte fused secret (the "fuse", a PUF or OTP secret in a
  real part). It can be kept in a small file of its own, so that a card survives a restart of the
  process, but the secret is never exposed through any method: the only thing the silicon does
  with it is derive the flash sealing key, and that key is used inside this module only.
* ``SealedFlash`` is the external flash: a file per card (or an in-memory blob). Every write seals
  the whole card state with AES-256-GCM under ``HKDF-SHA256(fuse, info="fleetid se flash seal v1")``
  (RFC 5869), a fresh 96-bit nonce per write (NIST SP 800-38D §8.2.2), and the header as
  associated data. A dump of the flash is ciphertext only; a flash moved to another chip does
  not open.

Blob layout: ``"FIDFLASH" (8) || version (1) || nonce (12) || AES-GCM ciphertext+tag``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fleetid.errors import FlashSealError, StoreError

__all__ = ["SealedFlash", "Silicon"]

_MAGIC = b"FIDFLASH"
_VERSION = 1
_HEADER = _MAGIC + bytes((_VERSION,))
_NONCE = 12
_FUSE_BYTES = 32
_SEAL_INFO = b"fleetid se flash seal v1"


class Silicon:
    """The chip: a fused secret that never leaves this object."""

    __slots__ = ("__fuse", "__sealing")

    def __init__(self, fuse: bytes) -> None:
        if len(fuse) != _FUSE_BYTES:
            raise StoreError(f"a fuse holds {_FUSE_BYTES} bytes")
        self.__fuse = fuse
        self.__sealing: AESGCM | None = None

    def __repr__(self) -> str:
        return "Silicon(<fused>)"

    @classmethod
    def fabricate(cls, random: Callable[[int], bytes] = os.urandom) -> Silicon:
        """A new chip with a fresh random fuse."""
        return cls(random(_FUSE_BYTES))

    @classmethod
    def load(cls, path: Path) -> Silicon:
        """The chip whose fuse is kept in ``path`` (written by ``save``)."""
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise StoreError(f"cannot read the silicon file {path.name}") from exc

    def save(self, path: Path) -> None:
        """Keep the chip in a file of its own (owner-only permissions)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.__fuse)

    def _sealing_key(self) -> AESGCM:
        # Derived once per chip, as a chip's key ladder does at power-up; every write re-seals.
        if self.__sealing is None:
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(
                self.__fuse
            )
            self.__sealing = AESGCM(key)
        return self.__sealing

    def seal(self, plaintext: bytes, random: Callable[[int], bytes] = os.urandom) -> bytes:
        nonce = random(_NONCE)
        return _HEADER + nonce + self._sealing_key().encrypt(nonce, plaintext, _HEADER)

    def unseal(self, blob: bytes) -> bytes:
        if len(blob) < len(_HEADER) + _NONCE + 16 or not blob.startswith(_HEADER):
            raise FlashSealError("not a fleetid flash blob")
        nonce = blob[len(_HEADER) : len(_HEADER) + _NONCE]
        try:
            return self._sealing_key().decrypt(nonce, blob[len(_HEADER) + _NONCE :], _HEADER)
        except InvalidTag:
            raise FlashSealError("flash blob does not open under this chip's fuse") from None


class SealedFlash:
    """The card's external flash: a file (``path``) or, without one, a blob in memory.

    A file is always replaced atomically (written beside, then renamed), so a reader finds the
    old state or the new one, never a torn write. ``sync`` (the default) also forces each write
    to the disk before the rename: the state survives a power cut. ``sync=False`` leaves that to
    the kernel: the state survives a killed process, whose writes the page cache keeps, but not
    a power cut; simulated fleets of many cards use it, their unit of durability being the
    process (a forced write per APDU that changes state is most of their line's time).
    """

    def __init__(self, path: Path | None = None, *, sync: bool = True) -> None:
        self._path = path
        self._sync = sync
        self._blob: bytes | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    def exists(self) -> bool:
        return self._path.exists() if self._path is not None else self._blob is not None

    def dump(self) -> bytes:
        """The raw flash content, as an attacker with a probe would read it."""
        if self._path is not None:
            try:
                return self._path.read_bytes()
            except OSError as exc:
                raise StoreError(f"flash file {self._path.name} cannot be read") from exc
        if self._blob is None:
            raise StoreError("flash is empty")
        return self._blob

    def write(
        self, silicon: Silicon, plaintext: bytes, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        """Seal and store ``plaintext``; a file is replaced atomically (crash-safe)."""
        blob = silicon.seal(plaintext, random)
        if self._path is None:
            self._blob = blob
            return
        tmp = self._path.with_name(self._path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            if self._sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, self._path)

    def read(self, silicon: Silicon) -> bytes:
        """Open the flash with ``silicon``; raise ``FlashSealError`` if it is not this chip's."""
        return silicon.unseal(self.dump())
