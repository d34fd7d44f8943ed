"""The FIDO2 applet driven by python-fido2 (``Ctap2``, ``ClientPin``, ``Fido2Client``,
``Fido2Server``): the CTAP side of every exchange is the library's, only the APDU framing of
``ApduCtapDevice`` is ours (the PC/SC test uses the library's own ``CtapPcscDevice``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fido2 import cbor
from fido2.attestation import InvalidSignature, PackedAttestation, verify_x509_chain
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import (
    AuthenticatorData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
)

from fleetid.authority.attestation.fido import verify_attestation
from fleetid.authority.fido_assertion import verify_assertion
from fleetid.errors import AssertionCounterError, AttestationSignatureError, FidoAssertionError
from fleetid.se.card import SecureElement, TamperEvent
from fleetid.se.ctap_device import ApduCtapDevice
from fleetid.se.state import CardState, FidoState
from fleetid.sim.fido_card import TEST_FIDO_MODEL, FidoCard, FidoModelKey, manufacture_fido_card
from fleetid.sim.test_card import DemoManufacturer

ERR = CtapError.ERR
RP = {"id": "example.com", "name": "Example"}
OTHER_RP = {"id": "other.example", "name": "Other"}
ES256 = [{"type": "public-key", "alg": -7}]
PIN = "4711-pin"


@pytest.fixture(scope="module")
def model_key() -> FidoModelKey:
    return FidoModelKey.issue(DemoManufacturer.create())


@dataclass
class Presence:
    """The touch sensor: answers as told and remembers who asked."""

    allow: bool = True
    asked: int = 0

    def __call__(self, rp_id: str) -> bool:
        self.asked += 1
        return self.allow


@dataclass
class Bench:
    made: FidoCard
    presence: Presence
    device: ApduCtapDevice
    ctap: Ctap2

    @property
    def card(self) -> SecureElement:
        return self.made.card

    def state(self) -> CardState:
        return CardState.from_bytes(self.card.flash.read(self.card._silicon))

    def power_cycle(self) -> None:
        self.card.reset()
        self.device = ApduCtapDevice(self.card)
        self.ctap = Ctap2(self.device)


@pytest.fixture
def bench(model_key: FidoModelKey) -> Iterator[Bench]:
    presence = Presence()
    made = manufacture_fido_card(model_key=model_key, user_presence=presence)
    device = ApduCtapDevice(made.card)
    yield Bench(made=made, presence=presence, device=device, ctap=Ctap2(device))


class PinEntry(UserInteraction):
    def __init__(self, pin: str | None) -> None:
        self.pin = pin

    def request_pin(self, permissions: Any, rp_id: str | None) -> str | None:
        return self.pin


def client(bench: Bench, pin: str | None = None) -> Fido2Client:
    return Fido2Client(
        bench.device, DefaultClientDataCollector("https://example.com"), PinEntry(pin)
    )


SERVER = Fido2Server(PublicKeyCredentialRpEntity(**RP), attestation="direct")
USER = PublicKeyCredentialUserEntity(id=b"user-1", name="alice", display_name="Alice")


def register(
    bench: Bench,
    *,
    resident: bool,
    uv: str = "discouraged",
    pin: str | None = None,
    user: PublicKeyCredentialUserEntity = USER,
) -> tuple[Any, Any]:
    options, state = SERVER.register_begin(
        user,
        resident_key_requirement="required" if resident else "discouraged",
        user_verification=uv,  # type: ignore[arg-type]
    )
    response = client(bench, pin).make_credential(options.public_key)
    return response, SERVER.register_complete(state, response)


def cdh(tag: bytes = b"challenge") -> bytes:
    return hashlib.sha256(tag).digest()


def make(bench: Bench, rp: dict[str, str] = RP, **kwargs: Any) -> Any:
    return bench.ctap.make_credential(cdh(), rp, {"id": b"u", "name": "u"}, ES256, **kwargs)


# --- GetInfo, registration, attestation ------------------------------------------------------


def test_get_info_names_the_model_and_protocol_two(bench: Bench) -> None:
    info = bench.ctap.info
    assert "FIDO_2_1" in info.versions
    assert bytes(info.aaguid) == TEST_FIDO_MODEL.aaguid.bytes
    assert info.pin_uv_protocols == [2]
    assert info.options["clientPin"] is False
    assert bench.device.version_string == b"U2F_V2"  # CTAP1 beside CTAP2 (§11.3.3)
    assert info.versions[0] == "U2F_V2"


def test_registration_attestation_verifies_with_python_fido2_and_fleetid(bench: Bench) -> None:
    response, auth = register(bench, resident=False)
    attestation = response.response.attestation_object
    client_data_hash = hashlib.sha256(bytes(response.response.client_data)).digest()
    # python-fido2's own packed verification, then its X.509 path check up to the TEST root.
    result = PackedAttestation().verify(
        attestation.att_stmt, attestation.auth_data, client_data_hash
    )
    root = bench.made.root.public_bytes(serialization.Encoding.DER)
    assert len(result.trust_path) == 2
    verify_x509_chain([*result.trust_path, root])
    # fleetid's verifier: format, model, the leaf naming the AAGUID, signature.
    verified = verify_attestation(bytes(attestation), client_data_hash)
    assert verified.fmt == "packed"
    assert verified.aaguid == TEST_FIDO_MODEL.aaguid
    assert verified.trust_path[0] == bench.made.model_key.chain[0]
    assert verified.credential_id == auth.credential_data.credential_id


def test_a_tampered_attestation_is_refused_by_both_verifiers(bench: Bench) -> None:
    response, _ = register(bench, resident=False)
    attestation = response.response.attestation_object
    other_hash = cdh(b"another client data")
    with pytest.raises(InvalidSignature):
        PackedAttestation().verify(attestation.att_stmt, attestation.auth_data, other_hash)
    with pytest.raises(AttestationSignatureError):
        verify_attestation(bytes(attestation), other_hash)


def test_authenticate_non_resident_then_counter_rules_on_the_verifier(bench: Bench) -> None:
    _, auth = register(bench, resident=False)
    credential = auth.credential_data
    options, state = SERVER.authenticate_begin([credential], user_verification="discouraged")
    selection = client(bench).get_assertion(options.public_key)
    assertion = selection.get_response(0)
    SERVER.authenticate_complete(state, [credential], assertion)  # python-fido2 verifies
    data = assertion.response
    client_data_hash = hashlib.sha256(bytes(data.client_data)).digest()
    auth_data = bytes(data.authenticator_data)
    count = verify_assertion(
        credential_public_key=credential.public_key,
        rp_id=RP["id"],
        auth_data=auth_data,
        client_data_hash=client_data_hash,
        signature=data.signature,
        stored_sign_count=auth.counter,
    )
    assert count > auth.counter
    # The same assertion again: its counter is not above the one now held.
    with pytest.raises(AssertionCounterError):
        verify_assertion(
            credential_public_key=credential.public_key,
            rp_id=RP["id"],
            auth_data=auth_data,
            client_data_hash=client_data_hash,
            signature=data.signature,
            stored_sign_count=count,
        )
    # Another RP, a forged signature, a required UV the assertion lacks.
    for change in (
        {"rp_id": OTHER_RP["id"]},
        {"client_data_hash": cdh(b"forged")},
        {"require_user_verification": True},
    ):
        kwargs: dict[str, Any] = {
            "credential_public_key": credential.public_key,
            "rp_id": RP["id"],
            "auth_data": auth_data,
            "client_data_hash": client_data_hash,
            "signature": data.signature,
            "stored_sign_count": auth.counter,
        } | change
        with pytest.raises(FidoAssertionError):
            verify_assertion(**kwargs)


def test_signature_counter_only_goes_up_and_survives_power_loss(bench: Bench) -> None:
    made = make(bench)
    descriptor = {"type": "public-key", "id": made.auth_data.credential_data.credential_id}
    counts = [made.auth_data.counter]
    for _ in range(3):
        counts.append(bench.ctap.get_assertion(RP["id"], cdh(), [descriptor]).auth_data.counter)
    reopened = SecureElement(bench.card._silicon, bench.card.flash)
    again = Ctap2(ApduCtapDevice(reopened)).get_assertion(RP["id"], cdh(), [descriptor])
    counts.append(again.auth_data.counter)
    assert counts == sorted(set(counts)), counts


# --- resident keys and GetNextAssertion ------------------------------------------------------


def test_resident_credentials_are_found_most_recent_first(bench: Bench) -> None:
    for n in range(3):
        bench.ctap.make_credential(
            cdh(), RP, {"id": bytes([n]) * 8, "name": f"user{n}"}, ES256, options={"rk": True}
        )
    make(bench, OTHER_RP, options={"rk": True})
    first = bench.ctap.get_assertion(RP["id"], cdh())
    assert first.number_of_credentials == 3
    users = [first.user["id"]] + [bench.ctap.get_next_assertion().user["id"] for _ in range(2)]
    assert users == [b"\x02" * 8, b"\x01" * 8, b"\x00" * 8]
    with pytest.raises(CtapError) as caught:
        bench.ctap.get_next_assertion()
    assert caught.value.code == ERR.NOT_ALLOWED
    assert len(bench.state().fido.credentials) == 4


def test_same_user_registers_again_replaces_the_resident_credential(bench: Bench) -> None:
    register(bench, resident=True)
    register(bench, resident=True)
    assert len(bench.state().fido.credentials) == 1


def test_get_next_assertion_only_right_after_get_assertion(bench: Bench) -> None:
    for n in range(2):
        bench.ctap.make_credential(
            cdh(), RP, {"id": bytes([n]) * 4, "name": "x"}, ES256, options={"rk": True}
        )
    bench.ctap.get_assertion(RP["id"], cdh())
    bench.ctap.get_info()
    with pytest.raises(CtapError) as caught:
        bench.ctap.get_next_assertion()
    assert caught.value.code == ERR.NOT_ALLOWED


# --- credentials of another RP or card -------------------------------------------------------


def test_a_credential_of_another_rp_is_not_found(bench: Bench) -> None:
    made = make(bench, OTHER_RP)
    descriptor = {"type": "public-key", "id": made.auth_data.credential_data.credential_id}
    with pytest.raises(CtapError) as caught:
        bench.ctap.get_assertion(RP["id"], cdh(), [descriptor])
    assert caught.value.code == ERR.NO_CREDENTIALS
    # ... and is not "excluded" for this RP either: the registration goes through.
    assert make(bench, RP, exclude_list=[descriptor]).fmt == "packed"


def test_a_credential_of_another_card_is_not_found(bench: Bench, model_key: FidoModelKey) -> None:
    other = manufacture_fido_card(model_key=model_key)
    made = Ctap2(ApduCtapDevice(other.card)).make_credential(
        cdh(), RP, {"id": b"u", "name": "u"}, ES256
    )
    descriptor = {"type": "public-key", "id": made.auth_data.credential_data.credential_id}
    with pytest.raises(CtapError) as caught:
        bench.ctap.get_assertion(RP["id"], cdh(), [descriptor])
    assert caught.value.code == ERR.NO_CREDENTIALS


def test_exclude_list_refuses_a_second_credential_for_the_rp(bench: Bench) -> None:
    made = make(bench)
    descriptor = {"type": "public-key", "id": made.auth_data.credential_data.credential_id}
    with pytest.raises(CtapError) as caught:
        make(bench, exclude_list=[descriptor])
    assert caught.value.code == ERR.CREDENTIAL_EXCLUDED


def test_credential_id_holds_no_clear_key_and_reset_voids_it(bench: Bench) -> None:
    made = make(bench, options={"rk": True})
    credential_id = made.auth_data.credential_data.credential_id
    d = bench.state().fido.credentials[0].private_value.to_bytes(32, "big")
    assert d not in credential_id and d.hex() not in credential_id.hex()
    bench.ctap.reset()
    with pytest.raises(CtapError) as caught:
        bench.ctap.get_assertion(RP["id"], cdh(), [{"type": "public-key", "id": credential_id}])
    assert caught.value.code == ERR.NO_CREDENTIALS
    assert bench.state().fido.credentials == []
    assert bench.state().fido.attestation_key is not None  # the model's key stays


# --- user presence ---------------------------------------------------------------------------


def test_user_presence_denied_refuses_and_stores_nothing(bench: Bench) -> None:
    made = make(bench)
    descriptor = {"type": "public-key", "id": made.auth_data.credential_data.credential_id}
    count = bench.state().fido.sign_count
    bench.presence.allow = False
    for call in (
        lambda: make(bench, options={"rk": True}),
        lambda: bench.ctap.get_assertion(RP["id"], cdh(), [descriptor]),
        lambda: bench.ctap.reset(),
    ):
        with pytest.raises(CtapError) as caught:
            call()
        assert caught.value.code == ERR.OPERATION_DENIED
    state = bench.state().fido
    assert state.credentials == [] and state.sign_count == count
    assert state.wrap_key is not None  # reset did not happen


def test_silent_assertion_has_no_up_flag_and_asks_nobody(bench: Bench) -> None:
    made = make(bench)
    descriptor = {"type": "public-key", "id": made.auth_data.credential_data.credential_id}
    asked = bench.presence.asked
    response = bench.ctap.get_assertion(RP["id"], cdh(), [descriptor], options={"up": False})
    assert not response.auth_data.flags & AuthenticatorData.FLAG.UP
    assert bench.presence.asked == asked


# --- ClientPIN protocol 2 --------------------------------------------------------------------


def test_pin_set_then_registration_needs_it_and_carries_uv(bench: Bench) -> None:
    ClientPin(bench.ctap).set_pin(PIN)
    bench.power_cycle()
    assert bench.ctap.info.options["clientPin"] is True
    with pytest.raises(CtapError) as caught:
        make(bench)
    assert caught.value.code == ERR.PUAT_REQUIRED
    response, auth = register(bench, resident=True, uv="required", pin=PIN)
    assert response.response.attestation_object.auth_data.flags & AuthenticatorData.FLAG.UV
    options, state = SERVER.authenticate_begin(user_verification="required")
    assertion = client(bench, PIN).get_assertion(options.public_key).get_response(0)
    SERVER.authenticate_complete(state, [auth.credential_data], assertion)
    with pytest.raises(ClientError):  # a wrong PIN from the user
        register(bench, resident=True, uv="required", pin="wrong-pin")


def test_set_pin_twice_and_short_pin_are_refused(bench: Bench) -> None:
    pin = ClientPin(bench.ctap)
    key_agreement, shared = pin._get_shared_secret()
    new_pin_enc = pin.protocol.encrypt(shared, b"123".ljust(64, b"\x00"))  # python-fido2
    with pytest.raises(CtapError) as caught:  # itself refuses to send a PIN this short
        bench.ctap.client_pin(
            2,
            ClientPin.CMD.SET_PIN,
            key_agreement=key_agreement,
            new_pin_enc=new_pin_enc,
            pin_uv_param=pin.protocol.authenticate(shared, new_pin_enc),
        )
    assert caught.value.code == ERR.PIN_POLICY_VIOLATION
    ClientPin(bench.ctap).set_pin(PIN)
    with pytest.raises(CtapError) as caught:
        ClientPin(bench.ctap).set_pin("another")
    assert caught.value.code == ERR.NOT_ALLOWED


def test_change_pin(bench: Bench) -> None:
    pin = ClientPin(bench.ctap)
    pin.set_pin(PIN)
    pin.change_pin(PIN, "new-pin-2")
    assert pin.get_pin_token("new-pin-2", ClientPin.PERMISSION.GET_ASSERTION)
    with pytest.raises(CtapError) as caught:
        pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION)
    assert caught.value.code == ERR.PIN_INVALID


def test_wrong_pin_counts_down_to_blocking(bench: Bench) -> None:
    ClientPin(bench.ctap).set_pin(PIN)
    seen: list[int] = []
    retries: list[int] = []
    while True:
        pin = ClientPin(bench.ctap)
        try:
            pin.get_pin_token("not-the-pin", ClientPin.PERMISSION.GET_ASSERTION)
        except CtapError as exc:
            seen.append(exc.code)
        # Read from flash: the counter is persistent (a power loss does not restore it).
        retries.append(bench.state().fido.pin_retries)
        if seen[-1] == ERR.PIN_AUTH_BLOCKED:
            bench.power_cycle()  # three in a row need a power cycle
        if seen[-1] == ERR.PIN_BLOCKED:
            break
        assert len(seen) < 20
    assert retries == list(range(7, -1, -1))
    assert seen == [ERR.PIN_INVALID, ERR.PIN_INVALID, ERR.PIN_AUTH_BLOCKED] * 2 + [
        ERR.PIN_INVALID,
        ERR.PIN_BLOCKED,
    ]
    # Blocked for good: the right PIN no longer helps, not even after a power cycle.
    bench.power_cycle()
    with pytest.raises(CtapError) as caught:
        ClientPin(bench.ctap).get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION)
    assert caught.value.code == ERR.PIN_BLOCKED
    assert ClientPin(bench.ctap).get_pin_retries()[0] == 0


def test_pin_auth_blocked_until_power_cycle_and_right_pin_restores(bench: Bench) -> None:
    ClientPin(bench.ctap).set_pin(PIN)
    for _ in range(3):
        with pytest.raises(CtapError):
            ClientPin(bench.ctap).get_pin_token("bad-pin", ClientPin.PERMISSION.GET_ASSERTION)
    with pytest.raises(CtapError) as caught:
        ClientPin(bench.ctap).get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION)
    assert caught.value.code == ERR.PIN_AUTH_BLOCKED
    bench.power_cycle()
    assert ClientPin(bench.ctap).get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION)
    assert bench.state().fido.pin_retries == 8


def test_wrong_pin_uv_auth_param_and_permissions(bench: Bench) -> None:
    pin = ClientPin(bench.ctap)
    pin.set_pin(PIN)
    protocol = pin.protocol
    token = pin.get_pin_token(PIN, ClientPin.PERMISSION.MAKE_CREDENTIAL, RP["id"])
    good = protocol.authenticate(token, cdh())
    cases = [
        (protocol.authenticate(token, cdh(b"other")), RP),  # over another clientDataHash
        (protocol.authenticate(b"\x00" * 32, cdh()), RP),  # under another key
        (good, OTHER_RP),  # the token is bound to RP
    ]
    for param, rp in cases:
        with pytest.raises(CtapError) as caught:
            make(bench, rp, pin_uv_param=param, pin_uv_protocol=2)
        assert caught.value.code == ERR.PIN_AUTH_INVALID
    with pytest.raises(CtapError) as caught:
        make(bench, pin_uv_param=good, pin_uv_protocol=1)
    assert caught.value.code == ERR.INVALID_PARAMETER
    assert make(bench, pin_uv_param=good, pin_uv_protocol=2).auth_data.flags & 0x04
    # A getAssertion-only token does not make credentials.
    ga_token = pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION)
    with pytest.raises(CtapError) as caught:
        make(bench, pin_uv_param=protocol.authenticate(ga_token, cdh()), pin_uv_protocol=2)
    assert caught.value.code == ERR.PIN_AUTH_INVALID
    # Permissions the card does not grant.
    with pytest.raises(CtapError) as caught:
        pin.get_pin_token(PIN, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    assert caught.value.code == ERR.UNAUTHORIZED_PERMISSION


def test_wrong_pin_uv_auth_param_on_set_pin(bench: Bench) -> None:
    pin = ClientPin(bench.ctap)
    key_agreement, shared = pin._get_shared_secret()
    padded = PIN.encode().ljust(64, b"\x00")
    new_pin_enc = pin.protocol.encrypt(shared, padded)
    with pytest.raises(CtapError) as caught:
        bench.ctap.client_pin(
            2,
            ClientPin.CMD.SET_PIN,
            key_agreement=key_agreement,
            new_pin_enc=new_pin_enc,
            pin_uv_param=pin.protocol.authenticate(shared, new_pin_enc + b"x"),
        )
    assert caught.value.code == ERR.PIN_AUTH_INVALID
    assert bench.state().fido.pin_hash is None


# --- malformed input -------------------------------------------------------------------------


def ctap_raw(bench: Bench, message: bytes) -> bytes:
    if message:
        header = b"\x80\x10\x00\x00\x00" + len(message).to_bytes(2, "big")
        response = bench.card.transmit(header + message + b"\x00\x00")
    else:  # case 2: no data field
        response = bench.card.transmit(b"\x80\x10\x00\x00\x00")
    assert response[-2:] == b"\x90\x00"
    return response[:-2]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"", ERR.INVALID_LENGTH),
        (b"\x01\xa1", ERR.INVALID_CBOR),  # truncated map
        (b"\x01\xff\xff", ERR.INVALID_CBOR),
        (b"\x01" + cbor.encode({1: 1}) + b"\x00", ERR.INVALID_CBOR),  # trailing byte
        (b"\x01\xa2\x02\x01\x01\x01", ERR.INVALID_CBOR),  # keys out of canonical order
        (b"\x01" + cbor.encode([1, 2]), ERR.INVALID_CBOR),  # not a map
        (b"\x01" + cbor.encode({"a": 1}), ERR.INVALID_CBOR),  # text keys
        (b"\x01" + cbor.encode({1: "not bytes"}), ERR.CBOR_UNEXPECTED_TYPE),
        (b"\x01" + cbor.encode({1: b"short"}), ERR.INVALID_LENGTH),
        (b"\x01" + cbor.encode({1: bytes(32)}), ERR.MISSING_PARAMETER),
        (
            b"\x01"
            + cbor.encode(
                {1: bytes(32), 2: RP, 3: {"id": b"u"}, 4: [{"type": "public-key", "alg": -257}]}
            ),
            ERR.UNSUPPORTED_ALGORITHM,
        ),
        (b"\x02" + cbor.encode({1: "example.com", 2: bytes(32)}), ERR.NO_CREDENTIALS),
        (
            b"\x02" + cbor.encode({1: "example.com", 2: bytes(32), 5: {"uv": True}}),
            ERR.INVALID_OPTION,
        ),  # no built-in user verification
        (
            b"\x02" + cbor.encode({1: "example.com", 2: bytes(32), 5: {"rk": True}}),
            ERR.UNSUPPORTED_OPTION,
        ),  # rk is not a GetAssertion option
        (
            b"\x02" + cbor.encode({1: "example.com", 2: bytes(32), 5: {"up": 1}}),
            ERR.CBOR_UNEXPECTED_TYPE,
        ),
        (b"\x06" + cbor.encode({1: 1, 2: 2}), ERR.INVALID_PARAMETER),  # PIN protocol one
        (b"\x06" + cbor.encode({1: 2, 2: 0x42}), ERR.INVALID_SUBCOMMAND),
        (b"\x08\x00", ERR.INVALID_LENGTH),
        (b"\x08", ERR.NOT_ALLOWED),
        (b"\x42", ERR.INVALID_COMMAND),
        (b"\x42\xff", ERR.INVALID_COMMAND),  # an unknown command before its parameters
    ],
)
def test_malformed_ctap_messages_get_their_status_byte(
    bench: Bench, message: bytes, code: int
) -> None:
    assert ctap_raw(bench, message) == bytes([code])


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        ("80100100020400", 0x6A86),  # P1 neither 00 nor 80
        ("00100000010400", 0x6E00),  # CTAP is class 80 (proprietary)
        ("80110000", 0x6985),  # NFCCTAP_GETRESPONSE with nothing in progress
        ("80FF0000", 0x6E00),  # neither CTAP2 (class 80) nor U2F (class 00)
        ("00FF0000", 0x6D00),
        ("84E2880003FD0100", 0x6985),  # STORE DATA without a secure channel session
    ],
)
def test_framing_faults_get_iso_status_words(bench: Bench, command: str, sw: int) -> None:
    bench.card.transmit(bytes.fromhex("00A4040008A0000006472F0001"))
    response = bench.card.transmit(bytes.fromhex(command))
    assert int.from_bytes(response[-2:], "big") == sw


def test_tamper_zeroises_every_fido_secret(bench: Bench) -> None:
    make(bench, options={"rk": True})
    ClientPin(bench.ctap).set_pin(PIN)
    bench.card.tamper(TamperEvent.GLITCH)
    assert bench.state().fido == FidoState()
    assert bench.card.transmit(bytes.fromhex("00A4040008A0000006472F0001"))[-2:] == b"\x6a\x82"


def test_resident_store_full_refuses_a_new_user_but_replaces_an_old_one(bench: Bench) -> None:
    for n in range(50):
        bench.ctap.make_credential(
            cdh(), RP, {"id": n.to_bytes(2, "big"), "name": "x"}, ES256, options={"rk": True}
        )
    with pytest.raises(CtapError) as caught:
        bench.ctap.make_credential(
            cdh(), RP, {"id": b"new user", "name": "x"}, ES256, options={"rk": True}
        )
    assert caught.value.code == ERR.KEY_STORE_FULL
    bench.ctap.make_credential(
        cdh(), RP, {"id": b"\x00\x07", "name": "x"}, ES256, options={"rk": True}
    )
    assert len(bench.state().fido.credentials) == 50
    assert make(bench).fmt == "packed"  # a non-resident credential takes no room
