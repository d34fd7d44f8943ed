"""No private key ever leaves the card: fuzz every command, scan every response and log line.

For each example a fresh card is made with SCP03 keys, an attestation key, user keys of both
curves and all policies, PIV keys in slots 9A, 9C and 9E (with the PIV PIN, PUK and
administration key counted as secrets too), and a FIDO applet with the line's model attestation
key, a PIN, and resident and non-resident credentials. Then a sequence of commands (every defined
CLA/INS/P1/P2 of docs/se-apdu.md plus random ones, with fuzzed data) is sent plain or inside an
SCP03 session (for PIV: with or without the PIN verified and the administration key proven).
Every response (raw, unwrapped, and followed through GET RESPONSE) and every log line is scanned
for every secret the card holds at that moment, read from the sealed flash with the chip: private
scalars in raw big-endian form and in hex, SCP03 static keys, and the chip's fuse.
"""

from __future__ import annotations

import contextlib
import logging

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.ctap2 import ClientPin, Ctap2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.package_seal import private_scalar, seal_package
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import FleetIdError
from fleetid.factory.personalisation import inject_fido_attestation
from fleetid.formats.attestation import KeyUsage
from fleetid.se.applet_management import (
    delete_command,
    install_for_install_command,
    install_for_load_command,
    sign_load_file,
)
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.ctap_device import ApduCtapDevice
from fleetid.se.keystore import Silicon
from fleetid.se.packages import IDENTITY_LOAD_FILE_AID, IDENTITY_V2
from fleetid.se.piv_client import PivClient
from fleetid.se.piv_wire import DEFAULT_MANAGEMENT_KEY, PIV_AID
from fleetid.se.scp03 import HostSession, StaticKeys
from fleetid.se.state import CardState
from fleetid.se.wire import (
    FIDO_AID,
    IDENTITY_AID,
    ISD_AID,
    BoundPackageCommand,
    Curve,
    PackageSecret,
    encode_package_plaintext,
)
from fleetid.sim.fido_card import FidoModelKey
from fleetid.sim.test_card import DemoManufacturer, ManufacturedCard, manufacture_test_card

KEYS = StaticKeys(b"\x5a" * 16, b"\xa5" * 16, b"\x3c" * 16)
FIDO_MODEL_KEY = FidoModelKey.issue(DemoManufacturer.create())
MAKE_CREDENTIAL_ARGS = (
    bytes(32),
    {"id": "example.com"},
    {"id": b"user", "name": "user"},
    [{"type": "public-key", "alg": -7}],
)
MAKE_CREDENTIAL = dict(zip(range(1, 5), MAKE_CREDENTIAL_ARGS, strict=True)) | {7: {"rk": True}}
GET_ASSERTION = {1: "example.com", 2: bytes(32)}
APPLET_SIGNER = SoftwareSigner(new_private_key())
HANDLES = (0x00, 0x01, 0x02, 0x03, 0x04, 0xF0, 0x7F)

# (CLA, INS, P1, P2) of every defined command (docs/se-apdu.md).
DEFINED = [
    (0x00, 0xA4, 0x04, 0x00),
    (0x00, 0xC0, 0x00, 0x00),
    (0x80, 0xCA, 0x9F, 0x7F),
    (0x80, 0xCA, 0x00, 0xE0),
    (0x80, 0xCA, 0xDF, 0x01),
    (0x80, 0xCA, 0xDF, 0x02),
    (0x80, 0xCA, 0xDF, 0x03),
    (0x80, 0xCA, 0xDF, 0x04),
    (0x80, 0xF2, 0x80, 0x02),
    (0x80, 0x50, 0x30, 0x00),
    (0x84, 0x82, 0x33, 0x00),
    (0x80, 0xD8, 0x00, 0x81),
    (0x80, 0xD8, 0x30, 0x81),
    (0x80, 0xE2, 0x88, 0x00),
    (0x80, 0xE2, 0x90, 0x00),
    (0x80, 0xF0, 0x80, 0x07),
    (0x80, 0x5C, 0x00, 0x00),
    # FIDO: NFCCTAP_MSG (plain and chained), NFCCTAP_GETRESPONSE, the line's STORE DATA
    (0x80, 0x10, 0x00, 0x00),
    (0x80, 0x10, 0x80, 0x00),
    (0x90, 0x10, 0x00, 0x00),
    (0x80, 0x11, 0x00, 0x00),
    (0x84, 0xE2, 0x88, 0x00),
    # FIDO: U2F register, authenticate (enforce, check-only, don't enforce), version
    (0x00, 0x01, 0x03, 0x00),
    (0x00, 0x02, 0x03, 0x00),
    (0x00, 0x02, 0x07, 0x00),
    (0x00, 0x02, 0x08, 0x00),
    (0x00, 0x03, 0x00, 0x00),
    # Card content management (GPCS §11.2, §11.4 to §11.6).
    (0x80, 0xF2, 0x40, 0x02),
    (0x80, 0xF2, 0x20, 0x02),
    (0x80, 0xF2, 0x10, 0x02),
    (0x80, 0xF2, 0x10, 0x03),
    (0x80, 0xE6, 0x02, 0x00),
    (0x80, 0xE6, 0x0C, 0x00),
    (0x80, 0xE6, 0x08, 0x00),
    (0x80, 0xE8, 0x00, 0x00),
    (0x80, 0xE8, 0x80, 0x00),
    (0x80, 0xE8, 0x80, 0x01),
    (0x80, 0xE4, 0x00, 0x00),
    (0x80, 0xE4, 0x00, 0x80),
] + [
    (0x80, ins, p1, h)
    for ins, p1 in (
        (0x46, 0x01),
        (0x46, 0x02),
        (0x48, 0x00),
        (0x4A, 0x00),
        (0x4C, 0x00),
        (0x4E, 0x00),
        (0x56, 0x00),
        (0x62, 0x01),  # DERIVE PSEUDONYM KEY: cocoon, explicit, implicit
        (0x62, 0x02),
        (0x62, 0x03),
        (0x6C, 0x00),  # LOAD BOUND PACKAGE
    )
    for h in HANDLES
]

# PIV (SP 800-73-4 Part 2 and the Yubico extensions): every INS, every slot and reference.
DEFINED += [
    (0x00, 0xCB, 0x3F, 0xFF),
    (0x00, 0xDB, 0x3F, 0xFF),
    (0x00, 0x20, 0x00, 0x80),
    (0x00, 0x20, 0xFF, 0x80),
    (0x00, 0x24, 0x00, 0x80),
    (0x00, 0x24, 0x00, 0x81),
    (0x00, 0x2C, 0x00, 0x80),
    (0x00, 0xFD, 0x00, 0x00),
    (0x00, 0xF8, 0x00, 0x00),
    (0x00, 0xFF, 0xFF, 0xFF),
]
DEFINED += [
    (0x00, ins, p1, ref)
    for ins, p1 in ((0x47, 0x00), (0x87, 0x11), (0x87, 0x14), (0x87, 0x0A), (0xF7, 0x00))
    for ref in (0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x80, 0x81)
]

byte = st.integers(0, 0xFF)
headers = st.one_of(
    st.sampled_from(DEFINED),
    st.tuples(st.sampled_from([0x00, 0x80, 0x84, 0x04, 0x90, 0x0C]), byte, byte, byte),
)
payloads = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [ISD_AID, IDENTITY_AID, FIDO_AID, bytes(32), bytes(48), b"\x01", b"\x04" + bytes(64)]
        # CTAP messages: GetInfo, GetNextAssertion, Reset, MakeCredential (resident),
        # GetAssertion (discoverable), ClientPIN getRetries / getKeyAgreement
        + [b"\x04", b"\x08", b"\x07"]
        + [b"\x01" + cbor.encode(MAKE_CREDENTIAL), b"\x02" + cbor.encode(GET_ASSERTION)]
        + [b"\x06" + cbor.encode({1: 2, 2: sub}) for sub in (1, 2)]
        # U2F: register (challenge, application), authenticate with a 61-byte key handle
        + [bytes(64), bytes(64) + b"\x3d" + bytes(61)]
        # DERIVE PSEUDONYM KEY bodies: k, i, j, flags, then none, c, or e and r
        + [bytes(range(16)) + bytes(8) + b"\x00" + b"\x07" * extra for extra in (0, 32, 64)]
        + [bytes(range(16)) + bytes(8) + b"\x01"]
        # LOAD BOUND PACKAGE bodies: well-formed fields that do not open
        # Card content management bodies: INSTALL [for load] / [for install] of identity 2, its
        # signed load file (short enough for one LOAD), DELETE of the ISD and of identity.
        + [
            install_for_load_command(IDENTITY_LOAD_FILE_AID, IDENTITY_V2.data_block_hash).data,
            install_for_install_command(IDENTITY_LOAD_FILE_AID, IDENTITY_AID, IDENTITY_AID).data,
            sign_load_file(IDENTITY_V2, APPLET_SIGNER),
            delete_command(ISD_AID).data,
            delete_command(IDENTITY_AID).data,
        ]
        + [
            BoundPackageCommand(
                context=bytes(16), point=b"\x04" + bytes(n), nonce=bytes(12), ciphertext=bytes(48)
            ).encode()
            for n in (64, 96)
        ]
        # PIV bodies: sign and ECDH templates, the administration key steps, GENERATE, tag lists
        + [
            bytes.fromhex("7C2482008120") + bytes(32),
            bytes.fromhex("7C3482008130") + bytes(48),
            bytes.fromhex("7C4582008541") + bytes.fromhex("04") + bytes(64),
            bytes.fromhex("7C028000"),
            bytes.fromhex("7C028100"),
            bytes.fromhex("7C148008") + bytes(8) + bytes.fromhex("8108") + bytes(8),
            bytes.fromhex("AC03800111"),
            bytes.fromhex("AC03800114"),
            bytes.fromhex("5C035FC105"),
            bytes.fromhex("5C017E"),
            bytes.fromhex("5C035FC1055300"),
            b"123456\xff\xff",
            b"123456\xff\xff12345678",
        ]
    ),
)
commands = st.tuples(headers, payloads, st.sampled_from([None, 0, 1, 16, 256]))


def _encode(header: tuple[int, int, int, int], data: bytes, le: int | None) -> bytes:
    raw = bytes(header)
    if data:
        raw += bytes((len(data),)) if len(data) < 256 else b"\x00" + len(data).to_bytes(2, "big")
        raw += data
    if le is not None:
        raw += bytes((le % 256,)) if len(data) < 256 else (le % 65536).to_bytes(2, "big")
    return raw


def _secrets(made: ManufacturedCard, silicon: Silicon) -> list[bytes]:
    state = CardState.from_bytes(made.card.flash.read(silicon))
    out = [silicon._Silicon__fuse]  # type: ignore[attr-defined]
    for ks in state.keysets.values():
        out += [ks.enc, ks.mac, ks.dek]
    for slot in state.keys.values():
        out.append(slot.private_value.to_bytes(slot.curve.coordinate_size, "big"))
    piv = state.piv
    out += [piv.pin.value, piv.puk.value, piv.management_key]
    for key in piv.keys.values():
        out.append(key.private_value.to_bytes(key.curve.coordinate_size, "big"))
    fido = state.fido
    assert fido.wrap_key is not None and fido.attestation_key is not None
    assert fido.pin_hash is not None
    out += [fido.wrap_key, fido.attestation_key.to_bytes(32, "big"), fido.pin_hash]
    out += [c.private_value.to_bytes(32, "big") for c in fido.credentials]
    return out


def _make() -> tuple[ManufacturedCard, Silicon]:
    silicon = Silicon.fabricate()
    made = manufacture_test_card(
        keys=KEYS,
        silicon=silicon,
        secure=False,
        applet_signing_key=APPLET_SIGNER.public_key(),
    )
    client = SecureElementClient(made.card)
    client.select_identity()
    client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=1)
    client.generate_key(ec.SECP384R1(), KeyUsage.SIGN | KeyUsage.KEY_AGREEMENT, handle=2)
    client.generate_key(ec.SECP256R1(), KeyUsage.KEY_AGREEMENT, handle=3)
    client.generate_key(ec.SECP384R1(), KeyUsage.SIGN, handle=4, require_session=True)
    piv = PivClient(made.card)
    piv.select()
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    for slot, curve in ((0x9A, Curve.P256), (0x9C, Curve.P384), (0x9E, Curve.P256)):
        piv.generate(slot, curve)
    inject_fido_attestation(
        client, KEYS, 0x30, attestation_key=FIDO_MODEL_KEY.key, chain=FIDO_MODEL_KEY.chain
    )
    ctap = Ctap2(ApduCtapDevice(made.card))
    ctap.make_credential(*MAKE_CREDENTIAL_ARGS, options={"rk": True})
    ctap.make_credential(*MAKE_CREDENTIAL_ARGS)
    ClientPin(ctap).set_pin("1234-pin")
    made.card.reset()
    return made, made.card._silicon


def _assert_clean(blob: bytes, secrets: list[bytes]) -> None:
    lowered = blob.lower()
    for s in secrets:
        assert s not in blob, "a secret appeared in a response"
        assert s.hex().encode() not in lowered, "a secret appeared in hex"


@settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    applet=st.sampled_from([ISD_AID, IDENTITY_AID, PIV_AID, FIDO_AID]),
    level=st.sampled_from([None, 0x01, 0x03, 0x13, 0x33]),
    sequence=st.lists(commands, min_size=1, max_size=8),
)
def test_no_response_or_log_line_contains_a_secret(
    caplog: pytest.LogCaptureFixture,
    applet: bytes,
    level: int | None,
    sequence: list[tuple[tuple[int, int, int, int], bytes, int | None]],
) -> None:
    caplog.clear()
    made, silicon = _make()
    card: SecureElement = made.card
    client = SecureElementClient(card)
    client.select(applet)
    host: HostSession | None = None
    if applet == PIV_AID:
        # PIV has no secure channel; the level picks its security status instead: the PIN
        # verified and the administration key proven, so that signing, ECDH and the
        # administrator's commands run, not only their refusals.
        if level is not None:
            piv = PivClient(card)
            piv.authenticate(DEFAULT_MANAGEMENT_KEY)
            piv.verify_pin("123456")
    elif level is not None:
        host = client.open_secure_channel(KEYS, level)
    with caplog.at_level(logging.DEBUG):
        for header, data, le in sequence:
            raw = _encode(header, data, le)
            if host is not None and host.is_open:
                with contextlib.suppress(FleetIdError):  # unwrappable (SM, malformed): as is
                    raw = host.wrap(raw)
            response = card.transmit(raw)
            assert response[-2:] != b"\x6f\x00", f"internal error on {raw.hex()}"
            received = [response]
            while len(response) >= 2 and response[-2] == 0x61:
                response = card.transmit(bytes((0x00, 0xC0, 0x00, 0x00, response[-1])))
                received.append(response)
            if host is not None and host.is_open:
                with contextlib.suppress(FleetIdError):
                    whole = b"".join(r[:-2] for r in received) + response[-2:]
                    received.append(host.unwrap(whole))
            secrets = _secrets(made, silicon)
            for r in received:
                _assert_clean(r, secrets)
    _assert_clean(caplog.text.encode(), _secrets(made, silicon))


def test_scanner_would_catch_a_leak() -> None:
    """Negative twin: the scan itself finds a scalar when one is there."""
    made, silicon = _make()
    secrets = _secrets(made, silicon)
    # fuse, one SCP03 key set, four keys + attestation key; PIV: PIN, PUK, administration key,
    # three keys; FIDO: wrap key, attestation key, PIN hash, one resident credential
    assert len(secrets) == 1 + 3 + 5 + 3 + 3 + 4
    with pytest.raises(AssertionError):
        _assert_clean(b"\x90\x00" + secrets[-1] + b"\x90\x00", secrets)
    with pytest.raises(AssertionError):
        _assert_clean(secrets[2].hex().upper().encode(), secrets)


def test_a_loaded_package_leaves_no_secret_in_responses_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """LOAD BOUND PACKAGE that opens and installs a key: neither the carried key, the one-time
    key nor anything else the card holds appears in the answer or a log line."""
    made, silicon = _make()
    client = SecureElementClient(made.card)
    client.select_identity()
    carried = new_private_key()
    secret = PackageSecret(curve=Curve.P256, policy=0x01, scalar=private_scalar(carried))
    sealed = seal_package(
        client.get_public_key(3).public_key,
        encode_package_plaintext(secret, b"public part"),
        b"T" * 16,
    )
    command = BoundPackageCommand(
        context=b"T" * 16,
        point=sealed.ephemeral_point,
        nonce=sealed.nonce,
        ciphertext=sealed.ciphertext,
    )
    before = _secrets(made, silicon)  # holds the one-time key (slot 3)
    with caplog.at_level(logging.DEBUG):
        handle, public = client.load_bound_package(3, command)
    after = _secrets(made, silicon)  # holds the installed key
    assert secret.scalar in after and public == b"public part" and handle != 0
    raw = bytes((handle,)) + public
    _assert_clean(raw, before + after)
    _assert_clean(caplog.text.encode(), before + after)
