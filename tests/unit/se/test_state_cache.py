"""The card's encoding and key caches: same bytes as a full re-encode, dropped when they must be."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import ConditionsNotSatisfiedError, ReferencedDataNotFoundError
from fleetid.formats.attestation import KeyUsage
from fleetid.se.applets import identity
from fleetid.se.card import TamperEvent
from fleetid.se.client import SecureElementClient
from fleetid.se.state import BootState, CardLifeCycle, CardState, Cplc, Curve, KeySet, KeySlot
from fleetid.sim.test_card import manufacture_test_card


def _canonical(raw: bytes) -> bytes:
    # The reference: the whole document re-encoded by json, keys sorted, no spaces.
    return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()


def _state() -> CardState:
    return CardState(
        cplc=Cplc(ic_serial=bytes.fromhex("0A0B0C0D")),
        life_cycle=CardLifeCycle.INITIALIZED,
        keysets={0x30: KeySet(enc=bytes(16), mac=bytes(range(16)), dek=b"\x01" * 16)},
        keys={2: KeySlot(curve=Curve.P256, private_value=0xABC, usage=0x81)},
        attestation_chain=[b"\x30\x03leaf", b"\x30\x01ca"],
        trust_anchors=[b"anchor"],
        key_certificates={10: b"ten", 2: b"two"},
    )


def test_encoding_equals_a_full_reencode_through_every_change() -> None:
    s = _state()
    steps = [
        lambda: None,
        lambda: s.attestation_chain.append(b"more"),  # in place: the cache must notice
        lambda: s.attestation_chain.__setitem__(0, b"\x30\x03LEAF"),
        lambda: s.trust_anchors.clear(),
        lambda: s.key_certificates.__setitem__(1, b"one"),
        lambda: s.key_certificates.pop(10),
        lambda: setattr(s, "cplc", Cplc(ic_serial=bytes.fromhex("01020304"))),
        lambda: setattr(s, "attestation_chain", []),
        # Boot state is cached too (mutable, changed in place); keys and key sets never are.
        lambda: setattr(s.boot, "security_counter", s.boot.security_counter + 1),
        lambda: setattr(s.boot, "image_version", 'v"2" \u00e9\\'),
        lambda: setattr(s.boot, "measurement", bytes(range(32))),
        lambda: setattr(s, "boot", BootState(verification_key=b"spki")),
        lambda: s.keysets.__setitem__(
            0x05, KeySet(enc=b"e", mac=b"m", dek=b"d", sequence_counter=9)
        ),
        lambda: s.keysets.__setitem__(
            0x30, KeySet(enc=b"E", mac=b"M", dek=b"D", sequence_counter=1)
        ),
        lambda: s.keys.__setitem__(
            0x10, KeySlot(curve=Curve.P384, private_value=0xF00D, usage=2, generated_on_card=False)
        ),
        lambda: s.keys.__setitem__(0xF0, KeySlot(curve=Curve.P256, private_value=1, usage=4)),
        lambda: s.zeroise(),
    ]
    seen = set()
    for step in steps:
        step()
        raw = s.to_bytes()
        assert raw == _canonical(raw)
        again = CardState.from_bytes(raw)
        assert again == s
        assert again.to_bytes() == raw
        seen.add(raw)
    assert len(seen) == len(steps)  # every change reached the encoding


def test_stale_section_would_be_caught() -> None:
    # Negative: the reference differs from an encoding that missed a change.
    s = _state()
    before = s.to_bytes()
    s.trust_anchors.append(b"new anchor")
    after = s.to_bytes()
    assert after != before
    assert CardState.from_bytes(after).trust_anchors == [b"anchor", b"new anchor"]


def test_zeroise_drops_the_encoding_cache() -> None:
    s = _state()
    s.to_bytes()
    assert s._json
    s.zeroise()
    assert not s._json
    assert b"0x" not in s.to_bytes() and "abc" not in json.loads(s.to_bytes())["keys"]


def test_repr_carries_no_key_or_cache() -> None:
    s = _state()
    s.to_bytes()
    assert "abc" not in repr(s).lower().replace("abcdef", "")  # no scalar, no cached JSON
    assert "_json" not in repr(s)


def _identity(card: object) -> identity.IdentityApplet:
    return card._applet_for(identity.IDENTITY_AID)  # type: ignore[attr-defined,no-any-return]


def test_generated_key_is_used_without_a_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    made = manufacture_test_card()
    client = SecureElementClient(made.card)
    client.select_identity()
    client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=1)

    def no_rebuild(*_: object) -> ec.EllipticCurvePrivateKey:
        raise AssertionError("the private key object was rebuilt")

    monkeypatch.setattr(identity.ec, "derive_private_key", no_rebuild)
    client.get_public_key(1)
    client.sign(1, bytes(32))
    client.attest(1, b"challenge")  # the attestation key too


def test_key_cache_dropped_on_delete_and_tamper_and_not_kept_across_reload() -> None:
    made = manufacture_test_card()
    client = SecureElementClient(made.card)
    client.select_identity()
    client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=1)
    client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=2)
    applet = _identity(made.card)
    assert 1 in applet._cache
    client.delete_key(1)
    assert 1 not in applet._cache
    with pytest.raises(ReferencedDataNotFoundError):
        client.sign(1, bytes(32))
    assert "EllipticCurvePrivateKey" not in repr(applet)
    made.card.tamper(TamperEvent.GLITCH)
    assert not applet._cache
    # Tamper re-writes flash: the cache then holds only what the zeroised state still has.
    cache = made.card._state._json  # type: ignore[attr-defined]
    assert cache["certificates"] == ((), "{}")
    assert all("keys" not in section for section in cache)
    with pytest.raises((ConditionsNotSatisfiedError, ReferencedDataNotFoundError)):
        client.sign(2, bytes(32))
