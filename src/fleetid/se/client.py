"""The host side of the secure element: a typed API over ``transmit(bytes) -> bytes``.

``SecureElementClient`` takes any transport with ``transmit`` (the in-process emulator, the
PC/SC bridge, a remote card), builds the APDUs of docs/se-apdu.md, follows ``61xx`` with GET
RESPONSE, and, once ``open_secure_channel`` has run, wraps every command and unwraps every
response through the SCP03 ``HostSession``. A status word other than 9000 raises a subclass of
``SecureElementError`` carrying the SW.

``SecureElementSigner`` makes a key handle on the card a ``fleetid.crypto.signer.Signer``: the
host hashes, the card signs the digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import hash_for_curve
from fleetid.errors import (
    ConditionsNotSatisfiedError,
    EncodingError,
    IncorrectDataError,
    IncorrectParametersError,
    ReferencedDataNotFoundError,
    SecureChannelError,
    SecureElementError,
    SecurityStatusError,
    TlvError,
    UnsupportedCommandError,
    WrongLengthError,
)
from fleetid.formats.apdu import (
    EXTENDED_MAX_NC,
    EXTENDED_MAX_NE,
    SHORT_MAX_NC,
    SW,
    CommandApdu,
    parse_command,
    parse_response,
    status_word_meaning,
)
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.tlv import decode_tlv, decode_tlvs, encode_dgi, find_tlv
from fleetid.se.scp03.host import HostSession, KeyProvider, SessionKeySource, put_key_command
from fleetid.se.scp03.secure_messaging import R_MAC, StaticKeys
from fleetid.se.wire import (
    ATTESTATION_HANDLE,
    BOOT_AID,
    CLA_GP,
    IDENTITY_AID,
    INS_ATTEST,
    INS_DELETE_KEY,
    INS_DERIVE_PSEUDONYM,
    INS_ECDH,
    INS_GENERATE_KEY,
    INS_GET_BOOT_STATE,
    INS_GET_DATA,
    INS_GET_PUBLIC_KEY,
    INS_GET_RESPONSE,
    INS_GET_STATUS,
    INS_LIST_KEYS,
    INS_LOAD_BOUND_PACKAGE,
    INS_SELECT,
    INS_SET_STATUS,
    INS_SIGN,
    INS_STORE_DATA,
    ISD_AID,
    POLICY_REQUIRES_SESSION,
    POLICY_USAGE_MASK,
    BootStatus,
    BoundPackageCommand,
    CardLifeCycle,
    Cplc,
    Curve,
    PersonalisationObject,
    decode_boot_state,
    verify_image_commands,
)

__all__ = [
    "KeyInfo",
    "SecureElementClient",
    "SecureElementSigner",
    "Transport",
    "error_for_sw",
]


_SW_MORE_DATA = 0x6310  # GPCS §11.4.3: more data available


@runtime_checkable
class Transport(Protocol):
    """Anything that carries a command APDU to a card and its response back."""

    def transmit(self, command: bytes) -> bytes: ...


_ERRORS: dict[int, type[SecureElementError]] = {
    SW.WRONG_LENGTH: WrongLengthError,
    SW.SECURITY_STATUS_NOT_SATISFIED: SecurityStatusError,
    SW.CONDITIONS_NOT_SATISFIED: ConditionsNotSatisfiedError,
    SW.INCORRECT_DATA: IncorrectDataError,
    SW.FILE_NOT_FOUND: ReferencedDataNotFoundError,
    SW.REFERENCED_DATA_NOT_FOUND: ReferencedDataNotFoundError,
    SW.INCORRECT_P1P2: IncorrectParametersError,
    SW.WRONG_P1P2: IncorrectParametersError,
    SW.INS_NOT_SUPPORTED: UnsupportedCommandError,
    SW.CLA_NOT_SUPPORTED: UnsupportedCommandError,
    SW.LOGICAL_CHANNEL_NOT_SUPPORTED: UnsupportedCommandError,
    SW.CHAINING_NOT_SUPPORTED: UnsupportedCommandError,
    SW.VERIFICATION_FAILED: SecureChannelError,
    SW.SM_DATA_OBJECTS_MISSING: SecureChannelError,
    SW.SM_DATA_OBJECTS_INCORRECT: SecureChannelError,
}

# Status words after which the card has dropped (or aborted) the secure channel session.
_SESSION_ENDING = frozenset(
    {
        SW.SECURITY_STATUS_NOT_SATISFIED,
        SW.SM_DATA_OBJECTS_MISSING,
        SW.SM_DATA_OBJECTS_INCORRECT,
        SW.VERIFICATION_FAILED,
    }
)


def error_for_sw(sw: int, message: str = "") -> SecureElementError:
    """The typed error for a status word, which it also states in words."""
    return _ERRORS.get(sw, SecureElementError)(sw, message, meaning=status_word_meaning(sw))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    """A key slot as the card describes it."""

    handle: int
    curve: Curve
    usage: KeyUsage
    requires_session: bool
    generated_on_card: bool
    public_key: ec.EllipticCurvePublicKey


_CURVES: dict[Curve, ec.EllipticCurve] = {
    Curve.P256: ec.SECP256R1(),
    Curve.P384: ec.SECP384R1(),
    Curve.BRAINPOOL_P256: ec.BrainpoolP256R1(),
    Curve.BRAINPOOL_P384: ec.BrainpoolP384R1(),
}
_SHORT_LE = 256
# Largest plain data per short command so that padding (16) and C-MAC (8) still fit in 255 bytes.
_STORE_DATA_BLOCK = 224
# What secure messaging may add to a data field: ISO 9797-1 M2 padding (up to one AES block) and
# the C-MAC (8 bytes, 16 in S16 mode).
_SM_OVERHEAD = 16 + 16
# GPCS §11.9.3.1 (SELECT response): a security domain's FCI proprietary data 'A5' carries '9F65',
# the maximum length of the data field in a command message; above 255 the card takes extended Lc.
_FCI_TAG, _FCI_PROPRIETARY_TAG, _MAX_COMMAND_DATA_TAG = 0x6F, 0xA5, 0x9F65


def _max_command_data(fci: bytes) -> int | None:
    """'9F65' from an FCI ``6F { ... A5 { 9F65 n } }``, or None when absent or unparsable."""
    try:
        (template,) = decode_tlvs(fci)
        if template.tag != _FCI_TAG:
            return None
        proprietary = find_tlv(template.children(), _FCI_PROPRIETARY_TAG)
        if proprietary is None:
            return None
        limit = find_tlv(proprietary.children(), _MAX_COMMAND_DATA_TAG)
    except (TlvError, ValueError):
        return None
    if limit is None or not 1 <= len(limit.value) <= 2:
        return None
    return int.from_bytes(limit.value, "big")


def _curve_ref(curve: ec.EllipticCurve | Curve) -> Curve:
    if isinstance(curve, Curve):
        return curve
    for ref, known in _CURVES.items():
        if curve.name == known.name:
            return ref
    raise EncodingError(f"the card has no curve {curve.name}")


def _public_key(curve: Curve, point: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[curve], point)
    except ValueError as exc:
        raise EncodingError("the card returned a point that is not on its curve") from exc


class SecureElementClient:
    """Typed host API over a card transport."""

    def __init__(self, transport: Transport, *, max_command_data: int | None = None) -> None:
        """``max_command_data``: the card's limit on a command data field (255: short APDUs only);
        None learns it from a security domain's FCI ('9F65') at SELECT, 255 until then."""
        self._transport = transport
        self._session: HostSession | None = None
        self._fixed_limit = max_command_data is not None
        self._max_command_data = SHORT_MAX_NC if max_command_data is None else max_command_data
        self._fci_read: set[bytes] = set()  # applets whose FCI limit was looked for already

    # --- exchange -----------------------------------------------------------------------------

    @property
    def max_command_data(self) -> int:
        """The longest command data field the card takes (see ``__init__``)."""
        return self._max_command_data

    @property
    def extended_length(self) -> bool:
        """Whether the card takes extended-length APDUs (ISO 7816-4 §5.1)."""
        return self._max_command_data > SHORT_MAX_NC

    @property
    def session(self) -> HostSession | None:
        """The open SCP03 host session, if any."""
        return self._session if self._session is not None and self._session.is_open else None

    def _exchange(self, raw: bytes) -> bytes:
        """Send raw bytes; follow 61xx with GET RESPONSE and 6Cxx with a resend (ISO 7816-4)."""
        response = self._transport.transmit(raw)
        if len(response) < 2:
            raise EncodingError(f"a response APDU has at least 2 bytes, got {len(response)}")
        if response[-2] == 0x6C:
            response = self._transport.transmit(raw[:-1] + response[-1:])
        data = bytearray()
        while len(response) >= 2 and response[-2] == 0x61:
            data += response[:-2]
            response = self._transport.transmit(
                bytes((0x00, INS_GET_RESPONSE, 0x00, 0x00, response[-1]))
            )
        return bytes(data) + response

    def send(self, apdu: CommandApdu) -> bytes:
        """Send ``apdu`` (wrapped when a session is open); return the data or raise on the SW."""
        return self.send_expecting_more(apdu, more_data_sw=None)[0]

    def send_expecting_more(
        self, apdu: CommandApdu, *, more_data_sw: int | None = _SW_MORE_DATA
    ) -> tuple[bytes, bool]:
        """As ``send``, and whether the card answered ``more_data_sw`` (GPCS §11.4.3: GET STATUS
        answers ``6310`` when more entries follow) instead of 9000."""
        session = self.session
        if session is not None and session.security_level & R_MAC and apdu.ne is None:
            # The response carries an R-MAC (Amd D §6.2.5) however short the plain answer: ask for
            # it with Le (ISO 7816-4 §5.1: no Le means no response data) instead of fetching it
            # with GET RESPONSE after 61xx. The C-MAC does not cover Le.
            ne = EXTENDED_MAX_NE if apdu.is_extended else _SHORT_LE
            apdu = CommandApdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data, ne, apdu.extended)
        raw = apdu.encode() if session is None else session.wrap_apdu(apdu)
        response = self._exchange(raw)
        if session is not None:
            response = session.unwrap(response)
        reply = parse_response(response)
        if reply.sw != SW.OK and (more_data_sw is None or reply.sw != more_data_sw):
            if session is not None and reply.sw in _SESSION_ENDING:
                session.close()
            raise error_for_sw(reply.sw, f"INS {apdu.ins:02X}")
        return reply.data, reply.sw != SW.OK

    # --- applets and the secure channel ---------------------------------------------------------

    def select(self, aid: bytes) -> bytes:
        """SELECT by AID; returns the FCI. The card closes any secure channel session."""
        if self._session is not None:
            self._session.close()
            self._session = None
        fci = self.send(CommandApdu(0x00, INS_SELECT, 0x04, 0x00, aid, _SHORT_LE))
        if not self._fixed_limit and aid not in self._fci_read:
            self._fci_read.add(aid)
            limit = _max_command_data(fci)
            if limit is not None:
                self._max_command_data = limit
        return fci

    def select_isd(self) -> bytes:
        return self.select(ISD_AID)

    def select_identity(self) -> bytes:
        return self.select(IDENTITY_AID)

    def open_secure_channel(
        self,
        keys: StaticKeys | SessionKeySource | KeyProvider,
        level: int = 0x33,
        *,
        key_version: int = 0,
        s16: bool = False,
        host_challenge: bytes | None = None,
    ) -> HostSession:
        """INITIALIZE UPDATE + EXTERNAL AUTHENTICATE with the selected applet (Amd D §7.1)."""
        if self._session is not None:
            self._session.close()
            self._session = None
        session = HostSession(keys, level, host_challenge=host_challenge, s16=s16)
        response = self._exchange(session.initialize_update(key_version))
        reply = parse_response(response)
        if reply.sw != SW.OK:
            raise error_for_sw(reply.sw, "INITIALIZE UPDATE")
        external_authenticate = session.external_authenticate(reply.data)
        reply = parse_response(self._exchange(external_authenticate))
        if reply.sw != SW.OK:
            session.close()
            raise error_for_sw(reply.sw, "EXTERNAL AUTHENTICATE")
        self._session = session
        return session

    def close_secure_channel(self) -> None:
        """Forget the host session (the card keeps it until SELECT, reset or a new one)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    # --- card manager ---------------------------------------------------------------------------

    def cplc(self) -> Cplc:
        """GET DATA 9F7F (ISD or identity applet)."""
        data = self.send(CommandApdu(CLA_GP, INS_GET_DATA, 0x9F, 0x7F, ne=_SHORT_LE))
        try:
            tlv, end = decode_tlv(data)
        except TlvError as exc:
            raise EncodingError("CPLC response does not parse") from exc
        if tlv.tag != 0x9F7F or end != len(data):
            raise EncodingError("CPLC response is not a 9F7F data object")
        return Cplc.decode(tlv.value)

    def chip_serial(self) -> bytes:
        """The chip's fleet-unique serial: IC fabricator, type, batch and serial (``Cplc.kdd``)."""
        return self.cplc().kdd

    def key_information(self) -> list[tuple[int, int, int, int]]:
        """GET DATA 00E0: (key id, KVN, key type, key length) per key (GPCS §11.3.3.1)."""
        data = self.send(CommandApdu(CLA_GP, INS_GET_DATA, 0x00, 0xE0, ne=_SHORT_LE))
        try:
            (template,) = decode_tlvs(data)
            entries = template.children()
        except (TlvError, ValueError) as exc:
            raise EncodingError("key information template does not parse") from exc
        return [
            (e.value[0], e.value[1], e.value[2], e.value[3])
            for e in entries
            if e.tag == 0xC0 and len(e.value) >= 4
        ]

    def life_cycle(self) -> CardLifeCycle:
        """GET STATUS of the ISD (GPCS §11.4): the card life cycle state."""
        data = self.send(CommandApdu(CLA_GP, INS_GET_STATUS, 0x80, 0x02, b"\x4f\x00", _SHORT_LE))
        try:
            (entry,) = decode_tlvs(data)
            state = find_tlv(entry.children(), 0x9F70)
        except (TlvError, ValueError) as exc:
            raise EncodingError("GET STATUS response does not parse") from exc
        if state is None or len(state.value) != 1:
            raise EncodingError("GET STATUS response has no life cycle")
        return CardLifeCycle(state.value[0])

    def put_key(self, new_kvn: int, keys: StaticKeys, *, replace_kvn: int = 0) -> None:
        """PUT KEY a whole SCP03 key set, wrapped under the session Key-DEK; checks the KCVs."""
        session = self.session
        if session is None:
            raise SecurityStatusError(SW.SECURITY_STATUS_NOT_SATISFIED, "PUT KEY needs a session")
        components = [session.key_component(k) for k in (keys.enc, keys.mac, keys.dek)]
        self.put_key_components(new_kvn, components, replace_kvn=replace_kvn, kcvs=keys.kcvs())

    def put_key_components(
        self,
        new_kvn: int,
        components: Sequence[bytes],
        *,
        replace_kvn: int = 0,
        kcvs: Sequence[bytes] | None = None,
    ) -> None:
        """PUT KEY with key data blocks made elsewhere (e.g. inside an HSM)."""
        apdu = put_key_command(new_kvn=new_kvn, components=components, old_kvn=replace_kvn)
        data = self.send(parse_command(apdu))
        if not data or data[0] != new_kvn:
            raise EncodingError("PUT KEY response does not name the new key version")
        if kcvs is not None and data[1:] != b"".join(kcvs):
            raise EncodingError("PUT KEY response KCVs do not match the keys sent")

    def store_data(self, objects: Sequence[tuple[int, bytes]]) -> None:
        """STORE DATA DGI-structured objects (GPCS §11.11), split into numbered blocks.

        The blocks are as long as the card takes (``max_command_data`` less what secure messaging
        adds): a card taking extended-length APDUs gets the whole sequence in one command. The
        concatenated blocks, P1 (DGI format, last-block bit) and P2 numbering are the same either
        way, so the card stores the same objects.
        """
        payload = b"".join(encode_dgi(dgi, value) for dgi, value in objects)
        size = (
            min(self._max_command_data, EXTENDED_MAX_NC) - _SM_OVERHEAD
            if self.extended_length
            else _STORE_DATA_BLOCK
        )
        blocks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        if len(blocks) > 256:
            raise EncodingError("STORE DATA payload needs more than 256 blocks")
        for number, block in enumerate(blocks):
            last = number == len(blocks) - 1
            p1 = 0x08 | (0x80 if last else 0x00)  # b5-b4 = 01: DGI format; b8: last block
            self.send(CommandApdu(CLA_GP, INS_STORE_DATA, p1, number, block))

    def install_attestation_chain(self, chain: Sequence[x509.Certificate]) -> None:
        der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in chain)
        self.store_data([(PersonalisationObject.ATTESTATION_CHAIN[0], der)])

    def install_trust_anchors(self, anchors: Sequence[x509.Certificate]) -> None:
        der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in anchors)
        self.store_data([(PersonalisationObject.TRUST_ANCHORS[0], der)])

    def install_firmware_key(self, key: ec.EllipticCurvePublicKey) -> None:
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.store_data([(PersonalisationObject.FIRMWARE_KEY[0], spki)])

    def install_key_certificate(self, handle: int, cert: x509.Certificate) -> None:
        der = cert.public_bytes(serialization.Encoding.DER)
        self.store_data([(PersonalisationObject.KEY_CERTIFICATE[0], bytes((handle,)) + der)])

    def set_status(self, life_cycle: CardLifeCycle) -> None:
        """SET STATUS of the card life cycle (GPCS §11.10), from the ISD under a session."""
        self.send(CommandApdu(CLA_GP, INS_SET_STATUS, 0x80, int(life_cycle)))

    # --- identity applet ------------------------------------------------------------------------

    def generate_key(
        self,
        curve: ec.EllipticCurve | Curve,
        usage: KeyUsage,
        *,
        handle: int = 0,
        require_session: bool = False,
    ) -> KeyInfo:
        """GENERATE KEY into ``handle`` (0: the first free slot); returns the new key's info."""
        ref = _curve_ref(curve)
        policy = int(usage) | (POLICY_REQUIRES_SESSION if require_session else 0)
        data = self.send(
            CommandApdu(CLA_GP, INS_GENERATE_KEY, int(ref), handle, bytes((policy,)), _SHORT_LE)
        )
        if len(data) != 2 + 2 * ref.coordinate_size:
            raise EncodingError("GENERATE KEY response has the wrong length")
        return KeyInfo(
            handle=data[0],
            curve=ref,
            usage=KeyUsage(policy & POLICY_USAGE_MASK),
            requires_session=require_session,
            generated_on_card=True,
            public_key=_public_key(ref, data[1:]),
        )

    def generate_attestation_key(
        self, curve: ec.EllipticCurve | Curve = Curve.P256
    ) -> ec.EllipticCurvePublicKey:
        """Personalisation: the manufacturer attestation key, in its reserved slot."""
        return self.generate_key(curve, KeyUsage.ATTEST, handle=ATTESTATION_HANDLE).public_key

    def get_public_key(self, handle: int) -> KeyInfo:
        data = self.send(CommandApdu(CLA_GP, INS_GET_PUBLIC_KEY, 0x00, handle, ne=_SHORT_LE))
        if len(data) < 4:
            raise EncodingError("GET PUBLIC KEY response is too short")
        try:
            curve = Curve(data[0])
        except ValueError as exc:
            raise EncodingError(f"unknown curve reference {data[0]:02X}") from exc
        return KeyInfo(
            handle=handle,
            curve=curve,
            usage=KeyUsage(data[1] & POLICY_USAGE_MASK),
            requires_session=bool(data[1] & POLICY_REQUIRES_SESSION),
            generated_on_card=bool(data[2]),
            public_key=_public_key(curve, data[3:]),
        )

    def list_keys(self) -> list[tuple[int, Curve, int]]:
        """LIST KEYS: (handle, curve, policy byte) of every occupied slot."""
        data = self.send(CommandApdu(CLA_GP, INS_LIST_KEYS, 0x00, 0x00, ne=_SHORT_LE))
        if len(data) % 3:
            raise EncodingError("LIST KEYS response is not a list of triples")
        return [(data[i], Curve(data[i + 1]), data[i + 2]) for i in range(0, len(data), 3)]

    def sign(self, handle: int, digest: bytes) -> bytes:
        """SIGN a digest with the key in ``handle``; returns the DER ECDSA signature."""
        return self.send(CommandApdu(CLA_GP, INS_SIGN, 0x00, handle, digest, _SHORT_LE))

    def ecdh(self, handle: int, peer: ec.EllipticCurvePublicKey) -> bytes:
        """ECDH with the key in ``handle``; returns the shared secret (x coordinate)."""
        point = peer.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return self.send(CommandApdu(CLA_GP, INS_ECDH, 0x00, handle, point, _SHORT_LE))

    def derive_pseudonym_key(
        self,
        handle: int,
        mode: int,
        expansion_key: bytes,
        i: int,
        j: int,
        *,
        encryption: bool = False,
        values: bytes = b"",
    ) -> KeyInfo:
        """DERIVE PSEUDONYM KEY from the caterpillar key in ``handle``: mode 1 the cocoon key
        (key agreement), 2 an explicit pseudonym key (``values`` = c), 3 an implicit one
        (``values`` = e ‖ r); the new key's info (its private half stays on the card)."""
        data = (
            expansion_key
            + i.to_bytes(4, "big")
            + j.to_bytes(4, "big")
            + bytes((1 if encryption else 0,))
            + values
        )
        answer = self.send(CommandApdu(0x80, INS_DERIVE_PSEUDONYM, mode, handle, data, _SHORT_LE))
        return self.get_public_key(answer[0])

    def load_bound_package(self, handle: int, command: BoundPackageCommand) -> tuple[int, bytes]:
        """LOAD BOUND PACKAGE bound to the one-time key in ``handle``: the card opens it, installs
        the key it carries and deletes the one-time key. Returns the installed key's handle (0:
        the package carried none) and the package's public part; the secret never leaves."""
        ne = EXTENDED_MAX_NE if self.extended_length else _SHORT_LE
        data = self.send(
            CommandApdu(CLA_GP, INS_LOAD_BOUND_PACKAGE, 0x00, handle, command.encode(), ne)
        )
        if not data:
            raise EncodingError("LOAD BOUND PACKAGE response is empty")
        return data[0], data[1:]

    def delete_key(self, handle: int) -> None:
        self.send(CommandApdu(CLA_GP, INS_DELETE_KEY, 0x00, handle))

    def attest(self, handle: int, challenge: bytes) -> x509.Certificate:
        """ATTEST: the key-attestation certificate of ``handle`` bound to ``challenge``."""
        # A certificate is longer than 256 bytes: in one response when the card takes extended Le.
        ne = EXTENDED_MAX_NE if self.extended_length else _SHORT_LE
        der = self.send(CommandApdu(CLA_GP, INS_ATTEST, 0x00, handle, challenge, ne))
        try:
            return x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise EncodingError("ATTEST response is not a DER certificate") from exc

    def _certificates(self, tag: int, data: bytes = b"") -> list[x509.Certificate]:
        raw = self.send(CommandApdu(CLA_GP, INS_GET_DATA, tag >> 8, tag & 0xFF, data, _SHORT_LE))
        out = []
        offset = 0
        try:
            while offset < len(raw):
                _, end = decode_tlv(raw, offset)
                out.append(x509.load_der_x509_certificate(raw[offset:end]))
                offset = end
        except (TlvError, ValueError) as exc:
            raise EncodingError("certificate list does not parse") from exc
        return out

    def attestation_chain(self) -> list[x509.Certificate]:
        """GET DATA DF01: the device attestation certificate first, then its issuers."""
        return self._certificates(PersonalisationObject.ATTESTATION_CHAIN[1])

    def trust_anchors(self) -> list[x509.Certificate]:
        return self._certificates(PersonalisationObject.TRUST_ANCHORS[1])

    def key_certificate(self, handle: int) -> x509.Certificate:
        (cert,) = self._certificates(PersonalisationObject.KEY_CERTIFICATE[1], bytes((handle,)))
        return cert

    # --- boot applet (fleetid.se.applets.boot) -----------------------------------------------

    def verify_image(self, image: bytes, *, confirm: bool = True) -> bytes:
        """Select the boot applet and VERIFY IMAGE; return the card's measurement (image hash).

        ``confirm``: a real boot, the card raises its security counter to the image's. Refusals
        raise typed errors: 6982 not authentic, 6985 rollback, 6A80 malformed, 6A88 no key.
        """
        self.select(BOOT_AID)
        *head, last = verify_image_commands(image, confirm=confirm)
        for command in head:
            self.send(command)
        return self.send(last)

    def boot_state(self) -> BootStatus:
        """Select the boot applet and GET BOOT STATE: counter, firmware KEYHASH, measurement."""
        self.select(BOOT_AID)
        data = self.send(CommandApdu(CLA_GP, INS_GET_BOOT_STATE, 0x00, 0x00, ne=_SHORT_LE))
        return decode_boot_state(data)


class SecureElementSigner:
    """A ``Signer`` over a key handle on the card: hash on the host, SIGN the digest on the card."""

    def __init__(self, client: SecureElementClient, handle: int) -> None:
        self._client = client
        self._handle = handle
        self._public_key = client.get_public_key(handle).public_key
        self._hash = hash_for_curve(self._public_key.curve)

    @property
    def handle(self) -> int:
        return self._handle

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._hash

    def sign(self, data: bytes) -> bytes:
        digest = hashes.Hash(self._hash)
        digest.update(data)
        return self._client.sign(self._handle, digest.finalize())
