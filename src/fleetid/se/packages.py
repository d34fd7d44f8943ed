"""Applet packages: the known applet versions and their GlobalPlatform load files.

Both sides use this module (it holds no key and loads no card). An applet of the emulated card is
a Python class; a *package* names one version of it by load-file AID, module (class) AID and a
version number, and its Load File Data Block (GPCS §11.6.2.3, the ``C4`` object of the load file)
is fleetid's encoding of those fields. The package hash is the SHA-256 of that block (GPCS
§C.2: the Load File Data Block Hash), so "loading" a package on the card selects and activates a
version it knows; a block of unknown content is refused.

A load file (GPCS §11.6.2.3) is ``[E2 { 4F SD AID, C3 signature }]* C4 { block }``: the ``E2``
DAP block carries the Load File Data Block Signature of GPCS §9.2. fleetid signs with ECDSA P-256
and SHA-256 over the Load File Data Block Hash, the signature as the plain concatenation of r and
s (GPCS v2.3.1 §B.4.3, as GlobalPlatformPro's DAP signer does).

Declaring a new applet version is one line in ``PACKAGES`` (or a call to ``declare``)::

    declare(AppletPackage(name="fido", version=1, load_file_aid=..., module_aid=FIDO_AID,
                          implementation="fleetid.se.applets.fido:FidoApplet"))

``implementation`` is ``module:Class`` of the applet; the card resolves it when the package is
installed (``fleetid.se.applets.releases``); the host never imports it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from fleetid.errors import EncodingError, TlvError
from fleetid.formats.tlv import decode_tlvs, encode_tlv, find_tlv
from fleetid.se.wire import BOOT_AID, IDENTITY_AID, ISD_AID

__all__ = [
    "BOOT_LOAD_FILE_AID",
    "IDENTITY_LOAD_FILE_AID",
    "PACKAGES",
    "AppletPackage",
    "LoadFile",
    "declare",
    "decode_version",
    "package_by_hash",
    "package_named",
    "parse_load_file",
]

#: ``F0`` ‖ "FLEETID" ‖ ``01`` (the identity applet's load file; its instance AID ends ``0101``).
IDENTITY_LOAD_FILE_AID: Final = bytes.fromhex("F0464C4545544944") + b"\x01"
#: ``F0`` ‖ "fleetid" ‖ ``B1`` (the boot applet's load file).
BOOT_LOAD_FILE_AID: Final = bytes.fromhex("F0") + b"fleetid" + bytes.fromhex("B1")

# Tags inside the Load File Data Block (fleetid's content; a Java Card card has a CAP file here).
_TAG_LOAD_FILE_AID = 0x4F
_TAG_MODULE_AID = 0x84
_TAG_VERSION = 0xCE  # the GET STATUS tag of a load file's version number (GPCS Table 11-36)
_TAG_NAME = 0xDF50
_TAG_IMPLEMENTATION = 0xDF51
_TAG_DAP_BLOCK = 0xE2
_TAG_DATA_BLOCK = 0xC4
_TAG_SD_AID = 0x4F
_TAG_SIGNATURE = 0xC3


@dataclass(frozen=True, slots=True, kw_only=True)
class AppletPackage:
    """One version of one applet: what its load file carries."""

    name: str
    version: int
    load_file_aid: bytes
    module_aid: bytes
    implementation: str

    def __post_init__(self) -> None:
        for aid in (self.load_file_aid, self.module_aid):
            if not 5 <= len(aid) <= 16:
                raise ValueError("an AID has 5 to 16 bytes (ISO 7816-5)")
        if not 1 <= self.version <= 0xFFFF:
            raise ValueError("a package version is 1..65535")

    @property
    def data_block(self) -> bytes:
        """The Load File Data Block (the value of ``C4``)."""
        return (
            encode_tlv(_TAG_LOAD_FILE_AID, self.load_file_aid)
            + encode_tlv(_TAG_MODULE_AID, self.module_aid)
            + encode_tlv(_TAG_VERSION, self.version.to_bytes(2, "big"))
            + encode_tlv(_TAG_NAME, self.name.encode())
            + encode_tlv(_TAG_IMPLEMENTATION, self.implementation.encode())
        )

    @property
    def data_block_hash(self) -> bytes:
        """The Load File Data Block Hash (GPCS §C.2), SHA-256: the package hash."""
        return hashlib.sha256(self.data_block).digest()

    def load_file(self, dap_signature: bytes | None) -> bytes:
        """The load file: a DAP block for the ISD when ``dap_signature`` is given, then ``C4``."""
        dap = b""
        if dap_signature is not None:
            dap = encode_tlv(
                _TAG_DAP_BLOCK,
                encode_tlv(_TAG_SD_AID, ISD_AID) + encode_tlv(_TAG_SIGNATURE, dap_signature),
            )
        return dap + encode_tlv(_TAG_DATA_BLOCK, self.data_block)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadFile:
    """A parsed load file: the DAP signatures by security domain AID, and the data block."""

    dap_signatures: dict[bytes, bytes]
    data_block: bytes

    @property
    def data_block_hash(self) -> bytes:
        return hashlib.sha256(self.data_block).digest()


def parse_load_file(raw: bytes) -> LoadFile:
    """Split a load file into its DAP blocks and its ``C4`` data block (GPCS §11.6.2.3)."""
    try:
        objects = decode_tlvs(raw)
    except TlvError as exc:
        raise EncodingError("the load file is not BER-TLV") from exc
    if not objects or objects[-1].tag != _TAG_DATA_BLOCK:
        raise EncodingError("a load file ends with its C4 data block")
    daps: dict[bytes, bytes] = {}
    for obj in objects[:-1]:
        if obj.tag != _TAG_DAP_BLOCK:
            raise EncodingError(f"unexpected tag {obj.tag:X} before the data block")
        try:
            children = decode_tlvs(obj.value)
        except TlvError as exc:
            raise EncodingError("a DAP block does not parse") from exc
        sd, signature = find_tlv(children, _TAG_SD_AID), find_tlv(children, _TAG_SIGNATURE)
        if sd is None or signature is None or len(children) != 2:
            raise EncodingError("a DAP block is E2 { 4F SD AID, C3 signature }")
        daps[sd.value] = signature.value
    return LoadFile(dap_signatures=daps, data_block=objects[-1].value)


def _package(raw: bytes) -> AppletPackage | None:
    """The package whose data block is exactly ``raw`` (None when it does not parse)."""
    try:
        tlvs = decode_tlvs(raw)
        fields = {t.tag: t.value for t in tlvs}
        if len(fields) != 5 or len(tlvs) != 5:
            return None
        package = AppletPackage(
            name=fields[_TAG_NAME].decode(),
            version=int.from_bytes(fields[_TAG_VERSION], "big"),
            load_file_aid=fields[_TAG_LOAD_FILE_AID],
            module_aid=fields[_TAG_MODULE_AID],
            implementation=fields[_TAG_IMPLEMENTATION].decode(),
        )
    except (TlvError, KeyError, ValueError):
        return None
    return package if package.data_block == raw else None


PACKAGES: dict[bytes, AppletPackage] = {}


def declare(package: AppletPackage) -> AppletPackage:
    """Add ``package`` to the known versions (by its data block hash); returns it."""
    existing = package_named(package.name, package.version)
    if existing is not None and existing != package:
        raise ValueError(f"{package.name} version {package.version} is declared already")
    PACKAGES[package.data_block_hash] = package
    return package


def package_by_hash(data_block: bytes) -> AppletPackage | None:
    """The known package with exactly this Load File Data Block, or None."""
    package = PACKAGES.get(hashlib.sha256(data_block).digest())
    return package if package is not None and _package(data_block) == package else None


def package_named(name: str, version: int | None = None) -> AppletPackage | None:
    """A known package by name: ``version``, or the highest when None."""
    found = [p for p in PACKAGES.values() if p.name == name]
    if version is not None:
        found = [p for p in found if p.version == version]
    return max(found, key=lambda p: p.version, default=None)


def decode_version(value: bytes) -> int:
    """A ``CE`` version number field (two bytes) as an integer."""
    if len(value) != 2:
        raise EncodingError("a version number has two bytes")
    return int.from_bytes(value, "big")


# --- the known versions ---------------------------------------------------------------------------

IDENTITY_V1 = declare(
    AppletPackage(
        name="identity",
        version=1,
        load_file_aid=IDENTITY_LOAD_FILE_AID,
        module_aid=IDENTITY_AID,
        implementation="fleetid.se.applets.identity:IdentityApplet",
    )
)
#: Identity applet 2: the same commands; installing it over version 1 keeps every key by handle.
IDENTITY_V2 = declare(
    AppletPackage(
        name="identity",
        version=2,
        load_file_aid=IDENTITY_LOAD_FILE_AID,
        module_aid=IDENTITY_AID,
        implementation="fleetid.se.applets.identity:IdentityApplet",
    )
)
BOOT_V1 = declare(
    AppletPackage(
        name="boot",
        version=1,
        load_file_aid=BOOT_LOAD_FILE_AID,
        module_aid=BOOT_AID,
        implementation="fleetid.se.applets.boot:BootApplet",
    )
)
