"""The card manager: GlobalPlatform Issuer Security Domain (GP Card Spec v2.3.1 §11).

AID ``A0 00 00 01 51 00 00 00`` (the GP ISD AID). Commands (full reference: docs/se-apdu.md):

=========  ====  =====================================================================
command    INS   notes
=========  ====  =====================================================================
SELECT     A4    answered by the card; FCI ``6F { 84 AID, A5 { 9F65 FFFF max data } }``
GET DATA   CA    ``9F7F`` CPLC, ``00E0`` key information template (GPCS §11.3)
GET STATUS F2    P1 ``80`` ISD, ``40`` applications, ``20`` / ``10`` load files (and modules)
DELETE     E4    card content management (``fleetid.se.applets.card_content``, GPCS §11.2)
INSTALL    E6    [for load], [for install and make selectable] (GPCS §11.5)
LOAD       E8    load file blocks, DAP verified under the applet-signing key (GPCS §11.6, §9.2)
INIT UPD.  50    answered by the card's SCP03 channel (Amd D §7.1.1)
EXT AUTH   82    answered by the card's SCP03 channel (Amd D §7.1.2)
PUT KEY    D8    AES key sets wrapped under Key-DEK, KCV checked (GPCS §11.8, Amd D §7.2)
STORE DATA E2    DGI or BER-TLV personalisation objects, block numbered (GPCS §11.11)
SET STATUS F0    P1 ``80``: card life cycle transitions (GPCS §11.10, §5.1.1)
=========  ====  =====================================================================

PUT KEY, STORE DATA and SET STATUS need an authenticated secure channel session with at least
C-MAC (6982 otherwise). Personalisation objects that bind the card to its manufacturer (the
attestation chain, the firmware verification key) are refused once the card is SECURED (6985).

STORE DATA objects (value formats are fleetid's; both structures name the same objects):

====================================  ======  ======  ============================================
object                                DGI     tag     value
====================================  ======  ======  ============================================
attestation certificate chain         0F01    DF01    DER certificates, device attestation first
trust anchors                         0F02    DF02    DER certificates (replaces the set)
firmware verification key             0F03    DF03    DER SubjectPublicKeyInfo, P-256 or P-384
certificate of a key handle           0F04    DF04    handle (1) ‖ DER certificate
applet-signing key (DAP)              0F05    DF05    DER SubjectPublicKeyInfo, P-256
====================================  ======  ======  ============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.symmetric import aes_kcv, bytes_equal
from fleetid.errors import FleetIdError, TlvError
from fleetid.formats import x509_tbs
from fleetid.formats.apdu import EXTENDED_MAX_NC, SW, CommandApdu
from fleetid.formats.tlv import decode_dgis, decode_tlv, decode_tlvs, encode_tlv
from fleetid.se.applets.base import Applet, CommandContext, Reply, refuse
from fleetid.se.applets.card_content import CardContentManager, content_of
from fleetid.se.state import (
    ATTESTATION_HANDLE,
    CardLifeCycle,
    CardState,
    Curve,
    KeySet,
    allowed_transition,
)
from fleetid.se.wire import (
    INS_DELETE,
    INS_GET_DATA,
    INS_GET_STATUS,
    INS_INSTALL,
    INS_LOAD,
    INS_PUT_KEY,
    INS_SET_STATUS,
    INS_STORE_DATA,
    ISD_AID,
    PersonalisationObject,
)

__all__ = [
    "MAX_KEYSETS",
    "ManagerApplet",
    "StoreDataBuffer",
    "apply_store_data",
    "private_key_of",
    "public_key_of",
    "pyca_curve",
]

MAX_KEYSETS = 8
_MAX_STORE_DATA = 32 * 1024
_MAX_COMMAND_DATA = EXTENDED_MAX_NC  # the card parses extended-length APDUs (fleetid.se.card)

_AES_KEY_TYPE = 0x88  # GPCS Table 11-16
_SCP03_KEY_IDS = 3  # Key-ENC, Key-MAC, Key-DEK with key identifiers 1, 2, 3 (Amd D §7.2)


_PYCA_CURVES: dict[Curve, type[ec.EllipticCurve]] = {
    Curve.P256: ec.SECP256R1,
    Curve.P384: ec.SECP384R1,
    Curve.BRAINPOOL_P256: ec.BrainpoolP256R1,
    Curve.BRAINPOOL_P384: ec.BrainpoolP384R1,
}


def pyca_curve(curve: Curve) -> ec.EllipticCurve:
    """The pyca curve object of a GENERATE KEY curve reference."""
    return _PYCA_CURVES[curve]()


_Record = TypeVar("_Record")


def derived_key(
    cache: dict[int, tuple[_Record, ec.EllipticCurvePrivateKey]],
    ref: int,
    record: _Record,
    value: int,
    curve: Curve,
) -> ec.EllipticCurvePrivateKey:
    """The pyca key of the scalar ``value`` stored as ``record`` under ``ref``, derived once and
    reused while ``record`` is the very object stored (a replaced or reloaded key misses)."""
    cached = cache.get(ref)
    if cached is not None and cached[0] is record:
        return cached[1]
    key = ec.derive_private_key(value, pyca_curve(curve))
    cache[ref] = (record, key)
    return key


def private_key_of(state: CardState, handle: int) -> ec.EllipticCurvePrivateKey | None:
    """The pyca private key object in slot ``handle`` (the card's own use only), or None."""
    slot = state.keys.get(handle)
    if slot is None:
        return None
    return ec.derive_private_key(slot.private_value, pyca_curve(slot.curve))


def public_key_of(state: CardState, handle: int) -> bytes | None:
    """The DER SubjectPublicKeyInfo of the key in slot ``handle``, or None.

    Taken from ``state.public_keys`` when it names this very slot (the identity applet records
    the keys it generates), else computed from the private key and recorded."""
    slot = state.keys.get(handle)
    if slot is None:
        return None
    cached = state.public_keys.get(handle)
    if cached is not None and cached[0] is slot:
        return cached[1]
    key = private_key_of(state, handle)
    assert key is not None  # noqa: S101 - the slot exists
    der = _spki(key.public_key())
    state.public_keys[handle] = (slot, der)
    return der


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _der_certificates(value: bytes) -> list[bytes]:
    """Split concatenated DER certificates, each parsed by pyca; raise 6A80 when one is bad."""
    out: list[bytes] = []
    offset = 0
    while offset < len(value):
        try:
            # Each certificate is one DER SEQUENCE; its BER-TLV framing tells where it ends.
            tlv, end = decode_tlv(value, offset)
            if tlv.tag != 0x30:
                raise TlvError("a certificate is a SEQUENCE")
            der = value[offset:end]
            x509.load_der_x509_certificate(der)
        except (TlvError, ValueError) as exc:
            raise refuse(SW.INCORRECT_DATA, f"certificate {len(out)} does not parse") from exc
        out.append(der)
        offset = end
    if not out:
        raise refuse(SW.INCORRECT_DATA, "no certificate")
    return out


def _ec_spki(value: bytes, what: str, sizes: tuple[int, ...]) -> bytes:
    """``value`` when it is the DER SPKI of a NIST ECDSA key of one of ``sizes``; 6A80 if not."""
    try:
        pub = serialization.load_der_public_key(value)
    except ValueError as exc:
        raise refuse(SW.INCORRECT_DATA, f"{what} is not a DER SPKI") from exc
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name not in {
        f"secp{size}r1" for size in sizes
    }:
        raise refuse(SW.INCORRECT_DATA, f"{what} must be ECDSA P-{' or P-'.join(map(str, sizes))}")
    return value


def apply_store_data(ctx: CommandContext, objects: list[tuple[int, bytes]]) -> None:
    """Check every object, then apply them all (all or nothing) and persist.

    ``objects`` are (object id, value) with the DGI already mapped (see ``StoreDataBuffer``).
    """
    state = ctx.state
    chain: list[bytes] | None = None
    anchors: list[bytes] | None = None
    firmware_key: bytes | None = None
    applet_signing_key: bytes | None = None
    key_certificates: dict[int, bytes] = {}
    for obj, value in objects:
        if obj == PersonalisationObject.ATTESTATION_CHAIN[0]:
            ctx.require_before(CardLifeCycle.SECURED)
            certs = _der_certificates(value)
            spki = public_key_of(state, ATTESTATION_HANDLE)
            if spki is None:
                raise refuse(SW.CONDITIONS_NOT_SATISFIED, "no attestation key to certify")
            if not x509_tbs.certifies(certs[0], spki):
                raise refuse(SW.INCORRECT_DATA, "chain does not certify the attestation key")
            chain = certs
        elif obj == PersonalisationObject.TRUST_ANCHORS[0]:
            anchors = _der_certificates(value)
        elif obj == PersonalisationObject.FIRMWARE_KEY[0]:
            ctx.require_before(CardLifeCycle.SECURED)
            firmware_key = _ec_spki(value, "firmware key", (256, 384))
        elif obj == PersonalisationObject.APPLET_SIGNING_KEY[0]:
            # Like the firmware key: fixed once SECURED, so that holding the SCP03 keys does not
            # let a host choose which applets the card accepts.
            ctx.require_before(CardLifeCycle.SECURED)
            applet_signing_key = _ec_spki(value, "applet-signing key", (256,))
        elif obj == PersonalisationObject.KEY_CERTIFICATE[0]:
            if len(value) < 2:
                raise refuse(SW.INCORRECT_DATA, "key certificate needs a handle and a certificate")
            handle, certs = value[0], _der_certificates(value[1:])
            spki = public_key_of(state, handle)
            if spki is None:
                raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {handle:02X}")
            if len(certs) != 1 or not x509_tbs.certifies(certs[0], spki):
                raise refuse(SW.INCORRECT_DATA, "certificate does not certify that key")
            key_certificates[handle] = certs[0]
        else:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"unknown personalisation object {obj:04X}")
    if chain is not None:
        state.attestation_chain = chain
    if anchors is not None:
        state.trust_anchors = anchors
    if firmware_key is not None:
        state.boot.verification_key = firmware_key
    if applet_signing_key is not None:
        content_of(state).applet_signing_key = applet_signing_key
    state.key_certificates.update(key_certificates)
    ctx.persist()


@dataclass(kw_only=True)
class StoreDataBuffer:
    """Assembles the blocks of one STORE DATA sequence (GPCS §11.11.2: P2 numbers the blocks)."""

    structure: int = 0
    expected_block: int = 0
    data: bytearray | None = None

    _DGI: ClassVar[int] = 0x08  # P1 b5-b4 = 01
    _BER_TLV: ClassVar[int] = 0x10  # P1 b5-b4 = 10

    def reset(self) -> None:
        self.structure, self.expected_block, self.data = 0, 0, None

    def store_data(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """STORE DATA in a secure session: take one block; after the last, apply the objects."""
        ctx.require_session()
        objects = self.feed(apdu)
        if objects is not None:
            apply_store_data(ctx, objects)
        return Reply()

    def feed(self, apdu: CommandApdu) -> list[tuple[int, bytes]] | None:
        """Take one block; on the last block return the decoded objects (object id, value)."""
        p1 = apdu.p1
        encryption = p1 & 0x60
        structure = p1 & 0x18
        if encryption != 0x00 or structure not in (self._DGI, self._BER_TLV) or p1 & 0x06:
            self.reset()
            raise refuse(SW.INCORRECT_P1P2, f"STORE DATA P1 {p1:02X} not supported")
        if apdu.p2 == 0:
            self.reset()
            self.data = bytearray()
            self.structure = structure
        elif self.data is None or apdu.p2 != self.expected_block or structure != self.structure:
            self.reset()
            raise refuse(SW.INCORRECT_P1P2, f"STORE DATA block {apdu.p2} out of sequence")
        assert self.data is not None  # noqa: S101 - set above for block 0
        if len(self.data) + len(apdu.data) > _MAX_STORE_DATA:
            self.reset()
            raise refuse(SW.NOT_ENOUGH_MEMORY, "STORE DATA sequence too long")
        self.data += apdu.data
        self.expected_block = apdu.p2 + 1
        if not p1 & 0x80:
            if self.expected_block > 0xFF:
                self.reset()
                raise refuse(SW.INCORRECT_P1P2, "STORE DATA block numbers exhausted")
            return None
        raw, structure = bytes(self.data), self.structure
        self.reset()
        try:
            if structure == self._DGI:
                return [(d.dgi, d.value) for d in decode_dgis(raw)]
            by_tag = {tag: dgi for dgi, tag in _OBJECTS}
            out = []
            for t in decode_tlvs(raw):
                if t.tag not in by_tag:
                    raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"unknown tag {t.tag:X}")
                out.append((by_tag[t.tag], t.value))
            return out
        except TlvError as exc:
            raise refuse(SW.INCORRECT_DATA, "STORE DATA content does not parse") from exc


_OBJECTS = (
    PersonalisationObject.ATTESTATION_CHAIN,
    PersonalisationObject.TRUST_ANCHORS,
    PersonalisationObject.FIRMWARE_KEY,
    PersonalisationObject.KEY_CERTIFICATE,
    PersonalisationObject.APPLET_SIGNING_KEY,
)


class PersonalisedApplet(Applet):
    """An applet personalised by STORE DATA (GPCS §11.11): GET DATA is answered in the clear,
    every other command only in a secure session, and any command but STORE DATA ends a STORE
    DATA sequence in progress. Subclasses answer GET DATA and their own instructions."""

    def __init__(self) -> None:
        self._store = StoreDataBuffer()

    def select(self, state: CardState) -> bytes:
        self._store.reset()
        return encode_tlv(0x6F, encode_tlv(0x84, self.aid))

    def deselect(self) -> None:
        self._store.reset()

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.ins != INS_STORE_DATA:
            self._store.reset()
        if apdu.ins == INS_GET_DATA:
            return self._get_data(ctx, apdu)
        ctx.require_proprietary()
        if apdu.ins == INS_STORE_DATA:
            return self._store.store_data(ctx, apdu)
        return self._process_proprietary(ctx, apdu)

    def _get_data(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """GET DATA (ISO 7816-4 §11.4.3): an applet with no data objects answers 6A88."""
        raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no data object {apdu.p1:02X}{apdu.p2:02X}")

    def _process_proprietary(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """An instruction other than GET DATA and STORE DATA, inside the secure session."""
        raise refuse(SW.INS_NOT_SUPPORTED, f"INS {apdu.ins:02X}")


def cplc_data_object(state: CardState) -> bytes:
    return encode_tlv(0x9F7F, state.cplc.encode())


class ManagerApplet(PersonalisedApplet):
    """The Issuer Security Domain."""

    aid = ISD_AID
    secure_channel = True
    selectable_when_locked = True

    def __init__(self) -> None:
        super().__init__()
        self._content = CardContentManager()

    def deselect(self) -> None:
        super().deselect()
        self._content.reset()

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        self._content.end_sequences(apdu.ins, load=INS_LOAD, get_status=INS_GET_STATUS)
        return super().process(ctx, apdu)

    def select(self, state: CardState) -> bytes:
        self._store.reset()
        self._content.reset()
        # GPCS §11.9.3.1: maximum length of the command data field; extended Lc is taken (ISO
        # 7816-4 §5.1), so a STORE DATA sequence can arrive in one command.
        proprietary = encode_tlv(0x9F65, _MAX_COMMAND_DATA.to_bytes(2, "big"))
        return encode_tlv(0x6F, encode_tlv(0x84, self.aid) + encode_tlv(0xA5, proprietary))

    def _process_proprietary(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        ins = apdu.ins
        if ins == INS_GET_STATUS:
            return self._content.get_status(ctx, apdu)
        if ins == INS_INSTALL:
            return self._content.install(ctx, apdu)
        if ins == INS_LOAD:
            return self._content.load(ctx, apdu)
        if ins == INS_DELETE:
            return self._content.delete(ctx, apdu)
        if ins == INS_PUT_KEY:
            return self._put_key(ctx, apdu)
        if ins == INS_SET_STATUS:
            return self._set_status(ctx, apdu)
        raise refuse(SW.INS_NOT_SUPPORTED, f"INS {ins:02X}")

    # --- GET DATA / GET STATUS ----------------------------------------------------------------

    def _get_data(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        tag = (apdu.p1 << 8) | apdu.p2
        if apdu.data:
            raise refuse(SW.WRONG_LENGTH, "GET DATA takes no data here")
        if tag == 0x9F7F:
            return Reply(data=cplc_data_object(ctx.state))
        if tag == 0x00E0:
            # GPCS §11.3.3.1: E0 { C0 { key id, KVN, key type, key length } ... }
            entries = b"".join(
                encode_tlv(0xC0, bytes((key_id, kvn, _AES_KEY_TYPE, len(ks.enc))))
                for kvn, ks in sorted(ctx.state.keysets.items())
                for key_id in range(1, _SCP03_KEY_IDS + 1)
            )
            return Reply(data=encode_tlv(0xE0, entries))
        raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no data object {tag:04X}")

    # --- PUT KEY --------------------------------------------------------------------------------

    def _put_key(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        ctx.require_session()
        if apdu.p2 != 0x81:
            raise refuse(SW.INCORRECT_P1P2, "PUT KEY takes a whole SCP03 key set (P2 81)")
        state = ctx.state
        old_kvn = apdu.p1
        if old_kvn > 0x7F:
            raise refuse(SW.INCORRECT_P1P2, f"KVN {old_kvn:02X}")
        data = apdu.data
        if len(data) < 1:
            raise refuse(SW.WRONG_LENGTH, "PUT KEY needs a new KVN and key data")
        new_kvn = data[0]
        if not 0x01 <= new_kvn <= 0x7F:
            raise refuse(SW.INCORRECT_DATA, f"new KVN {new_kvn:02X}")
        if old_kvn == 0:
            if new_kvn in state.keysets:
                raise refuse(SW.INCORRECT_DATA, f"key set {new_kvn:02X} exists")
            if len(state.keysets) >= MAX_KEYSETS:
                raise refuse(SW.NOT_ENOUGH_MEMORY, "no room for another key set")
        else:
            if old_kvn not in state.keysets:
                raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no key set {old_kvn:02X}")
            if new_kvn != old_kvn and new_kvn in state.keysets:
                raise refuse(SW.INCORRECT_DATA, f"key set {new_kvn:02X} exists")
        keys, kcvs = self._parse_key_blocks(ctx, data[1:])
        if old_kvn:
            del state.keysets[old_kvn]
        # Amd D §6.2.2.1: a replaced key set starts its sequence counter again.
        state.keysets[new_kvn] = KeySet(enc=keys[0], mac=keys[1], dek=keys[2])
        ctx.persist()
        return Reply(data=bytes((new_kvn,)) + b"".join(kcvs))

    def _parse_key_blocks(
        self, ctx: CommandContext, blocks: bytes
    ) -> tuple[list[bytes], list[bytes]]:
        decrypt = ctx.decrypt_sensitive
        if decrypt is None:
            raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "no session Key-DEK")
        keys: list[bytes] = []
        kcvs: list[bytes] = []
        offset = 0
        while offset < len(blocks):
            # Amd D Table 7-10: 88 | L | key length | encrypted key | KCV length | KCV.
            if offset + 3 > len(blocks):
                raise refuse(SW.INCORRECT_DATA, "truncated key data block")
            key_type, length, key_length = blocks[offset : offset + 3]
            if key_type != _AES_KEY_TYPE:
                raise refuse(SW.INCORRECT_DATA, f"key type {key_type:02X} is not AES")
            if key_length not in (16, 24, 32) or length != 1 + key_length + (-key_length % 16):
                raise refuse(SW.INCORRECT_DATA, "AES key length")
            start = offset + 3
            end = offset + 2 + length
            if end + 1 > len(blocks):
                raise refuse(SW.INCORRECT_DATA, "truncated key data block")
            encrypted = blocks[start:end]
            kcv_length = blocks[end]
            kcv = blocks[end + 1 : end + 1 + kcv_length]
            if kcv_length != 3 or len(kcv) != 3:
                raise refuse(SW.INCORRECT_DATA, "AES key check value has 3 bytes")
            try:
                key = decrypt(encrypted)[:key_length]
            except FleetIdError as exc:
                raise refuse(SW.INCORRECT_DATA, "key data does not decrypt") from exc
            if not bytes_equal(aes_kcv(key)[:3], kcv):
                raise refuse(SW.INCORRECT_DATA, f"key check value of key {len(keys) + 1}")
            keys.append(key)
            kcvs.append(kcv)
            offset = end + 1 + kcv_length
        if len(keys) != _SCP03_KEY_IDS or len({len(k) for k in keys}) != 1:
            raise refuse(SW.INCORRECT_DATA, "an SCP03 key set is three AES keys of one length")
        return keys, kcvs

    # --- SET STATUS -----------------------------------------------------------------------------

    def _set_status(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        ctx.require_session()
        if apdu.p1 != 0x80:
            raise refuse(SW.INCORRECT_P1P2, "SET STATUS supports the card life cycle (P1 80)")
        if apdu.data and apdu.data != self.aid:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "SET STATUS for the ISD names its AID")
        try:
            target = CardLifeCycle(apdu.p2)
        except ValueError:
            raise refuse(SW.INCORRECT_DATA, f"life cycle {apdu.p2:02X} is undefined") from None
        state = ctx.state
        if not allowed_transition(state.life_cycle, target):
            raise refuse(
                SW.CONDITIONS_NOT_SATISFIED, f"{state.life_cycle.name} -> {target.name} (GP §5.1.1)"
            )
        state.life_cycle = target
        if target is CardLifeCycle.TERMINATED:
            state.zeroise()
        ctx.persist()
        return Reply()
