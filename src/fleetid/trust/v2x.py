"""A relying party's trust store: roots, the CTL's EAs and AAs, the CA CRL, root rollover.

Every ITS-S and every authority trusts what a Root CA publishes (ETSI TS 102 941 §6.3):

* the RCA CTL (``ToBeSignedRcaCtl``) adds EA and AA certificates with their access points; an RCA
  CTL never adds a root or a TLM (§6.3.4), and a full CTL has no deletes;
* the CA CRL (``ToBeSignedCrl``) lists revoked CA certificates by HashedId8; ECs and ATs are never
  listed (the EA refuses a revoked EC itself; ATs are short-lived);
* a link certificate (``RcaDoubleSignedLinkCertificateMessage``) carries trust from an old root to
  its successor: the old root signs the SHA-384 of the new root certificate, and the new root signs
  that again.

Every check raises ``VerificationError`` (or ``ProfileError`` for a malformed list).

Vehicles (``fleetid.device.v2x``) and authorities (``fleetid.authority.v2x``) both rely on it,
so it lives below both; the pure certificate checks it uses are in
``fleetid.formats.ieee1609.validity``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from fleetid.clock import Clock
from fleetid.errors import ProfileError, VerificationError
from fleetid.formats.etsi102941 import PkiData, open_pki_data
from fleetid.formats.ieee1609 import (
    Certificate,
    decode_certificate,
    encode,
    time32,
    verify_certificate_signature,
)
from fleetid.formats.ieee1609.validity import (
    app_psids,
    check_validity,
    issue_psids,
    validity_bounds,
)

__all__ = [
    "CaEntry",
    "V2xTrustStore",
]


@dataclass(frozen=True, kw_only=True)
class CaEntry:
    """An EA or AA as the CTL lists it."""

    role: Literal["ea", "aa"]
    certificate: Certificate
    access_point: str
    root_id: bytes


class V2xTrustStore:
    """What a relying party trusts; fed with signed CTLs, CRLs and link certificates."""

    def __init__(self, root_certificate: bytes, *, clock: Clock) -> None:
        root = decode_certificate(root_certificate)
        verify_certificate_signature(root, None)
        self._clock = clock
        self._roots: dict[bytes, Certificate] = {root.hashed_id8: root}
        self._cas: dict[bytes, CaEntry] = {}
        self._revoked: set[bytes] = set()
        self._ctl_sequence: dict[bytes, int] = {}
        self._crl_update: dict[bytes, int] = {}

    # ------------------------------------------------------------------ reading

    @property
    def roots(self) -> list[Certificate]:
        return list(self._roots.values())

    @property
    def revoked(self) -> frozenset[bytes]:
        return frozenset(self._revoked)

    def entries(self, role: Literal["ea", "aa"] | None = None) -> list[CaEntry]:
        return [e for e in self._cas.values() if role is None or e.role == role]

    def ca(self, cert_id: bytes, role: Literal["ea", "aa"]) -> CaEntry:
        """The trusted, unrevoked, currently valid EA/AA with this HashedId8."""
        entry = self._cas.get(bytes(cert_id))
        if entry is None or entry.role != role:
            raise VerificationError(f"no trusted {role.upper()} with id {bytes(cert_id).hex()}")
        if entry.certificate.hashed_id8 in self._revoked:
            raise VerificationError(f"the {role.upper()} {bytes(cert_id).hex()} is revoked")
        if entry.root_id in self._revoked or entry.root_id not in self._roots:
            raise VerificationError(f"the root of the {role.upper()} is no longer trusted")
        check_validity(entry.certificate, self._clock.now())
        return entry

    def verify_issued(
        self, certificate: Certificate, role: Literal["ea", "aa"], *, psids: set[int]
    ) -> CaEntry:
        """Verify an EC (``role`` "ea") or AT ("aa") up to a trusted root.

        The issuer must be a CTL entry of that role, unrevoked (CA CRL) and valid now; the
        certificate must be valid now, inside its issuer's validity, signed by it, and its
        ``psids`` must be among the issuer's issue permissions.
        """
        kind, issuer_id = certificate.value["issuer"]
        if kind == "self":
            raise VerificationError("an end-entity certificate is not self-signed")
        entry = self.ca(bytes(issuer_id), role)
        verify_certificate_signature(certificate, entry.certificate)
        now = self._clock.now()
        check_validity(certificate, now)
        start, end = validity_bounds(certificate)
        ca_start, ca_end = validity_bounds(entry.certificate)
        if start < ca_start or end > ca_end:
            raise VerificationError("the certificate outlives its issuer")
        allowed = issue_psids(entry.certificate)
        if allowed is not None and not psids <= allowed:
            raise VerificationError(f"the issuer may not grant psids {sorted(psids - allowed)}")
        if not psids <= app_psids(certificate):
            raise VerificationError(f"the certificate does not grant psids {sorted(psids)}")
        return entry

    # ------------------------------------------------------------------ feeding

    def _open_from_root(self, message: bytes, expected: str) -> tuple[PkiData, Certificate]:
        data = open_pki_data(
            message, signer_kinds=frozenset({"digest"}), expected=frozenset({expected})
        )
        digest = data.signer_digest
        root = self._roots.get(digest or b"")
        if root is None:
            raise VerificationError("signed by a root this store does not trust")
        if root.hashed_id8 in self._revoked:
            raise VerificationError("signed by a revoked root")
        data.verify(root.verification_key(), root.encoded)
        return data, root

    def apply_ctl(self, message: bytes) -> int:
        """Verify and apply an RCA CTL; returns the number of EA/AA entries it added."""
        data, root = self._open_from_root(message, "certificateTrustListRca")
        ctl: dict[str, Any] = data.content[1]
        now = time32(self._clock.now())
        if int(ctl["nextUpdate"]) <= now:
            raise VerificationError("the CTL is past its nextUpdate")
        previous = self._ctl_sequence.get(root.hashed_id8)
        sequence = int(ctl["ctlSequence"])
        if previous is not None and not 0 < (sequence - previous) % 256 < 128:
            raise VerificationError("the CTL is not newer than the one applied")
        added: list[CaEntry] = []
        deletes: list[bytes] = []
        for command, body in ctl["ctlCommands"]:
            if command == "delete":
                if ctl["isFullCtl"]:
                    raise ProfileError("a full CTL has no delete commands")
                kind, value = body
                if kind == "cert":
                    deletes.append(bytes(value))
                continue
            if command != "add":
                raise ProfileError(f"unknown CTL command {command}")
            entry_kind, entry = body
            if entry_kind == "ea":
                role: Literal["ea", "aa"] = "ea"
                raw, url = entry["eaCertificate"], entry["aaAccessPoint"]
            elif entry_kind == "aa":
                role = "aa"
                raw, url = entry["aaCertificate"], entry["accessPoint"]
            elif entry_kind == "dc":
                continue
            else:
                raise ProfileError(f"an RCA CTL does not add {entry_kind} entries")
            certificate = decode_certificate(encode("Certificate", raw))
            verify_certificate_signature(certificate, root)
            if certificate.encryption_key() is None:
                raise ProfileError(f"a CTL {role.upper()} certificate has no encryption key")
            added.append(
                CaEntry(
                    role=role, certificate=certificate, access_point=url, root_id=root.hashed_id8
                )
            )
        if ctl["isFullCtl"]:
            self._cas = {k: v for k, v in self._cas.items() if v.root_id != root.hashed_id8}
        for cert_id in deletes:
            self._cas.pop(cert_id, None)
        for item in added:
            self._cas[item.certificate.hashed_id8] = item
        self._ctl_sequence[root.hashed_id8] = sequence
        return len(added)

    def apply_crl(self, message: bytes) -> int:
        """Verify and apply a CA CRL; returns the number of revoked certificates it lists."""
        data, root = self._open_from_root(message, "certificateRevocationList")
        crl: dict[str, Any] = data.content[1]
        now = time32(self._clock.now())
        if not int(crl["thisUpdate"]) <= now < int(crl["nextUpdate"]):
            raise VerificationError("the CRL is not current")
        previous = self._crl_update.get(root.hashed_id8)
        if previous is not None and int(crl["thisUpdate"]) < previous:
            raise VerificationError("the CRL is older than the one applied")
        entries = {bytes(e) for e in crl["entries"]}
        self._revoked |= entries
        self._crl_update[root.hashed_id8] = int(crl["thisUpdate"])
        return len(entries)

    def apply_link_certificate(self, message: bytes, new_root_certificate: bytes) -> Certificate:
        """Trust a new root through a link certificate from a trusted old root."""
        new_root = decode_certificate(new_root_certificate)
        verify_certificate_signature(new_root, None)
        outer = open_pki_data(
            message,
            signer_kinds=frozenset({"digest"}),
            expected=frozenset({"doubleSignedlinkCertificateRca"}),
        )
        outer.verify(new_root.verification_key(), new_root.encoded)
        inner_bytes = encode("Ieee1609Dot2Data", outer.content[1])
        inner, _ = self._open_from_root(inner_bytes, "singleSignedLinkCertificateRca")
        link: dict[str, Any] = inner.content[1]
        kind, value = link["certificateHash"]
        if kind != "sha384HashedData" or bytes(value) != hashlib.sha384(new_root.encoded).digest():
            raise VerificationError("the link certificate names another root")
        if int(link["expiryTime"]) <= time32(self._clock.now()):
            raise VerificationError("the link certificate has expired")
        self._roots[new_root.hashed_id8] = new_root
        return new_root
