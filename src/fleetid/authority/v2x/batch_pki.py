"""The butterfly authorities beside a V2X hierarchy: RA, pseudonym CA and two LAs.

Each is its own operator with its own keys. The Root CA certifies the RA (an EA-type
certificate: it receives encrypted requests) and the pseudonym CA (an AA-type certificate). An
implicit-certificate CA needs its signing key on the 256-bit curve of the pseudonyms (ECQV adds
d_CA to the device's key), which the ETSI CA profile (384-bit CA keys) does not allow: its
certificate is issued here by the root under the same AA permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hierarchy import V2xHierarchy
from fleetid.authority.v2x.hops import HOP_PSID
from fleetid.authority.v2x.la import LinkageAuthority
from fleetid.authority.v2x.pseudonym_ca import PeriodSchedule, PseudonymCa
from fleetid.authority.v2x.ra import (
    DEFAULT_DELIVERED_RETENTION,
    EcLookup,
    LinkageService,
    RegistrationAuthority,
)
from fleetid.authority.v2x.root_ca import validity_period
from fleetid.clock import Clock
from fleetid.crypto.pseudonym_keys import ImplicitIssuingKey
from fleetid.crypto.sealed_state import StateSealer
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.crypto.v2xkeys import PrivateKey, generate_key
from fleetid.errors import EncodingError
from fleetid.formats.ieee1609 import Certificate, decode_certificate, sign_certificate, time32
from fleetid.formats.ieee1609.keys import encryption_key_value, verification_key_value
from fleetid.policy.v2x import PSID_CAM, PSID_DENM
from fleetid.store.butterfly_state import RaRecords
from fleetid.store.engine import Engine

__all__ = [
    "LA1_ID",
    "LA2_ID",
    "ButterflyAuthorities",
    "ButterflyEngines",
    "ButterflyKeys",
    "assemble_butterfly",
    "build_butterfly_authorities",
    "issue_hop_authority",
    "new_butterfly_keys",
]

LA1_ID, LA2_ID = bytes.fromhex("8E09"), bytes.fromhex("59CE")


@dataclass(frozen=True, kw_only=True)
class ButterflyAuthorities:
    ra: RegistrationAuthority
    ca: PseudonymCa
    la1: LinkageAuthority
    la2: LinkageAuthority
    schedule: PeriodSchedule
    # The LAs' signing keys and 1609.2 certificates (their answers on the hops are signed);
    # None for authorities made before the LAs were certified.
    la_keys: tuple[AuthorityKeys, AuthorityKeys] | None = None


def _implicit_ca_certificate(
    hierarchy: V2xHierarchy, signer: SoftwareSigner, encryption: SoftwareSigner
) -> Certificate:
    root = hierarchy.root
    issue = {
        "subjectPermissions": (
            "explicit",
            [{"psid": psid, "sspRange": ("all", None)} for psid in (PSID_CAM, PSID_DENM)],
        ),
        "minChainLength": 1,
        "chainLengthRange": 0,
        "eeType": (b"\x80", 8),
    }
    tbs = {
        "id": ("name", "fleetid-v2x-pseudonym-ca"),
        "cracaId": root.certificate.hashed_id8[-3:],
        "crlSeries": 0,
        "validityPeriod": validity_period(hierarchy.clock.now(), timedelta(days=3 * 365)),
        "appPermissions": [{"psid": 623}],
        "certIssuePermissions": [issue],
        "encryptionKey": encryption_key_value(encryption.public_key()),
        "verifyKeyIndicator": ("verificationKey", verification_key_value(signer.public_key())),
    }
    issued = sign_certificate(tbs, root.signer, issuer_certificate=root.certificate.encoded)
    return decode_certificate(issued.encoded)


@dataclass(frozen=True, kw_only=True)
class ButterflyKeys:
    """The four authorities' keys and certificates (what a key store and the Root CA hold)."""

    ra: AuthorityKeys
    ca: AuthorityKeys
    implicit_key: ImplicitIssuingKey | None = field(default=None, repr=False)
    la1_wrapping: PrivateKey = field(repr=False)
    la2_wrapping: PrivateKey = field(repr=False)
    # Each LA's signing key and certificate (its wrapping key as the encryption key).
    la_keys: tuple[AuthorityKeys, AuthorityKeys] | None = None


@dataclass(frozen=True, kw_only=True)
class ButterflyEngines:
    """Each authority's own database (separate operators, separate stores)."""

    ra: Engine
    ca: Engine
    la1: Engine
    la2: Engine


def issue_hop_authority(
    hierarchy: V2xHierarchy, *, name: str, signer: Signer, decryption_key: PrivateKey
) -> AuthorityKeys:
    """Keys of an authority that signs hop messages (a linkage or misbehaviour authority),
    with a certificate from the hierarchy's root: app permission psid 35 (SecurityMgmtPsid),
    no issue permissions, ``decryption_key``'s public key as its encryption key."""
    root = hierarchy.root
    tbs = {
        "id": ("name", name),
        "cracaId": root.certificate.hashed_id8[-3:],
        "crlSeries": 0,
        "validityPeriod": validity_period(hierarchy.clock.now(), timedelta(days=3 * 365)),
        "appPermissions": [{"psid": HOP_PSID}],
        "encryptionKey": encryption_key_value(decryption_key.public_key()),
        "verifyKeyIndicator": ("verificationKey", verification_key_value(signer.public_key())),
    }
    issued = sign_certificate(tbs, root.signer, issuer_certificate=root.certificate.encoded)
    return AuthorityKeys(
        signer=signer, decryption_key=decryption_key, certificate=decode_certificate(issued.encoded)
    )


def new_butterfly_keys(
    hierarchy: V2xHierarchy,
    *,
    implicit: bool = False,
    key_factory: Callable[[str, str], PrivateKey] = lambda _role, curve: generate_key(curve),
) -> ButterflyKeys:
    """Keys for the RA, the pseudonym CA (explicit, or implicit with a 256-bit key) and both
    LAs, the RA's and CA's certificates issued by the hierarchy's root. ``key_factory(role,
    curve)`` makes each key (the on-disk store keeps what it makes)."""
    family = hierarchy.family
    root = hierarchy.root
    ra = root.issue_authority(
        role="ea",
        name="fleetid-v2x-ra",
        signer=SoftwareSigner(key_factory("ra", family.ca)),
        decryption_key=key_factory("ra-enc", family.end_entity),
    )
    ca_decryption = key_factory("pca-enc", family.end_entity)
    implicit_key = None
    if implicit:
        ca_private = key_factory("pca", family.end_entity)
        ca_signer = SoftwareSigner(ca_private)
        ca = AuthorityKeys(
            signer=ca_signer,
            decryption_key=ca_decryption,
            certificate=_implicit_ca_certificate(
                hierarchy, ca_signer, SoftwareSigner(ca_decryption)
            ),
        )
        implicit_key = ImplicitIssuingKey(ca_private)
    else:
        ca = root.issue_authority(
            role="aa",
            name="fleetid-v2x-pseudonym-ca",
            signer=SoftwareSigner(key_factory("pca", family.ca)),
            decryption_key=ca_decryption,
        )
    wrapping = (key_factory("la1", "nistP256"), key_factory("la2", "nistP256"))
    la_keys = tuple(
        issue_hop_authority(
            hierarchy,
            name=f"fleetid-v2x-{role}",
            signer=SoftwareSigner(key_factory(f"{role}-sign", family.ca)),
            decryption_key=key,
        )
        for role, key in zip(("la1", "la2"), wrapping, strict=True)
    )
    return ButterflyKeys(
        ra=ra,
        ca=ca,
        implicit_key=implicit_key,
        la1_wrapping=wrapping[0],
        la2_wrapping=wrapping[1],
        la_keys=(la_keys[0], la_keys[1]),
    )


def assemble_butterfly(
    keys: ButterflyKeys,
    *,
    ec_lookup: EcLookup,
    clock: Clock,
    schedule: PeriodSchedule,
    engines: ButterflyEngines | None = None,
    certificates_per_period: int = 20,
    linkage: tuple[LinkageService, LinkageService] | None = None,
    delivered_retention: timedelta = DEFAULT_DELIVERED_RETENTION,
) -> ButterflyAuthorities:
    """RA, pseudonym CA and LA1, LA2 from their keys, wired together; with ``engines``, each
    keeps its state in its database and picks up where it was (the LAs pair and share their
    keys with the CA only the first time). ``linkage`` replaces the RA's in-process LAs (for
    instance by clients of their HTTP routes). The RA keeps a downloaded batch for
    ``delivered_retention`` after its first download."""
    sealer = None
    if engines is not None:
        if not isinstance(keys.ca.decryption_key, PrivateKey):
            raise EncodingError("a CA with a database seals its state under a software key")
        sealer = StateSealer.for_key(keys.ca.decryption_key)
    ca = PseudonymCa(
        keys=keys.ca,
        schedule=schedule,
        implicit_key=keys.implicit_key,
        engine=None if engines is None else engines.ca,
        sealer=sealer,
    )
    la1, la2 = (
        LinkageAuthority(
            la_id=la_id,
            wrapping_key=wrapping,
            engine=None if engines is None else (engines.la1, engines.la2)[index],
        )
        for index, (la_id, wrapping) in enumerate(
            ((LA1_ID, keys.la1_wrapping), (LA2_ID, keys.la2_wrapping))
        )
    )
    for la, other in ((la1, la2), (la2, la1)):
        if not la.paired:
            la.pair_with(other.wrapping_public_key)
        if not ca.knows_la(la.la_id):
            ca.accept_la_key(la.key_for_ca(ca.certificate))
    ra = RegistrationAuthority(
        keys=keys.ra,
        ec_lookup=ec_lookup,
        linkage=linkage or (la1, la2),
        schedule=schedule,
        clock=clock,
        certificates_per_period=certificates_per_period,
        records=None if engines is None else RaRecords(engines.ra),
        delivered_retention=delivered_retention,
    )
    return ButterflyAuthorities(
        ra=ra, ca=ca, la1=la1, la2=la2, schedule=schedule, la_keys=keys.la_keys
    )


def build_butterfly_authorities(
    hierarchy: V2xHierarchy,
    *,
    implicit: bool = False,
    schedule: PeriodSchedule | None = None,
    certificates_per_period: int = 20,
) -> ButterflyAuthorities:
    """RA, pseudonym CA (explicit, or implicit with a 256-bit key) and LA1, LA2, wired together,
    in memory.

    The RA asks the hierarchy's EA for the EC of each request; each LA shares its key with
    the CA by a message encrypted to the CA's certificate.
    """
    return assemble_butterfly(
        new_butterfly_keys(hierarchy, implicit=implicit),
        ec_lookup=hierarchy.ea.current_enrolment_credential,
        clock=hierarchy.clock,
        schedule=schedule or PeriodSchedule(origin=time32(hierarchy.clock.now())),
        certificates_per_period=certificates_per_period,
    )
