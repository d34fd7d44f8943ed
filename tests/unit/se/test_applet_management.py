"""Card content management: INSTALL / LOAD / DELETE / GET STATUS, DAP, upgrades with migration."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import (
    ConditionsNotSatisfiedError,
    IncorrectDataError,
    IncorrectParametersError,
    SecurityStatusError,
)
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.formats.attestation import KeyUsage
from fleetid.se.applet_management import (
    AppletManagement,
    StatusScope,
    delete_command,
    get_status_command,
    install_for_install_command,
    install_for_load_command,
    load_commands,
    parse_status_entries,
    sign_load_file,
)
from fleetid.se.applets.base import Applet, CommandContext, Reply, refuse
from fleetid.se.applets.releases import register
from fleetid.se.card import SecureElement, TamperEvent
from fleetid.se.client import SecureElementClient
from fleetid.se.keystore import Silicon
from fleetid.se.packages import (
    BOOT_V1,
    IDENTITY_LOAD_FILE_AID,
    IDENTITY_V1,
    IDENTITY_V2,
    AppletPackage,
    declare,
    parse_load_file,
)
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import CardLifeCycle, CardState
from fleetid.se.wire import IDENTITY_AID, ISD_AID, PersonalisationObject
from fleetid.sim.test_card import ManufacturedCard, manufacture_test_card

KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
APPLET_KEY = new_private_key()
FLEET_SIGNER = SoftwareSigner(APPLET_KEY)

# --- a test applet with persistent state of its own, in three versions ------------------------

COUNTER_AID = bytes.fromhex("F0746573740C0101")
COUNTER_LF = bytes.fromhex("F0746573740C01")


class CounterV1(Applet):
    """INS 10 counts up; INS 12 reads the count. Keeps ``{"count": n}``."""

    aid = COUNTER_AID

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        data = ctx.applet_data
        if data is None:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "no application data")
        if apdu.ins == 0x10:
            data["count"] = int(data.get("count", 0)) + 1  # type: ignore[call-overload]
            ctx.persist()
            return Reply()
        if apdu.ins == 0x12:
            return Reply(data=int(data.get("count", 0)).to_bytes(2, "big"))  # type: ignore[call-overload]
        raise refuse(SW.INS_NOT_SUPPORTED, "INS")


class CounterV2(Applet):
    """Keeps ``{"counter": {"value": n}}``; migrates version 1's ``count``."""

    aid = COUNTER_AID

    @classmethod
    def migrate_state(cls, previous: dict[str, object], from_version: int) -> dict[str, object]:
        return {"counter": {"value": previous.get("count", 0)}, "from": from_version}

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        assert ctx.applet_data is not None
        counter = ctx.applet_data.setdefault("counter", {"value": 0})
        assert isinstance(counter, dict)
        if apdu.ins == 0x10:
            counter["value"] += 1
            ctx.persist()
            return Reply()
        if apdu.ins == 0x12:
            return Reply(data=int(counter["value"]).to_bytes(2, "big") + b"\x02")
        raise refuse(SW.INS_NOT_SUPPORTED, "INS")


def _counter(version: int, cls: type[Applet]) -> AppletPackage:
    package = declare(
        AppletPackage(
            name="test-counter",
            version=version,
            load_file_aid=COUNTER_LF,
            module_aid=COUNTER_AID,
            implementation=f"tests:{cls.__name__}",
        )
    )
    register(package, cls)
    return package


COUNTER_V1 = _counter(1, CounterV1)
COUNTER_V2 = _counter(2, CounterV2)
COUNTER_V3 = _counter(3, CounterV2)


@pytest.fixture
def made(tmp_path: Path) -> ManufacturedCard:
    silicon = Silicon.fabricate()
    silicon.save(tmp_path / "silicon")
    return manufacture_test_card(
        keys=KEYS,
        silicon=silicon,
        flash_path=tmp_path / "flash",
        applet_signing_key=APPLET_KEY.public_key(),
    )


def _isd(card: SecureElement, *, level: int = 0x33) -> SecureElementClient:
    client = SecureElementClient(card)
    client.select_isd()
    client.open_secure_channel(KEYS, level, key_version=0x30)
    return client


def _manager(card: SecureElement) -> AppletManagement:
    return AppletManagement(_isd(card))


def _versions(card: SecureElement) -> dict[str, int | None]:
    return {
        e.aid.hex().upper(): e.version
        for e in _manager(card).get_status(StatusScope.LOAD_FILES_AND_MODULES)
    }


# --- published bytes ---------------------------------------------------------------------------


def test_install_for_load_bytes_match_published_gpshell_trace() -> None:
    # A GPShell log line (INSTALL [for load] of load file A00000030800001000 into the ISD, no
    # hash, load parameters EF04C60268F8), GPCS Table 11-44 field by field.
    apdu = install_for_load_command(
        bytes.fromhex("A00000030800001000"), b"", parameters=bytes.fromhex("EF04C60268F8")
    )
    trace = bytes.fromhex("80E602001C09A0000003080000100008A0000001510000000006EF04C60268F80000")
    # GPShell sends it as case 4 (a trailing Le 00); fleetid as case 3, the same header and data.
    assert apdu.encode() == trace[:-1]


def test_install_commands_match_published_vectors() -> None:
    # nexum-apdu's GlobalPlatform INSTALL tests ("StatusWallet" package and applet).
    package = b"StatusWallet"
    applet = b"StatusWalletApp"
    assert install_for_load_command(package, b"").encode() == bytes.fromhex(
        "80E60200190C53746174757357616C6C657408A000000151000000000000"
    )
    command = install_for_install_command(
        package, applet, applet, privileges=b"\x01", parameters=bytes.fromhex("03AABBCC")
    )
    assert (command.p1, command.p2) == (0x0C, 0x00)
    assert command.data == bytes.fromhex(
        "0C53746174757357616C6C65740F53746174757357616C6C65744170700F53746174757357616C6C6574"
        "417070010106C90403AABBCC00"
    )


def test_load_delete_and_get_status_headers_follow_gpcs() -> None:
    blocks = load_commands(bytes(0x300), block_size=0xEF)
    assert [(c.p1, c.p2) for c in blocks] == [(0x00, 0), (0x00, 1), (0x00, 2), (0x80, 3)]
    assert blocks[0].encode()[:5] == bytes.fromhex("80E80000EF")  # as the GPShell log's LOAD
    assert delete_command(bytes.fromhex("A000000003000000")).encode() == bytes.fromhex(
        "80E400000A4F08A000000003000000"
    )
    assert delete_command(IDENTITY_AID, related=True).p2 == 0x80
    assert get_status_command(StatusScope.APPLICATIONS).encode() == bytes.fromhex(
        "80F24002024F0000"
    )
    assert get_status_command(StatusScope.LOAD_FILES, more=True).encode()[:4] == bytes.fromhex(
        "80F22003"
    )


def test_get_status_entry_parses_gpcs_table_11_36_layout() -> None:
    # An application entry laid out by GPCS Table 11-36 by hand: 4F, 9F70 07, C5, C4, CC.
    raw = bytes.fromhex(
        "E3254F07A00000000300009F700107C503000000C407A0000000030000CC08A000000151000000"
    )
    (entry,) = parse_status_entries(raw)
    assert entry.aid == bytes.fromhex("A0000000030000")
    assert (entry.life_cycle, entry.privileges) == (0x07, b"\0\0\0")
    assert entry.load_file_aid == bytes.fromhex("A0000000030000")


# --- GET STATUS on the card --------------------------------------------------------------------


def test_get_status_lists_isd_applications_and_load_files(made: ManufacturedCard) -> None:
    manager = _manager(made.card)
    (isd,) = manager.get_status(StatusScope.ISD)
    assert (isd.aid, isd.life_cycle, isd.privileges) == (ISD_AID, 0x0F, bytes.fromhex("9EFE80"))
    apps = {e.aid: e for e in manager.get_status(StatusScope.APPLICATIONS)}
    assert apps[IDENTITY_AID].life_cycle == 0x07
    assert apps[IDENTITY_AID].load_file_aid == IDENTITY_LOAD_FILE_AID
    files = {e.aid: e for e in manager.get_status(StatusScope.LOAD_FILES_AND_MODULES)}
    assert files[IDENTITY_LOAD_FILE_AID].version == 1
    assert files[IDENTITY_LOAD_FILE_AID].module_aids == (IDENTITY_AID,)
    assert files[BOOT_V1.load_file_aid].life_cycle == 0x01
    assert manager.get_status(StatusScope.LOAD_FILES)[0].module_aids == ()


def test_get_status_pages_with_6310(made: ManufacturedCard) -> None:
    # Enough load files that the listing does not fit one short response.
    packages = [
        declare(
            AppletPackage(
                name=f"test-page-{n}",
                version=1,
                load_file_aid=bytes.fromhex(f"F07061676500{n:02X}"),
                module_aid=bytes.fromhex(f"F07061676500{n:02X}01"),
                implementation="tests:Page",
            )
        )
        for n in range(6)
    ]
    manager = _manager(made.card)
    for package in packages:
        page = type(f"Page{package.load_file_aid[-1]}", (Applet,), {"aid": package.module_aid})
        register(package, page)
        manager.load(package, sign_load_file(package, FLEET_SIGNER))
    client = _isd(made.card)
    data, more = client.send_expecting_more(get_status_command(StatusScope.LOAD_FILES_AND_MODULES))
    assert more and len(data) <= 224
    listed = AppletManagement(client).get_status(StatusScope.LOAD_FILES_AND_MODULES)
    assert {p.load_file_aid for p in packages} <= {e.aid for e in listed}
    # GET STATUS [next] without a listing in progress is refused.
    with pytest.raises(ConditionsNotSatisfiedError):
        client.send(get_status_command(StatusScope.LOAD_FILES, more=True))


# --- upgrades ----------------------------------------------------------------------------------


def test_identity_upgrade_keeps_keys_by_handle(made: ManufacturedCard) -> None:
    client = SecureElementClient(made.card)
    client.select_identity()
    client.open_secure_channel(KEYS, 0x33, key_version=0x30)
    before = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=0x05)
    _manager(made.card).load_and_install(IDENTITY_V2, sign_load_file(IDENTITY_V2, FLEET_SIGNER))
    assert _versions(made.card)[IDENTITY_LOAD_FILE_AID.hex().upper()] == 2
    client = SecureElementClient(made.card)
    client.select_identity()
    digest = bytes(32)
    signature = client.sign(0x05, digest)
    before.public_key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_upgrade_migrates_applet_state(made: ManufacturedCard) -> None:
    manager = _manager(made.card)
    manager.load_and_install(COUNTER_V1, sign_load_file(COUNTER_V1, FLEET_SIGNER))
    client = SecureElementClient(made.card)
    client.select(COUNTER_AID)
    for _ in range(3):
        client.send(CommandApdu(0x00, 0x10, 0, 0))
    assert client.send(CommandApdu(0x00, 0x12, 0, 0, ne=256)) == b"\x00\x03"
    _manager(made.card).load_and_install(COUNTER_V2, sign_load_file(COUNTER_V2, FLEET_SIGNER))
    client.select(COUNTER_AID)
    assert client.send(CommandApdu(0x00, 0x12, 0, 0, ne=256)) == b"\x00\x03\x02"


def test_downgrade_is_refused_even_after_delete(made: ManufacturedCard) -> None:
    manager = _manager(made.card)
    manager.load_and_install(COUNTER_V2, sign_load_file(COUNTER_V2, FLEET_SIGNER))
    with pytest.raises(ConditionsNotSatisfiedError):
        manager.load(COUNTER_V1, sign_load_file(COUNTER_V1, FLEET_SIGNER))
    manager = _manager(made.card)
    manager.delete(COUNTER_LF, related=True)
    assert COUNTER_LF.hex().upper() not in _versions(made.card)
    with pytest.raises(ConditionsNotSatisfiedError):
        _manager(made.card).load(COUNTER_V1, sign_load_file(COUNTER_V1, FLEET_SIGNER))
    _manager(made.card).load_and_install(COUNTER_V3, sign_load_file(COUNTER_V3, FLEET_SIGNER))
    assert _versions(made.card)[COUNTER_LF.hex().upper()] == 3


# --- DAP: only the fleet's applet-signing key --------------------------------------------------


def test_unsigned_load_file_is_refused(made: ManufacturedCard) -> None:
    with pytest.raises(SecurityStatusError):
        _manager(made.card).load(IDENTITY_V2, IDENTITY_V2.load_file(None))
    assert _versions(made.card)[IDENTITY_LOAD_FILE_AID.hex().upper()] == 1


def test_wrong_signer_is_refused(made: ManufacturedCard) -> None:
    """A host holding the SCP03 keys, signing with a key of its own, installs nothing."""
    intruder = SoftwareSigner(new_private_key())
    with pytest.raises(SecurityStatusError):
        _manager(made.card).load(IDENTITY_V2, sign_load_file(IDENTITY_V2, intruder))
    # ... and cannot make the card trust its key instead: the object is fixed once SECURED.
    client = _isd(made.card)
    spki = intruder.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConditionsNotSatisfiedError):
        client.store_data([(PersonalisationObject.APPLET_SIGNING_KEY[0], spki)])
    with pytest.raises(SecurityStatusError):
        _manager(made.card).load(IDENTITY_V2, sign_load_file(IDENTITY_V2, intruder))


def test_tampered_block_is_refused(made: ManufacturedCard) -> None:
    signed = sign_load_file(IDENTITY_V2, FLEET_SIGNER)
    parsed = parse_load_file(signed)
    # The block changed after signing, the INSTALL hash of the real package: 6A80.
    tampered = signed.replace(b"fleetid.se.applets.identity", b"fleetid.se.applets.identitz")
    assert tampered != signed and parse_load_file(tampered).dap_signatures == parsed.dap_signatures
    with pytest.raises(IncorrectDataError):
        _manager(made.card).load(IDENTITY_V2, tampered)
    # The hash announced for the tampered block: the DAP (over the real hash) fails: 6982.
    client = _isd(made.card)
    announced = parse_load_file(tampered).data_block_hash
    client.send(install_for_load_command(IDENTITY_LOAD_FILE_AID, announced))
    with pytest.raises(SecurityStatusError):
        for command in load_commands(tampered):
            client.send(command)


def test_signature_must_be_p256_r_s(made: ManufacturedCard) -> None:
    der = FLEET_SIGNER.sign(IDENTITY_V2.data_block_hash)  # DER, not r ‖ s
    with pytest.raises(SecurityStatusError):
        _manager(made.card).load(IDENTITY_V2, IDENTITY_V2.load_file(der))
    forged = bytes(31) + b"\1" + bytes(31) + b"\1"  # r = s = 1: the right length, no signature
    with pytest.raises(SecurityStatusError):
        _manager(made.card).load(IDENTITY_V2, IDENTITY_V2.load_file(forged))


def test_card_without_applet_signing_key_loads_nothing() -> None:
    made = manufacture_test_card(keys=KEYS)
    with pytest.raises(ConditionsNotSatisfiedError):
        _manager(made.card).load(IDENTITY_V2, sign_load_file(IDENTITY_V2, FLEET_SIGNER))


def test_unknown_package_is_refused_even_when_signed(made: ManufacturedCard) -> None:
    unknown = AppletPackage(
        name="unknown",
        version=1,
        load_file_aid=bytes.fromhex("F0756E6B6E6F776E"),
        module_aid=bytes.fromhex("F0756E6B6E6F776E01"),
        implementation="fleetid.se.applets.identity:IdentityApplet",
    )
    with pytest.raises(IncorrectDataError):
        _manager(made.card).load(unknown, sign_load_file(unknown, FLEET_SIGNER))


# --- sequence rules ----------------------------------------------------------------------------


def test_load_out_of_order_is_refused(made: ManufacturedCard) -> None:
    client = _isd(made.card)
    client.send(install_for_load_command(IDENTITY_LOAD_FILE_AID, IDENTITY_V2.data_block_hash))
    commands = load_commands(sign_load_file(IDENTITY_V2, FLEET_SIGNER), block_size=40)
    client.send(commands[0])
    with pytest.raises(IncorrectParametersError):
        client.send(commands[2])
    with pytest.raises(ConditionsNotSatisfiedError):  # the sequence is over
        client.send(commands[1])


def test_load_without_install_for_load_is_refused(made: ManufacturedCard) -> None:
    client = _isd(made.card)
    with pytest.raises(ConditionsNotSatisfiedError):
        client.send(load_commands(sign_load_file(IDENTITY_V2, FLEET_SIGNER))[0])


def test_delete_of_the_isd_is_6985(made: ManufacturedCard) -> None:
    with pytest.raises(ConditionsNotSatisfiedError):
        _manager(made.card).delete(ISD_AID)
    raw = made.card.transmit(bytes.fromhex("80E400000A4F08A000000151000000"))
    assert raw[-2:] == bytes.fromhex("6982")  # and without a session, 6982 first


def test_delete_load_file_with_applications_needs_related(made: ManufacturedCard) -> None:
    manager = _manager(made.card)
    with pytest.raises(ConditionsNotSatisfiedError):
        manager.delete(IDENTITY_LOAD_FILE_AID)
    manager.delete(IDENTITY_AID)
    select = CommandApdu(0x00, 0xA4, 0x04, 0x00, IDENTITY_AID, 256).encode()
    assert made.card.transmit(select) == bytes.fromhex("6A82")
    _manager(made.card).delete(IDENTITY_LOAD_FILE_AID)
    assert IDENTITY_LOAD_FILE_AID.hex().upper() not in _versions(made.card)


def test_card_content_commands_need_scp03(made: ManufacturedCard) -> None:
    client = SecureElementClient(made.card)
    client.select_isd()
    for command in (
        install_for_load_command(IDENTITY_LOAD_FILE_AID, IDENTITY_V2.data_block_hash),
        install_for_install_command(IDENTITY_LOAD_FILE_AID, IDENTITY_AID, IDENTITY_AID),
        load_commands(b"\xc4\x00")[0],
        delete_command(IDENTITY_AID),
    ):
        with pytest.raises(SecurityStatusError):
            client.send(command)
    with pytest.raises(SecurityStatusError):
        AppletManagement(client).load(IDENTITY_V2, sign_load_file(IDENTITY_V2, FLEET_SIGNER))


def test_card_locked_freezes_content(made: ManufacturedCard) -> None:
    client = _isd(made.card)
    client.set_status(CardLifeCycle.CARD_LOCKED)
    with pytest.raises(ConditionsNotSatisfiedError):
        AppletManagement(client).load(IDENTITY_V2, sign_load_file(IDENTITY_V2, FLEET_SIGNER))


# --- power loss --------------------------------------------------------------------------------


def _power_cycle(tmp_path: Path) -> SecureElement:
    return SecureElement.open(tmp_path / "silicon", tmp_path / "flash")


def test_power_loss_between_load_and_install_leaves_a_consistent_card(
    made: ManufacturedCard, tmp_path: Path
) -> None:
    client = SecureElementClient(made.card)
    client.select_identity()
    client.open_secure_channel(KEYS, 0x33, key_version=0x30)
    key = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=0x07)
    _manager(made.card).load(IDENTITY_V2, sign_load_file(IDENTITY_V2, FLEET_SIGNER))
    card = _power_cycle(tmp_path)  # the card dies before INSTALL
    assert _versions(card)[IDENTITY_LOAD_FILE_AID.hex().upper()] == 1  # still version 1
    client = SecureElementClient(card)
    client.select_identity()
    assert client.get_public_key(0x07).public_key == key.public_key
    _manager(card).install(IDENTITY_V2)  # the staged version 2 completes the upgrade
    card = _power_cycle(tmp_path)
    assert _versions(card)[IDENTITY_LOAD_FILE_AID.hex().upper()] == 2
    client = SecureElementClient(card)
    client.select_identity()
    assert client.get_public_key(0x07).public_key == key.public_key


def test_power_loss_during_load_keeps_nothing(made: ManufacturedCard, tmp_path: Path) -> None:
    client = _isd(made.card)
    client.send(install_for_load_command(IDENTITY_LOAD_FILE_AID, IDENTITY_V2.data_block_hash))
    commands = load_commands(sign_load_file(IDENTITY_V2, FLEET_SIGNER), block_size=40)
    for command in commands[:-1]:
        client.send(command)
    card = _power_cycle(tmp_path)
    client = _isd(card)
    with pytest.raises(ConditionsNotSatisfiedError):
        client.send(commands[-1])  # the sequence did not survive
    # Nothing was staged: installing version 2 finds only version 1's load file.
    with pytest.raises(ConditionsNotSatisfiedError):
        _manager(card).install(IDENTITY_V2)
    assert _versions(card)[IDENTITY_LOAD_FILE_AID.hex().upper()] == IDENTITY_V1.version


def test_applet_data_survives_power_loss_and_is_zeroised_on_tamper(
    made: ManufacturedCard, tmp_path: Path
) -> None:
    _manager(made.card).load_and_install(COUNTER_V1, sign_load_file(COUNTER_V1, FLEET_SIGNER))
    client = SecureElementClient(made.card)
    client.select(COUNTER_AID)
    client.send(CommandApdu(0x00, 0x10, 0, 0))
    client.send(CommandApdu(0x00, 0x10, 0, 0))
    card = _power_cycle(tmp_path)
    client = SecureElementClient(card)
    client.select(COUNTER_AID)
    assert client.send(CommandApdu(0x00, 0x12, 0, 0, ne=256)) == b"\x00\x02"
    card.tamper(TamperEvent.GLITCH)
    state = CardState.from_bytes(card.flash.read(Silicon.load(tmp_path / "silicon")))
    assert state.content is not None
    assert all(not app.data for app in state.content.applications.values())


def test_a_deleted_preinstalled_applet_stays_deleted_and_a_new_one_is_recorded(
    made: ManufacturedCard, tmp_path: Path
) -> None:
    _manager(made.card).delete(BOOT_V1.load_file_aid, related=True)
    card = _power_cycle(tmp_path)
    assert BOOT_V1.load_file_aid.hex().upper() not in _versions(card)
    # A card whose flash predates an applet the emulator now carries records it on power-up.
    state = CardState.from_bytes(card.flash.read(Silicon.load(tmp_path / "silicon")))
    assert state.content is not None
    del state.content.applications[IDENTITY_AID]
    del state.content.load_files[IDENTITY_LOAD_FILE_AID]
    del state.content.version_floor[IDENTITY_LOAD_FILE_AID]
    card.flash.write(Silicon.load(tmp_path / "silicon"), state.to_bytes())
    card = _power_cycle(tmp_path)
    assert _versions(card)[IDENTITY_LOAD_FILE_AID.hex().upper()] == 1
    assert BOOT_V1.load_file_aid.hex().upper() not in _versions(card)
