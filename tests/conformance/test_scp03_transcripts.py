"""SCP03 against the public pySim transcripts (``shared/vectors/scp03``, see its PROVENANCE.md).

Both sides are checked byte for byte: the host must produce every command of each transcript, and
the card, given the same static keys, AID and sequence counter, must produce the recorded
INITIALIZE UPDATE response, accept every recorded wrapped command and give back the plain one,
and protect the recorded response exactly as the transcript shows.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.vector_loader import load_json

from fleetid.crypto.symmetric import AesKey, aes_kcv, iso9797_m2_pad, scp03_kdf
from fleetid.errors import VerificationError
from fleetid.formats.apdu import parse_command
from fleetid.se.scp03 import (
    HostSession,
    StaticKeys,
    derive_session_keys,
    pseudo_random_card_challenge,
)
from fleetid.se.scp03.card import CardChannel

VECTORS = "scp03/scp03-pysim-transcripts.json"


def _transcripts() -> list[dict[str, Any]]:
    data = load_json(VECTORS)
    assert data["format"] == "scp03-vectors/1"
    transcripts: list[dict[str, Any]] = data["transcripts"]
    return transcripts


def _ids() -> list[str]:
    # Parametrisation happens at collection time; the ids are fixed by the provenance file.
    return [f"aes{bits}-sl{level}" for bits in (128, 192, 256) for level in ("11", "03", "33")]


@pytest.fixture(params=_ids())
def transcript(request: pytest.FixtureRequest) -> dict[str, Any]:
    wanted = f"pysim-{request.param}"
    matches = [t for t in _transcripts() if t["id"] == wanted]
    assert len(matches) == 1, wanted
    return matches[0]


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def _keys(t: dict[str, Any]) -> StaticKeys:
    sk = t["static_keys"]
    return StaticKeys(h(sk["enc"]), h(sk["mac"]), h(sk["dek"]))


def test_all_nine_transcripts_are_present() -> None:
    assert sorted(t["id"] for t in _transcripts()) == sorted(f"pysim-{i}" for i in _ids())


def test_host_reproduces_transcript(transcript: dict[str, Any]) -> None:
    t = transcript
    host = HostSession(_keys(t), int(t["security_level"], 16), h(t["host_challenge"]))
    kvn = int(t["static_keys"]["kvn"], 16)
    assert host.initialize_update(kvn).hex() == t["initialize_update"]["command"]

    external_authenticate = host.external_authenticate(h(t["initialize_update"]["response_data"]))
    ea = t["external_authenticate"]
    assert external_authenticate.hex() == ea["command"]
    assert external_authenticate[5:13].hex() == ea["host_cryptogram"]
    assert external_authenticate[13:].hex() == ea["c_mac"]
    fields = t["initialize_update"]["response_fields"]
    assert host.key_version == kvn
    assert host.sequence_counter == int(fields["sequence_counter"], 16)

    for step in t["steps"]:
        assert host.wrap(h(step["plain_command"])).hex() == step["wrapped_command"], step["index"]
        response = step["response"]
        if response is not None:
            unwrapped = host.unwrap(h(response["wrapped_data"] + response["sw"]))
            assert unwrapped.hex() == response["plain_data"] + response["sw"]


def test_host_accepts_initialize_update_response_with_sw(transcript: dict[str, Any]) -> None:
    t = transcript
    host = HostSession(_keys(t), int(t["security_level"], 16), h(t["host_challenge"]))
    host.initialize_update(int(t["static_keys"]["kvn"], 16))
    response = h(t["initialize_update"]["response_data"]) + b"\x90\x00"
    assert host.external_authenticate(response).hex() == t["external_authenticate"]["command"]


def test_host_rejects_tampered_card_cryptogram(transcript: dict[str, Any]) -> None:
    t = transcript
    host = HostSession(_keys(t), int(t["security_level"], 16), h(t["host_challenge"]))
    host.initialize_update(int(t["static_keys"]["kvn"], 16))
    response = bytearray(h(t["initialize_update"]["response_data"]))
    response[21 + 7] ^= 0x01  # last byte of the card cryptogram (KDD 10, key info 3, challenge 8)
    with pytest.raises(VerificationError):
        host.external_authenticate(bytes(response))
    assert not host.is_open


def test_derived_session_keys_and_cryptogram(transcript: dict[str, Any]) -> None:
    t = transcript
    fields = t["initialize_update"]["response_fields"]
    session = derive_session_keys(_keys(t), h(t["host_challenge"]), h(fields["card_challenge"]))
    derived = t["derived"]
    assert session.s_enc.hex() == derived["s_enc"]
    assert session.s_mac.hex() == derived["s_mac"]
    assert session.s_rmac.hex() == derived["s_rmac"]
    context = h(t["host_challenge"]) + h(fields["card_challenge"])
    card_cryptogram = scp03_kdf(AesKey(session.s_mac).cmac, 0x00, context, 64)
    assert card_cryptogram.hex() == fields["card_cryptogram"]


def test_pseudo_random_card_challenge(transcript: dict[str, Any]) -> None:
    t = transcript
    fields = t["initialize_update"]["response_fields"]
    check = t["derived"]["pseudo_random_card_challenge"]
    assert fields["scp_i_parameter"] == "70"
    challenge = pseudo_random_card_challenge(
        _keys(t).enc, int(fields["sequence_counter"], 16), h(check["invoking_aid"])
    )
    assert challenge.hex() == fields["card_challenge"]
    wrong_aid = h("a000000151000000")
    other = pseudo_random_card_challenge(
        _keys(t).enc, int(fields["sequence_counter"], 16), wrong_aid
    )
    assert other.hex() != fields["card_challenge"]


def test_card_reproduces_transcript(transcript: dict[str, Any]) -> None:
    """The card side, fed the transcript's commands, answers exactly as the recorded card did."""
    t = transcript
    fields = t["initialize_update"]["response_fields"]
    kvn = int(t["static_keys"]["kvn"], 16)
    card = CardChannel(
        {kvn: _keys(t)},
        h(fields["key_diversification_data"]),
        aid=h(t["derived"]["pseudo_random_card_challenge"]["invoking_aid"]),
        sequence_counter=int(fields["sequence_counter"], 16) - 1,
    )
    response = card.initialize_update(parse_command(h(t["initialize_update"]["command"])))
    assert response.hex() == t["initialize_update"]["response_data"]
    assert card.sequence_counter == int(fields["sequence_counter"], 16)

    card.external_authenticate(parse_command(h(t["external_authenticate"]["command"])))
    assert card.authenticated
    assert card.level == int(t["security_level"], 16)
    assert card.wrap_response(b"", 0x9000) == b""  # no R-MAC on EXTERNAL AUTHENTICATE

    for step in t["steps"]:
        plain = card.unwrap_command(parse_command(h(step["wrapped_command"])))
        expected = parse_command(h(step["plain_command"]))
        assert (plain.cla, plain.ins, plain.p1, plain.p2, plain.data) == (
            expected.cla,
            expected.ins,
            expected.p1,
            expected.p2,
            expected.data,
        ), step["index"]
        assert (plain.ne is None) == (expected.ne is None)
        response = step["response"]
        if response is not None:
            protected = card.wrap_response(h(response["plain_data"]), int(response["sw"], 16))
            assert protected.hex() == response["wrapped_data"]


def test_kcv_vectors() -> None:
    vectors = load_json(VECTORS)["kcv_vectors"]
    assert len(vectors) == 3
    for vector in vectors:
        assert aes_kcv(h(vector["key"])).hex() == vector["kcv"], vector["key_role"]
    keys = StaticKeys(*(h(v["key"]) for v in vectors))
    assert tuple(k.hex() for k in keys.kcvs()) == tuple(v["kcv"] for v in vectors)


# --- S8 and S16 at level 33: Samsung OpenSCP-Java transcripts -----------------------------------
#
# Source (values only; Apache-2.0): https://github.com/Samsung/OpenSCP-Java, commit
# 6696c01834b7b234c9d3f93378b34872747e2dfc, src/test/java/com/samsung/openscp/:
#   testdata/InputTestData.java          static keys (AES-128/192/256) and the host challenges,
#   testdata/OutputTestData.java         the three GET STATUS plaintext responses,
#   testdata/SmartCardScp03Aes{128,192,256}S{8,16}ModeEmulation.java   the C-APDUs and R-APDUs,
#   Scp03Tests.java / TestUtils.java     KVN 30, level 33, GET STATUS 80 F2 {20,40,80} 00 02 4F00
#                                        sent as ISO case 3 (no Le).
# These are the only public S16 transcripts we know of. Their pseudo-random card challenges do not
# reproduce with any AID we tried (the emulated card's AID is not stated), so the card side is
# checked here with the recorded challenge injected. Five of the six recorded cards pad the 11-byte
# last response to 32 bytes (more than one block of ISO 9797-1 padding); see iso9797_m2_unpad.

SAMSUNG_KEYS = {
    128: (
        "1d72cd9283fd55162722c6beaa4dc187",
        "f4932ba02ffc3098d172790099d28382",
        "b4bdc610c3f6793708ff1132e2c5bf60",
    ),
    192: (
        "1d72cd9283fd55162722c6beaa4dc1877f4c0cd0ecc15e05",
        "f4932ba02ffc3098d172790099d2838236f2e61068d56f44",
        "b4bdc610c3f6793708ff1132e2c5bf60523aeac06b32f204",
    ),
    256: (
        "1d72cd9283fd55162722c6beaa4dc1877f4c0cd0ecc15e052aac39a99af9ad72",
        "f4932ba02ffc3098d172790099d2838236f2e61068d56f4401cc0374c25af8cb",
        "b4bdc610c3f6793708ff1132e2c5bf60523aeac06b32f204b851b6cc007c8d3c",
    ),
}
SAMSUNG_HOST_CHALLENGE = {8: "06f85b77251bf794", 16: "06f85b77251bf79406f85b77251bf794"}
SAMSUNG_GET_STATUS_PLAIN = {
    0x20: "08a00000015141434c010010a00000022020030101010000000000060100"
    "10a0000002202003010101000000000011010005a0000002480100",
    0x40: "0aa9a8a7a6a5a4a3a2a1a00f800aa0a1a2a3a4a5a6a7a8a9070009a00000015141434c00070010a000"
    "0002202003010301000000000011070007a00000024804000700",
    0x80: "08a0000001510000000f9e",
}
# (key bits, challenge bytes): INITIALIZE UPDATE C-APDU, its R-APDU, EXTERNAL AUTHENTICATE C-APDU,
# then (wrapped C-APDU, protected R-APDU) for GET STATUS P1 = 20, 40, 80.
SAMSUNG_TRANSCRIPTS: dict[tuple[int, int], tuple[str, str, str, tuple[tuple[str, str], ...]]] = {
    (128, 16): (
        "805030001006f85b77251bf79406f85b77251bf79400",
        "a1a012430585513120853003710617a2c34d50b562f7decfc3dbf58a649ef733b7486d813c92e4ca61e5102"
        "f9100082a9000",
        "84823300201c6a43582f842a90d81ca4e970754664d8c0c6c340e007c5c6ebcdf4f7c065be",
        (
            (
                "84f2200020eb30913c363a6c1309d13adc765d9df1c44f207c2941b898a290f627b05ae990",
                "05717c3ded78c6bb7aee55a68e66e0d7c90473c380a60755dd7b63ecf55fd0b4067612b43a0a05cda95"
                "e9122c91d8527a21681805c1a25aaa38994e15a6379df66ee234701c673c32daf5c54b11085c49000",
            ),
            (
                "84f2400020f1ec5cf268d357692cd0faf186a1e6c79f68b473c4672c0a08f0437b16314698",
                "d7b658f9308d59779672ce4e5d1b8e6bd2a5a90f745788daa817980bf84c2522b791382d5a095868c09"
                "6ac6a851a98a028cbba7ac67d5f834f7969fe199b0dbba12ef90e27ccf95c062d27badafc3b03cfb696"
                "4ccbe3fc04b54efcd3b446b4469000",
            ),
            (
                "84f2800020a9ddd67660ecc75765c431cd69ad53a79202f01e13b24c15f4cff4c9b335eee5",
                "5a866565d1d0f35427e010043f82e8abca25c79a3caa41547838978f779563ffdea329e3abd1cba719a"
                "6d9c13b7d45cc9000",
            ),
        ),
    ),
    (192, 16): (
        "805030001006f85b77251bf79406f85b77251bf79400",
        "a1a012430585513120853003710617a2c34d50b562f7decfc3dbf58a64a378671d41e7f6e3f5254ca9d"
        "4c481a400082a9000",
        "848233002099033b5bb5246c859b9748e497edae8d9ebb7bd196ce4e3ebfc92343d69478ab",
        (
            (
                "84f220002032319e399171daf20fd8e8ecd1ce462569b7d5645aad98e537593ef48816db4b",
                "b6ab2fdb15b2d1a895b8329736c5af47d4b6b6aecbb73e327a91d300d4bf0f36ad710f7ff5505481f69"
                "0efe3561e1c5335ef510b018d56d21d5f1ca9557ac9e225d04413baa39828273dbc4b00b0bf309000",
            ),
            (
                "84f2400020161d4b6c1e2d790d66ea1e890adc3f45d59e2416d6dc553e8738c2ada182e583",
                "3c24f511b4923f55de51925292beed9456359f54f01b3d0c6c30c5666030788fe6bd1345c802ae66e8c"
                "b06c93e64cfe74590d83e85e8b1e06a7a750a48e8554b1db948bfd041432e824bcdd24aacd87f65a986"
                "15076cad3418bd67bfc1b4fc4c9000",
            ),
            (
                "84f28000208bcc8139988a0f51441f6f8ff3c20a526cd783e30bec1d8cc9d7e3d43ae779a5",
                "b2332173a07f9ebe27edea0db5849b6cacc0f28a77da52ab9a1e151399abd07115ddb34c92c8da0ffe6"
                "79fd8d7df0f369000",
            ),
        ),
    ),
    (256, 16): (
        "805030001006f85b77251bf79406f85b77251bf79400",
        "a1a012430585513120853003710617a2c34d50b562f7decfc3dbf58a6499d2966cf09c9201fde8343e9"
        "3fb18b400082a9000",
        "848233002071d1a091c5d24af177b00e69b1a32b4e30a5168cf8c86b19730df915ef82d8a7",
        (
            (
                "84f2200020dd3036dc4c636717702732abba185633873a933310002b25e386cf10a4e6b130",
                "a5e7309dca3effa13d1aa03fe0d3e2ba8d04df15a6a26989150f512ed453f5dffb2a7e4ee4e2ffacefc"
                "0945435bcaf3a914a9f7bd66b4f82635b7757ae82b54262489b3b58224f99e846e2a8061b17329000",
            ),
            (
                "84f2400020ec2f4f2dda358bf87c9a946d129d7c12f132c6a63cdad60e80526c9a6487580c",
                "160229863b7636672f094a2c2e62f845d3a4a38c0fb9171af14fee433cf4c2fa10a6e4f1ec14e8792fe"
                "0a009720c290a64c2fd9183167bfff0ac4af516838de4e5a62b6ac4444ac81e5c73a6b7a57d6c55d268"
                "2b2f986c1f1fcd77ddaf69846c9000",
            ),
            (
                "84f28000207c873e7bdce82d67ec28783a3c3222c01e70d8c7a498ca3c7e348944f44a18b3",
                "90afb999d6499f47285b6319135f67f78d4ce73a3bd87f97de623488ba9dbc7549f27dff5b61e215a5c"
                "91f99d21682119000",
            ),
        ),
    ),
    (128, 8): (
        "805030000806f85b77251bf79400",
        "a1a012430585513120853003709ce033fa78e6b10ddc2dbe8974c8b0de00082a9000",
        "8482330010b08d6ce26b6cb3ccb411cf0296eb7b1d",
        (
            (
                "84f22000185230ba64388b4a40e0b4da5cc1df51c285e4020d99d5aed1",
                "bd3292bfb1a23c4478e37292ba1edf438770ce472fb7611fbdbd1c981a27fa4780a81a95d93c05f9c4c"
                "94839ded0363cfea57ce2ecfb572b26f3474daeebbabc202942381f9755f59000",
            ),
            (
                "84f24000181819d47b42bbe6b9449bbc2bd43a090dac1f2f0a52d9f34b",
                "bb82442bb5cc8c839620615d1f163d3ddbc9357d68ef4bad997cfbb79a24c224a89488c44b25c3b23d4"
                "89e4e58a309d438fdd6e453d0e07216541fb142b977a3a7d4c4048bbe2ba068f04a0a4a9c50bad232f8"
                "ca8ea1f40e9000",
            ),
            (
                "84f280001809f07c3df47956b1052951fa28211ba7babc05c321d9b3bf",
                "31eb08363026463bad10af29f24301f1d9b8532067f9313d97fda39bbe6b6099befd623e1f79fb5d9000",
            ),
        ),
    ),
    (192, 8): (
        "805030000806f85b77251bf79400",
        "a1a012430585513120853003709ce033fa78e6b10d6e7c64f962a822a400082a9000",
        "848233001063b6cefac0ec098333860788c65220ba",
        (
            (
                "84f2200018d9edcbcb7f69cb1ef0508e6ede933a6d80091e7d99cb3e51",
                "99077b167d43a4f313b59b63cc23efd3b5158bdef8f24d85e250570a4aab81869a92307350267f0fbc2278f"
                "a3d34d2fd5d2b4e8c0362c01d082c76a17b80aea4ba5fb9d7da3bb3689000",
            ),
            (
                "84f2400018cdc4b0480cf151c1132655133115a8ca1a89964f2554551c",
                "ab7a97b6c673df3d95378d06b7b42e25d7c3b22d6d1a42299ffed17f5973950ec68c77700fc019470674701"
                "78a1d06152ed648e95e8c3510b61cf0036dfd8c9f6fa167d32fdeb3f81a0e6b2bb35bcd4cd104692d131d77"
                "769000",
            ),
            (
                "84f280001896800333fa638a32dbccbf4c7e52fbd5da469a954e1d58f6",
                "e5e5761feff5c0c078adbc4e77b7290094c99183ac73cab99a7412d0194deffdd0895dcce662d9459000",
            ),
        ),
    ),
    (256, 8): (
        "805030000806f85b77251bf79400",
        "a1a012430585513120853003709ce033fa78e6b10d8afa7267cb63740e00082a9000",
        "848233001050e003735f92228269a094ffc07429fd",
        (
            (
                "84f2200018bd57d1382ae8f66f7eb5f5991b92d1399044157c7dfd2761",
                "47d81041004b7e9208e3bef1372e7cde8cd995aef207f138c80d45156f2d36f2b15bdc9c4d6fdb977434"
                "4495ccc83ae7ba0b39c734bf9cebd07204aa5a67df2d7e663d55fc4944c09000",
            ),
            (
                "84f240001845d2b475c3eff8bbb254d0b6a8e6ca97cf5265d907a76070",
                "59e8dcfdc22d436336552128f790e1b383d6942ed4025f30fe8d95541e634e238bfd963d88df822d8eb"
                "cc1272a9d56c7d1cbc306039647fc4977eff562c0b8c01314b1c8b2d168a581a98c65b676b3ee4032e9"
                "1a9c0858ec9000",
            ),
            (
                "84f28000187083ca3ada0f76cf7b3ffac60abe13599d521ee7b9224c49",
                "e58cb33a46f76909adddff0c2821f4f25f22b5553c534dc69000",
            ),
        ),
    ),
}
SAMSUNG_KVN = 0x30
SAMSUNG_LEVEL = 0x33


def _samsung_get_status(p1: int) -> bytes:
    return bytes((0x80, 0xF2, p1, 0x00, 0x02, 0x4F, 0x00))


@pytest.mark.parametrize(("bits", "n"), sorted(SAMSUNG_TRANSCRIPTS), ids=lambda v: str(v))
def test_samsung_host_transcript(bits: int, n: int) -> None:
    iu_command, iu_response, ea_command, exchanges = SAMSUNG_TRANSCRIPTS[(bits, n)]
    keys = StaticKeys(*(h(k) for k in SAMSUNG_KEYS[bits]))
    host = HostSession(keys, SAMSUNG_LEVEL, h(SAMSUNG_HOST_CHALLENGE[n]), s16=n == 16)
    assert host.initialize_update(SAMSUNG_KVN).hex() == iu_command
    assert host.external_authenticate(h(iu_response)).hex() == ea_command
    for p1, (wrapped, protected) in zip((0x20, 0x40, 0x80), exchanges, strict=True):
        assert host.wrap(_samsung_get_status(p1)).hex() == wrapped
        assert host.unwrap(h(protected)).hex() == SAMSUNG_GET_STATUS_PLAIN[p1] + "9000"


@pytest.mark.parametrize(("bits", "n"), sorted(SAMSUNG_TRANSCRIPTS), ids=lambda v: str(v))
def test_samsung_card_transcript(bits: int, n: int) -> None:
    """The card, given the recorded card challenge, answers as the recorded card did."""
    iu_command, iu_response, ea_command, exchanges = SAMSUNG_TRANSCRIPTS[(bits, n)]
    recorded = h(iu_response)[:-2]
    card_challenge = recorded[13 : 13 + n]
    keys = StaticKeys(*(h(k) for k in SAMSUNG_KEYS[bits]))
    card = CardChannel(
        {SAMSUNG_KVN: keys},
        recorded[:10],
        aid=h("a000000151000000"),
        sequence_counter=0,
        pseudo_random_challenge=False,
        s16=n == 16,
        random=lambda size: card_challenge[:size],
    )
    response = card.initialize_update(parse_command(h(iu_command)))
    # Same KDD, KVN, SCP id, challenge and cryptogram; "i" differs only in b5 (random challenge)
    # and the sequence counter is absent.
    assert response[:12] + response[13:] == recorded[:12] + recorded[13 : 13 + 2 * n]
    assert response[12] == recorded[12] & ~0x10
    card.external_authenticate(parse_command(h(ea_command)))
    assert card.level == SAMSUNG_LEVEL

    # A host in lockstep (it produces the recorded commands, see the test above) reads our answers.
    host = HostSession(keys, SAMSUNG_LEVEL, h(SAMSUNG_HOST_CHALLENGE[n]), s16=n == 16)
    host.initialize_update(SAMSUNG_KVN)
    host.external_authenticate(response)
    exact = 0
    for p1, (wrapped, protected) in zip((0x20, 0x40, 0x80), exchanges, strict=True):
        assert host.wrap(_samsung_get_status(p1)).hex() == wrapped
        assert card.unwrap_command(parse_command(h(wrapped))).encode() == _samsung_get_status(p1)
        plain = h(SAMSUNG_GET_STATUS_PLAIN[p1])
        ours = card.wrap_response(plain, 0x9000)
        assert host.unwrap(ours + b"\x90\x00") == plain + b"\x90\x00"
        if len(h(protected)) - 2 == len(iso9797_m2_pad(plain)) + n:
            assert ours.hex() == protected[:-4]  # byte for byte where the card padded minimally
            exact += 1
    assert exact >= 2


# --- Pseudo-random challenge with a stated AID: kaoh/globalplatform -----------------------------
#
# Source (values only; LGPL-3.0-or-later): https://github.com/kaoh/globalplatform, commit
# 175c6be0febfc0881d71a2d3de2aa844cbb64586, globalplatform/src/scp03Test.c, tests `mutual_auth` and
# `delete_application` (level 03, i = 70, invoking AID = the GP 2.3.1 ISD AID A000000151000000).
# Unlike the pySim set, the AID of the pseudo-random card challenge is stated by the source.

KAOH_KEYS = (
    "f995d0a069335c7df42e590317ffea6d",
    "58563362ec5a4541abcd32b34b1eae7d",
    "0a02a6d687406dcfa09dc70b3edb7e38",
)
KAOH_ISD_AID = "a000000151000000"
KAOH_TRANSCRIPTS = {
    "mutual_auth": (
        "80500000089bd6bf878fb8e99100",
        "000000000000000000003003703c80c2cc87eb3a35e4edba35e629c33600001e",
        "848203001023ebfedc579d22cdcdb6a25a5ff7891f",
        (
            "d83ee38c9954c8078987a5e9ee6ab13c",
            "6ff37716e0413065e8dfd08bf1e9ec5e",
            "0254c786e57aca8982670c1c1a05ff12",
        ),
        (),
    ),
    "delete_application": (
        "8050000008b2bde1a2dc66bd5600",
        "00000000000000000000300370c40932a6fefeaeb2e127185170f45fca000015",
        "848203001059d54d932423d29f6313c970875f8c2f",
        (
            "9b841bb63d1087484ff7f16802017243",
            "8117fe5aded74ac0daabe9fb81dbdb67",
            "4521d75e4d6f60dbfb8ab4ee254ef6f1",
        ),
        # DELETE of AID A00100015141434C: the plain command is our reading of the wrapped one.
        (
            (
                "80e400800a4f08a00100015141434c",
                "84e400801829f06aec3180b3efe91ff662310b945de0d5fe66ad67a5b6",
            ),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(KAOH_TRANSCRIPTS))
def test_kaoh_transcript_both_sides(name: str) -> None:
    iu_command, iu_response, ea_command, session_keys, exchanges = KAOH_TRANSCRIPTS[name]
    keys = StaticKeys(*(h(k) for k in KAOH_KEYS))
    recorded = h(iu_response)
    counter = int.from_bytes(recorded[-3:], "big")
    assert pseudo_random_card_challenge(keys.enc, counter, h(KAOH_ISD_AID)) == recorded[13:21]
    session = derive_session_keys(keys, h(iu_command)[5:13], recorded[13:21])
    assert (session.s_enc.hex(), session.s_mac.hex(), session.s_rmac.hex()) == session_keys

    host = HostSession(keys, 0x03, h(iu_command)[5:13])
    assert host.initialize_update().hex() == iu_command
    assert host.external_authenticate(recorded).hex() == ea_command

    card = CardChannel({0x30: keys}, bytes(10), aid=h(KAOH_ISD_AID), sequence_counter=counter - 1)
    assert card.initialize_update(parse_command(h(iu_command))) == recorded
    card.external_authenticate(parse_command(h(ea_command)))
    assert card.level == 0x03
    for plain, wrapped in exchanges:
        assert host.wrap(h(plain)).hex() == wrapped
        assert card.unwrap_command(parse_command(h(wrapped))).encode().hex() == plain
