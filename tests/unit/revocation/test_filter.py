"""The offline revocation filter: exact verdicts, strict format, signatures and the delta chain."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import (
    CertificateRevokedError,
    DeltaBaseError,
    DeltaGapError,
    EncodingError,
    FilterRollbackError,
    NotCoveredError,
    PolicyError,
    StoreError,
    VerificationError,
)
from fleetid.revocation.check.filter import FilterVerifier, Verdict
from fleetid.revocation.filter import builder
from fleetid.revocation.filter.builder import build_delta, build_filter, information_bound_bits
from fleetid.revocation.filter.format import (
    FilterKind,
    append_signature,
    certificate_id,
    encode_unsigned,
    key_id,
    parse_filter,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)


@pytest.fixture(scope="module")
def signer() -> SoftwareSigner:
    return SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def other_signer() -> SoftwareSigner:
    return SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))


def ids(n: int, tag: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(tag + i.to_bytes(8, "big")).digest()[:16] for i in range(n)]


def verifier_for(signer: SoftwareSigner, *artefacts: bytes) -> FilterVerifier:
    verifier = FilterVerifier(signer.public_key())
    for artefact in artefacts:
        verifier.load(artefact)
    return verifier


def assert_exact(
    verifier: FilterVerifier, revoked: list[bytes], valid: list[bytes], at: datetime = T0
) -> None:
    wrong = [k for k in revoked if verifier.status(k, at) is not Verdict.REVOKED]
    wrong += [k for k in valid if verifier.status(k, at) is not Verdict.VALID]
    assert wrong == []


# --- exactness -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("population", "revoked"),
    [(0, 0), (1, 0), (1, 1), (2, 1), (7, 7), (300, 0), (300, 300), (300, 1), (300, 299),
     (5_000, 50), (5_000, 2_600), (20_000, 1_000)],
)  # fmt: skip
def test_every_covered_certificate_gets_its_exact_verdict(
    signer: SoftwareSigner, population: int, revoked: int
) -> None:
    keys = ids(population, b"pop")
    artefact = build_filter(
        keys[:revoked], keys[revoked:], watermark=3, coverage_until=T0, signer=signer
    )
    verifier = verifier_for(signer, artefact)
    assert_exact(verifier, keys[:revoked], keys[revoked:])
    header = parse_filter(artefact).header
    assert (header.revoked_count, header.valid_count) == (revoked, population - revoked)
    assert header.inverted == (revoked > population - revoked)


def test_vectorised_and_device_paths_agree_on_members_and_strangers(signer: SoftwareSigner) -> None:
    keys = ids(30_000, b"agree")
    strangers = ids(5_000, b"strangers")
    artefact = build_filter(keys[:600], keys[600:], watermark=1, coverage_until=T0, signer=signer)
    parsed = parse_filter(artefact)
    packed = np.frombuffer(parsed.body + bytes(8 * 6), dtype=np.uint8)
    words = packed[: len(packed) // 8 * 8].view("<u8").astype(np.uint64)
    everyone = keys + strangers
    array = np.frombuffer(b"".join(everyone), dtype=np.uint8).reshape(-1, 16)
    vectorised = builder.in_positive(words, parsed.header.levels, builder.key_array(array))
    verifier = verifier_for(signer, artefact)
    device = [verifier.status(k, T0) is Verdict.REVOKED for k in everyone]
    assert vectorised.tolist() == device
    assert sum(device[:600]) == 600 and not any(device[600:30_000])


def test_size_is_within_the_goal_of_the_information_bound(signer: SoftwareSigner) -> None:
    keys = np.random.default_rng(7).integers(0, 256, (200_000, 16), dtype=np.uint8)
    for revoked in (200, 2_000, 10_000):
        artefact = build_filter(
            keys[:revoked], keys[revoked:], watermark=1, coverage_until=T0, signer=signer
        )
        bits = parse_filter(artefact).header.body_bits
        assert bits <= 1.3 * information_bound_bits(200_000, revoked)


def test_information_bound_matches_the_binomial() -> None:
    for n, r in ((10, 3), (1000, 17), (64, 0), (64, 64)):
        assert math.isclose(information_bound_bits(n, r), math.log2(math.comb(n, r)), abs_tol=1e-6)


def test_certificate_id_is_truncated_sha256_of_issuer_and_20_octet_serial() -> None:
    issuer = bytes(range(20))
    expected = hashlib.sha256(issuer + (0x1234).to_bytes(20, "big")).digest()[:16]
    assert certificate_id(issuer, 0x1234) == expected
    for bad in (0, -1, 1 << 160):
        with pytest.raises(ValueError):
            certificate_id(issuer, bad)
    with pytest.raises(ValueError):
        certificate_id(b"", 1)


# --- inputs the builder refuses ------------------------------------------------------------------


def test_a_certificate_both_revoked_and_valid_is_refused(signer: SoftwareSigner) -> None:
    keys = ids(100)
    with pytest.raises(StoreError):
        build_filter(keys[:5], keys[3:], watermark=1, coverage_until=T0, signer=signer)


def test_repeated_ids_on_one_side_are_harmless(signer: SoftwareSigner) -> None:
    keys = ids(100)
    artefact = build_filter(
        keys[:5] * 2, keys[5:] + keys[50:], watermark=1, coverage_until=T0, signer=signer
    )
    assert_exact(verifier_for(signer, artefact), keys[:5], keys[5:])


@pytest.mark.parametrize("bad", [b"short", bytes(17), b""])
def test_ids_of_the_wrong_length_are_refused(signer: SoftwareSigner, bad: bytes) -> None:
    with pytest.raises(ValueError):
        build_filter([bad], ids(3), watermark=1, coverage_until=T0, signer=signer)
    verifier = verifier_for(signer, build_filter([], ids(3), watermark=1, coverage_until=T0,
                                                 signer=signer))  # fmt: skip
    with pytest.raises(ValueError):
        verifier.status(bad, T0)


def test_naive_times_and_bad_watermarks_are_refused(signer: SoftwareSigner) -> None:
    with pytest.raises(ValueError):
        build_filter([], ids(3), watermark=1, coverage_until=T0.replace(tzinfo=None), signer=signer)
    for watermark in (-1, 1 << 64):
        with pytest.raises(ValueError):
            build_filter([], ids(3), watermark=watermark, coverage_until=T0, signer=signer)
    verifier = verifier_for(signer, build_filter([], ids(3), watermark=1, coverage_until=T0,
                                                 signer=signer))  # fmt: skip
    with pytest.raises(ValueError):
        verifier.status(ids(1)[0], T0.replace(tzinfo=None))


# --- coverage ------------------------------------------------------------------------------------


def test_a_certificate_newer_than_the_filter_is_not_covered(signer: SoftwareSigner) -> None:
    keys = ids(50)
    verifier = verifier_for(
        signer, build_filter(keys[:2], keys[2:], watermark=1, coverage_until=T0, signer=signer)
    )
    assert verifier.status(keys[5], T0) is Verdict.VALID
    assert verifier.status(keys[5], T0 + timedelta(seconds=1)) is Verdict.NOT_COVERED
    assert verifier.status(keys[0], T0 + timedelta(seconds=1)) is Verdict.NOT_COVERED
    with pytest.raises(NotCoveredError):
        verifier.check(keys[5], T0 + timedelta(seconds=1))
    verifier.check(keys[5], T0 - timedelta(days=30))
    with pytest.raises(CertificateRevokedError):
        verifier.check(keys[0], T0)


def test_coverage_rounds_down_to_whole_seconds(signer: SoftwareSigner) -> None:
    keys = ids(5)
    late = T0 + timedelta(microseconds=700_000)
    verifier = verifier_for(
        signer, build_filter([], keys, watermark=1, coverage_until=late, signer=signer)
    )
    assert verifier.coverage_until == T0
    assert verifier.status(keys[0], late) is Verdict.NOT_COVERED


def test_nothing_loaded_covers_nothing(signer: SoftwareSigner) -> None:
    verifier = FilterVerifier(signer.public_key())
    assert verifier.status(ids(1)[0], T0) is Verdict.NOT_COVERED
    assert verifier.watermark is None and verifier.coverage_until is None
    with pytest.raises(NotCoveredError):
        verifier.check(ids(1)[0], T0)


# --- signatures and strict parsing ---------------------------------------------------------------


@pytest.fixture(scope="module")
def artefact(signer: SoftwareSigner) -> bytes:
    keys = ids(2_000, b"artefact")
    return build_filter(keys[:40], keys[40:], watermark=9, coverage_until=T0, signer=signer)


def test_a_filter_from_another_signer_is_refused(
    signer: SoftwareSigner, other_signer: SoftwareSigner
) -> None:
    keys = ids(100)
    foreign = build_filter(keys[:3], keys[3:], watermark=1, coverage_until=T0, signer=other_signer)
    with pytest.raises(VerificationError, match="not the trusted key"):
        FilterVerifier(signer.public_key()).load(foreign)


def test_a_filter_claiming_the_trusted_key_id_but_signed_by_another_is_refused(
    signer: SoftwareSigner, other_signer: SoftwareSigner, artefact: bytes
) -> None:
    parsed = parse_filter(artefact)
    unsigned = encode_unsigned(parsed.header, parsed.body)
    forged = append_signature(unsigned, other_signer.sign(unsigned))
    with pytest.raises(VerificationError, match="does not verify"):
        FilterVerifier(signer.public_key()).load(forged)


def test_a_tampered_body_is_refused(signer: SoftwareSigner, artefact: bytes) -> None:
    parsed = parse_filter(artefact)
    body_start = len(parsed.signed_bytes) - len(parsed.body)
    for position in (body_start, body_start + len(parsed.body) // 2):
        tampered = bytearray(artefact)
        tampered[position] ^= 0x01
        with pytest.raises(VerificationError):
            FilterVerifier(signer.public_key()).load(bytes(tampered))


def test_a_tampered_watermark_is_refused(signer: SoftwareSigner, artefact: bytes) -> None:
    tampered = bytearray(artefact)
    tampered[15] ^= 0x01  # last byte of the watermark (offset 8, 8 bytes)
    assert parse_filter(bytes(tampered)).header.watermark == 8
    with pytest.raises(VerificationError):
        FilterVerifier(signer.public_key()).load(bytes(tampered))


def test_every_truncation_is_an_encoding_error(artefact: bytes) -> None:
    for length in range(len(artefact)):
        with pytest.raises(EncodingError):
            parse_filter(artefact[:length])


def test_trailing_bytes_are_an_encoding_error(artefact: bytes) -> None:
    with pytest.raises(EncodingError, match="trailing"):
        parse_filter(artefact + b"\x00")


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [(0, 0x47, "magic"), (4, 2, "version"), (5, 3, "kind"), (6, 0x02, "flags"),
     (7, 0x01, "reserved"), (6, 0x01, "inversion")],
)  # fmt: skip
def test_header_fields_are_checked(artefact: bytes, offset: int, value: int, message: str) -> None:
    tampered = bytearray(artefact)
    tampered[offset] = value
    with pytest.raises(EncodingError, match=message):
        parse_filter(bytes(tampered))


def test_resigned_nonsense_is_still_refused_by_the_parser(signer: SoftwareSigner) -> None:
    keys = ids(1_000)
    parsed = parse_filter(
        build_filter(keys[:10], keys[10:], watermark=1, coverage_until=T0, signer=signer)
    )
    spare = -parsed.header.body_bits % 8
    assert spare, "this population must leave padding bits in the last byte"
    body = parsed.body[:-1] + bytes([parsed.body[-1] | 0x80])
    unsigned = encode_unsigned(parsed.header, body)
    with pytest.raises(EncodingError, match="padding"):
        parse_filter(append_signature(unsigned, signer.sign(unsigned)))
    wrong_exact = dataclasses.replace(
        parsed.header.levels[-1], value_bits=2, slots=parsed.header.levels[-1].slots
    )
    header = dataclasses.replace(parsed.header, levels=(*parsed.header.levels[:-1], wrong_exact))
    with pytest.raises(EncodingError, match="exact level"):
        encode_unsigned(header, parsed.body)


# --- deltas --------------------------------------------------------------------------------------


class Fleet:
    """A tiny registry model: issued ids with issuance times, and revocations in order."""

    def __init__(self) -> None:
        self.issued: dict[bytes, datetime] = {}
        self.revoked: list[bytes] = []

    def issue(self, keys: list[bytes], at: datetime) -> None:
        self.issued.update(dict.fromkeys(keys, at))

    def revoke(self, keys: list[bytes]) -> None:
        self.revoked.extend(keys)

    def valid(self, until: datetime) -> list[bytes]:
        gone = set(self.revoked)
        return [k for k, at in self.issued.items() if at <= until and k not in gone]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Chain:
    fleet: Fleet
    full: bytes
    d1: bytes
    d2: bytes
    old: list[bytes]
    new1: list[bytes]
    new2: list[bytes]


@pytest.fixture(scope="module")
def chain(signer: SoftwareSigner) -> Chain:
    """A full filter F (watermark 10) and deltas d1 (12), d2 (15), plus their fleet."""
    fleet = Fleet()
    old, new1, new2 = ids(400, b"old"), ids(30, b"new1"), ids(30, b"new2")
    fleet.issue(old, T0)
    fleet.revoke(old[:4])
    full = build_filter(
        fleet.revoked, fleet.valid(T0), watermark=10, coverage_until=T0, signer=signer
    )
    fleet.issue(new1, T1)
    fleet.revoke([old[10], new1[0]])
    d1 = build_delta(
        [old[10], new1[0]], fleet.valid(T1), base=full, watermark=12, coverage_until=T1,
        signer=signer,
    )  # fmt: skip
    fleet.issue(new2, T2)
    fleet.revoke([old[11], new1[1], new2[0]])
    d2 = build_delta(
        [old[11], new1[1], new2[0]], fleet.valid(T2), base=d1, watermark=15, coverage_until=T2,
        signer=signer,
    )  # fmt: skip
    return Chain(fleet=fleet, full=full, d1=d1, d2=d2, old=old, new1=new1, new2=new2)


def test_deltas_bring_every_certificate_up_to_date(signer: SoftwareSigner, chain: Chain) -> None:
    fleet = chain.fleet
    verifier = verifier_for(signer, chain.full, chain.d1, chain.d2)
    assert verifier.watermark == 15 and verifier.coverage_until == T2
    revoked = set(fleet.revoked)
    for key, at in fleet.issued.items():
        expected = Verdict.REVOKED if key in revoked else Verdict.VALID
        assert verifier.status(key, at) is expected
    assert [h.kind for h in verifier.chain] == [FilterKind.FULL, FilterKind.DELTA, FilterKind.DELTA]


def test_before_the_deltas_arrive_new_revocations_are_unknown_and_new_certs_not_covered(
    signer: SoftwareSigner, chain: Chain
) -> None:
    old, new1 = chain.old, chain.new1
    verifier = verifier_for(signer, chain.full)
    assert verifier.status(old[10], T0) is Verdict.VALID  # revoked after the full filter
    assert verifier.status(new1[5], T1) is Verdict.NOT_COVERED
    verifier.load(chain.d1)
    assert verifier.status(old[10], T0) is Verdict.REVOKED
    assert verifier.status(new1[0], T1) is Verdict.REVOKED
    assert verifier.status(new1[5], T1) is Verdict.VALID


def test_a_delta_gap_is_refused(signer: SoftwareSigner, chain: Chain) -> None:
    verifier = verifier_for(signer, chain.full)
    with pytest.raises(DeltaGapError, match="watermark 12"):
        verifier.load(chain.d2)
    assert verifier.watermark == 10  # unchanged


def test_a_delta_without_its_full_filter_is_refused(signer: SoftwareSigner, chain: Chain) -> None:
    with pytest.raises(DeltaGapError):
        verifier_for(signer, chain.d1)


def test_a_delta_for_another_full_filter_is_refused(signer: SoftwareSigner, chain: Chain) -> None:
    fleet = chain.fleet
    other_full = build_filter(
        fleet.revoked[:4], fleet.valid(T0), watermark=10, coverage_until=T0, signer=signer
    )
    with pytest.raises(DeltaBaseError):
        verifier_for(signer, other_full, chain.d1)


def test_an_older_full_filter_is_a_rollback(signer: SoftwareSigner, chain: Chain) -> None:
    fleet = chain.fleet
    newer = build_filter(
        fleet.revoked, fleet.valid(T2), watermark=15, coverage_until=T2, signer=signer
    )
    verifier = verifier_for(signer, newer)
    with pytest.raises(FilterRollbackError):
        verifier.load(chain.full)
    assert verifier.watermark == 15


def test_a_cumulative_delta_supersedes_the_links_after_its_base(
    signer: SoftwareSigner, chain: Chain
) -> None:
    fleet, old, new1, new2 = chain.fleet, chain.old, chain.new1, chain.new2
    since_full = [old[10], new1[0], old[11], new1[1], new2[0]]
    cumulative = build_delta(
        since_full, fleet.valid(T2), base=chain.full, watermark=15, coverage_until=T2,
        signer=signer,
    )  # fmt: skip
    verifier = verifier_for(signer, chain.full, chain.d1, cumulative)
    assert [h.watermark for h in verifier.chain] == [10, 15]
    assert verifier.status(old[11], T0) is Verdict.REVOKED
    assert verifier.status(new2[3], T2) is Verdict.VALID
    with pytest.raises(FilterRollbackError):
        verifier.load(chain.d1)


def test_reloading_a_loaded_artefact_changes_nothing(signer: SoftwareSigner, chain: Chain) -> None:
    verifier = verifier_for(signer, chain.full, chain.d1, chain.d2, chain.d1)
    assert [h.watermark for h in verifier.chain] == [10, 12, 15]


def test_a_delta_naming_its_base_with_a_wrong_watermark_is_refused(
    signer: SoftwareSigner, chain: Chain
) -> None:
    parsed = parse_filter(chain.d1)
    header = dataclasses.replace(parsed.header, base_watermark=9)
    unsigned = encode_unsigned(header, parsed.body)
    lying = append_signature(unsigned, signer.sign(unsigned))
    with pytest.raises(VerificationError, match="wrong watermark"):
        verifier_for(signer, chain.full, lying)


def test_the_builder_refuses_deltas_that_go_back_or_change_signer(
    signer: SoftwareSigner, other_signer: SoftwareSigner, chain: Chain
) -> None:
    full = chain.full
    with pytest.raises(PolicyError):
        build_delta([], ids(3), base=full, watermark=9, coverage_until=T1, signer=signer)
    with pytest.raises(PolicyError):
        build_delta([], ids(3), base=full, watermark=11, coverage_until=T0 - timedelta(1),
                    signer=signer)  # fmt: skip
    with pytest.raises(PolicyError):
        build_delta([], ids(3), base=full, watermark=11, coverage_until=T1, signer=other_signer)
    with pytest.raises(EncodingError):
        build_delta([], ids(3), base=full[:-1], watermark=11, coverage_until=T1, signer=signer)


def test_delta_header_links_to_full_and_base(chain: Chain) -> None:
    full, d1, d2 = (parse_filter(data) for data in (chain.full, chain.d1, chain.d2))
    assert d1.header.full_digest == d2.header.full_digest == full.digest
    assert d1.header.base_digest == full.digest and d2.header.base_digest == d1.digest
    assert (d1.header.base_watermark, d2.header.base_watermark) == (10, 12)
    assert full.header.signer_key_id == d1.header.signer_key_id


def test_key_id_is_sha256_of_the_spki(signer: SoftwareSigner) -> None:
    from cryptography.hazmat.primitives import serialization

    spki = signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_id(signer.public_key()) == hashlib.sha256(spki).digest()
