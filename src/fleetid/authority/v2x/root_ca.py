"""The V2X Root CA (ETSI TS 102 941 §5.1, §6.3): its certificate, the EA/AA certificates it
signs, the CTL and CRL it publishes, and the link certificate of a root rollover.

Curves follow ETSI TS 103 097 §7: CA keys are 384-bit (NIST P-384 or brainpoolP384r1, hashed
with SHA-384), end entities and every ECIES key are 256-bit on the same family. The Root CA
signs with a ``Signer``, so its key can live in an HSM.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.clock import Clock
from fleetid.crypto.signer import Signer
from fleetid.crypto.v2xkeys import PrivateKey, PublicKey, curve_name_of
from fleetid.errors import PolicyError
from fleetid.formats.etsi102941 import PSID_CERTIFICATE_REQUEST, sign_pki_data
from fleetid.formats.ieee1609 import Certificate, decode, sign_certificate, time32, time64
from fleetid.formats.ieee1609.keys import encryption_key_value, verification_key_value
from fleetid.policy.v2x import PSID_CAM, PSID_CRL, PSID_CTL, PSID_DENM, CurveFamily

__all__ = [
    "RootCa",
    "validity_period",
]

_EE_APP = (b"\x80", 8)  # EndEntityType {app}
_EE_ENROL = (b"\x40", 8)  # EndEntityType {enrol}
_EE_BOTH = (b"\xc0", 8)


def validity_period(start: datetime, duration: timedelta) -> dict[str, Any]:
    """A ValidityPeriod from ``start`` for ``duration`` (in hours, or years when whole)."""
    hours = int(duration.total_seconds() // 3600)
    if hours <= 0:
        minutes = int(duration.total_seconds() // 60)
        return {"start": time32(start), "duration": ("minutes", minutes)}
    if hours % (365 * 24) == 0 and hours > 65535:
        return {"start": time32(start), "duration": ("years", hours // (365 * 24))}
    if hours > 65535:
        return {"start": time32(start), "duration": ("sixtyHours", hours // 60)}
    return {"start": time32(start), "duration": ("hours", hours)}


def _check_ca_key(key: PublicKey, family: CurveFamily, what: str) -> None:
    if curve_name_of(key) != family.ca:
        raise PolicyError(f"a {what} key is on {family.ca} in the {family.name} family")


class RootCa:
    """A Root CA: signs subordinate CA certificates, the CTL, the CRL and link certificates."""

    def __init__(
        self, *, signer: Signer, certificate: Certificate, family: CurveFamily, clock: Clock
    ) -> None:
        self._signer = signer
        self.certificate = certificate
        self.family = family
        self._clock = clock

    @classmethod
    def create(
        cls,
        *,
        signer: Signer,
        name: str,
        family: CurveFamily,
        clock: Clock,
        lifetime: timedelta = timedelta(days=365 * 6),
    ) -> RootCa:
        """A new root with a self-signed certificate (TS 103 097 §7.2.3)."""
        _check_ca_key(signer.public_key(), family, "Root CA")
        tbs = {
            "id": ("name", name),
            "cracaId": b"\x00\x00\x00",
            "crlSeries": 0,
            "validityPeriod": validity_period(clock.now(), lifetime),
            "appPermissions": [{"psid": PSID_CRL}, {"psid": PSID_CTL}],
            "certIssuePermissions": [
                {
                    "subjectPermissions": ("all", None),
                    "minChainLength": 2,
                    "chainLengthRange": 0,
                    "eeType": _EE_BOTH,
                }
            ],
            "verifyKeyIndicator": ("verificationKey", verification_key_value(signer.public_key())),
        }
        certificate = sign_certificate(tbs, signer, issuer_certificate=None)
        return cls(signer=signer, certificate=certificate, family=family, clock=clock)

    @property
    def signer(self) -> Signer:
        return self._signer

    def issue_authority(
        self,
        *,
        role: Literal["ea", "aa"],
        name: str,
        signer: Signer,
        decryption_key: PrivateKey,
        lifetime: timedelta = timedelta(days=365 * 4),
    ) -> AuthorityKeys:
        """An authority's keys with the certificate ``issue_ca`` makes for them."""
        certificate = self.issue_ca(
            role=role,
            name=name,
            verification_key=signer.public_key(),
            encryption_key=decryption_key.public_key(),
            lifetime=lifetime,
        )
        return AuthorityKeys(signer=signer, decryption_key=decryption_key, certificate=certificate)

    def issue_ca(
        self,
        *,
        role: Literal["ea", "aa"],
        name: str,
        verification_key: PublicKey,
        encryption_key: PublicKey,
        lifetime: timedelta = timedelta(days=365 * 4),
        app_psids: tuple[int, ...] = (PSID_CAM, PSID_DENM),
    ) -> Certificate:
        """An EA or AA certificate (TS 103 097 §7.2.4): a 384-bit signing key, a 256-bit
        ECIES key, and issue permissions for ECs (EA) or ATs for ``app_psids`` (AA)."""
        _check_ca_key(verification_key, self.family, role.upper())
        if curve_name_of(encryption_key) != self.family.end_entity:
            raise PolicyError(f"the {role.upper()} ECIES key is on {self.family.end_entity}")
        if role == "ea":
            issue = {
                "subjectPermissions": (
                    "explicit",
                    [{"psid": PSID_CERTIFICATE_REQUEST, "sspRange": ("all", None)}],
                ),
                "minChainLength": 1,
                "chainLengthRange": 0,
                "eeType": _EE_ENROL,
            }
        else:
            issue = {
                "subjectPermissions": (
                    "explicit",
                    [{"psid": psid, "sspRange": ("all", None)} for psid in app_psids],
                ),
                "minChainLength": 1,
                "chainLengthRange": 0,
                "eeType": _EE_APP,
            }
        tbs = {
            "id": ("name", name),
            "cracaId": self.certificate.hashed_id8[-3:],
            "crlSeries": 0,
            "validityPeriod": validity_period(self._clock.now(), lifetime),
            "appPermissions": [{"psid": PSID_CERTIFICATE_REQUEST}],
            "certIssuePermissions": [issue],
            "encryptionKey": encryption_key_value(encryption_key),
            "verifyKeyIndicator": ("verificationKey", verification_key_value(verification_key)),
        }
        return sign_certificate(tbs, self._signer, issuer_certificate=self.certificate.encoded)

    def sign_ctl(
        self,
        *,
        sequence: int,
        entries: list[tuple[Literal["ea", "aa"], Certificate, str]],
        deletes: tuple[bytes, ...] = (),
        next_update: timedelta = timedelta(days=7),
    ) -> bytes:
        """RcaCertificateTrustListMessage (TS 102 941 §6.3.4): a full CTL of the EA and AA
        certificates with their access points, or a delta with ``deletes``."""
        commands: list[tuple[str, Any]] = []
        for role, certificate, url in entries:
            if role == "ea":
                entry: tuple[str, Any] = (
                    "ea",
                    {"eaCertificate": certificate.value, "aaAccessPoint": url},
                )
            else:
                entry = ("aa", {"aaCertificate": certificate.value, "accessPoint": url})
            commands.append(("add", entry))
        commands.extend(("delete", ("cert", cert_id)) for cert_id in deletes)
        ctl = {
            "version": 1,
            "nextUpdate": time32(self._clock.now() + next_update),
            "isFullCtl": not deletes,
            "ctlSequence": sequence % 256,
            "ctlCommands": commands,
        }
        return sign_pki_data(
            ("certificateTrustListRca", ctl),
            self._signer,
            generation_time=_time64(self._clock),
            signer_certificate=self.certificate.encoded,
        )

    def sign_crl(
        self, *, revoked: list[bytes], next_update: timedelta = timedelta(days=7)
    ) -> bytes:
        """CertificateRevocationListMessage (TS 102 941 §6.3.3): revoked CA HashedId8s."""
        now = self._clock.now()
        crl = {
            "version": 1,
            "thisUpdate": time32(now),
            "nextUpdate": time32(now + next_update),
            "entries": sorted(revoked),
        }
        return sign_pki_data(
            ("certificateRevocationList", crl),
            self._signer,
            generation_time=_time64(self._clock),
            signer_certificate=self.certificate.encoded,
        )

    def link_to(self, successor: RootCa, *, lifetime: timedelta = timedelta(days=365)) -> bytes:
        """RcaDoubleSignedLinkCertificateMessage for a rollover to ``successor``.

        This (old) root signs ``ToBeSignedLinkCertificateRca{expiryTime, certificateHash =
        SHA-384 of the new root certificate}`` as a single-signed link certificate; the new root
        signs that message again, proving possession of its key (TS 102 941 §6.3.5).
        """
        new_hash = hashlib.sha384(successor.certificate.encoded).digest()
        link = {
            "expiryTime": time32(self._clock.now() + lifetime),
            "certificateHash": ("sha384HashedData", new_hash),
        }
        single = sign_pki_data(
            ("singleSignedLinkCertificateRca", link),
            self._signer,
            generation_time=_time64(self._clock),
            signer_certificate=self.certificate.encoded,
        )
        return sign_pki_data(
            ("doubleSignedlinkCertificateRca", decode("Ieee1609Dot2Data", single)),
            successor.signer,
            generation_time=_time64(self._clock),
            signer_certificate=successor.certificate.encoded,
        )


def _time64(clock: Clock) -> int:
    return time64(clock.now())
