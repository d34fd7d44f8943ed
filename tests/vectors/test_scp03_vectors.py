"""SCP03 against the public pySim transcripts (``shared/vectors/scp03``, see its PROVENANCE.md).

Both sides are checked byte for byte: the host must produce every command of each transcript, and
the card, given the same static keys, AID and sequence counter, must produce the recorded
INITIALIZE UPDATE response, accept every recorded wrapped command and give back the plain one,
and protect the recorded response exactly as the transcript shows.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.vectors import load_json

from fleetid.crypto.symmetric import aes_kcv, scp03_kdf
from fleetid.errors import VerificationError
from fleetid.formats.apdu import parse_command
from fleetid.se.scp03 import (
    CardChannel,
    HostSession,
    StaticKeys,
    derive_session_keys,
    pseudo_random_card_challenge,
)

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
    assert scp03_kdf(session.s_mac, 0x00, context, 64).hex() == fields["card_cryptogram"]


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
