"""Card state model, GP life cycle rules, sealed flash and the attestation extension codecs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.mutations import KINDS, mutate, outcome
from tests.optional import require_tool

from fleetid.errors import EncodingError, FlashSealError, StoreError
from fleetid.formats import attestation
from fleetid.formats.attestation import (
    OID_SHA256,
    Fwid,
    KeyOrigin,
    KeyProperties,
    KeyUsage,
    TcbInfo,
    decode_key_properties,
    decode_tcb_info,
    encode_key_properties,
    encode_tcb_info,
)
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.state import (
    BootState,
    CardLifeCycle,
    CardState,
    Cplc,
    Curve,
    KeySet,
    KeySlot,
    allowed_transition,
)

L = CardLifeCycle


def _state() -> CardState:
    return CardState(
        cplc=Cplc(ic_serial=bytes.fromhex("0A0B0C0D")),
        life_cycle=L.INITIALIZED,
        keysets={0x30: KeySet(enc=b"\x11" * 16, mac=b"\x22" * 16, dek=b"\x33" * 16)},
        keys={1: KeySlot(curve=Curve.P256, private_value=0xC0FFEE << 200, usage=1)},
        attestation_chain=[b"\x30\x03\x02\x01\x01"],
        boot=BootState(verification_key=b"\x30\x00", security_counter=7, measurement=bytes(32)),
    )


def test_state_round_trip() -> None:
    s = _state()
    again = CardState.from_bytes(s.to_bytes())
    assert again == s
    assert again.chip_serial.endswith(bytes.fromhex("0A0B0C0D"))


@pytest.mark.parametrize("raw", [b"", b"{}", b'{"format": 2}', b"not json", b'{"format":1}'])
def test_state_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(StoreError):
        CardState.from_bytes(raw)


def test_cplc_layout_and_kdd() -> None:
    c = Cplc(ic_serial=bytes.fromhex("01020304"), ic_batch=0x0506)
    raw = c.encode()
    assert len(raw) == 42
    assert raw[12:16] == bytes.fromhex("01020304")  # GP Table H-6: IC serial number at offset 12
    assert raw[16:18] == bytes.fromhex("0506")
    assert Cplc.decode(raw) == c
    assert c.kdd == bytes.fromhex("F1D05E01050601020304")
    with pytest.raises(StoreError):
        Cplc.decode(raw[:-1])


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (L.OP_READY, L.INITIALIZED),
        (L.INITIALIZED, L.SECURED),
        (L.SECURED, L.CARD_LOCKED),
        (L.CARD_LOCKED, L.SECURED),
        (L.OP_READY, L.TERMINATED),
        (L.CARD_LOCKED, L.TERMINATED),
    ],
)
def test_allowed_transitions(current: CardLifeCycle, new: CardLifeCycle) -> None:
    assert allowed_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (L.SECURED, L.INITIALIZED),
        (L.INITIALIZED, L.OP_READY),
        (L.OP_READY, L.SECURED),
        (L.TERMINATED, L.OP_READY),
        (L.TERMINATED, L.SECURED),
        (L.SECURED, L.SECURED),
        (L.INITIALIZED, L.CARD_LOCKED),
    ],
)
def test_forbidden_transitions(current: CardLifeCycle, new: CardLifeCycle) -> None:
    assert not allowed_transition(current, new)


def test_zeroise_forgets_secrets() -> None:
    s = _state()
    s.zeroise()
    assert not s.keysets
    assert not s.keys
    assert s.chip_serial.endswith(bytes.fromhex("0A0B0C0D"))


def test_sealed_flash_round_trip_through_files(tmp_path: Path) -> None:
    silicon = Silicon.fabricate()
    silicon.save(tmp_path / "chip.fuse")
    flash = SealedFlash(tmp_path / "card.flash")
    state = _state()
    flash.write(silicon, state.to_bytes())
    # A "power cycle": a new process reads the chip file and the flash file.
    again = CardState.from_bytes(
        SealedFlash(tmp_path / "card.flash").read(Silicon.load(tmp_path / "chip.fuse"))
    )
    assert again == state


def test_flash_dump_is_ciphertext_only(tmp_path: Path) -> None:
    silicon = Silicon.fabricate()
    flash = SealedFlash(tmp_path / "card.flash")
    state = _state()
    flash.write(silicon, state.to_bytes())
    dump = flash.dump()
    d = state.keys[1].private_value
    for needle in (
        d.to_bytes(32, "big"),
        format(d, "x").encode(),
        b"\x11" * 16,
        b"11" * 16,
        b"keysets",
        bytes.fromhex("0A0B0C0D"),
    ):
        assert needle not in dump
    assert repr(silicon) == "Silicon(<fused>)"


def test_flash_does_not_open_on_another_chip() -> None:
    flash = SealedFlash()
    flash.write(Silicon.fabricate(), b"state")
    with pytest.raises(FlashSealError):
        flash.read(Silicon.fabricate())


@pytest.mark.parametrize("position", [0, 8, 9, 20, -1])
def test_flash_tampering_is_detected(position: int) -> None:
    silicon = Silicon.fabricate()
    flash = SealedFlash()
    flash.write(silicon, b"state")
    blob = bytearray(flash.dump())
    blob[position] ^= 0x01
    with pytest.raises(FlashSealError):
        silicon.unseal(bytes(blob))


def test_each_write_uses_a_fresh_nonce() -> None:
    silicon = Silicon.fabricate()
    assert silicon.seal(b"same") != silicon.seal(b"same")


def test_empty_flash_and_bad_fuse() -> None:
    with pytest.raises(StoreError):
        SealedFlash().dump()
    with pytest.raises(StoreError):
        Silicon(b"short")


# -- attestation extension codecs ------------------------------------------------------------


def test_key_properties_round_trip() -> None:
    p = KeyProperties(
        chip_serial=b"\x01\x02\x03\x04",
        key_handle=1,
        curve_oid="1.2.840.10045.3.1.7",
        usage=KeyUsage.SIGN | KeyUsage.KEY_AGREEMENT,
        challenge=b"nonce",
    )
    der = encode_key_properties(p)
    assert decode_key_properties(der) == p
    # usage is a named BIT STRING: bits 0,1 set -> 03 02 06 C0 (X.690 §11.2.2, trailing 0s off).
    assert bytes.fromhex("030206C0") in der


@settings(max_examples=150, deadline=None)
@given(
    chip_serial=st.binary(min_size=1, max_size=300),
    key_handle=st.integers(0, 255),
    curve_oid=st.sampled_from(["1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.36.3.3.2.8.1.1.7"]),
    usage=st.sampled_from([KeyUsage(v) for v in range(8)]),
    challenge=st.binary(max_size=300),
    imported=st.booleans(),
    exportable=st.booleans(),
    session=st.booleans(),
)
def test_key_properties_encoder_is_asn1tools(
    chip_serial: bytes,
    key_handle: int,
    curve_oid: str,
    usage: KeyUsage,
    challenge: bytes,
    imported: bool,
    exportable: bool,
    session: bool,
) -> None:
    """The cached template with the chip serial and the challenge placed in it is asn1tools'
    whole encoding, whatever their length forms (short, 81 xx, 82 xx xx) and the other fields."""
    p = KeyProperties(
        chip_serial=chip_serial,
        key_handle=key_handle,
        curve_oid=curve_oid,
        usage=usage,
        challenge=challenge,
        origin=KeyOrigin.IMPORTED if imported else KeyOrigin.GENERATED_ON_CARD,
        exportable=exportable,
        requires_secure_channel=session,
    )
    assert encode_key_properties(p) == attestation._asn1tools_key_properties(p)
    assert decode_key_properties(encode_key_properties(p)) == p


_TCB_INFO = TcbInfo(
    vendor="fleetid",
    model="se",
    version="1.2.3",
    svn=7,
    fwids=(Fwid(hash_alg=OID_SHA256, digest=bytes(32)),),
)


def test_tcb_info_matches_tcg_structure() -> None:
    der = encode_tcb_info(_TCB_INFO)
    assert decode_tcb_info(der) == _TCB_INFO
    # Implicit context tags [0] vendor, [1] model, [2] version, [3] svn, [6] fwids (constructed).
    assert der.startswith(bytes.fromhex("3048 8007") + b"fleetid")
    assert bytes.fromhex("830107 A62F 302D 0609 608648016503040201 0420") in der


def test_openssl_decodes_the_tcb_info_structure() -> None:
    """OpenSSL, as an independent decoder, sees the same structure."""
    out = subprocess.run(
        [require_tool("openssl"), "asn1parse", "-inform", "DER"],
        input=encode_tcb_info(_TCB_INFO),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "cont [ 6 ]" in out and ":sha256" in out


def test_key_properties_with_an_unnamed_usage_bit_are_refused() -> None:
    """A usage bit KeyUsageFlags does not name would be dropped on decoding: refused instead."""
    values = {
        "version": 1,
        "chipSerial": b"\x01\x02",
        "keyHandle": 1,
        "curve": "1.2.840.10045.3.1.7",
        "origin": "generatedOnCard",
        "exportable": False,
        "usage": (b"\x84", 6),  # sign (0) and the unnamed bit 5
        "requiresSecureChannel": False,
        "challenge": b"c",
    }
    der = bytes(attestation._spec().encode("FleetIdKeyProperties", values))
    with pytest.raises(EncodingError, match="not in DER form"):
        decode_key_properties(der)
    values["usage"] = (b"\x80", 1)  # sign alone: the same structure decodes
    ok = bytes(attestation._spec().encode("FleetIdKeyProperties", values))
    assert decode_key_properties(ok).usage == KeyUsage.SIGN


def _asn1tools_decoding(der: bytes) -> KeyProperties | str:
    """The reading decode_key_properties replaced: asn1tools' whole decoding, then the same
    round trip. The oracle for the one that decodes the shared components once."""
    try:
        v = attestation._spec().decode("FleetIdKeyProperties", der)
        props = KeyProperties(
            version=v["version"],
            chip_serial=bytes(v["chipSerial"]),
            key_handle=v["keyHandle"],
            curve_oid=v["curve"],
            origin=v["origin"],
            exportable=v["exportable"],
            usage=attestation._bits_to_usage(v["usage"]),
            requires_secure_channel=v["requiresSecureChannel"],
            challenge=bytes(v["challenge"]),
        )
    except Exception:  # any failure of the oracle is a refusal
        return "refused"
    return props if encode_key_properties(props) == der else "refused"


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_key_properties_decoding_agrees_with_asn1tools_on_mutations(data: st.DataObject) -> None:
    props = KeyProperties(
        chip_serial=data.draw(st.binary(max_size=140)),
        key_handle=data.draw(st.integers(0, 255)),
        curve_oid=data.draw(st.sampled_from(["1.2.840.10045.3.1.7", "1.3.132.0.34"])),
        usage=data.draw(st.sampled_from([KeyUsage(v) for v in range(8)])),
        challenge=data.draw(st.binary(max_size=140)),
        exportable=data.draw(st.booleans()),
    )
    mutated = mutate(data, encode_key_properties(props), data.draw(st.sampled_from(KINDS)))
    assert outcome(decode_key_properties, mutated) == _asn1tools_decoding(mutated)


@pytest.mark.parametrize("der", ["", "3000", "3000FF", "0400", "3003020102"])
def test_key_properties_refuse_garbage(der: str) -> None:
    with pytest.raises(EncodingError):
        decode_key_properties(bytes.fromhex(der))


@pytest.mark.parametrize("der", ["", "3100", "3000FF", "30048001FF", "300483020001"])
def test_tcb_info_refuses_garbage(der: str) -> None:
    # "300483020001" is svn = 1 in a non-minimal INTEGER (BER, not DER): refused by re-encoding.
    with pytest.raises(EncodingError):
        decode_tcb_info(bytes.fromhex(der))
