"""Properties of the offline revocation filter over random populations and random histories."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError, VerificationError
from fleetid.revocation.check.filter import FilterVerifier, Verdict
from fleetid.revocation.filter import builder, exact
from fleetid.revocation.filter.builder import build_delta, build_filter
from fleetid.revocation.filter.format import LevelParams

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SIGNER = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def population(seed: int, size: int, structured: bool) -> list[bytes]:
    """Distinct ids: random ones, or low-entropy counters to stress the hashing."""
    if structured:
        return [(seed * 1_000_003 + i).to_bytes(16, "little") for i in range(size)]
    rng = random.Random(seed)
    keys = {rng.randbytes(16) for _ in range(size)}
    while len(keys) < size:
        keys.add(rng.randbytes(16))
    return sorted(keys)


@SETTINGS
@given(
    seed=st.integers(0, 2**32),
    size=st.one_of(st.integers(0, 12), st.integers(0, 600), st.just(3_000)),
    fraction=st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0, 1)),
    structured=st.booleans(),
)
def test_every_key_of_a_random_population_gets_its_exact_verdict(
    seed: int, size: int, fraction: float, structured: bool
) -> None:
    keys = population(seed, size, structured)
    revoked_count = round(size * fraction)
    rng = random.Random(seed ^ 0x5A5A)
    rng.shuffle(keys)
    revoked, valid = keys[:revoked_count], keys[revoked_count:]
    verifier = FilterVerifier(SIGNER.public_key())
    verifier.load(build_filter(revoked, valid, watermark=1, coverage_until=T0, signer=SIGNER))
    assert all(verifier.status(k, T0) is Verdict.REVOKED for k in revoked)
    assert all(verifier.status(k, T0) is Verdict.VALID for k in valid)


@SETTINGS
@given(steps=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 6), st.booleans()), max_size=8))
def test_a_random_history_of_full_and_delta_filters_tracks_the_registry(
    steps: list[tuple[int, int, bool]],
) -> None:
    """Issue, revoke and publish in random order; after each publication every issued
    certificate has the registry's verdict, and newer ones are not covered."""
    rng = random.Random(len(steps))
    issued: dict[bytes, datetime] = {}
    revoked: list[bytes] = []
    now = T0
    verifier = FilterVerifier(SIGNER.public_key())
    last: bytes | None = None
    last_watermark = 0
    for new_count, revoke_count, full in steps:
        now += timedelta(hours=1)
        issued.update({rng.randbytes(16): now for _ in range(new_count)})
        candidates = [k for k in issued if k not in set(revoked)]
        newly = rng.sample(candidates, min(revoke_count, len(candidates)))
        revoked.extend(newly)
        valid = [k for k in issued if k not in set(revoked)]
        watermark = len(revoked)
        if full or last is None:
            artefact = build_filter(
                revoked, valid, watermark=watermark, coverage_until=now, signer=SIGNER
            )
        else:
            # Every revocation after the base watermark (the registry's sequence numbers).
            since = revoked[last_watermark:]
            artefact = build_delta(
                since, valid, base=last, watermark=watermark, coverage_until=now, signer=SIGNER
            )
        verifier.load(artefact)
        last, last_watermark = artefact, watermark
        gone = set(revoked)
        for key, at in issued.items():
            expected = Verdict.REVOKED if key in gone else Verdict.VALID
            assert verifier.status(key, at) is expected
        assert verifier.status(b"\x00" * 16, now + timedelta(seconds=1)) is Verdict.NOT_COVERED


ARTEFACT = build_filter(
    [hashlib.sha256(b"r%d" % i).digest()[:16] for i in range(30)],
    [hashlib.sha256(b"v%d" % i).digest()[:16] for i in range(3_000)],
    watermark=77,
    coverage_until=T0,
    signer=SIGNER,
)


@SETTINGS
@given(position=st.integers(0, len(ARTEFACT) - 1), flip=st.integers(1, 255))
def test_any_altered_byte_is_refused(position: int, flip: int) -> None:
    tampered = bytearray(ARTEFACT)
    tampered[position] ^= flip
    with pytest.raises((EncodingError, VerificationError)):
        FilterVerifier(SIGNER.public_key()).load(bytes(tampered))


@SETTINGS
@given(
    keys=st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=50),
    seed=st.integers(0, 2**64 - 1),
    width=st.integers(1, 256),
    extra=st.integers(0, 5_000),
    value_bits=st.integers(1, 32),
)
def test_device_hashing_matches_the_vectorised_builder(
    keys: list[bytes], seed: int, width: int, extra: int, value_bits: int
) -> None:
    level = LevelParams(width=width, value_bits=value_bits, slots=width + extra, seed=seed)
    rows = builder.level_rows(builder.key_array(keys), level)
    seed_word = exact.seed_word(seed)
    for i, key in enumerate(keys):
        k0, k1 = exact.key_words(key)
        h = exact.base_hash(k0, k1, seed_word)
        start = exact.start(exact.lane(h, 0), level)
        assert start == int(rows.start[i])
        coefficient = sum(int(word[i]) << (64 * t) for t, word in enumerate(rows.coefficient))
        assert exact.coefficient(h, level) == coefficient
        assert coefficient & 1 and coefficient < 1 << width
        fingerprint = exact.lane(h, 1) & ((1 << value_bits) - 1)
        assert fingerprint == int(rows.fingerprint[i])
        assert 0 <= int(rows.start[i]) <= extra


@SETTINGS
@given(seed=st.integers(0, 2**32), rows=st.integers(1, 400), bits=st.integers(1, 8))
def test_the_ribbon_solution_satisfies_every_equation(seed: int, rows: int, bits: int) -> None:
    """Check the solver against the equations themselves, recomputed independently per row."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 2**63, (rows, 2), dtype=np.int64).astype(np.uint64)
    values = rng.integers(0, 2**bits, rows).tolist()
    level, columns = builder.solve_level(keys, level_index=0, value_bits=bits, values=values)
    solution = [[column[i] for column in columns] for i in range(level.slots)]
    row_data = builder.level_rows(keys, level)
    for i in range(rows):
        start = int(row_data.start[i])
        coefficient = sum(int(word[i]) << (64 * t) for t, word in enumerate(row_data.coefficient))
        result = 0
        for offset in range(level.width):
            if coefficient >> offset & 1:
                for j in range(bits):
                    result ^= solution[start + offset][j] << j
        assert result == values[i]
