"""The software HSM keeps one AES context per key: a derived key's leaves with it on release, all
of them on lock, and a released key is no longer usable through a context left behind."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from fleetid.crypto.symmetric import aes_cmac
from fleetid.errors import HsmError, HsmNotActivatedError
from fleetid.hsm.base import KeyKind
from fleetid.hsm.software import SoftwareHsm

KEK = os.urandom(32)
KDD = bytes.fromhex("4790D5010203040506A1")


def test_contexts_follow_the_keys() -> None:
    hsm = SoftwareHsm.initialise(None, KEK)
    transport = os.urandom(16)
    hsm.unwrap_aes_key("t-mac", aes_key_wrap_with_padding(KEK, transport), KeyKind.TRANSPORT)
    hsm.generate_aes_key("m", 128)
    assert hsm.aes_cmac("t-mac", b"x") == aes_cmac(transport, b"x")
    assert hsm.aes_cmac("t-mac", b"y") == aes_cmac(transport, b"y")  # the kept context, again
    keys = hsm.derive_scp03_keys("m", KDD)
    hsm.aes_cmac(keys.mac, b"data")
    labels = {key.label for key in keys.derived()}
    assert labels <= set(hsm._contexts)
    hsm.release(keys)
    assert not labels & set(hsm._contexts)
    with pytest.raises(HsmError):
        hsm.aes_cmac(keys.mac, b"data")
    hsm.lock()
    assert not hsm._contexts
    with pytest.raises(HsmNotActivatedError):
        hsm.aes_cmac("t-mac", b"x")
