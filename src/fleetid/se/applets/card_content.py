"""Card content management of the ISD (GP Card Spec v2.3.1 §9, §11.2, §11.4 to §11.6).

INSTALL [for load] / LOAD / INSTALL [for install and make selectable] / DELETE / GET STATUS, all
but GET STATUS under an authenticated SCP03 session with at least C-MAC (6982 otherwise); none in
CARD_LOCKED (6985). The rules, each with the status word it answers:

- a load file must carry a DAP block (``E2``, GPCS §9.2.1) for the ISD whose Load File Data
  Block Signature verifies under the fleet's applet-signing key (ECDSA P-256 over the Load File
  Data Block Hash, r ‖ s; GPCS §B.4.3): none, or a wrong one, is 6982; a card without an
  applet-signing key loads nothing (6985). SCP03 keys alone do not let a host install an applet.
- INSTALL [for load] must give the Load File Data Block Hash (SHA-256, 32 bytes); the loaded
  block must hash to it (6A80), and must be a package the card knows (``fleetid.se.packages``;
  6A80 otherwise).
- LOAD blocks are numbered from 0 in P2 (GPCS §11.6.2.2), the last one has P1 b8 set; a block
  out of order, or a LOAD without INSTALL [for load], ends the sequence (6A86 / 6985). Nothing
  of an unfinished sequence is kept: it lives in RAM, so a reset or power loss drops it.
- a version below the highest one installed from that load file (``version_floor``) is refused
  (6985), even after DELETE: the counter only goes up, like the boot applet's.
- a load file loaded while an older version of it has applications is *staged*: the old version
  keeps running. INSTALL [for install] of the application then migrates its persistent state
  (``Applet.migrate_state``) and switches it to the new version in one flash write. A power loss
  between LOAD and INSTALL leaves the old version running and the staged one waiting.
- DELETE of the ISD is 6985 (GPCS §11.2.2.1: the ISD cannot be deleted); of a load file that
  still has applications, without P2 b8 (delete related objects), 6985.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fleetid.errors import EncodingError, TlvError
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.formats.tlv import decode_tlvs, encode_tlv
from fleetid.se.applets.base import CommandContext, Reply, refuse
from fleetid.se.applets.releases import applet_class
from fleetid.se.packages import PACKAGES, AppletPackage, package_by_hash, parse_load_file
from fleetid.se.state import (
    ApplicationRecord,
    CardContent,
    CardLifeCycle,
    CardState,
    LoadFileRecord,
)
from fleetid.se.wire import ISD_AID

__all__ = [
    "INSTALLED",
    "LOADED",
    "SELECTABLE",
    "CardContentManager",
    "content_of",
    "package_of",
]

#: GPCS Table 11-5 / §5.3: executable load file LOADED, application INSTALLED and SELECTABLE.
LOADED: Final = 0x01
INSTALLED: Final = 0x03
SELECTABLE: Final = 0x07

_ISD_PRIVILEGES: Final = bytes.fromhex("9EFE80")  # GPCS Table 6-1 (as the ISD answers today)
_SECURITY_DOMAIN: Final = 0x80  # privilege byte 1 b8: the instance would be a security domain
_MAX_LOAD_FILE: Final = 64 * 1024
_HASH_LENGTH: Final = 32
# A short response carries 256 bytes; SCP03 adds up to 16 (R-ENC padding) and 8 (R-MAC).
_STATUS_BUDGET: Final = 224


def content_of(state: CardState) -> CardContent:
    """The card's content registry (created empty on first use)."""
    if state.content is None:
        state.content = CardContent()
    return state.content


def package_of(record: LoadFileRecord) -> AppletPackage | None:
    return PACKAGES.get(record.package_hash)


@dataclass(kw_only=True)
class _Loading:
    """One INSTALL [for load] ... LOAD sequence in progress (volatile)."""

    load_file_aid: bytes
    data_block_hash: bytes
    expected_block: int = 0
    data: bytearray = field(default_factory=bytearray)


def _lv_fields(data: bytes, count: int) -> list[bytes]:
    """``count`` length-value fields (one length byte each) filling ``data`` exactly."""
    out: list[bytes] = []
    offset = 0
    for _ in range(count):
        if offset >= len(data):
            raise refuse(SW.INCORRECT_DATA, "INSTALL data field is truncated")
        length = data[offset]
        value = data[offset + 1 : offset + 1 + length]
        if len(value) != length:
            raise refuse(SW.INCORRECT_DATA, "INSTALL data field is truncated")
        out.append(value)
        offset += 1 + length
    if offset != len(data):
        raise refuse(SW.INCORRECT_DATA, "INSTALL data field has trailing bytes")
    return out


def _check_aid(aid: bytes, what: str) -> None:
    if not 5 <= len(aid) <= 16:
        raise refuse(SW.INCORRECT_DATA, f"{what} AID has {len(aid)} bytes")


class CardContentManager:
    """The card content commands of the ISD, with their volatile sequence state."""

    def __init__(self) -> None:
        self._loading: _Loading | None = None
        self._status_rest: list[bytes] = []

    def reset(self) -> None:
        """SELECT, reset or any other command ends a LOAD sequence and a GET STATUS listing."""
        self._loading = None
        self._status_rest = []

    def end_sequences(self, ins: int, *, load: int, get_status: int) -> None:
        if ins != load:
            self._loading = None
        if ins != get_status:
            self._status_rest = []

    @staticmethod
    def _require_manageable(ctx: CommandContext) -> None:
        ctx.require_session()
        if ctx.state.life_cycle is CardLifeCycle.CARD_LOCKED:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "card content is frozen in CARD_LOCKED")

    # --- INSTALL --------------------------------------------------------------------------------

    def install(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """INSTALL (GPCS §11.5): P1 02 for load; 04 / 0C for install (and make selectable)."""
        self._require_manageable(ctx)
        if apdu.p2 != 0x00:
            raise refuse(SW.INCORRECT_P1P2, "INSTALL P2 is 00")
        if apdu.p1 == 0x02:
            return self._install_for_load(ctx, apdu.data)
        if apdu.p1 in (0x04, 0x0C):
            return self._install_for_install(ctx, apdu.data, selectable=bool(apdu.p1 & 0x08))
        if apdu.p1 == 0x08:
            return self._make_selectable(ctx, apdu.data)
        raise refuse(SW.INCORRECT_P1P2, f"INSTALL P1 {apdu.p1:02X} not supported")

    def _install_for_load(self, ctx: CommandContext, data: bytes) -> Reply:
        # GPCS Table 11-44: load file AID, SD AID, LFDB hash, load parameters, load token.
        load_file_aid, sd_aid, data_block_hash, _params, token = _lv_fields(data, 5)
        self._loading = None
        _check_aid(load_file_aid, "load file")
        if sd_aid and sd_aid != ISD_AID:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "the only security domain is the ISD")
        if token:
            raise refuse(SW.INCORRECT_DATA, "delegated management (load tokens) is not supported")
        if len(data_block_hash) != _HASH_LENGTH:
            # GPCS §9.2.1: with DAP verification the Load File Data Block Hash is mandatory.
            raise refuse(SW.INCORRECT_DATA, "INSTALL [for load] needs the SHA-256 LFDB hash")
        if content_of(ctx.state).applet_signing_key is None:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "no applet-signing key on the card")
        self._loading = _Loading(load_file_aid=load_file_aid, data_block_hash=data_block_hash)
        return Reply(data=b"\x00")

    def _install_for_install(self, ctx: CommandContext, data: bytes, *, selectable: bool) -> Reply:
        # GPCS Table 11-47: load file AID, module AID, application AID, privileges, install
        # parameters, install token.
        load_file_aid, module_aid, app_aid, privileges, _params, token = _lv_fields(data, 6)
        self._loading = None
        for aid, what in ((load_file_aid, "load file"), (module_aid, "module")):
            _check_aid(aid, what)
        if token:
            raise refuse(
                SW.INCORRECT_DATA, "delegated management (install tokens) is not supported"
            )
        if app_aid != module_aid:
            raise refuse(SW.INCORRECT_DATA, "an applet is installed under its module AID")
        if len(privileges) not in (1, 3) or privileges[0] & _SECURITY_DOMAIN:
            raise refuse(SW.INCORRECT_DATA, "privileges: 1 or 3 bytes, no security domain")
        content = content_of(ctx.state)
        staged = content.staged.get(load_file_aid)
        record = staged or content.load_files.get(load_file_aid)
        if record is None:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "no such load file")
        if module_aid not in record.module_aids:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "no such module in the load file")
        package = package_of(record)
        cls = applet_class(package) if package is not None else None
        if cls is None:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "the load file's applet is not on the card")
        if record.version < content.version_floor.get(load_file_aid, 0):
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "older than the installed version")
        current = content.applications.get(app_aid)
        state_data: dict[str, object] = {}
        if current is not None:
            if current.version >= record.version or current.load_file_aid != load_file_aid:
                raise refuse(SW.CONDITIONS_NOT_SATISFIED, "the application is installed")
            try:
                state_data = cls.migrate_state(dict(current.data), current.version)
            except Exception as exc:  # an applet's hook must not leave half a migration
                raise refuse(SW.CONDITIONS_NOT_SATISFIED, "state migration failed") from exc
        others = [
            a
            for a in content.applications.values()
            if a.load_file_aid == load_file_aid and a.aid != app_aid and a.version != record.version
        ]
        if others:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "other applications use the old version")
        # One flash write switches load file, application and floor together.
        content.load_files[load_file_aid] = record
        content.staged.pop(load_file_aid, None)
        content.applications[app_aid] = ApplicationRecord(
            aid=app_aid,
            load_file_aid=load_file_aid,
            module_aid=module_aid,
            version=record.version,
            life_cycle=SELECTABLE if selectable else INSTALLED,
            privileges=privileges.ljust(3, b"\x00"),
            data=state_data,
        )
        floor = content.version_floor.get(load_file_aid, 0)
        content.version_floor[load_file_aid] = max(floor, record.version)
        ctx.persist()
        return Reply(data=b"\x00")

    def _make_selectable(self, ctx: CommandContext, data: bytes) -> Reply:
        # GPCS Table 11-49: empty, empty, application AID, privileges, empty, token.
        _, _, app_aid, _privileges, _, token = _lv_fields(data, 6)
        if token:
            raise refuse(SW.INCORRECT_DATA, "delegated management is not supported")
        content = content_of(ctx.state)
        app = content.applications.get(app_aid)
        if app is None:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "no such application")
        if app.life_cycle != INSTALLED:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "the application is not INSTALLED")
        content.applications[app_aid] = replace(app, life_cycle=SELECTABLE)
        ctx.persist()
        return Reply(data=b"\x00")

    # --- LOAD -----------------------------------------------------------------------------------

    def load(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """LOAD (GPCS §11.6): one block; the last (P1 80) completes the load file."""
        self._require_manageable(ctx)
        loading = self._loading
        if loading is None:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "LOAD without INSTALL [for load]")
        if apdu.p1 not in (0x00, 0x80) or apdu.p2 != loading.expected_block:
            self._loading = None
            raise refuse(SW.INCORRECT_P1P2, f"LOAD block {apdu.p2} out of sequence")
        if len(loading.data) + len(apdu.data) > _MAX_LOAD_FILE:
            self._loading = None
            raise refuse(SW.NOT_ENOUGH_MEMORY, "load file too large")
        loading.data += apdu.data
        loading.expected_block += 1
        if not apdu.p1 & 0x80:
            if loading.expected_block > 0xFF:
                self._loading = None
                raise refuse(SW.INCORRECT_P1P2, "LOAD block numbers exhausted")
            return Reply()
        self._loading = None
        self._complete_load(ctx, loading)
        return Reply(data=b"\x00")

    def _complete_load(self, ctx: CommandContext, loading: _Loading) -> None:
        content = content_of(ctx.state)
        try:
            load_file = parse_load_file(bytes(loading.data))
        except EncodingError as exc:
            raise refuse(SW.INCORRECT_DATA, "the load file does not parse") from exc
        if load_file.data_block_hash != loading.data_block_hash:
            raise refuse(SW.INCORRECT_DATA, "the data block does not match its hash")
        signature = load_file.dap_signatures.get(ISD_AID)
        if signature is None:
            raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "no DAP block for the ISD")
        _verify_dap(content.applet_signing_key, loading.data_block_hash, signature)
        package = package_by_hash(load_file.data_block)
        if package is None or package.load_file_aid != loading.load_file_aid:
            raise refuse(SW.INCORRECT_DATA, "not a package this card knows")
        if applet_class(package) is None:
            raise refuse(SW.INCORRECT_DATA, "the package's applet is not on the card")
        floor = content.version_floor.get(package.load_file_aid, 0)
        if package.version < floor:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "older than the installed version")
        record = LoadFileRecord(
            aid=package.load_file_aid,
            version=package.version,
            package_hash=loading.data_block_hash,
            module_aids=(package.module_aid,),
        )
        current = content.load_files.get(package.load_file_aid)
        in_use = any(
            a.load_file_aid == package.load_file_aid for a in content.applications.values()
        )
        if current is not None and current.version == package.version:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "this version is loaded already")
        if current is not None and in_use:
            content.staged[package.load_file_aid] = record
        else:
            content.load_files[package.load_file_aid] = record
            content.staged.pop(package.load_file_aid, None)
        ctx.persist()

    # --- DELETE ---------------------------------------------------------------------------------

    def delete(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """DELETE (GPCS §11.2): ``4F`` AID; P2 80 also deletes the related objects."""
        self._require_manageable(ctx)
        if apdu.p1 != 0x00 or apdu.p2 not in (0x00, 0x80):
            raise refuse(SW.INCORRECT_P1P2, "DELETE P1 00, P2 00 or 80")
        try:
            objects = decode_tlvs(apdu.data)
        except TlvError as exc:
            raise refuse(SW.INCORRECT_DATA, "DELETE data does not parse") from exc
        if len(objects) != 1 or objects[0].tag != 0x4F:
            raise refuse(SW.INCORRECT_DATA, "DELETE takes one 4F AID (no tokens)")
        aid = objects[0].value
        if aid == ISD_AID:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "the ISD cannot be deleted")
        content = content_of(ctx.state)
        if aid in content.applications:
            del content.applications[aid]
        elif aid in content.load_files or aid in content.staged:
            users = [a for a in content.applications.values() if a.load_file_aid == aid]
            if users and apdu.p2 != 0x80:
                raise refuse(SW.CONDITIONS_NOT_SATISFIED, "the load file has applications")
            for app in users:
                del content.applications[app.aid]
            content.load_files.pop(aid, None)
            content.staged.pop(aid, None)
        else:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "no such application or load file")
        ctx.persist()
        return Reply(data=b"\x00")

    # --- GET STATUS -----------------------------------------------------------------------------

    def get_status(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """GET STATUS (GPCS §11.4), TLV format (P2 b2): ``E3`` entries, ``6310`` for more."""
        if apdu.p2 == 0x03:
            if not self._status_rest:
                raise refuse(SW.CONDITIONS_NOT_SATISFIED, "no GET STATUS listing to continue")
            return self._status_page()
        if apdu.p2 != 0x02 or apdu.p1 not in (0x80, 0x40, 0x20, 0x10):
            raise refuse(SW.INCORRECT_P1P2, "GET STATUS P1 80/40/20/10, P2 02/03 (TLV)")
        try:
            criteria = decode_tlvs(apdu.data)
        except TlvError as exc:
            raise refuse(SW.INCORRECT_DATA, "search criteria do not parse") from exc
        if not criteria or criteria[0].tag != 0x4F:
            raise refuse(SW.INCORRECT_DATA, "search criteria need tag 4F")
        prefix = criteria[0].value
        entries = [
            entry for aid, entry in _status_entries(ctx.state, apdu.p1) if aid.startswith(prefix)
        ]
        if not entries:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "no matching AID")
        self._status_rest = entries
        return self._status_page()

    def _status_page(self) -> Reply:
        page = bytearray()
        rest = self._status_rest
        while rest and (not page or len(page) + len(rest[0]) <= _STATUS_BUDGET):
            page += rest.pop(0)
        return Reply(data=bytes(page), sw=0x6310 if rest else SW.OK)


def _status_entries(state: CardState, p1: int) -> list[tuple[bytes, bytes]]:
    """(AID, ``E3`` entry) pairs of one GET STATUS subset (GPCS Table 11-36)."""
    if p1 == 0x80:
        body = (
            encode_tlv(0x4F, ISD_AID)
            + encode_tlv(0x9F70, bytes((int(state.life_cycle),)))
            + encode_tlv(0xC5, _ISD_PRIVILEGES)
        )
        return [(ISD_AID, encode_tlv(0xE3, body))]
    content = content_of(state)
    if p1 == 0x40:
        return [
            (
                app.aid,
                encode_tlv(
                    0xE3,
                    encode_tlv(0x4F, app.aid)
                    + encode_tlv(0x9F70, bytes((app.life_cycle,)))
                    + encode_tlv(0xC5, app.privileges)
                    + encode_tlv(0xC4, app.load_file_aid)
                    + encode_tlv(0xCC, ISD_AID),
                ),
            )
            for app in sorted(content.applications.values(), key=lambda a: a.aid)
        ]
    out = []
    for lf in sorted(content.load_files.values(), key=lambda r: r.aid):
        body = (
            encode_tlv(0x4F, lf.aid)
            + encode_tlv(0x9F70, bytes((LOADED,)))
            + encode_tlv(0xCE, lf.version.to_bytes(2, "big"))
            + encode_tlv(0xCC, ISD_AID)
        )
        if p1 == 0x10:
            body += b"".join(encode_tlv(0x84, m) for m in lf.module_aids)
        out.append((lf.aid, encode_tlv(0xE3, body)))
    return out


def _verify_dap(key_der: bytes | None, data_block_hash: bytes, signature: bytes) -> None:
    """GPCS §B.4.3: ECDSA with SHA-256 over the Load File Data Block Hash, r ‖ s (P-256)."""
    if key_der is None:
        raise refuse(SW.CONDITIONS_NOT_SATISFIED, "no applet-signing key on the card")
    key = serialization.load_der_public_key(key_der)
    if not isinstance(key, ec.EllipticCurvePublicKey) or len(signature) != 64:
        raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "the DAP is not a P-256 r ‖ s signature")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, data_block_hash, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "the DAP does not verify") from exc
