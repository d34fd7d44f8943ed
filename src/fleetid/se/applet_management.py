"""The host side of card content management (GP Card Spec v2.3.1 §11.2, §11.4 to §11.6).

Builds the command APDUs GlobalPlatform tools send to an ISD (INSTALL [for load], LOAD blocks,
INSTALL [for install and make selectable], DELETE, GET STATUS) over a ``SecureElementClient``
whose SCP03 session is open on the ISD, and signs load files (DAP, GPCS §9.2 and §B.4.3) with
the fleet's applet-signing key, a ``Signer`` wherever it is held.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError, SecurityStatusError, TlvError
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.formats.tlv import decode_tlvs, encode_tlv, find_tlv
from fleetid.se.client import SecureElementClient
from fleetid.se.packages import AppletPackage, decode_version
from fleetid.se.wire import CLA_GP, INS_DELETE, INS_GET_STATUS, INS_INSTALL, INS_LOAD, ISD_AID

__all__ = [
    "LOAD_BLOCK_SIZE",
    "AppletManagement",
    "StatusEntry",
    "StatusScope",
    "delete_command",
    "get_status_command",
    "install_for_install_command",
    "install_for_load_command",
    "load_commands",
    "parse_status_entries",
    "sign_load_file",
]

#: Bytes of load file per LOAD command: a short APDU (255) less C-MAC (8) and C-ENC padding (16).
LOAD_BLOCK_SIZE: Final = 0xE0


class StatusScope(IntEnum):
    """GET STATUS P1 (GPCS Table 11-33)."""

    ISD = 0x80
    APPLICATIONS = 0x40
    LOAD_FILES = 0x20
    LOAD_FILES_AND_MODULES = 0x10


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusEntry:
    """One ``E3`` entry of a GET STATUS response (GPCS Table 11-36)."""

    aid: bytes
    life_cycle: int
    privileges: bytes | None = None
    load_file_aid: bytes | None = None
    version: int | None = None
    module_aids: tuple[bytes, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "aid": self.aid.hex().upper(),
            "life_cycle": f"{self.life_cycle:02X}",
            "privileges": None if self.privileges is None else self.privileges.hex().upper(),
            "load_file": None if self.load_file_aid is None else self.load_file_aid.hex().upper(),
            "version": self.version,
            "modules": [m.hex().upper() for m in self.module_aids],
        }


def sign_load_file(package: AppletPackage, signer: Signer) -> bytes:
    """The load file of ``package`` with a DAP block for the ISD (GPCS §B.4.3: ECDSA P-256 with
    SHA-256 over the Load File Data Block Hash, the signature as r ‖ s)."""
    public = signer.public_key()
    if not isinstance(public.curve, ec.SECP256R1) or not isinstance(
        signer.hash_algorithm, hashes.SHA256
    ):
        raise EncodingError("the applet-signing key is ECDSA P-256 with SHA-256")
    r, s = decode_dss_signature(signer.sign(package.data_block_hash))
    return package.load_file(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _lv(value: bytes) -> bytes:
    if len(value) > 0xFF:
        raise EncodingError("an INSTALL field has at most 255 bytes")
    return bytes((len(value),)) + value


def install_for_load_command(
    load_file_aid: bytes, data_block_hash: bytes, *, parameters: bytes = b""
) -> CommandApdu:
    """INSTALL [for load] (GPCS §11.5.2.3.1, Table 11-44): the ISD as security domain."""
    data = _lv(load_file_aid) + _lv(ISD_AID) + _lv(data_block_hash) + _lv(parameters) + _lv(b"")
    return CommandApdu(CLA_GP, INS_INSTALL, 0x02, 0x00, data)


def load_commands(load_file: bytes, block_size: int = LOAD_BLOCK_SIZE) -> list[CommandApdu]:
    """LOAD commands (GPCS §11.6.2): P2 numbers the blocks from 0, P1 80 marks the last."""
    blocks = [load_file[i : i + block_size] for i in range(0, len(load_file), block_size)]
    if not blocks or len(blocks) > 0x100:
        raise EncodingError("a load file is sent in 1 to 256 LOAD blocks")
    return [
        CommandApdu(CLA_GP, INS_LOAD, 0x80 if n == len(blocks) - 1 else 0x00, n, block)
        for n, block in enumerate(blocks)
    ]


def install_for_install_command(
    load_file_aid: bytes,
    module_aid: bytes,
    application_aid: bytes,
    *,
    privileges: bytes = b"\0",
    parameters: bytes = b"",
) -> CommandApdu:
    """INSTALL [for install and make selectable] (GPCS §11.5.2.3.2, Table 11-47), P1 0C; the
    install parameters are ``C9`` (application specific parameters) holding ``parameters``."""
    data = (
        _lv(load_file_aid)
        + _lv(module_aid)
        + _lv(application_aid)
        + _lv(privileges)
        + _lv(encode_tlv(0xC9, parameters))
        + _lv(b"")
    )
    return CommandApdu(CLA_GP, INS_INSTALL, 0x0C, 0x00, data)


def delete_command(aid: bytes, *, related: bool = False) -> CommandApdu:
    """DELETE (GPCS §11.2.2): ``4F`` AID; P2 80 deletes related objects too."""
    return CommandApdu(CLA_GP, INS_DELETE, 0x00, 0x80 if related else 0x00, encode_tlv(0x4F, aid))


def get_status_command(scope: StatusScope, *, more: bool = False) -> CommandApdu:
    """GET STATUS (GPCS §11.4.2): every AID (``4F 00``), TLV format; P2 03 asks for the next."""
    return CommandApdu(
        CLA_GP, INS_GET_STATUS, int(scope), 0x03 if more else 0x02, b"\x4f\x00", 0x100
    )


def parse_status_entries(data: bytes) -> list[StatusEntry]:
    """The ``E3`` entries of a GET STATUS response."""
    try:
        entries = []
        for entry in decode_tlvs(data):
            if entry.tag != 0xE3:
                raise EncodingError(f"GET STATUS entry tag {entry.tag:X} is not E3")
            fields = decode_tlvs(entry.value)
            aid, state = find_tlv(fields, 0x4F), find_tlv(fields, 0x9F70)
            if aid is None or state is None or len(state.value) != 1:
                raise EncodingError("a GET STATUS entry needs 4F and a one-byte 9F70")
            privileges, load_file = find_tlv(fields, 0xC5), find_tlv(fields, 0xC4)
            version = find_tlv(fields, 0xCE)
            entries.append(
                StatusEntry(
                    aid=aid.value,
                    life_cycle=state.value[0],
                    privileges=None if privileges is None else privileges.value,
                    load_file_aid=None if load_file is None else load_file.value,
                    version=None if version is None else decode_version(version.value),
                    module_aids=tuple(f.value for f in fields if f.tag == 0x84),
                )
            )
    except TlvError as exc:
        raise EncodingError("GET STATUS response does not parse") from exc
    return entries


class AppletManagement:
    """Card content management through a client whose SCP03 session is open on the ISD."""

    def __init__(self, client: SecureElementClient) -> None:
        self._client = client

    def _require_session(self) -> None:
        if self._client.session is None:
            raise SecurityStatusError(
                SW.SECURITY_STATUS_NOT_SATISFIED, "card content management needs an SCP03 session"
            )

    def get_status(self, scope: StatusScope) -> list[StatusEntry]:
        """Every entry of ``scope``, following ``6310`` with GET STATUS [next]."""
        entries: list[StatusEntry] = []
        for page in self._status_pages(scope):
            entries.extend(parse_status_entries(page))
        return entries

    def _status_pages(self, scope: StatusScope) -> Iterator[bytes]:
        more = False
        for _ in range(0x100):
            data, more = self._client.send_expecting_more(get_status_command(scope, more=more))
            yield data
            if not more:
                return
        raise EncodingError("GET STATUS did not end")

    def load(self, package: AppletPackage, load_file: bytes) -> None:
        """INSTALL [for load] and the LOAD blocks of ``load_file`` (signed: ``sign_load_file``)."""
        self._require_session()
        self._client.send(install_for_load_command(package.load_file_aid, package.data_block_hash))
        for command in load_commands(load_file):
            self._client.send(command)

    def install(self, package: AppletPackage) -> None:
        """INSTALL [for install and make selectable] the applet of a loaded ``package``."""
        self._require_session()
        self._client.send(
            install_for_install_command(
                package.load_file_aid, package.module_aid, package.module_aid
            )
        )

    def load_and_install(self, package: AppletPackage, load_file: bytes) -> None:
        self.load(package, load_file)
        self.install(package)

    def delete(self, aid: bytes, *, related: bool = False) -> None:
        self._require_session()
        self._client.send(delete_command(aid, related=related))
