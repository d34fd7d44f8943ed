"""LOAD BOUND PACKAGE (INS 6C): the card opens a package with a one-time key by handle,
installs the key it carries, deletes the one-time key; and every refusal's status word."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.package_seal import private_scalar, seal_package
from fleetid.errors import (
    ConditionsNotSatisfiedError,
    IncorrectDataError,
    IncorrectParametersError,
    ReferencedDataNotFoundError,
    SecureElementError,
)
from fleetid.formats.apdu import CommandApdu
from fleetid.formats.attestation import KeyUsage
from fleetid.se.client import SecureElementClient
from fleetid.se.wire import (
    INS_LOAD_BOUND_PACKAGE,
    BoundPackageCommand,
    Curve,
    PackageSecret,
    encode_package_plaintext,
)
from fleetid.sim.test_card import manufacture_test_card

CONTEXT = bytes(range(16))


@pytest.fixture
def client() -> SecureElementClient:
    made = manufacture_test_card()
    se = SecureElementClient(made.card)
    se.select_identity()
    return se


def _command(
    recipient: ec.EllipticCurvePublicKey,
    secret: PackageSecret | None = None,
    public: bytes = b"bundle",
    context: bytes = CONTEXT,
) -> BoundPackageCommand:
    sealed = seal_package(recipient, encode_package_plaintext(secret, public), context)
    return BoundPackageCommand(
        context=context,
        point=sealed.ephemeral_point,
        nonce=sealed.nonce,
        ciphertext=sealed.ciphertext,
    )


def _one_time(client: SecureElementClient, curve: ec.EllipticCurve | None = None) -> int:
    return client.generate_key(curve or ec.SECP256R1(), KeyUsage.KEY_AGREEMENT).handle


def _load(client: SecureElementClient, handle: int, secret: PackageSecret) -> tuple[int, bytes]:
    return client.load_bound_package(
        handle, _command(client.get_public_key(handle).public_key, secret)
    )


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_a_key_package_installs_the_key_and_spends_the_one_time_key(
    client: SecureElementClient, curve: ec.EllipticCurve
) -> None:
    handle = _one_time(client, curve)
    carried = new_private_key(curve)
    ref = Curve.P256 if isinstance(curve, ec.SECP256R1) else Curve.P384
    secret = PackageSecret(curve=ref, policy=int(KeyUsage.SIGN), scalar=private_scalar(carried))
    command = _command(client.get_public_key(handle).public_key, secret)
    installed, public = client.load_bound_package(handle, command)
    assert public == b"bundle"
    info = client.get_public_key(installed)
    assert info.public_key.public_numbers() == carried.public_key().public_numbers()
    assert (info.usage, info.generated_on_card) == (KeyUsage.SIGN, False)
    with pytest.raises(ReferencedDataNotFoundError):  # one-time: the same package opens once
        client.load_bound_package(handle, command)


def test_a_package_without_a_key_answers_handle_zero(client: SecureElementClient) -> None:
    handle = _one_time(client)
    before = client.list_keys()
    assert client.load_bound_package(
        handle, _command(client.get_public_key(handle).public_key)
    ) == (0, b"bundle")
    assert len(client.list_keys()) == len(before) - 1


def test_a_package_for_another_key_is_6a80_and_keeps_the_key(client: SecureElementClient) -> None:
    handle = _one_time(client)
    command = _command(new_private_key().public_key())
    with pytest.raises(IncorrectDataError) as refused:
        client.load_bound_package(handle, command)
    assert refused.value.sw == 0x6A80
    assert handle in [h for h, _, _ in client.list_keys()]  # a refusal changes nothing


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "context"])
def test_an_altered_package_is_6a80(client: SecureElementClient, field: str) -> None:
    handle = _one_time(client)
    command = _command(client.get_public_key(handle).public_key)
    value = getattr(command, field)
    altered = value[:-1] + bytes([value[-1] ^ 0x01])
    values = {
        "context": command.context,
        "point": command.point,
        "nonce": command.nonce,
        "ciphertext": command.ciphertext,
    }
    values[field] = altered
    with pytest.raises(IncorrectDataError):
        client.load_bound_package(handle, BoundPackageCommand(**values))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\x01\x00", b"\x04" + bytes(64)],
    ids=["empty", "one-field", "not-tlv"],
)
def test_malformed_data_is_6a80(client: SecureElementClient, data: bytes) -> None:
    handle = _one_time(client)
    raw = CommandApdu(0x80, INS_LOAD_BOUND_PACKAGE, 0x00, handle, data, 256)
    with pytest.raises(SecureElementError) as refused:
        client.send(raw)
    assert refused.value.sw == 0x6A80


def test_a_point_off_the_curve_is_6a80(client: SecureElementClient) -> None:
    handle = _one_time(client)
    command = _command(client.get_public_key(handle).public_key)
    off = BoundPackageCommand(
        context=command.context,
        point=b"\x04" + bytes(63) + b"\x01",
        nonce=command.nonce,
        ciphertext=command.ciphertext,
    )
    with pytest.raises(IncorrectDataError):
        client.load_bound_package(handle, off)


def test_a_signing_key_is_not_a_one_time_key_6985(client: SecureElementClient) -> None:
    signing = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN).handle
    with pytest.raises(ConditionsNotSatisfiedError):
        client.load_bound_package(signing, _command(client.get_public_key(signing).public_key))


def test_p1_and_handle_out_of_range_are_6a86(client: SecureElementClient) -> None:
    handle = _one_time(client)
    command = _command(client.get_public_key(handle).public_key).encode()
    for p1, p2 in ((0x01, handle), (0x00, 0x80)):
        with pytest.raises(IncorrectParametersError):
            client.send(CommandApdu(0x80, INS_LOAD_BOUND_PACKAGE, p1, p2, command, 256))


def test_no_key_in_the_slot_is_6a88(client: SecureElementClient) -> None:
    with pytest.raises(ReferencedDataNotFoundError):
        client.load_bound_package(0x55, _command(new_private_key().public_key()))


def test_a_carried_key_with_a_foreign_policy_is_6985(client: SecureElementClient) -> None:
    handle = _one_time(client)
    secret = PackageSecret(
        curve=Curve.P256, policy=int(KeyUsage.ATTEST), scalar=private_scalar(new_private_key())
    )
    with pytest.raises(ConditionsNotSatisfiedError):
        client.load_bound_package(
            handle, _command(client.get_public_key(handle).public_key, secret)
        )
    assert handle in [h for h, _, _ in client.list_keys()]


def test_a_carried_scalar_that_is_no_key_is_6a80(client: SecureElementClient) -> None:
    handle = _one_time(client)
    secret = PackageSecret(curve=Curve.P256, policy=int(KeyUsage.SIGN), scalar=bytes(32))
    with pytest.raises(IncorrectDataError):
        client.load_bound_package(
            handle, _command(client.get_public_key(handle).public_key, secret)
        )


def test_a_full_card_is_6a84(client: SecureElementClient) -> None:
    handle = _one_time(client)
    while len(client.list_keys()) < 0x7F + 1:  # every user slot and the attestation key
        client.generate_key(ec.SECP256R1(), KeyUsage.SIGN)
    secret = PackageSecret(
        curve=Curve.P256, policy=int(KeyUsage.SIGN), scalar=private_scalar(new_private_key())
    )
    with pytest.raises(SecureElementError) as refused:
        client.load_bound_package(
            handle, _command(client.get_public_key(handle).public_key, secret)
        )
    assert refused.value.sw == 0x6A84
