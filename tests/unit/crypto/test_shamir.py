"""Split custody of the KEK: M-of-N shares that refuse a wrong, corrupted or foreign share."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from itertools import combinations

import pytest
from tests.optional import require_tool
from tests.vector_loader import load_json

from fleetid.crypto.shamir import KekShare, combine_kek, kek_kcv, split_kek
from fleetid.errors import CeremonyError, EncodingError

KEK128 = bytes.fromhex("00112233445566778899aabbccddeeff")
KEK256 = bytes(range(32))
CUSTODIANS = ("alice", "bob", "carol", "dave", "erin")


def _split(kek: bytes = KEK128, ceremony: str = "c-2027-01") -> list[KekShare]:
    return split_kek(kek, ceremony_id=ceremony, threshold=3, custodians=CUSTODIANS)


@pytest.mark.parametrize("kek", [KEK128, KEK256], ids=["aes128", "aes256"])
def test_every_m_subset_rebuilds_the_kek(kek: bytes) -> None:
    shares = _split(kek)
    for subset in combinations(shares, 3):
        assert combine_kek(subset, ceremony_id="c-2027-01") == kek


def test_all_n_shares_rebuild_the_kek() -> None:
    assert combine_kek(_split()) == KEK128


def test_share_files_round_trip_through_text() -> None:
    shares = _split(KEK256)
    parsed = [KekShare.from_text(s.to_text()) for s in shares]
    assert parsed == shares
    assert combine_kek(parsed[2:]) == KEK256


def test_kcv_matches_the_globalplatform_vectors() -> None:
    # pySim SCP03_KCV_Test, via the shared vector file (GPCS Amd D §6.2.8 KCV).
    vectors = load_json("scp03/scp03-pysim-transcripts.json")["kcv_vectors"]
    assert len(vectors) == 3
    for vector in vectors:
        assert kek_kcv(bytes.fromhex(vector["key"])).hex() == vector["kcv"]


def test_share_carries_ceremony_identity_and_check_values() -> None:
    share = _split()[1]
    assert (share.ceremony_id, share.index, share.threshold, share.total) == ("c-2027-01", 2, 3, 5)
    assert share.custodian == "bob"
    assert share.kek_kcv == kek_kcv(KEK128)
    text = share.to_text()
    assert 'ceremony_id = "c-2027-01"' in text
    assert KEK128.hex() not in text


# --- negative cases -------------------------------------------------------------------------


def test_m_minus_one_shares_are_refused_with_a_clear_error() -> None:
    with pytest.raises(CeremonyError, match=r"2 share\(s\) presented; .* needs 3 of 5"):
        combine_kek(_split()[:2])


def test_no_share_is_refused() -> None:
    with pytest.raises(CeremonyError, match="no shares"):
        combine_kek([])


def test_a_corrupted_share_file_is_refused_before_combining() -> None:
    text = _split()[0].to_text()
    start = text.index('halves = ["1-') + len('halves = ["1-')
    flipped = "0" if text[start] != "0" else "1"
    corrupted = text[:start] + flipped + text[start + 1 :]
    with pytest.raises(CeremonyError, match="corrupted"):
        KekShare.from_text(corrupted)


def test_a_tampered_share_with_recomputed_checksum_is_caught_by_the_kek_check() -> None:
    shares = _split()
    bad_half = bytes([shares[0].halves[0][0] ^ 1]) + shares[0].halves[0][1:]
    forged = replace(shares[0], halves=(bad_half,))
    reparsed = KekShare.from_text(forged.to_text())  # checksum recomputed: passes on its own
    with pytest.raises(CeremonyError, match="do not rebuild the KEK"):
        combine_kek([reparsed, shares[1], shares[2]])


def test_a_bad_share_among_more_than_m_is_named_not_ignored() -> None:
    shares = _split()
    bad_half = bytes(16)
    forged = replace(shares[3], halves=(bad_half,))
    with pytest.raises(CeremonyError, match=r"share\(s\) 4 \(dave\) do not authenticate"):
        combine_kek([shares[0], shares[1], forged, shares[2]])


def test_a_share_from_another_ceremony_is_refused() -> None:
    ours, theirs = _split(), _split(ceremony="c-2027-02")
    with pytest.raises(CeremonyError, match="belongs to ceremony 'c-2027-02'"):
        combine_kek([ours[0], ours[1], theirs[2]])


def test_shares_of_another_ceremony_are_refused_when_the_ceremony_is_named() -> None:
    theirs = _split(ceremony="c-2027-02")
    with pytest.raises(CeremonyError, match="not 'c-2027-01'"):
        combine_kek(theirs[:3], ceremony_id="c-2027-01")


def test_relabelled_foreign_shares_fail_the_recorded_kcv() -> None:
    theirs = _split(kek=bytes(16), ceremony="c-2027-01")
    with pytest.raises(CeremonyError, match="ceremony recorded"):
        combine_kek(theirs[:3], ceremony_id="c-2027-01", expected_kcv=kek_kcv(KEK128))


def test_a_share_from_a_different_split_of_the_same_id_is_refused() -> None:
    first, second = _split(), _split(kek=bytes(16))
    with pytest.raises(CeremonyError, match="does not describe the same split"):
        combine_kek([first[0], first[1], second[2]])


def test_the_same_share_twice_does_not_count_as_two() -> None:
    shares = _split()
    with pytest.raises(CeremonyError, match="presented twice"):
        combine_kek([shares[0], shares[0], shares[1]])


@pytest.mark.parametrize(
    ("threshold", "count"), [(1, 3), (4, 3), (0, 2)], ids=["1-of-3", "4-of-3", "0-of-2"]
)
def test_impossible_thresholds_are_refused(threshold: int, count: int) -> None:
    with pytest.raises(CeremonyError, match="not allowed"):
        split_kek(KEK128, ceremony_id="c", threshold=threshold, custodians=CUSTODIANS[:count])


def test_kek_of_wrong_length_is_refused() -> None:
    with pytest.raises(CeremonyError, match="16 or 32 bytes"):
        split_kek(bytes(24), ceremony_id="c", threshold=2, custodians=CUSTODIANS)


def test_duplicate_custodians_are_refused() -> None:
    with pytest.raises(CeremonyError, match="distinct"):
        split_kek(KEK128, ceremony_id="c", threshold=2, custodians=("a", "a", "b"))


def test_garbage_is_not_a_share_file() -> None:
    with pytest.raises(EncodingError):
        KekShare.from_text("this is = = not toml")


def test_a_share_file_missing_a_field_is_refused() -> None:
    text = _split()[0].to_text()
    truncated = "\n".join(line for line in text.splitlines() if not line.startswith("share_mac"))
    with pytest.raises(CeremonyError, match="incomplete or malformed"):
        KekShare.from_text(truncated)


def test_a_half_labelled_with_another_index_is_refused() -> None:
    text = _split()[0].to_text().replace('halves = ["1-', 'halves = ["2-')
    with pytest.raises(CeremonyError, match="not for index 1"):
        KekShare.from_text(text)


# --- independent implementation -------------------------------------------------------------


def _ssss_combine() -> str:
    return require_tool("ssss-combine")


@pytest.mark.parametrize("kek", [KEK128, KEK256], ids=["aes128", "aes256"])
def test_ssss_combine_rebuilds_our_kek(kek: bytes) -> None:
    tool = _ssss_combine()
    shares = _split(kek)
    chosen = [shares[4], shares[0], shares[2]]
    rebuilt = b""
    for half in range(len(kek) // 16):
        stdin = "".join(f"{s.index}-{s.halves[half].hex()}\n" for s in chosen)
        done = subprocess.run(
            [tool, "-t", "3", "-x", "-D", "-q"],
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )
        rebuilt += bytes.fromhex((done.stdout + done.stderr).strip().splitlines()[-1])
    assert rebuilt == kek


def test_ssss_combine_does_not_rebuild_from_two_of_three() -> None:
    tool = _ssss_combine()
    shares = _split()
    stdin = "".join(f"{s.index}-{s.halves[0].hex()}\n" for s in shares[:2])
    done = subprocess.run(
        [tool, "-t", "2", "-x", "-D", "-q"], input=stdin, capture_output=True, text=True, check=True
    )
    assert KEK128.hex() not in done.stdout + done.stderr
