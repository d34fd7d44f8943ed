"""The device's trust anchors, kept on the host as public material, and how they change.

A device starts with the anchors its installer gave it (the fleet root, pinned by fingerprint as
``step ca bootstrap`` does). It accepts a new anchor only if it chains from one it holds: the
``cacerts`` bag of a rolled-over authority carries the new root self-signed and its NewWithOld
link certificate (RFC 4210 §4.4), which must have the new root's subject and key and verify under
a held anchor. A self-signed root with no such link (a forged "new root") is refused with
``RolloverRefusedError``; nothing is added.

Credentials are checked with pyca's RFC 5280 path validation against the held anchors
(``fleetid.crypto.pkix.path_verifier``); single links with ``fleetid.crypto.pkix.issued_by``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from fleetid.crypto.pkix import PathValidationError, issued_by, path_verifier
from fleetid.errors import EncodingError, RolloverRefusedError, VerificationError

__all__ = ["TrustStore", "fingerprint"]


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex (what an installer pins)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def _self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject and issued_by(certificate, certificate)


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return a.public_key().public_bytes(der, spki) == b.public_key().public_bytes(der, spki)


class TrustStore:
    """Anchors, in the order they were accepted (the newest last)."""

    def __init__(self, anchors: Sequence[x509.Certificate]) -> None:
        if not anchors:
            raise VerificationError("a trust store starts with at least one anchor")
        self._anchors = list(anchors)

    @classmethod
    def bootstrap(cls, offered: Sequence[x509.Certificate], pinned_fingerprint: str) -> TrustStore:
        """The first anchor: the offered root whose fingerprint the installer pinned."""
        for certificate in offered:
            if fingerprint(certificate) == pinned_fingerprint.lower() and _self_signed(certificate):
                return cls([certificate])
        raise VerificationError("no offered root has the pinned fingerprint")

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return tuple(self._anchors)

    def holds(self, certificate: x509.Certificate) -> bool:
        return any(a == certificate for a in self._anchors)

    def accept_update(
        self, bag: Sequence[x509.Certificate], now: datetime
    ) -> list[x509.Certificate]:
        """Take the new roots of a ``cacerts`` bag that chain from a held anchor.

        Raises ``RolloverRefusedError`` (and adds nothing) if any self-signed CA certificate in
        the bag is neither held nor linked from a held anchor.
        """
        accepted: list[x509.Certificate] = []
        pending = [c for c in bag if _is_ca(c) and _self_signed(c) and not self.holds(c)]
        progress = True
        trusted = list(self._anchors)
        while pending and progress:
            progress = False
            for root in list(pending):
                if self._linked(root, bag, trusted, now):
                    trusted.append(root)
                    accepted.append(root)
                    pending.remove(root)
                    progress = True
        if pending:
            names = ", ".join(r.subject.rfc4514_string() for r in pending)
            raise RolloverRefusedError(f"new root(s) not linked from a held anchor: {names}")
        self._anchors.extend(accepted)
        return accepted

    @staticmethod
    def _linked(
        root: x509.Certificate,
        bag: Sequence[x509.Certificate],
        trusted: Sequence[x509.Certificate],
        now: datetime,
    ) -> bool:
        if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
            return False
        for link in bag:
            if link is root or link.subject != root.subject or not _same_key(link, root):
                continue
            if not _is_ca(link) or not link.not_valid_before_utc <= now <= link.not_valid_after_utc:
                continue
            for anchor in trusted:
                if link.issuer == anchor.subject and issued_by(link, anchor):
                    return True
        return False

    def verify(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        now: datetime,
    ) -> list[x509.Certificate]:
        """The validated chain of a credential (RFC 5280 path validation by pyca); raises."""
        verifier = path_verifier(self._anchors, now)
        try:
            return verifier.verify(leaf, list(intermediates)).chain
        except PathValidationError as exc:
            raise VerificationError(
                f"the credential does not chain to a held anchor: {exc}"
            ) from exc

    # -- public material on disk ---------------------------------------------------------------

    def save(self, path: Path) -> None:
        path.write_bytes(
            b"".join(a.public_bytes(serialization.Encoding.PEM) for a in self._anchors)
        )

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        try:
            return cls(x509.load_pem_x509_certificates(path.read_bytes()))
        except ValueError as exc:
            raise EncodingError(f"{path} is not a PEM list of anchors: {exc}") from exc
