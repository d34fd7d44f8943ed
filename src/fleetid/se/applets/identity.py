"""The identity applet: keys generated on the card, used by handle, attested, never exported.

AID ``F0 46 4C 45 45 54 49 44 01 01`` (``F0`` = an unregistered proprietary RID per ISO/IEC
7816-5 §5.1, then ASCII ``FLEETID``, application ``01``, version ``01``). Class ``80`` (``84``
with secure messaging). Commands (full reference with status words: docs/se-apdu.md):

============== ==== ======== ========== ===============================  =========================
command        INS  P1       P2         data                             response
============== ==== ======== ========== ===============================  =========================
GET DATA       CA   tag hi   tag lo     (DF04: handle)                   9F7F CPLC, DF01 attestation
                                                                         chain, DF02 anchors, DF03
                                                                         firmware key, DF04 key cert
GENERATE KEY   46   curve    handle     policy (1)                       handle ‖ 04 X Y
SIGN           48   00       handle     digest (32/48/64)                DER ECDSA signature
ECDH           4A   00       handle     peer point 04 X Y                shared secret X
GET PUBLIC KEY 4C   00       handle     —                                curve ‖ policy ‖ origin ‖
                                                                         04 X Y
DELETE KEY     4E   00       handle     —                                —
ATTEST         56   00       handle     challenge (0..64)                DER X.509 certificate
LIST KEYS      5C   00       00         —                                (handle curve policy)*
DERIVE PSEUDO. 62   mode     handle     k ‖ i ‖ j ‖ flags ‖ (c | e ‖ r)  handle ‖ 04 X Y
LOAD BOUND PK. 6C   00       handle     80 ctx 81 point 82 nonce 83 ct   handle ‖ public part
INIT UPDATE    50   KVN      00         host challenge                   (SCP03, delegated)
EXT AUTH       82   level    00         cryptogram ‖ C-MAC               (SCP03, delegated)
============== ==== ======== ========== ===============================  =========================

Curves (P1 of GENERATE KEY): ``01`` P-256, ``02`` P-384, ``03`` brainpoolP256r1, ``04``
brainpoolP384r1 (RFC 5639; ETSI TS 103 097 §5 V2X curves). Handles: ``01``-``7F`` for keys the host
asks for (``00`` in GENERATE KEY = the first free one); ``F0`` is the manufacturer attestation
key, generated here during personalisation only (authenticated SCP03 session with C-MAC, card
not yet SECURED). Policy byte: ``01`` sign, ``02`` key agreement, ``04`` attest (the attestation
slot only), ``80`` use only inside an authenticated secure channel session.

No command returns private key material: there is no export, no wrap, no backup. ATTEST issues an
X.509 certificate for a key, signed by the attestation key, that carries the key-properties and
DICE TcbInfo extensions of ``fleetid.formats.attestation``.

DERIVE PSEUDONYM KEY is the card's half of butterfly key expansion (IEEE 1609.2.1 §9.3): from the
caterpillar key in ``handle`` (a 256-bit key generated here) and the expansion key k, period i and
index j (4 bytes each, big-endian), it computes the cocoon key b = a + f_k(i, j) (flags ``01``:
the encryption expansion, 1^32 prefix) and stores a new key in the first free slot: mode ``01``
b itself (key agreement: to open the CA's response), ``02`` b + c (sign: an explicit
certificate's key, c from the response), ``03`` e·b + r (sign: an implicit certificate's key).
It answers the new handle and public point, which the host checks against the certificate.
Neither the caterpillar key nor any key derived from it leaves the card.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtensionOID, NameOID

from fleetid.crypto.butterfly import expand_private
from fleetid.crypto.package_seal import open_sealed
from fleetid.crypto.pseudonym_keys import explicit_private_key, implicit_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats import x509_tbs
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.formats.attestation import (
    KEY_PROPERTIES_OID,
    OID_SHA256,
    TCG_DICE_TCB_INFO_OID,
    Fwid,
    KeyOrigin,
    KeyProperties,
    KeyUsage,
    TcbInfo,
    encode_key_properties,
    encode_tcb_info,
)
from fleetid.formats.tlv import Tlv, decode_tlv, decode_tlvs, encode_tlv
from fleetid.formats.x509_sign import key_usage, probe_public_key
from fleetid.formats.x509_template import TbsTemplate
from fleetid.se.applets.base import CommandContext, Reply, SecurityLevel, refuse
from fleetid.se.applets.manager import (
    PersonalisedApplet,
    cplc_data_object,
    derived_key,
    public_key_of,
    pyca_curve,
)
from fleetid.se.state import (
    ATTESTATION_HANDLE,
    MAX_USER_HANDLE,
    CardLifeCycle,
    CardState,
    Curve,
    KeySlot,
)
from fleetid.se.wire import (
    DERIVE_COCOON,
    DERIVE_EXPLICIT,
    DERIVE_IMPLICIT,
    IDENTITY_AID,
    INS_ATTEST,
    INS_DELETE_KEY,
    INS_DERIVE_PSEUDONYM,
    INS_ECDH,
    INS_GENERATE_KEY,
    INS_GET_PUBLIC_KEY,
    INS_LIST_KEYS,
    INS_LOAD_BOUND_PACKAGE,
    INS_SIGN,
    POLICY_REQUIRES_SESSION,
    BoundPackageCommand,
    decode_package_plaintext,
)

__all__ = ["IdentityApplet"]


_DERIVE_EXTRA = {DERIVE_COCOON: 0, DERIVE_EXPLICIT: 32, DERIVE_IMPLICIT: 64}
_USER_USAGES = int(KeyUsage.SIGN | KeyUsage.KEY_AGREEMENT)
_MAX_CHALLENGE = 64
# ECDSA over a digest the host computed; the digest length names the hash (FIPS 180-4).
_SIGNATURE_ALGORITHMS: dict[int, ec.ECDSA] = {
    32: ec.ECDSA(Prehashed(hashes.SHA256())),
    48: ec.ECDSA(Prehashed(hashes.SHA384())),
    64: ec.ECDSA(Prehashed(hashes.SHA512())),
}
_USAGE_SIGN = int(KeyUsage.SIGN)
_USAGE_KEY_AGREEMENT = int(KeyUsage.KEY_AGREEMENT)
# RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration date".
_NO_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_TCB_VENDOR = "fleetid"
_TCB_MODEL = "fleetid-se-emulator"
_SW_ALREADY_EXISTS = 0x6A89  # ISO 7816-4 Table 6: "file already exists"
_KEY_PROPERTIES = x509.ObjectIdentifier(KEY_PROPERTIES_OID)
_TCB_INFO = x509.ObjectIdentifier(TCG_DICE_TCB_INFO_OID)


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _point_of_spki(spki: bytes, curve: Curve) -> bytes:
    """The uncompressed point ``04 ‖ X ‖ Y`` an EC SubjectPublicKeyInfo ends with: its
    subjectPublicKey BIT STRING holds exactly that (RFC 5480 §2.2), as ``_point`` writes it."""
    point = spki[-(1 + 2 * curve.coordinate_size) :]
    if point[0] != 0x04:
        raise refuse(SW.NO_PRECISE_DIAGNOSIS, "the public key is not an uncompressed point")
    return point


class IdentityApplet(PersonalisedApplet):
    """Key generation, signing, key agreement and attestation by handle."""

    aid = IDENTITY_AID
    secure_channel = True

    def __init__(self) -> None:
        super().__init__()
        # Private key objects (generated, or rebuilt from a slot) are cached per slot value (the
        # KeySlot object itself, which is replaced whenever a slot changes, or on reload), dropped
        # on DELETE and on zeroise. Per card, never logged; the applet has no key-bearing repr.
        self._cache: dict[int, tuple[KeySlot, ec.EllipticCurvePrivateKey]] = {}
        # The attestation certificate (chain[0]) ATTEST names as issuer, parsed once per DER.
        self._issuer: _Issuer | None = None

    def zeroise(self) -> None:
        self._cache.clear()
        self._issuer = None

    def _process_proprietary(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        ins = apdu.ins
        if ins == INS_LIST_KEYS:
            if apdu.p1 or apdu.p2:
                raise refuse(SW.INCORRECT_P1P2, "LIST KEYS takes P1 P2 00 00")
            return Reply(
                data=b"".join(
                    bytes((h, int(s.curve), s.usage)) for h, s in sorted(ctx.state.keys.items())
                )
            )
        handlers = {
            INS_GENERATE_KEY: self._generate_key,
            INS_SIGN: self._sign,
            INS_ECDH: self._ecdh,
            INS_GET_PUBLIC_KEY: self._get_public_key,
            INS_DELETE_KEY: self._delete_key,
            INS_ATTEST: self._attest,
            INS_DERIVE_PSEUDONYM: self._derive_pseudonym,
            INS_LOAD_BOUND_PACKAGE: self._load_bound_package,
        }
        handler = handlers.get(ins)
        if handler is None:
            raise refuse(SW.INS_NOT_SUPPORTED, f"INS {ins:02X}")
        return handler(ctx, apdu)

    # --- helpers ------------------------------------------------------------------------------

    def _private_key(
        self, state: CardState, handle: int
    ) -> tuple[KeySlot, ec.EllipticCurvePrivateKey]:
        slot = state.keys.get(handle)
        if slot is None:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {handle:02X}")
        return slot, derived_key(self._cache, handle, slot, slot.private_value, slot.curve)

    @staticmethod
    def _check_use(ctx: CommandContext, slot: KeySlot, usage: int) -> None:
        if slot.usage & POLICY_REQUIRES_SESSION:
            ctx.require_session(SecurityLevel.C_MAC)
        if not slot.usage & usage:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "key usage policy forbids this operation")

    @staticmethod
    def _user_handle(apdu: CommandApdu) -> int:
        if apdu.p1 != 0x00:
            raise refuse(SW.INCORRECT_P1P2, "P1 must be 00")
        if not (1 <= apdu.p2 <= MAX_USER_HANDLE or apdu.p2 == ATTESTATION_HANDLE):
            raise refuse(SW.INCORRECT_P1P2, f"handle {apdu.p2:02X} is out of range")
        return apdu.p2

    # --- commands -----------------------------------------------------------------------------

    def _get_data(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        state = ctx.state
        tag = (apdu.p1 << 8) | apdu.p2
        if tag == 0xDF04:
            if len(apdu.data) != 1:
                raise refuse(SW.WRONG_LENGTH, "GET DATA DF04 takes a key handle")
            cert = state.key_certificates.get(apdu.data[0])
            if cert is None:
                raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "no certificate for that key")
            return Reply(data=cert)
        if apdu.data:
            raise refuse(SW.WRONG_LENGTH, "GET DATA takes no data here")
        if tag == 0x9F7F:
            return Reply(data=cplc_data_object(state))
        if tag == 0xDF01 and state.attestation_chain:
            return Reply(data=b"".join(state.attestation_chain))
        if tag == 0xDF02 and state.trust_anchors:
            return Reply(data=b"".join(state.trust_anchors))
        if tag == 0xDF03 and state.boot.verification_key is not None:
            return Reply(data=state.boot.verification_key)
        raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no data object {tag:04X}")

    def _generate_key(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        state = ctx.state
        try:
            curve = Curve(apdu.p1)
        except ValueError:
            raise refuse(SW.INCORRECT_P1P2, f"curve {apdu.p1:02X}") from None
        if len(apdu.data) != 1:
            raise refuse(SW.WRONG_LENGTH, "GENERATE KEY takes one policy byte")
        policy = apdu.data[0]
        handle = apdu.p2
        if handle == ATTESTATION_HANDLE:
            if policy != int(KeyUsage.ATTEST):
                raise refuse(SW.INCORRECT_DATA, "the attestation key has policy 04 only")
            ctx.require_session(SecurityLevel.C_MAC)
            ctx.require_before(CardLifeCycle.SECURED)
        else:
            usage = policy & ~POLICY_REQUIRES_SESSION
            if not usage or usage & ~_USER_USAGES:
                raise refuse(SW.INCORRECT_DATA, f"policy {policy:02X}")
            if handle == 0:
                free = [h for h in range(1, MAX_USER_HANDLE + 1) if h not in state.keys]
                if not free:
                    raise refuse(SW.NOT_ENOUGH_MEMORY, "no free key slot")
                handle = free[0]
            elif handle > MAX_USER_HANDLE:
                raise refuse(SW.INCORRECT_P1P2, f"handle {handle:02X} is out of range")
            elif handle in state.keys:
                raise refuse(_SW_ALREADY_EXISTS, f"slot {handle:02X} is in use")
        key = ec.generate_private_key(pyca_curve(curve))
        slot = KeySlot(curve=curve, private_value=key.private_numbers().private_value, usage=policy)
        if handle == ATTESTATION_HANDLE:
            state.attestation_chain = []  # a new attestation key needs a new certificate
        return self._install(ctx, handle, slot, key)

    def _install(
        self, ctx: CommandContext, handle: int, slot: KeySlot, key: ec.EllipticCurvePrivateKey
    ) -> Reply:
        state = ctx.state
        curve = slot.curve
        state.keys[handle] = slot
        state.key_certificates.pop(handle, None)
        # The new key object serves its first uses (GET PUBLIC KEY, ATTEST) without a rebuild,
        # and the ISD checks certificates of it (STORE DATA) against its recorded public key.
        self._cache[handle] = (slot, key)
        spki = _spki(key.public_key())
        state.public_keys[handle] = (slot, spki)
        ctx.persist()
        return Reply(data=bytes((handle,)) + _point_of_spki(spki, curve))

    def _sign(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        handle = self._user_handle(apdu)
        slot, key = self._private_key(ctx.state, handle)
        self._check_use(ctx, slot, _USAGE_SIGN)
        algorithm = _SIGNATURE_ALGORITHMS.get(len(apdu.data))
        if algorithm is None:
            raise refuse(SW.WRONG_LENGTH, "a digest has 32, 48 or 64 bytes")
        return Reply(data=key.sign(apdu.data, algorithm))

    def _ecdh(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        handle = self._user_handle(apdu)
        slot, key = self._private_key(ctx.state, handle)
        self._check_use(ctx, slot, _USAGE_KEY_AGREEMENT)
        if len(apdu.data) != 1 + 2 * slot.curve.coordinate_size or apdu.data[0] != 0x04:
            raise refuse(SW.INCORRECT_DATA, "peer point is not an uncompressed point of the curve")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, apdu.data)
        except ValueError:
            raise refuse(SW.INCORRECT_DATA, "peer point is not on the curve") from None
        return Reply(data=key.exchange(ec.ECDH(), peer))

    def _derive_pseudonym(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        mode, handle = apdu.p1, apdu.p2
        if mode not in _DERIVE_EXTRA or not 1 <= handle <= MAX_USER_HANDLE:
            raise refuse(SW.INCORRECT_P1P2, f"mode {mode:02X} or handle {handle:02X}")
        slot, _ = self._private_key(ctx.state, handle)
        self._check_use(ctx, slot, _USER_USAGES)
        if slot.curve not in (Curve.P256, Curve.BRAINPOOL_P256):
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "butterfly keys are on 256-bit curves")
        data = apdu.data
        if len(data) != 25 + _DERIVE_EXTRA[mode] or data[24] & ~0x01:
            raise refuse(SW.WRONG_LENGTH, "k (16), i (4), j (4), flags (1) and the mode's values")
        curve = pyca_curve(slot.curve)
        i, j = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        try:
            cocoon = expand_private(
                slot.private_value, data[:16], i, j, encryption=bool(data[24]), curve=curve
            )
            if mode == DERIVE_COCOON:
                value, usage = cocoon, _USAGE_KEY_AGREEMENT
            elif mode == DERIVE_EXPLICIT:
                c = int.from_bytes(data[25:57], "big")
                value, usage = explicit_private_key(cocoon, c, curve), _USAGE_SIGN
            else:
                e, r = int.from_bytes(data[25:57], "big"), int.from_bytes(data[57:89], "big")
                value, usage = implicit_private_key(e, cocoon, r, curve), _USAGE_SIGN
        except EncodingError:
            raise refuse(SW.INCORRECT_DATA, "the values give no key") from None
        free = [h for h in range(1, MAX_USER_HANDLE + 1) if h not in ctx.state.keys]
        if not free:
            raise refuse(SW.NOT_ENOUGH_MEMORY, "no free key slot")
        # A derived key keeps its caterpillar's session requirement.
        usage |= slot.usage & POLICY_REQUIRES_SESSION
        derived = KeySlot(curve=slot.curve, private_value=value, usage=usage)
        return self._install(ctx, free[0], derived, ec.derive_private_key(value, curve))

    def _load_bound_package(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """LOAD BOUND PACKAGE: open a package with the one-time key in P2, install the
        key it carries, delete the one-time key; answer the new handle (00: none) ‖ public part.

        Refusals: 6A86 P1/P2, 6A88 no such key, 6985 not a key-agreement key (or the carried
        key's policy is not a user policy), 6A80 malformed data, a point off the curve, or a
        package that does not open under the key (another device's, or altered), 6A84 no free
        slot. Nothing changes on a refusal: the one-time key stays for a retry.
        """
        handle = self._user_handle(apdu)
        slot, key = self._private_key(ctx.state, handle)
        self._check_use(ctx, slot, _USAGE_KEY_AGREEMENT)
        try:
            command = BoundPackageCommand.decode(apdu.data)
            peer = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, command.point)
        except (EncodingError, ValueError):
            raise refuse(SW.INCORRECT_DATA, "not a bound package for this key's curve") from None
        try:
            plaintext = open_sealed(
                key.exchange(ec.ECDH(), peer), command.nonce, command.ciphertext, command.context
            )
            secret, public = decode_package_plaintext(plaintext)
        except (VerificationError, EncodingError):
            raise refuse(SW.INCORRECT_DATA, "the package does not open under this key") from None
        new_handle = 0
        if secret is not None:
            usage = secret.policy & ~POLICY_REQUIRES_SESSION
            if not usage or usage & ~_USER_USAGES:
                raise refuse(SW.CONDITIONS_NOT_SATISFIED, f"policy {secret.policy:02X}")
            free = [h for h in range(1, MAX_USER_HANDLE + 1) if h not in ctx.state.keys]
            if not free:
                raise refuse(SW.NOT_ENOUGH_MEMORY, "no free key slot")
            curve = pyca_curve(secret.curve)
            try:
                installed = ec.derive_private_key(int.from_bytes(secret.scalar, "big"), curve)
            except ValueError:
                raise refuse(SW.INCORRECT_DATA, "the package key is not a key") from None
            value = installed.private_numbers().private_value
            imported = KeySlot(
                curve=secret.curve,
                private_value=value,
                usage=secret.policy,
                generated_on_card=False,
            )
            self._install(ctx, free[0], imported, installed)
            new_handle = free[0]
        del ctx.state.keys[handle]  # one-time: a package bound to it opens once
        ctx.state.key_certificates.pop(handle, None)
        self._cache.pop(handle, None)
        ctx.persist()
        return Reply(data=bytes((new_handle,)) + public)

    def _get_public_key(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        handle = self._user_handle(apdu)
        slot, key = self._private_key(ctx.state, handle)
        origin = 0x01 if slot.generated_on_card else 0x00
        return Reply(data=bytes((int(slot.curve), slot.usage, origin)) + _point(key.public_key()))

    def _delete_key(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        handle = self._user_handle(apdu)
        if handle == ATTESTATION_HANDLE:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "the attestation key cannot be deleted")
        state = ctx.state
        slot = state.keys.get(handle)
        if slot is None:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {handle:02X}")
        if slot.usage & POLICY_REQUIRES_SESSION:
            ctx.require_session(SecurityLevel.C_MAC)
        del state.keys[handle]
        state.key_certificates.pop(handle, None)
        self._cache.pop(handle, None)
        ctx.persist()
        return Reply()

    def _attest(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        handle = self._user_handle(apdu)
        if handle == ATTESTATION_HANDLE:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "the attestation key is not attested here")
        state = ctx.state
        spki = public_key_of(state, handle)  # the key attested, as GENERATE recorded it
        if spki is None:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {handle:02X}")
        slot = state.keys[handle]
        if len(apdu.data) > _MAX_CHALLENGE:
            raise refuse(SW.WRONG_LENGTH, f"challenge longer than {_MAX_CHALLENGE} bytes")
        if ATTESTATION_HANDLE not in state.keys or not state.attestation_chain:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "card has no certified attestation key")
        attestation_slot, attestation_key = self._private_key(state, ATTESTATION_HANDLE)
        issuer = self._issuer
        issuer_der = state.attestation_chain[0]
        if issuer is None or issuer.der != issuer_der or issuer.slot is not attestation_slot:
            issuer = self._issuer = _Issuer.of(issuer_der, attestation_slot, attestation_key)
        fields = _AttestationFields.of(
            state=state,
            handle=handle,
            slot=slot,
            subject_spki=spki,
            challenge=apdu.data,
            issuer=issuer,
            serial=int.from_bytes(ctx.random(16), "big") >> 1 | 1,
        )
        signer = SoftwareSigner(attestation_key)
        template = _attestation_template(attestation_slot.curve)
        certificate = template.certificate(fields, signer)
        return Reply(data=certificate.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Issuer:
    """What ATTEST takes from the card's attestation certificate (``der``, certifying the key in
    ``slot``): its subject (the DER as it stands), its notBefore and the authority key identifier
    naming it (RFC 5280 §4.2.1.1: its SKI, else the key's own identifier)."""

    der: bytes
    slot: KeySlot
    certificate: x509.Certificate
    not_before: datetime
    key_identifier: bytes
    name_der: bytes
    aki_der: bytes  # the whole Extension

    @classmethod
    def of(cls, der: bytes, slot: KeySlot, key: ec.EllipticCurvePrivateKey) -> _Issuer:
        certificate = x509.load_der_x509_certificate(der)
        # The subject and the extensions are read from the DER, so that pyca does not build
        # Name and extension objects only to have them encoded again.
        fields = x509_tbs.tbs_fields(der)
        key_identifier = _subject_key_identifier(fields[7:])
        if key_identifier is None:
            key_identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
        # AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
        aki = encode_tlv(0x30, encode_tlv(0x80, key_identifier))
        return cls(
            der=der,
            slot=slot,
            certificate=certificate,
            not_before=certificate.not_valid_before_utc,
            key_identifier=key_identifier,
            name_der=fields[5].encode(),
            aki_der=x509_tbs.extension(_OID_AKI, aki),
        )

    def aki(self) -> x509.AuthorityKeyIdentifier:
        """The extension as pyca builds it (the reference the DER above is checked against)."""
        return x509.AuthorityKeyIdentifier(
            key_identifier=self.key_identifier,
            authority_cert_issuer=None,
            authority_cert_serial_number=None,
        )


def _subject_key_identifier(fields: list[Tlv]) -> bytes | None:
    """The keyIdentifier of a subjectKeyIdentifier extension among the TBS's trailing fields."""
    for field_ in fields:
        if field_.tag != 0xA3:
            continue
        for ext in decode_tlvs(decode_tlv(field_.value)[0].value):
            parts = decode_tlvs(ext.value)  # extnID, [critical], extnValue
            if parts[0].encode() == _OID_SKI:
                return decode_tlv(parts[-1].value)[0].value
    return None


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


_NOT_CA = x509.BasicConstraints(ca=False, path_length=None)


@lru_cache(maxsize=8)
def _key_usage(usage: KeyUsage) -> x509.KeyUsage:
    return key_usage(
        digital_signature=bool(usage & KeyUsage.SIGN),
        key_agreement=bool(usage & KeyUsage.KEY_AGREEMENT),
    )


@lru_cache(maxsize=32)
def _tcb_info_der(tcb: TcbInfo) -> bytes:
    """``encode_tcb_info``, once per distinct value (the boot state changes with firmware only)."""
    return encode_tcb_info(tcb)


@dataclass(frozen=True, slots=True, kw_only=True)
class _AttestationFields:
    """What an ATTEST certificate says (the extensions in DER); ``builder`` is pyca's encoding of
    it, the reference the template (``_AttestationTemplate``) writes alike from DER pieces."""

    handle: int
    chip_serial: bytes
    subject_spki: bytes  # DER SubjectPublicKeyInfo of the attested key
    issuer: _Issuer
    serial: int
    usage: KeyUsage
    properties: bytes
    tcb_info: bytes

    @classmethod
    def of(
        cls,
        *,
        state: CardState,
        handle: int,
        slot: KeySlot,
        subject_spki: bytes,
        challenge: bytes,
        issuer: _Issuer,
        serial: int,
    ) -> _AttestationFields:
        usage = KeyUsage(slot.usage & 0x07)
        props = KeyProperties(
            chip_serial=state.chip_serial,
            key_handle=handle,
            curve_oid=slot.curve.oid,
            usage=usage,
            challenge=challenge,
            origin=KeyOrigin.GENERATED_ON_CARD if slot.generated_on_card else KeyOrigin.IMPORTED,
            exportable=False,
            requires_secure_channel=bool(slot.usage & POLICY_REQUIRES_SESSION),
        )
        boot = state.boot
        tcb = TcbInfo(
            vendor=_TCB_VENDOR,
            model=_TCB_MODEL,
            version=boot.image_version,
            svn=boot.security_counter,
            fwids=(Fwid(hash_alg=OID_SHA256, digest=boot.measurement),) if boot.measurement else (),
        )
        return cls(
            handle=handle,
            chip_serial=state.chip_serial,
            subject_spki=subject_spki,
            issuer=issuer,
            serial=serial,
            usage=usage,
            properties=encode_key_properties(props),
            tcb_info=_tcb_info_der(tcb),
        )

    def builder(self) -> x509.CertificateBuilder:
        """The certificate as pyca builds it."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.SERIAL_NUMBER, self.chip_serial.hex().upper()),
                x509.NameAttribute(NameOID.COMMON_NAME, f"fleetid SE key {self.handle:02X}"),
            ]
        )
        key = serialization.load_der_public_key(self.subject_spki)
        if not isinstance(key, ec.EllipticCurvePublicKey):  # pragma: no cover - cards hold EC
            raise EncodingError("an attested key is an EC key")
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.issuer.certificate.subject)
            .public_key(key)
            .serial_number(self.serial)
            .not_valid_before(self.issuer.not_before)
            .not_valid_after(_NO_EXPIRY)
            .add_extension(_NOT_CA, critical=True)
            .add_extension(_key_usage(self.usage), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(self.issuer.aki(), critical=False)
            .add_extension(x509.UnrecognizedExtension(_KEY_PROPERTIES, self.properties), False)
            .add_extension(x509.UnrecognizedExtension(_TCB_INFO, self.tcb_info), False)
        )


class _AttestationTemplate(TbsTemplate[_AttestationFields]):
    """ATTEST certificates on the one TBS-template mechanism (``fleetid.formats.x509_template``).

    Every card is the issuer of its own attestations, so one template serves every card whose
    attestation key is on one curve (the parts name the signature algorithm, not the key): its
    probe and check are made under a stand-in issuer, and each certificate takes its issuer's
    name, notBefore and key identifier from the fields and is signed by the card's own key.
    """

    what = "ATTEST certificate"

    def __init__(self, issuer: _Issuer, key: ec.EllipticCurvePrivateKey) -> None:
        self._issuer = issuer
        self._probe_spki = _spki(key.public_key())
        super().__init__(SoftwareSigner(key))

    def builder(self, values: _AttestationFields) -> x509.CertificateBuilder:
        return values.builder()

    def _sample(self, spki: bytes, handle: int, serial: int, usage: KeyUsage) -> _AttestationFields:
        return _AttestationFields(
            handle=handle,
            chip_serial=bytes(range(handle, handle + 8)),
            subject_spki=spki,
            issuer=self._issuer,
            serial=serial,
            usage=usage,
            properties=bytes((0x30, 1, handle)),
            tcb_info=bytes((0x30, 2, 0x02, handle)),
        )

    def probe(self) -> _AttestationFields:
        return self._sample(self._probe_spki, 0x01, 1, KeyUsage.SIGN)

    def check(self) -> _AttestationFields:
        other = _spki(probe_public_key())
        return self._sample(other, 0x7E, (1 << 126) + 3, KeyUsage.SIGN | KeyUsage.KEY_AGREEMENT)

    def tbs(self, values: _AttestationFields) -> bytes:
        """The TBSCertificate (RFC 5280 §4.1) pyca writes for ``values.builder()``."""
        subject = x509_tbs.rdn(
            _OID_SERIAL_NUMBER, 0x13, values.chip_serial.hex().upper().encode()
        ) + x509_tbs.rdn(_OID_COMMON_NAME, 0x0C, b"fleetid SE key %02X" % values.handle)
        extensions = (
            _NOT_CA_DER
            + _key_usage_der(values.usage)
            + x509_tbs.subject_key_identifier(values.subject_spki)
            + values.issuer.aki_der
            + x509_tbs.extension(_KEY_PROPERTIES_DER, values.properties)
            + x509_tbs.extension(_TCB_INFO_DER, values.tcb_info)
        )
        issuer = values.issuer
        return encode_tlv(
            0x30,
            self.parts.version
            + x509_tbs.integer(values.serial)
            + self.parts.algorithm
            + issuer.name_der
            + encode_tlv(0x30, x509_tbs.time(issuer.not_before) + _NO_EXPIRY_DER)
            + encode_tlv(0x30, subject)
            + values.subject_spki
            + encode_tlv(0xA3, encode_tlv(0x30, extensions)),
        )


@lru_cache(maxsize=len(Curve))
def _attestation_template(curve: Curve) -> _AttestationTemplate:
    """The ATTEST template for attestation keys on ``curve``, made and checked once per process
    under a stand-in issuer (a throwaway key certifying itself)."""
    key = ec.generate_private_key(pyca_curve(curve))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetid ATTEST template probe")])
    now = datetime(2030, 1, 1, tzinfo=UTC)
    stand_in = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now)
        .sign(key, hashes.SHA384() if key.curve.key_size >= 384 else hashes.SHA256())
    )
    slot = KeySlot(curve=curve, private_value=key.private_numbers().private_value, usage=0)
    issuer = _Issuer.of(stand_in.public_bytes(serialization.Encoding.DER), slot, key)
    return _AttestationTemplate(issuer, key)


_NO_EXPIRY_DER = x509_tbs.time(_NO_EXPIRY)
_OID_SERIAL_NUMBER = x509_tbs.oid(NameOID.SERIAL_NUMBER)
_OID_COMMON_NAME = x509_tbs.oid(NameOID.COMMON_NAME)
_OID_SKI = x509_tbs.oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
_OID_AKI = x509_tbs.oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
_KEY_PROPERTIES_DER = x509_tbs.oid(_KEY_PROPERTIES)
_TCB_INFO_DER = x509_tbs.oid(_TCB_INFO)
_NOT_CA_DER = x509_tbs.extension(
    x509_tbs.oid(ExtensionOID.BASIC_CONSTRAINTS), _NOT_CA.public_bytes(), critical=True
)


@lru_cache(maxsize=8)
def _key_usage_der(usage: KeyUsage) -> bytes:
    return x509_tbs.extension(
        x509_tbs.oid(ExtensionOID.KEY_USAGE), _key_usage(usage).public_bytes(), critical=True
    )
