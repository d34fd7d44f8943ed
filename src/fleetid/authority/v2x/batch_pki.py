"""The butterfly authorities beside a V2X hierarchy: RA, pseudonym CA and two LAs.

Each is its own operator with its own keys. The Root CA certifies the RA (an EA-type
certificate: it receives encrypted requests) and the pseudonym CA (an AA-type certificate). An
implicit-certificate CA needs its signing key on the 256-bit curve of the pseudonyms (ECQV adds
d_CA to the device's key), which the ETSI CA profile (384-bit CA keys) does not allow: its
certificate is issued here by the root under the same AA permissions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hierarchy import V2xHierarchy
from fleetid.authority.v2x.la import LinkageAuthority
from fleetid.authority.v2x.pseudonym_ca import PeriodSchedule, PseudonymCa
from fleetid.authority.v2x.ra import RegistrationAuthority
from fleetid.authority.v2x.root_ca import validity_period
from fleetid.crypto.pseudonym_keys import ImplicitIssuingKey
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.formats.ieee1609 import Certificate, decode_certificate, sign_certificate, time32
from fleetid.formats.ieee1609.keys import encryption_key_value, verification_key_value
from fleetid.policy.v2x import PSID_CAM, PSID_DENM

__all__ = ["LA1_ID", "LA2_ID", "ButterflyAuthorities", "build_butterfly_authorities"]

LA1_ID, LA2_ID = bytes.fromhex("8E09"), bytes.fromhex("59CE")


@dataclass(frozen=True, kw_only=True)
class ButterflyAuthorities:
    ra: RegistrationAuthority
    ca: PseudonymCa
    la1: LinkageAuthority
    la2: LinkageAuthority
    schedule: PeriodSchedule


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


def build_butterfly_authorities(
    hierarchy: V2xHierarchy,
    *,
    implicit: bool = False,
    schedule: PeriodSchedule | None = None,
    certificates_per_period: int = 20,
) -> ButterflyAuthorities:
    """RA, pseudonym CA (explicit, or implicit with a 256-bit key) and LA1, LA2, wired together.

    The RA asks the hierarchy's EA for the EC of each request; each LA shares its key with
    the CA by a message encrypted to the CA's certificate.
    """
    family = hierarchy.family
    root = hierarchy.root
    schedule = schedule or PeriodSchedule(origin=time32(hierarchy.clock.now()))
    ra_signer = SoftwareSigner(generate_key(family.ca))
    ra_decryption = generate_key(family.end_entity)
    ra_certificate = root.issue_ca(
        role="ea",
        name="fleetid-v2x-ra",
        verification_key=ra_signer.public_key(),
        encryption_key=ra_decryption.public_key(),
    )
    ca_decryption = generate_key(family.end_entity)
    implicit_key = None
    if implicit:
        ca_private = generate_key(family.end_entity)
        ca_signer = SoftwareSigner(ca_private)
        ca_certificate = _implicit_ca_certificate(
            hierarchy, ca_signer, SoftwareSigner(ca_decryption)
        )
        implicit_key = ImplicitIssuingKey(ca_private)
    else:
        ca_signer = SoftwareSigner(generate_key(family.ca))
        ca_certificate = root.issue_ca(
            role="aa",
            name="fleetid-v2x-pseudonym-ca",
            verification_key=ca_signer.public_key(),
            encryption_key=ca_decryption.public_key(),
        )
    ca = PseudonymCa(
        keys=AuthorityKeys(
            signer=ca_signer, decryption_key=ca_decryption, certificate=ca_certificate
        ),
        schedule=schedule,
        implicit_key=implicit_key,
    )
    la1, la2 = LinkageAuthority(la_id=LA1_ID), LinkageAuthority(la_id=LA2_ID)
    la1.pair_with(la2.wrapping_public_key)
    la2.pair_with(la1.wrapping_public_key)
    for la in (la1, la2):
        ca.accept_la_key(la.key_for_ca(ca.certificate))
    ra = RegistrationAuthority(
        keys=AuthorityKeys(
            signer=ra_signer, decryption_key=ra_decryption, certificate=ra_certificate
        ),
        ec_lookup=hierarchy.ea.current_enrolment_credential,
        linkage=(la1, la2),
        schedule=schedule,
        clock=hierarchy.clock,
        certificates_per_period=certificates_per_period,
    )
    return ButterflyAuthorities(ra=ra, ca=ca, la1=la1, la2=la2, schedule=schedule)
