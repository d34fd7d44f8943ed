"""SCP03 host <-> card: round trips at every level in S8 and S16, and every way a session fails.

The published transcripts are in ``tests/conformance/test_scp03_transcripts.py``; this file
checks the behaviour around them: the AES primitives against an independent implementation
(pycryptodome) and public KDF vectors, the full host/card exchange over random commands of all
four ISO cases, and the negative cases (each closes or aborts the session with the status word
GP prescribes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from Crypto.Cipher import AES as PycryptodomeAES
from Crypto.Hash import CMAC as PycryptodomeCMAC
from hypothesis import given
from hypothesis import strategies as st

from fleetid.crypto.symmetric import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    aes_cmac,
    aes_kcv,
    iso9797_m2_pad,
    iso9797_m2_unpad,
)
from fleetid.errors import (
    ConfigError,
    EncodingError,
    SecureChannelError,
    SecureElementError,
    VerificationError,
)
from fleetid.formats.apdu import CommandApdu, parse_command, parse_response
from fleetid.se.scp03 import (
    R_MAC,
    SECURITY_LEVELS,
    HostSession,
    StaticKeys,
    aes_key_component,
    encrypt_key_component,
    put_key_command,
)
from fleetid.se.scp03.card import CardChannel

AID = bytes.fromhex("a000000151000000")
KDD = bytes.fromhex("00112233445566778899")
KVN = 0x30
LEVELS = sorted(SECURITY_LEVELS)


def make_keys(length: int = 16, seed: int = 0) -> StaticKeys:
    def key(role: int) -> bytes:
        return bytes((seed + role * 0x10 + i) & 0xFF for i in range(length))

    return StaticKeys(key(0), key(1), key(2))


@dataclass
class Pair:
    host: HostSession
    card: CardChannel

    def send(self, command: bytes) -> CommandApdu:
        """Wrap on the host, unwrap on the card; returns what the card's applet sees."""
        return self.card.unwrap_command(parse_command(self.host.wrap(command)))

    def answer(self, data: bytes, sw: int) -> bytes:
        """Wrap on the card, unwrap on the host; returns what the host application sees."""
        return self.host.unwrap(self.card.wrap_response(data, sw) + sw.to_bytes(2, "big"))


def open_pair(
    level: int,
    *,
    s16: bool = False,
    key_length: int = 16,
    pseudo_random: bool = True,
    host_challenge: bytes | None = None,
) -> Pair:
    keys = make_keys(key_length)
    card = CardChannel(
        {KVN: keys},
        KDD,
        aid=AID,
        sequence_counter=5,
        pseudo_random_challenge=pseudo_random,
        s16=s16,
    )
    host = HostSession(keys, level, host_challenge, s16=s16)
    response = card.initialize_update(parse_command(host.initialize_update(KVN)))
    card.external_authenticate(parse_command(host.external_authenticate(response)))
    assert card.wrap_response(b"", 0x9000) == b""  # EXTERNAL AUTHENTICATE: never an R-MAC
    return Pair(host, card)


def expect_sw(sw: int) -> pytest.RaisesExc[SecureChannelError]:
    return pytest.raises(SecureChannelError, match=f"SW {sw:04X}")


# --- primitives -----------------------------------------------------------------------------------


@given(key=st.binary(min_size=16, max_size=16), message=st.binary(max_size=100))
def test_cmac_matches_pycryptodome(key: bytes, message: bytes) -> None:
    expected = PycryptodomeCMAC.new(key, message, ciphermod=PycryptodomeAES).digest()
    assert aes_cmac(key, message) == expected


@given(
    key=st.binary(min_size=32, max_size=32),
    iv=st.binary(min_size=16, max_size=16),
    blocks=st.integers(1, 4).flatmap(lambda n: st.binary(min_size=16 * n, max_size=16 * n)),
)
def test_cbc_matches_pycryptodome(key: bytes, iv: bytes, blocks: bytes) -> None:
    ours = aes_cbc_encrypt(key, iv, blocks)
    assert ours == PycryptodomeAES.new(key, PycryptodomeAES.MODE_CBC, iv=iv).encrypt(blocks)
    assert aes_cbc_decrypt(key, iv, ours) == blocks


def test_cbc_rejects_partial_blocks() -> None:
    with pytest.raises(ValueError, match="whole blocks"):
        aes_cbc_encrypt(bytes(16), bytes(16), b"abc")
    with pytest.raises(EncodingError):
        aes_cbc_decrypt(bytes(16), bytes(16), bytes(17))


@given(st.binary(max_size=70))
def test_padding_round_trip(data: bytes) -> None:
    padded = iso9797_m2_pad(data)
    assert len(padded) % 16 == 0
    assert len(data) < len(padded) <= len(data) + 16
    assert iso9797_m2_unpad(padded) == data


@pytest.mark.parametrize(
    "bad",
    [
        b"",  # nothing at all
        bytes(16),  # no 80 marker
        b"abc" + bytes(13),  # no 80 marker, data ends in zeros
        b"abc\x80" + bytes(10),  # not whole blocks
        b"\x80" + bytes(31),  # padding longer than one block (strict)
    ],
)
def test_padding_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(EncodingError):
        iso9797_m2_unpad(bad)


def test_lenient_unpadding_accepts_long_padding_only() -> None:
    assert iso9797_m2_unpad(b"ab\x80" + bytes(29), strict=False) == b"ab"
    with pytest.raises(EncodingError):
        iso9797_m2_unpad(b"ab" + bytes(30), strict=False)


def test_kcv_of_known_key_and_wrong_length() -> None:
    assert aes_kcv(bytes(range(16))).hex() == "c35280"  # GPCS §11.8 method, pySim KCV test
    with pytest.raises(EncodingError):
        aes_kcv(bytes(15))


# --- static keys ------------------------------------------------------------------------------


def test_static_keys_validation_and_repr() -> None:
    keys = make_keys(32)
    assert keys.key_length == 32
    assert keys.enc.hex() not in repr(keys)  # keys never reach logs through repr
    with pytest.raises(EncodingError):
        StaticKeys(bytes(16), bytes(16), bytes(24))
    with pytest.raises(EncodingError):
        StaticKeys(bytes(15), bytes(15), bytes(15))


# --- round trips ------------------------------------------------------------------------------


@st.composite
def command_apdus(draw: st.DrawFn) -> CommandApdu:
    """Plain commands of all four cases, short and extended, on channels 0-3 and 4-19."""
    cla = draw(
        st.sampled_from([0x00, 0x01, 0x03, 0x80, 0x81, 0x83, 0x90, 0x40, 0x4F, 0xC0, 0xC5, 0xD0])
    )
    data = draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=300)))
    ne = draw(st.one_of(st.none(), st.integers(1, 256), st.integers(257, 65536)))
    return CommandApdu(
        cla,
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
        data,
        ne,
        extended=draw(st.booleans()),
    )


def _exchange(pair: Pair, level: int, command: CommandApdu, data: bytes, sw: int) -> None:
    seen = pair.send(command.encode())
    assert (seen.cla, seen.ins, seen.p1, seen.p2, seen.data) == (
        command.cla,
        command.ins,
        command.p1,
        command.p2,
        command.data,
    )
    assert (seen.ne is None) == (command.ne is None)
    success = sw == 0x9000 or sw >> 8 in (0x62, 0x63)
    reply = data if success or not level & R_MAC else b""
    assert pair.answer(data, sw) == reply + sw.to_bytes(2, "big")


FIXED_EXCHANGES = [
    (CommandApdu(0x80, 0xF2, 0x20, 0x02), b"", 0x9000),  # case 1
    (CommandApdu(0x80, 0xCA, 0x00, 0x66, ne=256), b"\x66\x01", 0x9000),  # case 2
    (CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\xbf\x3e"), b"", 0x6A80),  # case 3, error SW
    (CommandApdu(0x80, 0xF2, 0x40, 0x00, b"\x4f\x00", ne=256), bytes(40), 0x6310),  # case 4
    (CommandApdu(0x80, 0xE2, 0x80, 0x01, bytes(range(256)), ne=65536), bytes(300), 0x9000),
]


@pytest.mark.parametrize("s16", [False, True], ids=["S8", "S16"])
@pytest.mark.parametrize("level", LEVELS, ids=lambda lvl: f"level{lvl:02X}")
def test_round_trip_every_level(level: int, s16: bool) -> None:
    """Cases 1-4 and an extended-length command at each level: the card sees the plain command
    and the host sees the plain response."""
    pair = open_pair(level, s16=s16)
    assert pair.card.level == level
    for command, data, sw in FIXED_EXCHANGES:
        _exchange(pair, level, command, data, sw)
    assert pair.card.authenticated


@given(
    level=st.sampled_from(LEVELS),
    s16=st.booleans(),
    exchanges=st.lists(
        st.tuples(
            command_apdus(),
            st.binary(max_size=200),
            st.sampled_from([0x9000, 0x6310, 0x6282, 0x6A82, 0x6982]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_round_trip_random_commands(
    level: int, s16: bool, exchanges: list[tuple[CommandApdu, bytes, int]]
) -> None:
    pair = open_pair(level, s16=s16)
    for command, data, sw in exchanges:
        _exchange(pair, level, command, data, sw)
    assert pair.card.authenticated


@pytest.mark.parametrize("key_length", [16, 24, 32])
@pytest.mark.parametrize("s16", [False, True], ids=["S8", "S16"])
def test_random_card_challenge_and_key_lengths(key_length: int, s16: bool) -> None:
    pair = open_pair(0x33, s16=s16, key_length=key_length, pseudo_random=False)
    assert pair.host.sequence_counter is None
    assert pair.send(bytes.fromhex("80ca006600")).data == b""
    assert pair.answer(b"\x01\x02", 0x9000) == b"\x01\x02\x90\x00"


def test_wire_format_of_wrapped_commands() -> None:
    pair = open_pair(0x03)
    case1 = pair.host.wrap(bytes.fromhex("80f22002"))
    assert case1[:5] == bytes.fromhex("84f2200208") and len(case1) == 13
    case4 = pair.host.wrap(bytes.fromhex("80f28002024f0007"))
    assert case4[:5] == bytes.fromhex("84f2800218")  # 2 bytes -> 16 encrypted + 8 MAC
    assert case4[-1] == 0x00  # Le becomes 00: R-MAC and padding lengthen the response
    assert pair.host.wrap(bytes.fromhex("81f22002"))[0] == 0x85  # logical channel 1 kept
    assert pair.host.wrap(bytes.fromhex("c1f22002"))[0] == 0xE1  # channel 5: SM is bit 6
    long_command = pair.host.wrap(bytes([0x80, 0xE2, 0x00, 0x00, 0xF8]) + bytes(248))
    assert long_command[4:7] == b"\x00\x01\x08"  # 248 -> 256 padded + 8 MAC: extended Lc
    assert long_command[-2:] != b"\x00\x00"  # case 3 stays case 3


def test_sequence_counter_increments_per_initialize_update() -> None:
    keys = make_keys()
    card = CardChannel({KVN: keys}, KDD, aid=AID, sequence_counter=0)
    challenges = set()
    for expected in (1, 2, 3):
        host = HostSession(keys, 0x01)
        response = card.initialize_update(parse_command(host.initialize_update()))
        assert card.sequence_counter == expected
        assert response[-3:] == expected.to_bytes(3, "big")
        assert response[12] == 0x70  # i: pseudo-random, R-MAC and R-ENC, S8
        challenges.add(response[13:21])
    assert len(challenges) == 3


def test_level_00_authenticates_without_secure_messaging() -> None:
    pair = open_pair(0x00)
    assert pair.card.authenticated and pair.card.level == 0
    command = bytes.fromhex("80ca9f7f00")
    assert pair.host.wrap(command) == command
    assert pair.card.unwrap_command(parse_command(command)).encode() == command
    assert pair.answer(b"\x11", 0x9000) == b"\x11\x90\x00"


def test_kvn_zero_selects_first_key_set() -> None:
    keys = {0x31: make_keys(seed=1), 0x30: make_keys()}
    card = CardChannel(keys, KDD, aid=AID, sequence_counter=0)
    host = HostSession(keys[0x30], 0x01)
    response = card.initialize_update(parse_command(host.initialize_update(0)))
    assert response[10] == 0x30
    card.external_authenticate(parse_command(host.external_authenticate(response)))
    assert card.key_version == 0x30 and host.key_version == 0x30


def test_key_provider_receives_kdd_and_kvn() -> None:
    seen: list[tuple[bytes, int]] = []

    def provider(kdd: bytes, kvn: int) -> StaticKeys:
        seen.append((kdd, kvn))
        return make_keys()

    card = CardChannel({KVN: make_keys()}, KDD, aid=AID, sequence_counter=0)
    host = HostSession(provider, 0x13)
    response = card.initialize_update(parse_command(host.initialize_update(KVN)))
    card.external_authenticate(parse_command(host.external_authenticate(response)))
    assert seen == [(KDD, KVN)]


# --- PUT KEY key data ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [16, 24, 32])
def test_put_key_component_decrypts_on_card(length: int) -> None:
    pair = open_pair(0x33, key_length=length)
    new_key = os.urandom(length)
    block = pair.host.key_component(new_key)
    cipher_length = 32 if length > 16 else 16
    assert block[:3] == bytes((0x88, cipher_length + 1, length))
    assert block[-4:] == b"\x03" + aes_kcv(new_key)
    ciphertext = block[3 : 3 + cipher_length]
    assert new_key not in block
    assert pair.card.decrypt_sensitive(ciphertext)[:length] == new_key

    command = put_key_command(new_kvn=0x31, components=[block, block, block], old_kvn=0x30)
    assert command[:4] == bytes.fromhex("80d83081")  # P2 b8: several keys follow
    seen = pair.send(command)
    assert seen.data == b"\x31" + block * 3


def test_aes_key_component_from_hsm_wrapped_block() -> None:
    """The line's HSM wraps under the Key-DEK itself; we only frame its output."""
    dek, key = bytes(range(16)), bytes(range(100, 116))
    wrapped = encrypt_key_component(dek, key)
    assert wrapped == PycryptodomeAES.new(dek, PycryptodomeAES.MODE_CBC, iv=bytes(16)).encrypt(key)
    block = aes_key_component(wrapped, 16, aes_kcv(key))
    assert block == bytes.fromhex("881110") + wrapped + b"\x03" + aes_kcv(key)
    with pytest.raises(EncodingError):
        aes_key_component(wrapped, 24, aes_kcv(key))  # a 24-byte key has 32 bytes of ciphertext
    with pytest.raises(EncodingError):
        aes_key_component(wrapped, 16, b"\x00\x01")


def test_decrypt_sensitive_needs_a_session() -> None:
    card = CardChannel({KVN: make_keys()}, KDD, aid=AID, sequence_counter=0)
    with expect_sw(0x6982):
        card.decrypt_sensitive(bytes(16))
    pair = open_pair(0x03)
    with expect_sw(0x6A80):
        pair.card.decrypt_sensitive(bytes(15))


# --- negative cases: mutual authentication ------------------------------------------------------


def _initialized(level: int = 0x13, **card_options: bool) -> tuple[HostSession, CardChannel, bytes]:
    keys = make_keys()
    card = CardChannel({KVN: keys}, KDD, aid=AID, sequence_counter=0, **card_options)
    host = HostSession(keys, level)
    response = card.initialize_update(parse_command(host.initialize_update(KVN)))
    return host, card, response


def test_wrong_card_cryptogram_host_raises() -> None:
    keys = make_keys()
    card = CardChannel({KVN: make_keys(seed=9)}, KDD, aid=AID, sequence_counter=0)
    host = HostSession(keys, 0x03)
    response = card.initialize_update(parse_command(host.initialize_update(KVN)))
    with pytest.raises(VerificationError):
        host.external_authenticate(response)
    assert not host.is_open
    with pytest.raises(SecureChannelError):
        host.wrap(bytes.fromhex("80f22002"))


def test_wrong_host_cryptogram_card_6300_and_closed() -> None:
    host, card, response = _initialized()
    valid = host.external_authenticate(response)
    forged = bytearray(valid)
    forged[5] ^= 0x80  # first byte of the host cryptogram
    with expect_sw(0x6300):
        card.external_authenticate(parse_command(bytes(forged)))
    assert not card.authenticated and card.level == 0
    # The session is gone: not even the valid EXTERNAL AUTHENTICATE can follow now.
    with expect_sw(0x6985):
        card.external_authenticate(parse_command(valid))


def test_host_checks_external_authenticate_status() -> None:
    host, _card, response = _initialized()
    host.external_authenticate(response)
    host.check_authentication(bytes.fromhex("9000"))
    assert host.is_open
    with pytest.raises(SecureChannelError) as refused:
        host.check_authentication(bytes.fromhex("6300"))
    assert refused.value.sw == 0x6300
    assert not host.is_open


def test_wrong_mac_on_external_authenticate_6982() -> None:
    host, card, response = _initialized()
    external_authenticate = bytearray(host.external_authenticate(response))
    external_authenticate[-1] ^= 0x01
    with expect_sw(0x6982):
        card.external_authenticate(parse_command(bytes(external_authenticate)))
    assert not card.authenticated


def test_host_with_wrong_mac_key_cannot_authenticate() -> None:
    keys = make_keys()
    card = CardChannel({KVN: keys}, KDD, aid=AID, sequence_counter=0)
    forged = HostSession(StaticKeys(keys.enc, bytes(16), keys.dek), 0x13)
    response = card.initialize_update(parse_command(forged.initialize_update(KVN)))
    with pytest.raises(VerificationError):
        forged.external_authenticate(response)


@pytest.mark.parametrize("p1", [0x02, 0x10, 0x12, 0x23, 0x31, 0x37, 0xFF])
def test_undefined_security_level_6a86(p1: int) -> None:
    host, card, response = _initialized()
    valid = host.external_authenticate(response)
    forged = bytes((0x84, 0x82, p1)) + valid[3:]
    with expect_sw(0x6A86):
        card.external_authenticate(parse_command(forged))
    assert not card.authenticated
    with pytest.raises(ConfigError):
        HostSession(make_keys(), p1)


def test_external_authenticate_errors() -> None:
    card = CardChannel({KVN: make_keys()}, KDD, aid=AID, sequence_counter=0)
    with expect_sw(0x6985):  # no INITIALIZE UPDATE before
        card.external_authenticate(parse_command(bytes.fromhex("8482010010") + bytes(16)))
    host, card, response = _initialized()
    valid = host.external_authenticate(response)
    with expect_sw(0x6982):  # CLA without secure messaging
        card.external_authenticate(parse_command(b"\x80" + valid[1:]))
    host, card, response = _initialized()
    valid = host.external_authenticate(response)
    with expect_sw(0x6700):
        card.external_authenticate(parse_command(valid[:4] + b"\x0f" + valid[5:-1]))


def test_initialize_update_errors() -> None:
    card = CardChannel({KVN: make_keys()}, KDD, aid=AID, sequence_counter=0)
    with expect_sw(0x6A88):
        card.initialize_update(parse_command(bytes.fromhex("8050310008") + bytes(8)))
    with expect_sw(0x6700):  # an S16 host challenge to an S8 card
        card.initialize_update(parse_command(bytes.fromhex("8050300010") + bytes(16)))
    with expect_sw(0x6A86):
        card.initialize_update(parse_command(bytes.fromhex("8050300108") + bytes(8)))
    with expect_sw(0x6E00):
        card.initialize_update(parse_command(bytes.fromhex("0050300008") + bytes(8)))
    full = CardChannel({KVN: make_keys()}, KDD, aid=AID, sequence_counter=0xFFFFFF)
    with expect_sw(0x6985):  # §6.2.2.1: sequence counter exhausted
        full.initialize_update(parse_command(bytes.fromhex("8050300008") + bytes(8)))
    assert full.sequence_counter == 0xFFFFFF


def test_host_rejects_initialize_update_refusals_and_garbage() -> None:
    host = HostSession(make_keys(), 0x01)
    host.initialize_update(KVN)
    with pytest.raises(SecureElementError) as refused:
        host.external_authenticate(bytes.fromhex("6a88"))
    assert refused.value.sw == 0x6A88
    host, _, response = _initialized()
    with pytest.raises(SecureElementError) as refused:
        host.external_authenticate(response + bytes.fromhex("6985"))
    assert refused.value.sw == 0x6985
    host, _, response = _initialized()
    with pytest.raises(EncodingError):
        host.external_authenticate(response[:-4])
    host, _, response = _initialized()
    with pytest.raises(EncodingError):  # wrong SCP identifier
        host.external_authenticate(response[:11] + b"\x02" + response[12:])
    host, _, response = _initialized()
    with pytest.raises(ConfigError):  # card "i" without R-MAC support, level asks for R-MAC
        host.external_authenticate(response[:12] + b"\x10" + response[13:])
    s16_host = HostSession(make_keys(), 0x01, s16=True)
    s16_host.initialize_update(KVN)
    with pytest.raises(EncodingError):
        s16_host.external_authenticate(response)
    with pytest.raises(SecureChannelError):  # no INITIALIZE UPDATE sent
        HostSession(make_keys(), 0x01).external_authenticate(response)


# --- negative cases: secure messaging -----------------------------------------------------------


def _assert_aborted(pair: Pair) -> None:
    assert not pair.card.authenticated and pair.card.level == 0
    # §5.6: after an abort every command is refused until the session is terminated.
    with expect_sw(0x6982):
        pair.card.unwrap_command(parse_command(bytes.fromhex("80ca006600")))
    pair.card.close()  # SELECT / reset terminates the aborted session
    assert pair.card.unwrap_command(parse_command(bytes.fromhex("80ca006600"))).ins == 0xCA


@pytest.mark.parametrize("level", [0x01, 0x03, 0x11, 0x13, 0x33])
def test_bad_c_mac_6982_and_abort(level: int) -> None:
    pair = open_pair(level)
    wrapped = bytearray(pair.host.wrap(bytes.fromhex("80e2900003010203")))
    wrapped[-1] ^= 0x01
    with expect_sw(0x6982):
        pair.card.unwrap_command(parse_command(bytes(wrapped)))
    _assert_aborted(pair)


def test_tampered_ciphertext_6982() -> None:
    pair = open_pair(0x33)
    wrapped = bytearray(pair.host.wrap(bytes.fromhex("80e2900003010203")))
    wrapped[6] ^= 0x01
    with expect_sw(0x6982):
        pair.card.unwrap_command(parse_command(bytes(wrapped)))
    _assert_aborted(pair)


def test_replayed_command_6982() -> None:
    pair = open_pair(0x13)
    wrapped = pair.host.wrap(bytes.fromhex("80e2900003010203"))
    pair.card.unwrap_command(parse_command(wrapped))
    with expect_sw(0x6982):
        pair.card.unwrap_command(parse_command(wrapped))
    _assert_aborted(pair)


def test_reordered_commands_6982() -> None:
    pair = open_pair(0x01)
    first = pair.host.wrap(bytes.fromhex("80ca006600"))
    second = pair.host.wrap(bytes.fromhex("80ca9f7f00"))
    with expect_sw(0x6982):
        pair.card.unwrap_command(parse_command(second))
    with expect_sw(0x6982):
        pair.card.unwrap_command(parse_command(first))


def test_command_from_another_session_6982() -> None:
    old = open_pair(0x01)
    stale = old.host.wrap(bytes.fromhex("80ca006600"))
    fresh = open_pair(0x01)
    with expect_sw(0x6982):
        fresh.card.unwrap_command(parse_command(stale))


@pytest.mark.parametrize("level", [0x01, 0x03, 0x11, 0x13, 0x33])
def test_plain_command_below_level_6982(level: int) -> None:
    pair = open_pair(level)
    with expect_sw(0x6982):
        pair.card.unwrap_command(parse_command(bytes.fromhex("80ca006600")))
    _assert_aborted(pair)


def test_truncated_mac() -> None:
    pair = open_pair(0x01)
    wrapped = pair.host.wrap(bytes.fromhex("80f22002"))  # 84 F2 20 02 08 <8-byte MAC>
    truncated = bytes.fromhex("84f2200207") + wrapped[5:-1]
    with expect_sw(0x6988):  # fewer bytes than a C-MAC
        pair.card.unwrap_command(parse_command(truncated))
    _assert_aborted(pair)

    pair = open_pair(0x01)
    wrapped = pair.host.wrap(bytes.fromhex("80e2900003010203"))
    shortened = wrapped[:4] + bytes((wrapped[4] - 1,)) + wrapped[5:-1]
    with expect_sw(0x6982):  # MAC shortened by one byte: data and MAC no longer line up
        pair.card.unwrap_command(parse_command(shortened))


def test_s16_mac_truncated_to_s8_is_refused() -> None:
    pair = open_pair(0x01, s16=True)
    wrapped = pair.host.wrap(bytes.fromhex("80f22002"))
    assert wrapped[4] == 0x10
    s8_sized = bytes.fromhex("84f2200208") + wrapped[5:13]
    with expect_sw(0x6988):
        pair.card.unwrap_command(parse_command(s8_sized))


def test_bad_padding_after_valid_mac_6988() -> None:
    """A MAC-correct command whose decrypted data is not padded: only a broken host does this."""
    # A fixed host challenge makes the session keys, so the decrypted block, deterministic.
    pair = open_pair(0x03, pseudo_random=True, host_challenge=bytes(range(8)))
    assert pair.send(bytes.fromhex("80e2900003010203")).data == b"\x01\x02\x03"
    pair.host._level = 0x01  # simulate a host that MACs but skips C-DECRYPTION
    wrapped = pair.host.wrap(bytes.fromhex("80e2900010") + bytes(16))
    with expect_sw(0x6988):
        pair.card.unwrap_command(parse_command(wrapped))
    _assert_aborted(pair)


def test_secure_messaging_without_session_6985() -> None:
    card = CardChannel({KVN: make_keys()}, KDD, aid=AID, sequence_counter=0)
    with expect_sw(0x6985):
        card.unwrap_command(parse_command(bytes.fromhex("84f2200208") + bytes(8)))
    plain = parse_command(bytes.fromhex("80ca006600"))
    assert card.unwrap_command(plain) == plain
    assert card.wrap_response(b"\x01", 0x9000) == b"\x01"


def test_tampered_r_mac_host_raises() -> None:
    pair = open_pair(0x11)
    pair.send(bytes.fromhex("80ca006600"))
    protected = bytearray(pair.card.wrap_response(b"\x01\x02\x03", 0x9000))
    protected[-1] ^= 0x01
    with pytest.raises(VerificationError):
        pair.host.unwrap(bytes(protected) + b"\x90\x00")
    assert not pair.host.is_open


def test_r_mac_over_status_word() -> None:
    pair = open_pair(0x11)
    pair.send(bytes.fromhex("80ca006600"))
    protected = pair.card.wrap_response(b"\x01", 0x9000)
    with pytest.raises(VerificationError):  # same bytes, another (warning) status word
        pair.host.unwrap(protected + b"\x62\x82")


def test_missing_r_mac_host_raises() -> None:
    pair = open_pair(0x33)
    pair.send(bytes.fromhex("80ca006600"))
    with pytest.raises(VerificationError):
        pair.host.unwrap(bytes.fromhex("01029000"))


def test_tampered_r_enc_ciphertext_host_raises() -> None:
    pair = open_pair(0x33)
    pair.send(bytes.fromhex("80ca006600"))
    protected = bytearray(pair.card.wrap_response(b"secret", 0x9000))
    assert b"secret" not in protected
    protected[0] ^= 0x01
    with pytest.raises(VerificationError):
        pair.host.unwrap(bytes(protected) + b"\x90\x00")


def test_error_status_words_are_not_protected() -> None:
    pair = open_pair(0x33)
    pair.send(bytes.fromhex("80ca006600"))
    assert pair.card.wrap_response(b"", 0x6A82) == b""
    assert pair.host.unwrap(bytes.fromhex("6a82")) == bytes.fromhex("6a82")
    # The session survives an application error: the next exchange still verifies.
    pair.send(bytes.fromhex("80ca9f7f00"))
    assert pair.answer(b"\x42", 0x9000) == b"\x42\x90\x00"


def test_new_initialize_update_terminates_session() -> None:
    pair = open_pair(0x01)
    wrapped = pair.host.wrap(bytes.fromhex("80ca006600"))
    pair.card.initialize_update(parse_command(bytes.fromhex("8050300008") + bytes(8)))
    assert not pair.card.authenticated
    with expect_sw(0x6985):  # pending, not authenticated: SM commands are refused
        pair.card.unwrap_command(parse_command(wrapped))


def test_host_refuses_misuse() -> None:
    host = HostSession(make_keys(), 0x01)
    with pytest.raises(SecureChannelError):
        host.wrap(bytes.fromhex("80ca006600"))
    pair = open_pair(0x01)
    with pytest.raises(EncodingError):
        pair.host.wrap(bytes.fromhex("84ca006600"))
    with pytest.raises(ConfigError):
        HostSession(make_keys(), 0x01, host_challenge=bytes(16))


def test_card_constructor_validation() -> None:
    with pytest.raises(ConfigError):
        CardChannel({KVN: make_keys()}, KDD[:9], aid=AID, sequence_counter=0)
    with pytest.raises(ConfigError):
        CardChannel({KVN: make_keys()}, KDD, aid=b"\xa0\x00", sequence_counter=0)
    with pytest.raises(ConfigError):
        CardChannel({KVN: make_keys()}, KDD, aid=AID, sequence_counter=1 << 24)


def test_response_apdu_helpers_agree() -> None:
    pair = open_pair(0x33)
    pair.send(bytes.fromhex("80ca006600"))
    wire = pair.card.wrap_response(b"abc", 0x9000) + b"\x90\x00"
    assert parse_response(pair.host.unwrap(wire)).data == b"abc"
