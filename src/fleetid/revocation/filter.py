"""Offline revocation filters: an exact, compact, signed answer to "is this certificate revoked?".

The builder knows the whole population (every unexpired certificate it issued up to the coverage
time), so it can encode the 1-bit function revoked/valid over exactly that set; a device answers
from the filter alone, with no network at check time. This is the CRLite idea (Larisch et al.,
IEEE S&P 2017) in the two-level form of Mozilla's clubcards (Schanck, IEEE S&P 2025):

* Level 1 is a ribbon *filter* of the smaller side ``P`` (revoked certificates, or the valid ones
  when those are fewer): a k-bit fingerprint of every key in ``P`` is stored as the solution of a
  banded linear system over GF(2) (Dillinger and Walzer, "Ribbon filter", 2021). A key outside
  ``P`` matches with probability 2^-k.
* Level 2 is an exact ribbon *retrieval* of one bit over ``P`` and the level-1 false positives
  among the rest of the population, which the builder finds by evaluating level 1 on every key.

``k`` is chosen to minimise ``k·|P| + |P| + (N-|P|)·2^-k`` bits, which lands within a few percent
of ``log2 C(N, R)`` before the ribbon overhead. Keys are 16-byte certificate identifiers
(:func:`certificate_id`). The builder is vectorised with numpy; the device-side check uses only
integers and bytes.

Delta filters are the same structure over "revoked since the artefact this delta follows" versus
the current valid population, chained by digest; ``docs/revocation-filter.md`` states the rules a
verifier applies.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import Signer, hash_for_curve, verify_signature
from fleetid.errors import CertificateRevokedError, PolicyError, StoreError, VerificationError
from fleetid.revocation.filter_format import (
    MAX_FINGERPRINT_BITS,
    FilterHeader,
    FilterKind,
    LevelParams,
    SignedFilter,
    append_signature,
    encode_unsigned,
    key_id,
    parse_filter,
)

__all__ = [
    "CERT_ID_SIZE",
    "CertificateRevokedError",
    "DeltaBaseError",
    "DeltaGapError",
    "FilterRollbackError",
    "FilterVerifier",
    "KeySource",
    "NotCoveredError",
    "Verdict",
    "build_delta",
    "build_filter",
    "certificate_id",
    "information_bound_bits",
]

CERT_ID_SIZE = 16

KeySource = Iterable[bytes] | npt.NDArray[np.uint8]
"""Certificate identifiers: an iterable of 16-byte strings, or an ``(n, 16)`` uint8 array."""

_U64Array = npt.NDArray[np.uint64]

# --- hashing -------------------------------------------------------------------------------------
# Keys are already SHA-256 outputs, so per-level hashing only needs to be seeded and well mixed:
# the MurmurHash3 64-bit finaliser (fmix64) over the two key words, then one finaliser per output
# lane. The integer and numpy versions below must agree bit for bit (tested).

_MASK64 = (1 << 64) - 1
_FMIX_1 = 0xFF51AFD7ED558CCD
_FMIX_2 = 0xC4CEB9FE1A85EC53
_GOLDEN = 0x9E3779B97F4A7C15
_LANE_START = 0
_LANE_FINGERPRINT = 1
_LANE_COEFFICIENT = 2


def _fmix(h: int) -> int:
    h ^= h >> 33
    h = (h * _FMIX_1) & _MASK64
    h ^= h >> 33
    h = (h * _FMIX_2) & _MASK64
    return h ^ (h >> 33)


def _fmix_np(h: _U64Array) -> _U64Array:
    h = h ^ (h >> np.uint64(33))
    h *= np.uint64(_FMIX_1)
    h ^= h >> np.uint64(33)
    h *= np.uint64(_FMIX_2)
    h ^= h >> np.uint64(33)
    return h


def _seed_word(seed: int) -> int:
    return _fmix(seed ^ _GOLDEN)


def _lane_offset(lane: int) -> int:
    return ((lane + 1) * _GOLDEN) & _MASK64


def _base_hash(k0: int, k1: int, seed_word: int) -> int:
    return _fmix(_fmix(k0 ^ seed_word) ^ k1)


def _lane(h: int, lane: int) -> int:
    return _fmix((h + _lane_offset(lane)) & _MASK64)


def _base_hash_np(keys: _U64Array, seed_word: int) -> _U64Array:
    return _fmix_np(_fmix_np(keys[:, 0] ^ np.uint64(seed_word)) ^ keys[:, 1])


def _lane_np(h: _U64Array, lane: int) -> _U64Array:
    return _fmix_np(h + np.uint64(_lane_offset(lane)))


def _start(lane_value: int, level: LevelParams) -> int:
    # Lemire's multiply-shift range reduction; ``slots - width + 1 <= 2**32`` by the format.
    return ((lane_value >> 32) * (level.slots - level.width + 1)) >> 32


def _coefficient_words(level: LevelParams) -> int:
    return (level.width + 63) // 64


def _coefficient(h: int, level: LevelParams) -> int:
    value = 0
    for t in range(_coefficient_words(level)):
        value |= _lane(h, _LANE_COEFFICIENT + t) << (64 * t)
    return (value & ((1 << level.width) - 1)) | 1


@dataclass(frozen=True, kw_only=True)
class _Rows:
    start: _U64Array
    coefficient: list[_U64Array]
    fingerprint: _U64Array


def _rows_np(keys: _U64Array, level: LevelParams) -> _Rows:
    h = _base_hash_np(keys, _seed_word(level.seed))
    span = np.uint64(level.slots - level.width + 1)
    start = ((_lane_np(h, _LANE_START) >> np.uint64(32)) * span) >> np.uint64(32)
    words = [_lane_np(h, _LANE_COEFFICIENT + t) for t in range(_coefficient_words(level))]
    tail = level.width % 64
    if tail:
        words[-1] &= np.uint64((1 << tail) - 1)
    words[0] |= np.uint64(1)
    fingerprint = _lane_np(h, _LANE_FINGERPRINT)
    if level.value_bits < 64:
        fingerprint &= np.uint64((1 << level.value_bits) - 1)
    return _Rows(start=start, coefficient=words, fingerprint=fingerprint)


# --- the ribbon solver ---------------------------------------------------------------------------

_DENSE_LIMIT = 256
_DENSE_SLACK = 8
_BAND_WIDTH = 128
_BAND_OVERHEAD = 0.04
_ATTEMPTS = 16


def _level_shape(n: int, attempt: int) -> tuple[int, int]:
    """(width, slots) for ``n`` rows.

    Small systems are solved dense: every row spans all ``n + d`` slots, starting with d = 0
    spare slots and adding one every second retry (a random n×(n+d) GF(2) matrix has full rank
    with probability above 0.28 at d = 0 and about 1 - 2^-d beyond, and a consistent right-hand
    side solves even when it has not), so tiny deltas pay almost nothing over their n·k bits.
    Larger systems use 128-bit bands with 4 % spare slots, which solved every trial measured up
    to 1 M rows (3 % did not); each second retry adds 1 %.
    """
    if n + _DENSE_SLACK <= _DENSE_LIMIT:
        size = max(1, n + min(attempt // 2, _DENSE_SLACK))
        return size, size
    overhead = _BAND_OVERHEAD + 0.01 * (attempt // 2)
    return _BAND_WIDTH, max(_BAND_WIDTH, math.ceil(n * (1 + overhead)) + _DENSE_SLACK)


def _solve(
    level: LevelParams, starts: list[int], coefficients: list[int], values: list[int]
) -> list[bytes] | None:
    """Solve the banded system; return the ``value_bits`` solution columns, or None if singular.

    Insertion is on-the-fly Gaussian elimination in Ribbon form (Dillinger and Walzer 2021, §3):
    each pivot row is kept at the slot of its lowest set bit, so every row stays within one band.
    """
    m = level.slots
    pivots = [0] * m
    rhs = [0] * m
    for start, coefficient, value in zip(starts, coefficients, values, strict=True):
        s, c, b = start, coefficient, value
        while True:
            pivot = pivots[s]
            if not pivot:
                pivots[s] = c
                rhs[s] = b
                break
            c ^= pivot
            b ^= rhs[s]
            if not c:
                if b:
                    return None
                break
            shift = (c & -c).bit_length() - 1
            c >>= shift
            s += shift
    window_mask = (1 << (level.width - 1)) - 1
    columns = []
    for j in range(level.value_bits):
        column = bytearray(m)
        window = 0
        for i in range(m - 1, -1, -1):
            row = pivots[i]
            bit = ((rhs[i] >> j) ^ ((row >> 1) & window).bit_count()) & 1 if row else 0
            window = ((window << 1) | bit) & window_mask
            column[i] = bit
        columns.append(bytes(column))
    return columns


def _level_seed(level_index: int, attempt: int) -> int:
    return _fmix((level_index << 32) | attempt)


def _build_level(
    keys: _U64Array, *, level_index: int, value_bits: int, values: Sequence[int] | None
) -> tuple[LevelParams, list[bytes]]:
    """Solve one level; ``values`` None means "store each key's fingerprint" (the filter level)."""
    n = len(keys)
    for attempt in range(_ATTEMPTS):
        width, slots = _level_shape(n, attempt)
        level = LevelParams(
            width=width, value_bits=value_bits, slots=slots, seed=_level_seed(level_index, attempt)
        )
        rows = _rows_np(keys, level)
        coefficient = rows.coefficient[0].tolist()
        for t, word in enumerate(rows.coefficient[1:], start=1):
            high = word.tolist()
            coefficient = [c | (w << (64 * t)) for c, w in zip(coefficient, high, strict=True)]
        targets = rows.fingerprint.tolist() if values is None else list(values)
        columns = _solve(level, rows.start.tolist(), coefficient, targets)
        if columns is not None:
            return level, columns
    raise RuntimeError(f"ribbon system of {n} rows did not solve in {_ATTEMPTS} attempts")


def _words(columns: list[bytes], extra_words: int) -> _U64Array:
    """Pack 0/1 columns LSB-first into little-endian 64-bit words, zero-padded for windows."""
    packed = np.packbits(np.frombuffer(b"".join(columns), dtype=np.uint8), bitorder="little")
    padded = np.zeros(-(-len(packed) // 8) * 8 + 8 * extra_words, dtype=np.uint8)
    padded[: len(packed)] = packed
    return padded.view("<u8").astype(np.uint64)


def _parity_np(words: _U64Array, bitpos: _U64Array, coefficient: list[_U64Array]) -> _U64Array:
    """Per key: parity of (coefficient AND the ``width`` solution bits starting at ``bitpos``)."""
    acc = np.zeros(len(bitpos), dtype=np.uint64)
    for t, c in enumerate(coefficient):
        p = bitpos + np.uint64(64 * t)
        q = (p >> np.uint64(6)).astype(np.intp)
        r = p & np.uint64(63)
        # ``x << 1 << (63 - r)`` is ``x << (64 - r)`` without the undefined shift by 64 at r = 0.
        window = (words[q] >> r) | ((words[q + 1] << np.uint64(1)) << (np.uint64(63) - r))
        acc ^= window & c
    return np.bitwise_count(acc).astype(np.uint64) & np.uint64(1)


_CHUNK = 1 << 20


def _in_positive_np(
    words: _U64Array,
    levels: Sequence[LevelParams],
    keys: _U64Array,
    *,
    last_is_exact: bool = True,
) -> npt.NDArray[np.bool_]:
    """Vectorised membership in the encoded side ``P`` (levels packed from bit 0 of ``words``).

    ``last_is_exact=False`` evaluates fingerprint levels only (the builder's level-1 pass).
    """
    result = np.zeros(len(keys), dtype=np.bool_)
    if not levels:
        return result
    for low in range(0, len(keys), _CHUNK):
        chunk = keys[low : low + _CHUNK]
        alive = np.arange(len(chunk))
        offset = 0
        for index, level in enumerate(levels):
            rows = _rows_np(chunk[alive], level)
            exact = last_is_exact and index == len(levels) - 1
            for j in range(level.value_bits):
                bit = _parity_np(
                    words, rows.start + np.uint64(offset + j * level.slots), rows.coefficient
                )
                keep = bit == 1 if exact else bit == (rows.fingerprint >> np.uint64(j)) & 1
                alive = alive[keep]
                rows = _Rows(
                    start=rows.start[keep],
                    coefficient=[c[keep] for c in rows.coefficient],
                    fingerprint=rows.fingerprint[keep],
                )
            offset += level.bits
        result[low + alive] = True
    return result


def _fingerprint_bits(positives: int, negatives: int) -> int:
    """The k minimising k·P + P + N·2^-k (level-1 bits + level-2 bits), capped by the format."""
    return min(
        range(MAX_FINGERPRINT_BITS + 1),
        key=lambda k: k * positives + positives + negatives / 2.0**k,
    )


def _unique_exact_rows(
    keys: _U64Array, values: npt.NDArray[np.uint8]
) -> tuple[_U64Array, npt.NDArray[np.uint8]]:
    """Drop repeated keys; a key listed both revoked and valid is a broken population."""
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    keys, values = keys[order], values[order]
    same = np.all(keys[1:] == keys[:-1], axis=1)
    if np.any(same & (values[1:] != values[:-1])):
        raise StoreError("a certificate id is listed both as revoked and as valid")
    keep = np.concatenate(([True], ~same))
    return keys[keep], values[keep]


def _encode(positives: _U64Array, negatives: _U64Array) -> tuple[tuple[LevelParams, ...], bytes]:
    """The levels and body that map every key of ``positives`` to 1 and of ``negatives`` to 0."""
    if len(positives) == 0:
        return (), b""
    k = _fingerprint_bits(len(positives), len(negatives))
    levels: list[LevelParams] = []
    columns: list[bytes] = []
    passed = negatives
    if k:
        level, level_columns = _build_level(positives, level_index=0, value_bits=k, values=None)
        levels.append(level)
        columns.extend(level_columns)
        words = _words(level_columns, _coefficient_words(level) + 1)
        passed = negatives[_in_positive_np(words, [level], negatives, last_is_exact=False)]
    exact_keys = np.concatenate((positives, passed))
    exact_values = np.concatenate(
        (np.ones(len(positives), dtype=np.uint8), np.zeros(len(passed), dtype=np.uint8))
    )
    exact_keys, exact_values = _unique_exact_rows(exact_keys, exact_values)
    level, level_columns = _build_level(
        exact_keys, level_index=1, value_bits=1, values=exact_values.tolist()
    )
    levels.append(level)
    columns.extend(level_columns)
    body = np.packbits(np.frombuffer(b"".join(columns), dtype=np.uint8), bitorder="little")
    return tuple(levels), body.tobytes()


# --- inputs --------------------------------------------------------------------------------------


def certificate_id(issuer_key_id: bytes, serial_number: int) -> bytes:
    """The 16-byte key a filter uses for a certificate: SHA-256(issuer key id ‖ serial)[:16].

    ``serial_number`` is written as 20 big-endian octets, the RFC 5280 §4.1.2.2 maximum.
    """
    if not issuer_key_id:
        raise ValueError("issuer key id is empty")
    if not 0 < serial_number < 1 << 160:
        raise ValueError("serial number must be positive and at most 20 octets (RFC 5280)")
    digest = hashlib.sha256(issuer_key_id + serial_number.to_bytes(20, "big")).digest()
    return digest[:CERT_ID_SIZE]


def _key_array(keys: KeySource) -> _U64Array:
    if isinstance(keys, np.ndarray):
        array = np.ascontiguousarray(keys)
        if array.dtype != np.uint8 or array.ndim != 2 or array.shape[1] != CERT_ID_SIZE:
            raise ValueError(f"key array must be uint8 with shape (n, {CERT_ID_SIZE})")
        return array.view("<u8").astype(np.uint64)
    items = keys if isinstance(keys, list | tuple) else list(keys)
    if set(map(len, items)) - {CERT_ID_SIZE}:
        raise ValueError(f"every certificate id must be {CERT_ID_SIZE} bytes")
    return np.frombuffer(b"".join(items), dtype="<u8").astype(np.uint64).reshape(-1, 2)


def information_bound_bits(population: int, revoked: int) -> float:
    """log2 C(N, R): the fewest bits any exact encoding of R revoked among N can use."""
    ln_binomial = (
        math.lgamma(population + 1)
        - math.lgamma(revoked + 1)
        - math.lgamma(population - revoked + 1)
    )
    return ln_binomial / math.log(2)


def _coverage_seconds(coverage_until: datetime) -> datetime:
    if coverage_until.tzinfo is None:
        raise ValueError("coverage_until must be timezone-aware")
    # Rounding down keeps coverage conservative: a certificate issued within the dropped fraction
    # of a second is reported not covered rather than answered from a filter that may lack it.
    return datetime.fromtimestamp(math.floor(coverage_until.timestamp()), tz=coverage_until.tzinfo)


def _check_signer(signer: Signer) -> bytes:
    public_key = signer.public_key()
    if signer.hash_algorithm.name != hash_for_curve(public_key.curve).name:
        raise ValueError("the filter signer must hash with the curve's hash (FIPS 186-5)")
    return key_id(public_key)


def _build(
    revoked: KeySource,
    valid: KeySource,
    *,
    kind: FilterKind,
    watermark: int,
    coverage_until: datetime,
    signer: Signer,
    base: SignedFilter | None,
) -> bytes:
    if not 0 <= watermark < 1 << 64:
        raise ValueError("watermark out of range")
    coverage = _coverage_seconds(coverage_until)
    signer_key_id = _check_signer(signer)
    revoked_keys = _key_array(revoked)
    valid_keys = _key_array(valid)
    inverted = len(revoked_keys) > len(valid_keys)
    positives, negatives = (valid_keys, revoked_keys) if inverted else (revoked_keys, valid_keys)
    levels, body = _encode(positives, negatives)
    zero = bytes(32)
    full_digest = zero
    if base is not None:
        delta_base = base.header.kind is FilterKind.DELTA
        full_digest = base.header.full_digest if delta_base else base.digest
    header = FilterHeader(
        kind=kind,
        inverted=inverted,
        watermark=watermark,
        coverage_until=coverage,
        base_watermark=base.header.watermark if base else 0,
        full_digest=full_digest,
        base_digest=base.digest if base else zero,
        signer_key_id=signer_key_id,
        revoked_count=len(revoked_keys),
        valid_count=len(valid_keys),
        levels=levels,
    )
    unsigned = encode_unsigned(header, body)
    return append_signature(unsigned, signer.sign(unsigned))


def build_filter(
    revoked: KeySource,
    valid: KeySource,
    *,
    watermark: int,
    coverage_until: datetime,
    signer: Signer,
) -> bytes:
    """A signed full filter over the population issued up to ``coverage_until``.

    ``revoked`` holds every unexpired certificate revoked up to registry sequence ``watermark``;
    ``valid`` every other unexpired certificate issued up to ``coverage_until``. Every key in
    either set gets its exact verdict; a key in neither gets an arbitrary one (see the docs).
    """
    return _build(
        revoked,
        valid,
        kind=FilterKind.FULL,
        watermark=watermark,
        coverage_until=coverage_until,
        signer=signer,
        base=None,
    )


def build_delta(
    revoked: KeySource,
    valid: KeySource,
    *,
    base: bytes,
    watermark: int,
    coverage_until: datetime,
    signer: Signer,
) -> bytes:
    """A signed delta filter that follows ``base`` (the full filter or the previous delta).

    ``revoked`` must hold every certificate revoked after ``base``'s watermark, and every revoked
    certificate issued after ``base``'s coverage; ``valid`` every unexpired, unrevoked certificate
    issued up to ``coverage_until``. A verifier consults the delta only after ``base`` said valid,
    or for certificates that ``base`` did not cover, so these two sets decide every such case.
    """
    parsed = parse_filter(base)
    public_key = signer.public_key()
    if parsed.header.signer_key_id != key_id(public_key):
        raise PolicyError("the base filter was signed by another key")
    verify_signature(public_key, parsed.signature, parsed.signed_bytes)
    coverage = _coverage_seconds(coverage_until)
    if watermark < parsed.header.watermark or coverage < parsed.header.coverage_until:
        raise PolicyError("a delta cannot go back before the watermark or coverage of its base")
    return _build(
        revoked,
        valid,
        kind=FilterKind.DELTA,
        watermark=watermark,
        coverage_until=coverage,
        signer=signer,
        base=parsed,
    )


# --- the device side -----------------------------------------------------------------------------


class Verdict(enum.Enum):
    """What a filter chain says about one certificate."""

    VALID = "valid"
    REVOKED = "revoked"
    NOT_COVERED = "not covered"


class NotCoveredError(VerificationError):
    """The certificate was issued after the newest loaded filter's coverage (or none is loaded)."""


class FilterRollbackError(VerificationError):
    """A filter older (lower watermark or coverage) than what the verifier already holds."""


class DeltaBaseError(VerificationError):
    """A delta that extends another full filter than the one loaded."""


class DeltaGapError(VerificationError):
    """A delta whose predecessor the verifier never loaded: an earlier delta is missing."""


@dataclass(frozen=True, kw_only=True)
class _CompiledLevel:
    params: LevelParams
    seed_word: int
    bit_offset: int
    window_bytes: int
    exact: bool


@dataclass(frozen=True, kw_only=True)
class _Artefact:
    header: FilterHeader
    body: bytes
    digest: bytes
    levels: tuple[_CompiledLevel, ...]

    def says_revoked(self, k0: int, k1: int) -> bool:
        return self._in_positive(k0, k1) != self.header.inverted

    def _in_positive(self, k0: int, k1: int) -> bool:
        body = self.body
        for level in self.levels:
            params = level.params
            h = _base_hash(k0, k1, level.seed_word)
            start = _start(_lane(h, _LANE_START), params)
            coefficient = _coefficient(h, params)
            fingerprint = 1 if level.exact else _lane(h, _LANE_FINGERPRINT)
            for j in range(params.value_bits):
                bitpos = level.bit_offset + j * params.slots + start
                byte = bitpos >> 3
                window = int.from_bytes(body[byte : byte + level.window_bytes], "little")
                parity = ((window >> (bitpos & 7)) & coefficient).bit_count() & 1
                if parity != (fingerprint >> j) & 1:
                    return False
        return bool(self.levels)


def _compile(parsed: SignedFilter) -> _Artefact:
    levels = []
    offset = 0
    for index, params in enumerate(parsed.header.levels):
        levels.append(
            _CompiledLevel(
                params=params,
                seed_word=_seed_word(params.seed),
                bit_offset=offset,
                window_bytes=(params.width + 7) // 8 + 1,
                exact=index == len(parsed.header.levels) - 1,
            )
        )
        offset += params.bits
    return _Artefact(
        header=parsed.header, body=parsed.body, digest=parsed.digest, levels=tuple(levels)
    )


def _key_words(cert_id: bytes) -> tuple[int, int]:
    if len(cert_id) != CERT_ID_SIZE:
        raise ValueError(f"certificate id must be {CERT_ID_SIZE} bytes")
    return int.from_bytes(cert_id[:8], "little"), int.from_bytes(cert_id[8:], "little")


class FilterVerifier:
    """Holds one full filter and the deltas that follow it; answers offline, without I/O.

    Every artefact must be signed by ``trusted_public_key``. ``load`` raises on anything that
    does not verify or does not chain; it never leaves the verifier with a partial update.
    """

    def __init__(self, trusted_public_key: ec.EllipticCurvePublicKey) -> None:
        self._public_key = trusted_public_key
        self._key_id = key_id(trusted_public_key)
        self._chain: list[_Artefact] = []

    @property
    def watermark(self) -> int | None:
        """The registry sequence number the newest loaded artefact covers."""
        return self._chain[-1].header.watermark if self._chain else None

    @property
    def coverage_until(self) -> datetime | None:
        """Certificates issued after this time are not covered."""
        return self._chain[-1].header.coverage_until if self._chain else None

    @property
    def chain(self) -> tuple[FilterHeader, ...]:
        """The headers of the loaded full filter and deltas, oldest first."""
        return tuple(artefact.header for artefact in self._chain)

    def load(self, data: bytes) -> FilterHeader:
        """Verify and apply a full or delta filter.

        A full filter replaces everything loaded; a delta must extend the loaded full filter and
        follow an artefact already in the chain (a delta built on an earlier link supersedes the
        links after it). Raises ``EncodingError`` (malformed), ``VerificationError`` (wrong signer,
        bad signature), ``DeltaBaseError``, ``DeltaGapError`` or ``FilterRollbackError``.
        """
        parsed = parse_filter(data)
        header = parsed.header
        if header.signer_key_id != self._key_id:
            raise VerificationError(
                f"filter signed by key {header.signer_key_id.hex()[:16]}…, not the trusted key"
            )
        verify_signature(self._public_key, parsed.signature, parsed.signed_bytes)
        if any(artefact.digest == parsed.digest for artefact in self._chain):
            return header
        artefact = _compile(parsed)
        if header.kind is FilterKind.FULL:
            self._check_not_older(header)
            self._chain = [artefact]
            return header
        if not self._chain:
            raise DeltaGapError("a delta needs its full filter loaded first")
        if header.full_digest != self._chain[0].digest:
            raise DeltaBaseError("delta extends another full filter than the one loaded")
        for index, link in enumerate(self._chain):
            if link.digest == header.base_digest:
                if link.header.watermark != header.base_watermark:
                    raise VerificationError("delta names its base with a wrong watermark")
                self._check_not_older(header)
                self._chain = [*self._chain[: index + 1], artefact]
                return header
        raise DeltaGapError(
            f"delta follows watermark {header.base_watermark}, "
            f"but the loaded chain ends at watermark {self._chain[-1].header.watermark}"
        )

    def _check_not_older(self, header: FilterHeader) -> None:
        if not self._chain:
            return
        head = self._chain[-1].header
        if header.watermark < head.watermark or header.coverage_until < head.coverage_until:
            raise FilterRollbackError(
                f"filter at watermark {header.watermark} is older than the loaded "
                f"watermark {head.watermark}"
            )

    def status(self, cert_id: bytes, issued_at: datetime) -> Verdict:
        """The verdict for a certificate with this id, issued (notBefore) at ``issued_at``.

        Exact for every certificate in the population the builder saw; NOT_COVERED when the
        certificate is newer than every loaded artefact's coverage.
        """
        if issued_at.tzinfo is None:
            raise ValueError("issued_at must be timezone-aware")
        k0, k1 = _key_words(cert_id)
        if not self._chain or issued_at > self._chain[-1].header.coverage_until:
            return Verdict.NOT_COVERED
        # The first artefact whose coverage includes the certificate knows it; each later one
        # knows it for as long as the earlier ones said valid (docs/revocation-filter.md).
        for artefact in self._chain:
            if issued_at > artefact.header.coverage_until:
                continue
            if artefact.says_revoked(k0, k1):
                return Verdict.REVOKED
        return Verdict.VALID

    def check(self, cert_id: bytes, issued_at: datetime) -> None:
        """Return only if the certificate is covered and not revoked; raise otherwise."""
        verdict = self.status(cert_id, issued_at)
        if verdict is Verdict.REVOKED:
            raise CertificateRevokedError(f"certificate {cert_id.hex()} is revoked")
        if verdict is Verdict.NOT_COVERED:
            raise NotCoveredError(
                f"certificate issued {issued_at.isoformat()} is newer than the filter coverage "
                f"{self.coverage_until.isoformat() if self.coverage_until else '(none loaded)'}"
            )
