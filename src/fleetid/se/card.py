"""The emulated secure element: one way in, ``transmit(command APDU) -> response APDU``.

``SecureElement`` is the chip. It owns the transport rules of ISO/IEC 7816-4 and GlobalPlatform,
so that applets only ever see plain, well-formed commands:

1. The command is parsed (``fleetid.formats.apdu.parse_command``); a malformed one gets 6700.
2. The class byte (ISO 7816-4 §5.4.1): ``FF`` and RFU classes get 6E00; a logical channel other
   than 0 gets 6881 (the card has the basic channel only); ISO secure messaging (b4-b3 = 10 or
   11) gets 6882: the card speaks GP secure messaging (b3, ``84``) only.
3. A TERMINATED card answers SELECT with 6A82 and everything else with 6985 (GPCS §5.1.1.5).
4. GET RESPONSE (``00 C0 00 00 Le``) returns the rest of a response that did not fit in Ne; the
   response before it said ``61xx`` (ISO 7816-4 §5.3.4, as T=0 cards and short APDUs need).
   A command without Le gets no data but ``61xx``, except where the applet's clients expect
   the answer anyway (``Applet.implied_ne``): PIV answers as if Le were ``00``, as T=1 cards
   do, and FIDO2 an extended NFCCTAP_MSG whole, as CTAP 2.1 §11.3 clients expect.
5. SELECT by AID (``00 A4 04 00``, full or right-truncated) selects an applet and answers its
   FCI; unknown AIDs get 6A82 and leave the current selection. Any SELECT closes the secure
   channel session (GPCS §10.2.3).
6. INITIALIZE UPDATE / EXTERNAL AUTHENTICATE go to the card's SCP03 channel when the selected
   applet takes a secure channel (the ISD, and applets that delegate to it).
7. Every other command passes through the SCP03 channel: with the secure-messaging class bit
   (``84``, or ``04`` interindustry) it is verified and decrypted; without it, inside a session
   whose level asks for C-MAC, it is refused with 6982 and the session is aborted
   (Amd D §5.6). The response is then protected (R-MAC / R-ENC) at the session's level.
8. Command chaining (class b5, ISO 7816-4 §5.1.1.1) is assembled for applets that accept it for
   that INS, else 6884; a chain interrupted by another command gets 6883.
9. Nothing raises across the boundary: an unexpected exception answers 6F00 and is logged by
   type only, never with arguments (they may hold key material).

State changes are written to sealed flash (``fleetid.se.keystore``) before the response leaves.
``tamper`` is the hardware tamper hook (voltage / glitch / mesh sensors); it is a Python method
on the chip object and no APDU reaches it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import lru_cache
from pathlib import Path

from fleetid.crypto.symmetric import AesKey
from fleetid.errors import MalformedApduError, SecureChannelError, SecureElementError
from fleetid.formats.apdu import (
    SW,
    CommandApdu,
    parse_command,
)
from fleetid.se.applets.base import Applet, CommandContext
from fleetid.se.applets.boot import BootApplet
from fleetid.se.applets.card_content import SELECTABLE, content_of, package_of
from fleetid.se.applets.fido import FidoApplet
from fleetid.se.applets.identity import IdentityApplet
from fleetid.se.applets.manager import ManagerApplet
from fleetid.se.applets.piv import PivApplet
from fleetid.se.applets.releases import applet_class, implementation_of
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.packages import PACKAGES, AppletPackage
from fleetid.se.scp03 import StaticKeys
from fleetid.se.scp03.card import CardChannel
from fleetid.se.state import (
    ApplicationRecord,
    CardLifeCycle,
    CardState,
    Cplc,
    KeySet,
    LoadFileRecord,
)
from fleetid.se.wire import (
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_RESPONSE,
    INS_INITIALIZE_UPDATE,
    INS_SELECT,
    ISD_AID,
)

__all__ = ["SecureElement", "TamperEvent"]

_log = logging.getLogger("fleetid.se.card")

_SW_MORE_DATA = 0x6100
_MAX_STATICS = 8  # key set views kept per card (the ISD holds at most 8 key sets)
_MAX_ASSEMBLED = 0xFFFF  # a chain assembles into one command: at most the extended Nc


class TamperEvent(Enum):
    """What the chip's sensors can report."""

    VOLTAGE = "voltage"
    GLITCH = "glitch"
    MESH = "mesh"
    TEMPERATURE = "temperature"
    LIGHT = "light"


@dataclass(frozen=True, slots=True, kw_only=True)
class _ClassByte:
    channel: int
    secure_messaging: bool
    chaining: bool
    proprietary: bool
    iso_secure_messaging: bool = False


@lru_cache(maxsize=256)
def _decode_class(cla: int) -> _ClassByte | None:
    """ISO 7816-4 §5.4.1 (Tables 2-3) and GPCS §11.1.4; None for an invalid class (one
    immutable answer per class byte value)."""
    if cla == 0xFF:
        return None
    proprietary = bool(cla & 0x80)
    if cla & 0x40:  # further interindustry (01xx xxxx) or GP's proprietary equivalent (11xx)
        return _ClassByte(
            channel=4 + (cla & 0x0F),
            secure_messaging=bool(cla & 0x20),
            chaining=bool(cla & 0x10),
            proprietary=proprietary,
        )
    if cla & 0x20:  # 001x xxxx / 101x xxxx: reserved for future use
        return None
    if cla & 0x08:  # b4-b3 = 10 / 11: ISO 7816-4 §6 secure messaging, which the card lacks
        return _ClassByte(
            channel=cla & 0x03,
            secure_messaging=True,
            chaining=False,
            proprietary=proprietary,
            iso_secure_messaging=True,
        )
    return _ClassByte(
        channel=cla & 0x03,
        secure_messaging=bool(cla & 0x04),
        chaining=bool(cla & 0x10),
        proprietary=proprietary,
    )


def _default_applets() -> list[Applet]:
    applets: list[Applet] = [
        ManagerApplet(),
        IdentityApplet(),
        BootApplet(),
        PivApplet(),
        FidoApplet(),
    ]
    return applets


class SecureElement:
    """An emulated secure element: a chip (``Silicon``), its flash, its applets."""

    def __init__(
        self,
        silicon: Silicon,
        flash: SealedFlash,
        *,
        applets: Sequence[Applet] | None = None,
        random: Callable[[int], bytes] = os.urandom,
        pseudo_random_challenge: bool = True,
        s16: bool = False,
    ) -> None:
        self._silicon = silicon
        self._flash = flash
        self._random = random
        self._pseudo_random = pseudo_random_challenge
        self._s16 = s16
        self._state = CardState.from_bytes(flash.read(silicon))
        given = list(applets if applets is not None else _default_applets())
        # Applets of a known package are card content (GPCS §5.3): the registry in the card state
        # says whether and at which version each is installed; the others are always present.
        self._applets: dict[bytes, Applet] = {}
        self._instances: dict[bytes, tuple[int, Applet]] = {}
        seed: list[tuple[AppletPackage, Applet]] = []
        for applet in given:
            package = _package_for(applet)
            if package is None or applet.aid == ISD_AID:
                self._applets[applet.aid] = applet
            else:
                self._instances[applet.aid] = (package.version, applet)
                seed.append((package, applet))
        if ISD_AID not in self._applets:
            raise ValueError("a card needs its issuer security domain")
        _record_preinstalled(self._state, seed)
        self._selected: Applet | None = None
        self._channel: CardChannel | None = None
        self._pending: bytes = b""
        self._pending_sw: int = SW.OK
        self._chain: tuple[int, int, int, bytearray] | None = None
        self._statics: dict[tuple[bytes, bytes, bytes], StaticKeys] = {}
        # By id of a StaticKeys above (kept alive here): its keys set up.
        self._static_aes: dict[int, tuple[StaticKeys, tuple[AesKey, AesKey, AesKey]]] = {}
        self.reset()

    # --- life ---------------------------------------------------------------------------------

    @classmethod
    def fabricate(
        cls,
        *,
        silicon: Silicon | None = None,
        flash: SealedFlash | None = None,
        ic_serial: bytes | None = None,
        keysets: Mapping[int, StaticKeys] | None = None,
        random: Callable[[int], bytes] = os.urandom,
        applets: Sequence[Applet] | None = None,
        pseudo_random_challenge: bool = True,
        s16: bool = False,
    ) -> SecureElement:
        """A new chip in OP_READY with its CPLC, initial SCP03 key sets and empty slots.

        ``keysets`` are the transport keys the chip leaves the silicon fab with (KVN -> keys);
        ``ic_serial`` is the CPLC IC serial number (4 bytes; random when not given).
        """
        silicon = silicon or Silicon.fabricate(random)
        flash = flash if flash is not None else SealedFlash()
        serial = ic_serial if ic_serial is not None else random(4)
        if len(serial) != 4:
            raise ValueError("the CPLC IC serial number has 4 bytes")
        state = CardState(
            cplc=Cplc(ic_serial=serial),
            keysets={
                kvn: KeySet(enc=k.enc, mac=k.mac, dek=k.dek) for kvn, k in (keysets or {}).items()
            },
        )
        flash.write(silicon, state.to_bytes(), random)
        return cls(
            silicon,
            flash,
            applets=applets,
            random=random,
            pseudo_random_challenge=pseudo_random_challenge,
            s16=s16,
        )

    @classmethod
    def open(
        cls,
        silicon_path: Path,
        flash_path: Path,
        *,
        applets: Sequence[Applet] | None = None,
        s16: bool = False,
        sync: bool = True,
    ) -> SecureElement:
        """Power up a chip kept in files (after a crash, or in another process); ``sync`` as
        ``SealedFlash`` takes it."""
        flash = SealedFlash(flash_path, sync=sync)
        return cls(Silicon.load(silicon_path), flash, applets=applets, s16=s16)

    @property
    def chip_serial(self) -> bytes:
        """The CPLC IC serial number (public: GET DATA 9F7F answers it to anyone)."""
        return self._state.chip_serial

    @property
    def life_cycle(self) -> CardLifeCycle:
        return self._state.life_cycle

    @property
    def flash(self) -> SealedFlash:
        """The external flash (what a probe can read: ciphertext)."""
        return self._flash

    def _all_applets(self) -> list[Applet]:
        return [*self._applets.values(), *(a for _, a in self._instances.values())]

    def _applet_for(self, aid: bytes) -> Applet | None:
        """The applet answering ``aid``: a SELECTABLE application of the card content at its
        installed version, or an applet outside card content management."""
        content = self._state.content
        record = content.applications.get(aid) if content is not None else None
        if record is None:
            return self._applets.get(aid)
        if record.life_cycle != SELECTABLE or content is None:
            return None
        cached = self._instances.get(aid)
        if cached is not None and cached[0] == record.version:
            return cached[1]
        load_file = content.load_files.get(record.load_file_aid)
        package = package_of(load_file) if load_file is not None else None
        cls = applet_class(package) if package is not None else None
        if cls is None:
            return None
        if cached is not None:
            cached[1].deselect()
        applet = cls()
        self._instances[aid] = (record.version, applet)
        return applet

    def reset(self) -> None:
        """Warm reset: session closed, pending data dropped, the ISD selected (GPCS §5.1)."""
        self._close_channel()
        for applet in self._all_applets():
            applet.deselect()
        self._pending = b""
        self._chain = None
        terminated = self._state.life_cycle is CardLifeCycle.TERMINATED
        self._selected = None if terminated else self._applets[ISD_AID]
        if self._selected is not None:
            self._selected.select(self._state)

    def tamper(self, event: TamperEvent) -> None:
        """A tamper sensor fired: zeroise every key, go TERMINATED, write that to flash."""
        _log.warning("tamper event %s: zeroising and terminating", event.value)
        self._state.zeroise()
        self._statics.clear()
        self._static_aes.clear()
        self._state.life_cycle = CardLifeCycle.TERMINATED
        for applet in self._all_applets():
            applet.zeroise()
        self._persist()
        self.reset()

    def _terminated(self) -> bool:
        return self._state.life_cycle is CardLifeCycle.TERMINATED

    def _persist(self) -> None:
        self._flash.write(self._silicon, self._state.to_bytes(), self._random)

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None

    # --- the one way in -----------------------------------------------------------------------

    def transmit(self, command: bytes) -> bytes:
        """Process one command APDU and return the response APDU (data ‖ SW1 SW2)."""
        try:
            data, sw = self._transmit(command)
        except Exception as exc:  # the boundary: nothing crosses it but a status word
            _log.error("internal error %s on INS %s", type(exc).__name__, _ins_of(command))
            self._close_channel()
            self._chain = None
            self._pending = b""
            data, sw = b"", SW.NO_PRECISE_DIAGNOSIS
        return data + sw.to_bytes(2, "big")

    def _transmit(self, command: bytes) -> tuple[bytes, int]:
        try:
            apdu = parse_command(command)
        except MalformedApduError:
            return b"", SW.WRONG_LENGTH
        cls = _decode_class(apdu.cla)
        if cls is None:
            return b"", SW.CLA_NOT_SUPPORTED
        if cls.channel != 0:
            return b"", SW.LOGICAL_CHANNEL_NOT_SUPPORTED
        if cls.iso_secure_messaging:
            return b"", SW.SECURE_MESSAGING_NOT_SUPPORTED
        if apdu.ins == INS_GET_RESPONSE and not cls.proprietary and not cls.secure_messaging:
            return self._get_response(apdu)
        self._pending = b""
        if self._state.life_cycle is CardLifeCycle.TERMINATED:
            if apdu.ins == INS_SELECT:
                return b"", SW.FILE_NOT_FOUND
            return b"", SW.CONDITIONS_NOT_SATISFIED
        if apdu.ins == INS_SELECT and not cls.proprietary:
            data, sw = self._select(apdu, cls)
            return self._limit(data, sw, self._ne(self._selected, apdu))
        applet = self._selected
        if applet is None:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        if applet.secure_channel and cls.proprietary:
            if apdu.ins == INS_INITIALIZE_UPDATE and not cls.secure_messaging:
                self._chain = None
                return self._limit(*self._initialize_update(applet, apdu), apdu.ne)
            if apdu.ins == INS_EXTERNAL_AUTHENTICATE:
                self._chain = None
                return self._external_authenticate(apdu)
        try:
            plain = self._unwrap(apdu, cls)
        except SecureChannelError as exc:
            self._chain = None
            _log.debug("secure channel refused a command: SW %04X", exc.sw)
            return b"", exc.sw
        data, sw = self._dispatch(applet, plain, cls)
        if self._channel is not None:
            data = self._channel.wrap_response(data, sw)
        if self._terminated():
            self.reset()  # SET STATUS TERMINATED: answered (and R-MACed), then the card is dead
        return self._limit(data, sw, self._ne(applet, apdu))

    @staticmethod
    def _ne(applet: Applet | None, apdu: CommandApdu) -> int | None:
        """Ne, or for a command without Le what the applet's clients expect of it
        (``Applet.implied_ne``; ISO 7816-4 alone would answer 61xx and no data)."""
        if apdu.ne is not None or applet is None:
            return apdu.ne
        return applet.implied_ne(apdu)

    def _unwrap(self, apdu: CommandApdu, cls: _ClassByte) -> CommandApdu:
        if self._channel is not None:
            return self._channel.unwrap_command(apdu)
        if cls.secure_messaging:
            # Same answer as CardChannel gives without a session (see fleetid.se.scp03).
            raise SecureChannelError(SW.CONDITIONS_NOT_SATISFIED, "no secure channel session")
        return apdu

    def _dispatch(self, applet: Applet, apdu: CommandApdu, cls: _ClassByte) -> tuple[bytes, int]:
        if self._chain is not None:
            ins, p1, p2, buffer = self._chain
            if (apdu.ins, apdu.p1, apdu.p2) != (ins, p1, p2):
                self._chain = None
                return b"", SW.LAST_COMMAND_OF_CHAIN_EXPECTED
            buffer += apdu.data
            if len(buffer) > _MAX_ASSEMBLED:
                self._chain = None
                return b"", SW.WRONG_LENGTH
            if cls.chaining:
                return b"", SW.OK
            self._chain = None
            apdu = replace(apdu, data=bytes(buffer))
        elif cls.chaining:
            if not applet.accepts_chaining(apdu.ins):
                return b"", SW.CHAINING_NOT_SUPPORTED
            self._chain = (apdu.ins, apdu.p1, apdu.p2, bytearray(apdu.data))
            return b"", SW.OK
        channel = self._channel
        content = self._state.content
        record = content.applications.get(applet.aid) if content is not None else None
        ctx = CommandContext(
            state=self._state,
            persist=self._persist,
            authenticated=channel is not None and channel.authenticated,
            level=channel.level if channel is not None else 0,
            proprietary=cls.proprietary,
            decrypt_sensitive=channel.decrypt_sensitive if channel is not None else None,
            random=self._random,
            applet_data=record.data if record is not None else None,
        )
        try:
            reply = applet.process(ctx, apdu)
        except SecureElementError as exc:
            _log.debug("applet refused INS %02X: SW %04X", apdu.ins, exc.sw)
            return b"", exc.sw
        return reply.data, reply.sw

    # --- transport-level commands ---------------------------------------------------------------

    def _limit(self, data: bytes, sw: int, ne: int | None) -> tuple[bytes, int]:
        """Hold back what does not fit in Ne; the host fetches it with GET RESPONSE (61xx)."""
        if not data:
            return data, sw
        room = ne or 0
        if len(data) <= room:
            return data, sw
        self._pending, self._pending_sw = data[room:], sw
        return data[:room], _SW_MORE_DATA | min(len(self._pending), 256) % 256

    def _get_response(self, apdu: CommandApdu) -> tuple[bytes, int]:
        if apdu.p1 or apdu.p2:
            return b"", SW.INCORRECT_P1P2
        if not self._pending:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        pending, sw = self._pending, self._pending_sw
        self._pending = b""
        return self._limit(pending, sw, apdu.ne or 256)

    def _select(self, apdu: CommandApdu, cls: _ClassByte) -> tuple[bytes, int]:
        self._chain = None
        if cls.secure_messaging:
            return b"", SW.SECURE_MESSAGING_NOT_SUPPORTED
        if apdu.p1 != 0x04 or apdu.p2 not in (0x00, 0x0C):
            return b"", SW.INCORRECT_P1P2
        if not 5 <= len(apdu.data) <= 16:
            return b"", SW.WRONG_LENGTH
        applet = self._applet_for(apdu.data) or self._by_truncated_aid(apdu.data)
        if applet is None:
            return b"", SW.FILE_NOT_FOUND
        if (
            self._state.life_cycle is CardLifeCycle.CARD_LOCKED
            and not applet.selectable_when_locked
        ):
            return b"", SW.FILE_NOT_FOUND
        self._close_channel()
        if self._selected is not None:
            self._selected.deselect()
        self._selected = applet
        fci = applet.select(self._state)
        return (b"" if apdu.p2 == 0x0C else fci), SW.OK

    def _by_truncated_aid(self, name: bytes) -> Applet | None:
        """Selection by a right-truncated DF name (ISO 7816-4 §5.3.1.1: the first occurrence;
        PIV middleware selects ``A0 00 00 03 08``, SP 800-73-4 Part 2 §3.1.1)."""
        return next((a for aid, a in self._applets.items() if aid.startswith(name)), None)

    def _initialize_update(self, applet: Applet, apdu: CommandApdu) -> tuple[bytes, int]:
        self._close_channel()
        keysets = self._state.keysets
        kvn = apdu.p1 or (min(keysets) if keysets else 0)
        counter = keysets[kvn].sequence_counter if kvn in keysets else 0
        channel = CardChannel(
            {v: self._static_keys(k) for v, k in keysets.items()},
            self._state.cplc.kdd,
            aid=applet.aid,
            sequence_counter=counter,
            pseudo_random_challenge=self._pseudo_random,
            s16=self._s16,
            random=self._random,
            static_ciphers=self._static_ciphers,
        )
        self._channel = channel
        try:
            data = channel.initialize_update(apdu)
        except SecureChannelError as exc:
            return b"", exc.sw
        finally:
            if kvn in keysets and channel.sequence_counter != counter:
                old = keysets[kvn]
                keysets[kvn] = KeySet(
                    enc=old.enc, mac=old.mac, dek=old.dek, sequence_counter=channel.sequence_counter
                )
                self._persist()
        return data, SW.OK

    def _static_keys(self, keyset: KeySet) -> StaticKeys:
        """The channel's view of a key set: same keys, checked once per key set value (the
        sequence counter moves on every INITIALIZE UPDATE, the keys only on PUT KEY)."""
        keys = (keyset.enc, keyset.mac, keyset.dek)
        cached = self._statics.get(keys)
        if cached is None:
            if len(self._statics) >= _MAX_STATICS:
                self._statics.clear()
            cached = self._statics[keys] = StaticKeys(*keys)
        return cached

    def _static_ciphers(self, keys: StaticKeys) -> tuple[AesKey, AesKey, AesKey]:
        """Key-ENC, Key-MAC and Key-DEK of a key set from ``_static_keys``, set up once."""
        cached = self._static_aes.get(id(keys))
        if cached is None or cached[0] is not keys:
            if len(self._static_aes) >= _MAX_STATICS:
                self._static_aes.clear()
            cached = self._static_aes[id(keys)] = (
                keys,
                (AesKey(keys.enc), AesKey(keys.mac), AesKey(keys.dek)),
            )
        return cached[1]

    def _external_authenticate(self, apdu: CommandApdu) -> tuple[bytes, int]:
        if self._channel is None:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        try:
            self._channel.external_authenticate(apdu)
        except SecureChannelError as exc:
            return b"", exc.sw
        return b"", SW.OK


def _package_for(applet: Applet) -> AppletPackage | None:
    """The known package of a given applet: the one naming its class, else the first version of
    its module (a subclass standing in for it, such as a wafer defect)."""
    matching = [p for p in PACKAGES.values() if p.module_aid == applet.aid]
    exact = [p for p in matching if p.implementation == implementation_of(type(applet))]
    return min(exact or matching, key=lambda p: p.version, default=None)


def _record_preinstalled(state: CardState, seed: list[tuple[AppletPackage, Applet]]) -> None:
    """Record the applets a card leaves the fab with as loaded and SELECTABLE (kept in RAM until
    the next flash write: recorded again identically on the next power-up). An applet whose
    load file the card has ever recorded (installed, upgraded or deleted: its version counter is
    kept) is the card content's business, never recorded again."""
    content = content_of(state)
    for package, applet in seed:
        if package.load_file_aid in content.version_floor:
            continue
        content.load_files[package.load_file_aid] = LoadFileRecord(
            aid=package.load_file_aid,
            version=package.version,
            package_hash=package.data_block_hash,
            module_aids=(package.module_aid,),
        )
        content.applications[applet.aid] = ApplicationRecord(
            aid=applet.aid,
            load_file_aid=package.load_file_aid,
            module_aid=package.module_aid,
            version=package.version,
            life_cycle=SELECTABLE,
            privileges=b"\x00\x00\x00",
        )
        content.version_floor[package.load_file_aid] = package.version


def _ins_of(command: bytes) -> str:
    return f"{command[1]:02X}" if len(command) > 1 else "--"
