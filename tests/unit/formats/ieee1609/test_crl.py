"""IEEE 1609.2 CRLs (§7.3, §7.4): COER of CrlContents, the SecuredCrl, and the receiver's bridge."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import pytest
from tests.linkage_fixtures import LA1, LA2, Vehicle

from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import CertificateRevokedError, EncodingError, ProfileError, VerificationError
from fleetid.formats.ieee1609 import (
    encode,
    open_signed_data,
    sign_certificate,
    sign_data,
    unsecured,
)
from fleetid.formats.ieee1609.certificate import Certificate
from fleetid.formats.ieee1609.crl import (
    CrlContents,
    GroupCrlEntry,
    HashCrl,
    HashRevocation,
    IMaxGroup,
    IndividualRevocation,
    JMaxGroup,
    LaGroup,
    LinkedCrl,
    decode_crl_contents,
    encode_crl_contents,
    open_secured_crl,
    sign_crl,
)
from fleetid.formats.ieee1609.keys import verification_key_value
from fleetid.revocation.linked_crl import linked_revocations, revocation_set_from_crls

CRACA_ID = bytes.fromhex("0001020304050607")
SEED1, SEED2 = bytes(range(16)), bytes(range(16, 32))
ISSUE, NEXT = 600_000_000, 600_086_400  # Time32: 0x23C34600, 0x23C49780
J_MAX = 20


def one_entry_crl(**changes: Any) -> CrlContents:
    """A full linked CRL of series 5 with one individual entry (jMax 20, iRev 7, iMax 50)."""
    entry = IndividualRevocation(seed1=SEED1, seed2=SEED2)
    group = JMaxGroup(
        j_max=J_MAX,
        la_groups=(
            LaGroup(
                la1_id=LA1, la2_id=LA2, i_max_groups=(IMaxGroup(i_max=50, revocations=(entry,)),)
            ),
        ),
    )
    contents = CrlContents(
        crl_series=5,
        craca_id=CRACA_ID,
        issue_date=ISSUE,
        next_crl=NEXT,
        body=LinkedCrl(i_rev=7, index_within_i=0, individual=(group,)),
    )
    return dataclasses.replace(contents, **changes)


# CrlContents with one linked individual entry, written out from ITU-T X.696 (COER).
# CrlContents has no extension marker and no OPTIONAL component: no preamble (§16.2).
EXPECTED_ONE_ENTRY = bytes.fromhex(
    "01"  # version Uint8 (1): fixed-size unsigned, 1 octet (§10.3)
    "0005"  # crlSeries Uint16 5: 2 octets
    "0001020304050607"  # crlCraca HashedId8: fixed-size OCTET STRING, no length (§17.1)
    "23c34600"  # issueDate Time32 600000000: 4 octets
    "23c49780"  # nextCrl Time32 600086400: 4 octets
    "00"  # priorityInfo: preamble, extension bit 0, priority absent 0, padding (§16.2)
    "82"  # typeSpecific: CHOICE tag [2] context-specific = fullLinkedCrl (§20, §8.7)
    "40"  # ToBeSignedLinkageValueCrl preamble: extension 0, individual 1, groups 0
    "0007"  # iRev IValue (Uint16) 7
    "00"  # indexWithinI Uint8 0
    "0101"  # individual SequenceOfJMaxGroup: quantity, length 1 then 1 (§21.1, §10.9)
    "00"  # JMaxGroup preamble: extension bit 0
    "14"  # jmax Uint8 20
    "0101"  # contents SequenceOfLAGroup: quantity 1
    "00"  # LAGroup preamble
    "8e09"  # la1Id LaId, 2 octets
    "59ce"  # la2Id LaId, 2 octets
    "0101"  # contents SequenceOfIMaxGroup: quantity 1
    "00"  # IMaxGroup preamble
    "0032"  # iMax Uint16 50
    "0101"  # contents SequenceOfIndividualRevocation: quantity 1
    "00"  # IndividualRevocation preamble
    "000102030405060708090a0b0c0d0e0f"  # linkageSeed1 LinkageSeed, 16 octets
    "101112131415161718191a1b1c1d1e1f"  # linkageSeed2 LinkageSeed, 16 octets
)

# A delta hash CRL with priority 3 and one entry.
EXPECTED_DELTA_HASH = bytes.fromhex(
    "01"  # version
    "0005"  # crlSeries
    "0001020304050607"  # crlCraca
    "23c34600"  # issueDate
    "23c49780"  # nextCrl
    "40"  # priorityInfo preamble: extension 0, priority present 1
    "03"  # priority Uint8 3
    "81"  # typeSpecific: tag [1] = deltaHashCrl
    "00"  # ToBeSignedHashIdCrl preamble: extension bit 0
    "0000002a"  # crlSerial Uint32 42
    "0101"  # entries: quantity 1
    "00"  # HashBasedRevocationInfo preamble (extensible in 1609.2-2022)
    "aabbccddeeff00112233"  # id HashedId10, 10 octets
    "23c49780"  # expiry Time32
)


def test_one_linked_entry_encodes_as_x696_lays_it_out() -> None:
    assert encode_crl_contents(one_entry_crl()) == EXPECTED_ONE_ENTRY
    assert decode_crl_contents(EXPECTED_ONE_ENTRY) == one_entry_crl()


def test_delta_hash_crl_encodes_as_x696_lays_it_out() -> None:
    contents = CrlContents(
        crl_series=5,
        craca_id=CRACA_ID,
        issue_date=ISSUE,
        next_crl=NEXT,
        body=HashCrl(
            crl_serial=42,
            entries=(HashRevocation(id=bytes.fromhex("aabbccddeeff00112233"), expiry=NEXT),),
        ),
        delta=True,
        priority=3,
    )
    assert encode_crl_contents(contents) == EXPECTED_DELTA_HASH
    assert decode_crl_contents(EXPECTED_DELTA_HASH) == contents


def random_linked(*, groups: bool = False) -> LinkedCrl:
    def entries(n: int) -> tuple[IndividualRevocation, ...]:
        return tuple(
            IndividualRevocation(seed1=secrets.token_bytes(16), seed2=secrets.token_bytes(16))
            for _ in range(n)
        )

    individual = (
        JMaxGroup(
            j_max=20,
            la_groups=(
                LaGroup(
                    la1_id=LA1,
                    la2_id=LA2,
                    i_max_groups=(
                        IMaxGroup(i_max=60, revocations=entries(3)),
                        IMaxGroup(i_max=70, revocations=()),
                    ),
                ),
                LaGroup(
                    la1_id=LA2,
                    la2_id=LA1,
                    i_max_groups=(IMaxGroup(i_max=61, revocations=entries(1)),),
                ),
            ),
        ),
        JMaxGroup(j_max=1, la_groups=()),
    )
    group_entries = (
        GroupCrlEntry(
            i_max=90,
            la1_id=LA1,
            seed1=secrets.token_bytes(16),
            la2_id=LA2,
            seed2=secrets.token_bytes(16),
        ),
    )
    return LinkedCrl(
        i_rev=12, index_within_i=3, individual=individual, groups=group_entries if groups else None
    )


@pytest.mark.parametrize("delta", [False, True])
@pytest.mark.parametrize(
    "body",
    [
        HashCrl(crl_serial=0),
        HashCrl(
            crl_serial=0xFFFFFFFF,
            entries=tuple(HashRevocation(id=secrets.token_bytes(10), expiry=i) for i in range(200)),
        ),
        random_linked(),
        random_linked(groups=True),  # both present: the standard's constraint is a union
        LinkedCrl(
            i_rev=0, index_within_i=0, individual=()
        ),  # no entries: an empty list (§7.3 note)
        LinkedCrl(i_rev=1, index_within_i=255, groups=random_linked(groups=True).groups),
    ],
)
def test_round_trip(body: HashCrl | LinkedCrl, delta: bool) -> None:
    contents = CrlContents(
        crl_series=0xFFFF,
        craca_id=secrets.token_bytes(8),
        issue_date=ISSUE,
        next_crl=ISSUE + 1,
        body=body,
        delta=delta,
    )
    encoded = encode_crl_contents(contents)
    assert decode_crl_contents(encoded) == contents
    assert encoded[20 if contents.priority is None else 21] == 0x80 + 2 * contents.is_linked + delta


def raw_one_entry(**typespecific: Any) -> dict[str, Any]:
    """The ASN.1 value of ``one_entry_crl``, to encode past our own checks."""
    return {
        "version": 1,
        "crlSeries": 5,
        "crlCraca": CRACA_ID,
        "issueDate": ISSUE,
        "nextCrl": NEXT,
        "priorityInfo": {},
        "typeSpecific": ("fullLinkedCrl", {"iRev": 7, "indexWithinI": 0, **typespecific}),
    }


# Offsets in EXPECTED_ONE_ENTRY: 21 octets before the ToBeSignedLinkageValueCrl preamble,
# then the preamble, iRev (2), indexWithinI (1), the quantity's length octet, its value octet.
LINKED_PREAMBLE = 21
INDIVIDUAL_QUANTITY = LINKED_PREAMBLE + 5


def patched(offset: int, octet: int) -> bytes:
    return EXPECTED_ONE_ENTRY[:offset] + bytes([octet]) + EXPECTED_ONE_ENTRY[offset + 1 :]


@pytest.mark.parametrize(
    "bad",
    [
        EXPECTED_ONE_ENTRY[:-1],  # truncated
        EXPECTED_ONE_ENTRY + b"\x00",  # trailing byte
        b"\x02" + EXPECTED_ONE_ENTRY[1:],  # version 2
        b"\x00" + EXPECTED_ONE_ENTRY[1:],  # version 0
        patched(INDIVIDUAL_QUANTITY, 0x02),  # quantity 2, one entry follows
        patched(INDIVIDUAL_QUANTITY - 1, 0x02),  # quantity in 2 octets (256): entries missing
        patched(LINKED_PREAMBLE, 0xC0),  # extension bit set, no additions follow
        patched(LINKED_PREAMBLE, 0x41),  # a padding bit set
        # The 2022 addition groupsSingleSeed (empty), outside our subset: the extension bit, then
        # the additions bitmap (length 2, 7 unused bits, first present) and an open type of 2.
        patched(LINKED_PREAMBLE, 0xC0) + bytes.fromhex("020780020100"),
        patched(LINKED_PREAMBLE - 1, 0x84),  # CHOICE tag [4]: not an alternative of ours
        b"",
    ],
)
def test_decode_refuses_malformed(bad: bytes) -> None:
    with pytest.raises(EncodingError):
        decode_crl_contents(bad)


def test_neither_individual_nor_groups_is_refused() -> None:
    encoded = encode("CrlContents", raw_one_entry())
    with pytest.raises(ProfileError, match="individual or groups"):
        decode_crl_contents(encoded)
    with pytest.raises(ProfileError, match="individual or groups"):
        encode_crl_contents(one_entry_crl(body=LinkedCrl(i_rev=7, index_within_i=0)))


def test_jmax_zero_is_refused() -> None:
    individual = [{"jmax": 0, "contents": []}]
    with pytest.raises(ProfileError, match="jmax 0"):
        decode_crl_contents(encode("CrlContents", raw_one_entry(individual=individual)))


def test_next_crl_not_after_issue_date_is_refused() -> None:
    with pytest.raises(ProfileError, match="nextCrl"):
        encode_crl_contents(one_entry_crl(next_crl=ISSUE))
    value = dict(raw_one_entry(individual=[]), nextCrl=ISSUE - 1)
    with pytest.raises(ProfileError, match="nextCrl"):
        decode_crl_contents(encode("CrlContents", value))


@pytest.mark.parametrize(
    "bad",
    [
        one_entry_crl(craca_id=bytes(7)),
        one_entry_crl(priority=256),
        one_entry_crl(
            body=LinkedCrl(
                i_rev=7,
                index_within_i=0,
                groups=(
                    GroupCrlEntry(
                        i_max=1, la1_id=LA1, seed1=bytes(15), la2_id=LA2, seed2=bytes(16)
                    ),
                ),
            )
        ),
    ],
)
def test_encode_refuses_values_outside_the_types(bad: CrlContents) -> None:
    with pytest.raises(EncodingError):
        encode_crl_contents(bad)


# ---------------------------------------------------------------------------------------------
# SecuredCrl


def craca(curve: str = "nistP256") -> tuple[SoftwareSigner, Certificate]:
    key = generate_key(curve)
    tbs = {
        "id": ("name", "craca"),
        "cracaId": b"\x00\x00\x00",
        "crlSeries": 0,
        "validityPeriod": {"start": ISSUE - 3600, "duration": ("years", 5)},
        "appPermissions": [{"psid": 256}],
        "verifyKeyIndicator": ("verificationKey", verification_key_value(key.public_key())),
    }
    signer = SoftwareSigner(key)
    return signer, sign_certificate(tbs, signer, issuer_certificate=None)


@pytest.mark.parametrize("curve", ["nistP256", "brainpoolP256r1", "nistP384"])
@pytest.mark.parametrize("signer_as", ["digest", "certificate"])
def test_secured_crl_verifies_under_its_craca(curve: str, signer_as: Any) -> None:
    signer, certificate = craca(curve)
    contents = one_entry_crl(craca_id=certificate.hashed_id8)
    encoded = sign_crl(contents, signer, certificate, signer_as=signer_as)
    secured = open_secured_crl(encoded)
    assert secured.message.header_info == {"psid": 256}
    assert secured.message.signer[0] == signer_as
    assert secured.verify(certificate) == contents


def test_a_tampered_crl_fails_verification() -> None:
    signer, certificate = craca()
    encoded = sign_crl(one_entry_crl(craca_id=certificate.hashed_id8), signer, certificate)
    # The last byte of the second seed is in the signed CrlContents, before headerInfo (2 bytes)
    # and the signer and signature.
    position = encoded.index(SEED2) + 15
    tampered = encoded[:position] + bytes([encoded[position] ^ 1]) + encoded[position + 1 :]
    with pytest.raises(VerificationError):
        open_secured_crl(tampered).verify(certificate)
    # A flipped bit in the signature's s.
    bad_signature = encoded[:-1] + bytes([encoded[-1] ^ 1])
    with pytest.raises(VerificationError):
        open_secured_crl(bad_signature).verify(certificate)


def test_a_crl_signed_by_another_key_or_certificate_fails() -> None:
    _, certificate = craca()
    other_signer, other_certificate = craca()
    contents = one_entry_crl(craca_id=certificate.hashed_id8)
    # Another key, naming the CRACA's certificate.
    forged = sign_crl(contents, other_signer, certificate)
    with pytest.raises(VerificationError):
        open_secured_crl(forged).verify(certificate)
    # Another CRACA's own, valid CRL: not this CRACA's.
    theirs = sign_crl(
        one_entry_crl(craca_id=other_certificate.hashed_id8), other_signer, other_certificate
    )
    open_secured_crl(theirs).verify(other_certificate)
    with pytest.raises(VerificationError, match="another CRACA"):
        open_secured_crl(theirs).verify(certificate)
    with pytest.raises(ValueError, match="crlCraca"):
        sign_crl(contents, other_signer, other_certificate)


def signed_with(header: dict[str, Any], *, self_signed: bool = False) -> bytes:
    signer, certificate = craca()
    payload = {
        "data": unsecured(encode_crl_contents(one_entry_crl(craca_id=certificate.hashed_id8)))
    }
    if self_signed:
        return sign_data(payload, header, signer)
    return sign_data(
        payload,
        header,
        signer,
        signer_identifier=("digest", certificate.hashed_id8),
        signer_certificate=certificate.encoded,
    )


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (signed_with({"psid": 622}), "psid 256"),
        (signed_with({"psid": 256, "generationTime": 1}), "generationTime"),
        (signed_with({"psid": 256, "expiryTime": 1}), "expiryTime"),
        (signed_with({"psid": 256}, self_signed=True), "not self"),
    ],
)
def test_secured_crl_profile(encoded: bytes, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        open_secured_crl(encoded)


def test_secured_crl_refuses_trailing_bytes_and_other_payloads() -> None:
    signer, certificate = craca()
    encoded = sign_crl(one_entry_crl(craca_id=certificate.hashed_id8), signer, certificate)
    with pytest.raises(EncodingError):
        open_secured_crl(encoded + b"\x00")
    with pytest.raises(EncodingError):
        open_secured_crl(encoded[:-1])
    not_a_crl = sign_data(
        {"data": unsecured(b"\x01\x00")},
        {"psid": 256},
        signer,
        signer_identifier=("digest", certificate.hashed_id8),
        signer_certificate=certificate.encoded,
    )
    with pytest.raises(EncodingError):
        open_secured_crl(not_a_crl)
    assert open_signed_data(encoded).unsecured_payload()[:1] == b"\x01"


# ---------------------------------------------------------------------------------------------
# The receiver: from CRL bytes to a LinkedRevocationSet


def _entry(vehicle: Vehicle, i_rev: int) -> IndividualRevocation:
    """What LA1 and LA2 reveal: the vehicle's seeds of period i_rev."""
    seed1, seed2 = vehicle.seeds(i_rev)
    return IndividualRevocation(seed1=seed1, seed2=seed2)


def linked_crl(
    certificate: Certificate, i_rev: int, entries: tuple[IndividualRevocation, ...], **changes: Any
) -> CrlContents:
    group = JMaxGroup(
        j_max=J_MAX,
        la_groups=(
            LaGroup(
                la1_id=LA1,
                la2_id=LA2,
                i_max_groups=(IMaxGroup(i_max=i_rev + 30, revocations=entries),),
            ),
        ),
    )
    contents = CrlContents(
        crl_series=1,
        craca_id=certificate.hashed_id8,
        issue_date=ISSUE,
        next_crl=NEXT,
        body=LinkedCrl(i_rev=i_rev, index_within_i=0, individual=(group,)),
    )
    return dataclasses.replace(contents, **changes)


def test_a_received_linked_crl_revokes_the_vehicle_from_i_rev_on() -> None:
    signer, certificate = craca()
    bad, good = Vehicle(), Vehicle()
    i_rev = 5
    crl_bytes = sign_crl(linked_crl(certificate, i_rev, (_entry(bad, i_rev),)), signer, certificate)

    revoked = revocation_set_from_crls([crl_bytes], certificate, current_period=6)
    assert len(revoked) == 1
    for i in (5, 6, 7):
        for j in range(J_MAX):
            with pytest.raises(CertificateRevokedError):
                revoked.check(i, bad.lv(i, j))
            revoked.check(i, good.lv(i, j))
    for i in range(i_rev):
        for j in range(J_MAX):
            revoked.check(i, bad.lv(i, j))
    # The j beyond jMax is not a certificate the vehicle holds, and is not revoked.
    revoked.check(6, bad.lv(6, J_MAX))


def test_a_full_and_a_delta_crl_together() -> None:
    signer, certificate = craca()
    first, second, good = Vehicle(), Vehicle(), Vehicle()
    full = sign_crl(linked_crl(certificate, 3, (_entry(first, 3),)), signer, certificate)
    delta = sign_crl(
        linked_crl(certificate, 4, (_entry(second, 4),), delta=True), signer, certificate
    )
    revoked = revocation_set_from_crls([full, delta], certificate, current_period=4)
    for vehicle in (first, second):
        with pytest.raises(CertificateRevokedError):
            revoked.check(4, vehicle.lv(4, 0))
    revoked.check(3, second.lv(3, 0))  # before its iRev
    revoked.check(4, good.lv(4, 0))


def test_a_forged_crl_revokes_nobody() -> None:
    _, certificate = craca()
    other_signer, _ = craca()
    bad = Vehicle()
    forged = sign_crl(linked_crl(certificate, 2, (_entry(bad, 2),)), other_signer, certificate)
    with pytest.raises(VerificationError):
        revocation_set_from_crls([forged], certificate, current_period=2)


def test_bridge_takes_every_field_from_its_group() -> None:
    contents = one_entry_crl(
        body=LinkedCrl(
            i_rev=7,
            index_within_i=0,
            individual=(
                JMaxGroup(
                    j_max=3,
                    la_groups=(
                        LaGroup(
                            la1_id=LA2,
                            la2_id=LA1,
                            i_max_groups=(
                                IMaxGroup(
                                    i_max=9,
                                    revocations=(IndividualRevocation(seed1=SEED1, seed2=SEED2),),
                                ),
                                IMaxGroup(
                                    i_max=6,
                                    revocations=(IndividualRevocation(seed1=SEED2, seed2=SEED1),),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        )
    )
    (entry,) = linked_revocations(contents)  # the iMax 6 group has expired before iRev 7
    assert (entry.i_rev, entry.j_max, entry.i_max) == (7, 3, 9)
    assert (entry.la1_id, entry.la2_id, entry.seed1, entry.seed2) == (LA2, LA1, SEED1, SEED2)


def test_bridge_refuses_a_hash_crl_and_bad_entries() -> None:
    with pytest.raises(EncodingError, match="hash-based"):
        linked_revocations(one_entry_crl(body=HashCrl(crl_serial=1)))
    same_la = one_entry_crl(
        body=LinkedCrl(
            i_rev=1,
            index_within_i=0,
            individual=(
                JMaxGroup(
                    j_max=1,
                    la_groups=(
                        LaGroup(
                            la1_id=LA1,
                            la2_id=LA1,
                            i_max_groups=(
                                IMaxGroup(
                                    i_max=2,
                                    revocations=(IndividualRevocation(seed1=SEED1, seed2=SEED2),),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        )
    )
    with pytest.raises(EncodingError, match="distinct"):
        linked_revocations(decode_crl_contents(encode_crl_contents(same_la)))
