"""Sealed flash at card level: reload after a crash, ciphertext-only dumps, tamper response."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import ConditionsNotSatisfiedError, FlashSealError, ReferencedDataNotFoundError
from fleetid.formats.attestation import KeyUsage
from fleetid.se.card import SecureElement, TamperEvent
from fleetid.se.client import SecureElementClient
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import CardLifeCycle, CardState
from fleetid.sim.test_card import manufacture_test_card

KEYS = StaticKeys(b"\x41" * 16, b"\x42" * 16, b"\x43" * 16)


def _files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "chip.fuse", tmp_path / "card.flash"


def _state(chip: Path, flash: Path) -> CardState:
    """What a lab with the decapped chip would read: only for checking the card from outside."""
    return CardState.from_bytes(SealedFlash(flash).read(Silicon.load(chip)))


def test_card_resumes_from_flash_and_fuse(tmp_path: Path) -> None:
    chip, flash = _files(tmp_path)
    made = manufacture_test_card(keys=KEYS, silicon_path=chip, flash_path=flash, secure=False)
    client = SecureElementClient(made.card)
    client.select_identity()
    info = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=9)
    del made, client  # the line crashed; a new process picks the card up
    client = SecureElementClient(SecureElement.open(chip, flash))
    client.select_identity()
    assert client.get_public_key(9).public_key == info.public_key
    digest = hashlib.sha256(b"after restart").digest()
    sig = client.sign(9, digest)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    info.public_key.verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    # The personalisation that was done before the crash is still there.
    assert len(client.attestation_chain()) == 2
    client.select_isd()
    assert client.life_cycle() is CardLifeCycle.OP_READY


def test_flash_alone_is_ciphertext_only(tmp_path: Path) -> None:
    chip, flash = _files(tmp_path)
    made = manufacture_test_card(keys=KEYS, silicon_path=chip, flash_path=flash)
    client = SecureElementClient(made.card)
    client.select_identity()
    client.generate_key(ec.SECP256R1(), KeyUsage.SIGN)
    client.generate_key(ec.SECP384R1(), KeyUsage.KEY_AGREEMENT)
    dump = flash.read_bytes()
    state = _state(chip, flash)
    assert len(state.keys) == 3
    needles = [KEYS.enc, KEYS.mac, KEYS.dek, state.chip_serial]
    for slot in state.keys.values():
        d = slot.private_value
        needles += [d.to_bytes(slot.curve.coordinate_size, "big"), format(d, "x").encode()]
    for needle in needles:
        assert needle not in dump
    assert b"BEGIN" not in dump and b"fleetid" not in dump


def test_flash_on_another_chip_does_not_open(tmp_path: Path) -> None:
    chip, flash = _files(tmp_path)
    manufacture_test_card(keys=KEYS, silicon_path=chip, flash_path=flash)
    with pytest.raises(FlashSealError):
        SecureElement(Silicon.fabricate(), SealedFlash(flash))


@pytest.mark.parametrize("event", list(TamperEvent))
def test_tamper_zeroises_and_terminates(tmp_path: Path, event: TamperEvent) -> None:
    chip, flash = _files(tmp_path)
    made = manufacture_test_card(keys=KEYS, silicon_path=chip, flash_path=flash)
    client = SecureElementClient(made.card)
    client.select_identity()
    client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=1)
    made.card.tamper(event)
    assert made.card.life_cycle is CardLifeCycle.TERMINATED
    with pytest.raises(ReferencedDataNotFoundError):
        client.select_identity()
    with pytest.raises(ReferencedDataNotFoundError):
        client.select_isd()
    with pytest.raises(ConditionsNotSatisfiedError):
        client.sign(1, bytes(32))
    with pytest.raises(ConditionsNotSatisfiedError):
        client.cplc()
    # The zeroised state is what flash holds now, and a power cycle does not bring keys back.
    state = _state(chip, flash)
    assert state.life_cycle is CardLifeCycle.TERMINATED
    assert not state.keys and not state.keysets
    again = SecureElement.open(chip, flash)
    assert again.transmit(bytes.fromhex("00A4040008A000000151000000")) == bytes.fromhex("6A82")
    assert again.transmit(bytes.fromhex("80480001200" + "0" * 63)) == bytes.fromhex("6985")


def test_tamper_is_not_reachable_by_apdu(tmp_path: Path) -> None:
    # Every INS, with and without data, on both applets: none terminates the card.
    made = manufacture_test_card(keys=KEYS)
    card = made.card
    for aid in ("A000000151000000", "F0464C45455449440101"):
        card.transmit(bytes.fromhex("00A40400") + bytes((len(aid) // 2,)) + bytes.fromhex(aid))
        for ins in range(256):
            for cla in (0x00, 0x80):
                card.transmit(bytes((cla, ins, 0x00, 0x00)))
                card.transmit(bytes((cla, ins, 0x00, 0x00, 0x01, 0xFF)))
    assert card.life_cycle is CardLifeCycle.SECURED


@pytest.mark.parametrize("sync", [True, False])
def test_flash_write_forces_the_disk_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: bool
) -> None:
    """Both kinds replace the file whole (no torn state for a reader or a killed writer); only
    ``sync`` forces each write to the disk before the rename."""
    forced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (forced.append(fd), real_fsync(fd))[1])
    renamed: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(
        os, "replace", lambda src, dst: (renamed.append(Path(dst).name), real_replace(src, dst))[1]
    )
    _chip, path = _files(tmp_path)
    silicon = Silicon.fabricate()
    flash = SealedFlash(path, sync=sync)
    flash.write(silicon, b"first state")
    flash.write(silicon, b"second state")
    assert SealedFlash(path).read(silicon) == b"second state"
    assert renamed == ["card.flash", "card.flash"]
    assert len(forced) == (2 if sync else 0)
    assert not path.with_name("card.flash.tmp").exists()
