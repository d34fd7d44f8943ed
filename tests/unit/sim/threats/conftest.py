"""A fleet to attack, shared per module, and the test doubles that remove one control each."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetid.se.card import SecureElement
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.sim.threats.target_fleet import TargetFleet


class UnsealedFlash(SealedFlash):
    """A flash with the sealing removed: the card state is written in plaintext, and a
    plaintext state opens on any chip (the fuse no longer binds it)."""

    def write(
        self, silicon: Silicon, plaintext: bytes, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        assert self.path is not None
        self.path.write_bytes(plaintext)

    def read(self, silicon: Silicon) -> bytes:
        data = self.dump()
        return silicon.unseal(data) if data.startswith(b"FIDFLASH") else data


def open_unsealed_chip(fuse: Path, flash: Path) -> SecureElement:
    return SecureElement(Silicon.load(fuse), UnsealedFlash(flash))


@pytest.fixture(scope="module")
def target() -> Iterator[TargetFleet]:
    with TargetFleet() as fleet:
        yield fleet


@pytest.fixture
def unsealed_target() -> Iterator[TargetFleet]:
    with TargetFleet(units=4, open_chip=open_unsealed_chip) as fleet:
        yield fleet
