"""The filter's per-key maths in plain integers: what a device evaluates, with no numpy.

Keys are 16-byte certificate identifiers (``format.certificate_id``), already SHA-256 outputs, so
per-level hashing only needs to be seeded and well mixed: the MurmurHash3 64-bit finaliser
(fmix64) over the two key words, then one finaliser per output lane. A level's row for a key is a
start slot (Lemire's multiply-shift range reduction of lane 0), a ``width``-bit coefficient (lanes
2, 3, … with its lowest bit forced to 1) and, for a fingerprint level, a ``value_bits`` fingerprint
(lane 1). The builder (``builder.py``) computes the same rows vectorised with numpy; the two must
agree bit for bit, which ``tests/unit/revocation/test_filter_exact.py`` checks as an equivalence
property.

:class:`CompiledFilter` answers "is this key in the encoded side?" from a parsed artefact: the
parity of each solution window under the key's coefficient, compared with its fingerprint (or with
1 on the exact level). ``fleetid.revocation.check.filter`` is its only caller on a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fleetid.revocation.filter.format import CERT_ID_SIZE, LevelParams, SignedFilter

__all__ = [
    "FMIX_1",
    "FMIX_2",
    "LANE_COEFFICIENT",
    "LANE_FINGERPRINT",
    "LANE_START",
    "MASK64",
    "CompiledFilter",
    "base_hash",
    "coefficient",
    "coefficient_words",
    "fmix",
    "key_words",
    "lane",
    "lane_offset",
    "seed_word",
    "start",
]

MASK64: Final = (1 << 64) - 1
FMIX_1: Final = 0xFF51AFD7ED558CCD
FMIX_2: Final = 0xC4CEB9FE1A85EC53
_GOLDEN: Final = 0x9E3779B97F4A7C15
LANE_START: Final = 0
LANE_FINGERPRINT: Final = 1
LANE_COEFFICIENT: Final = 2


def fmix(h: int) -> int:
    """MurmurHash3's 64-bit finaliser."""
    h ^= h >> 33
    h = (h * FMIX_1) & MASK64
    h ^= h >> 33
    h = (h * FMIX_2) & MASK64
    return h ^ (h >> 33)


def seed_word(seed: int) -> int:
    """The word a level's seed is mixed into the first key word with."""
    return fmix(seed ^ _GOLDEN)


def lane_offset(lane_index: int) -> int:
    """What lane ``lane_index`` adds to the base hash before its finaliser."""
    return ((lane_index + 1) * _GOLDEN) & MASK64


def base_hash(k0: int, k1: int, seed: int) -> int:
    """The per-level hash of a key's two words; ``seed`` is the level's ``seed_word``."""
    return fmix(fmix(k0 ^ seed) ^ k1)


def lane(h: int, lane_index: int) -> int:
    """Output lane ``lane_index`` of a base hash."""
    return fmix((h + lane_offset(lane_index)) & MASK64)


def start(lane_value: int, level: LevelParams) -> int:
    """The first slot of a key's row: Lemire's multiply-shift range reduction over the slots a
    row can start at (``slots - width + 1 <= 2**32`` by the format)."""
    return ((lane_value >> 32) * (level.slots - level.width + 1)) >> 32


def coefficient_words(level: LevelParams) -> int:
    """How many 64-bit lanes a row's coefficient takes."""
    return (level.width + 63) // 64


def coefficient(h: int, level: LevelParams) -> int:
    """A key's ``width``-bit row coefficient; its lowest bit is 1 (the row's pivot slot)."""
    value = 0
    for t in range(coefficient_words(level)):
        value |= lane(h, LANE_COEFFICIENT + t) << (64 * t)
    return (value & ((1 << level.width) - 1)) | 1


def key_words(cert_id: bytes) -> tuple[int, int]:
    """The two little-endian 64-bit words of a 16-byte certificate id."""
    if len(cert_id) != CERT_ID_SIZE:
        raise ValueError(f"certificate id must be {CERT_ID_SIZE} bytes")
    return int.from_bytes(cert_id[:8], "little"), int.from_bytes(cert_id[8:], "little")


@dataclass(frozen=True, kw_only=True)
class _CompiledLevel:
    params: LevelParams
    seed_word: int
    bit_offset: int
    window_bytes: int
    exact: bool


@dataclass(frozen=True, kw_only=True)
class CompiledFilter:
    """One parsed artefact, its levels' constants computed once, ready to answer per key."""

    inverted: bool
    body: bytes
    levels: tuple[_CompiledLevel, ...]

    @classmethod
    def of(cls, parsed: SignedFilter) -> CompiledFilter:
        levels = []
        offset = 0
        for index, params in enumerate(parsed.header.levels):
            levels.append(
                _CompiledLevel(
                    params=params,
                    seed_word=seed_word(params.seed),
                    bit_offset=offset,
                    window_bytes=(params.width + 7) // 8 + 1,
                    exact=index == len(parsed.header.levels) - 1,
                )
            )
            offset += params.bits
        return cls(inverted=parsed.header.inverted, body=parsed.body, levels=tuple(levels))

    def says_revoked(self, k0: int, k1: int) -> bool:
        """What this artefact says of the key with words ``(k0, k1)``."""
        return self.in_positive(k0, k1) != self.inverted

    def in_positive(self, k0: int, k1: int) -> bool:
        """Whether the key is in the encoded side (the revoked set; the valid one if inverted)."""
        body = self.body
        for level in self.levels:
            params = level.params
            h = base_hash(k0, k1, level.seed_word)
            first = start(lane(h, LANE_START), params)
            row = coefficient(h, params)
            fingerprint = 1 if level.exact else lane(h, LANE_FINGERPRINT)
            for j in range(params.value_bits):
                bitpos = level.bit_offset + j * params.slots + first
                byte = bitpos >> 3
                window = int.from_bytes(body[byte : byte + level.window_bytes], "little")
                parity = ((window >> (bitpos & 7)) & row).bit_count() & 1
                if parity != (fingerprint >> j) & 1:
                    return False
        return bool(self.levels)
