"""What both X.509 revocation checkers refuse alike: a critical extension they do not understand
(RFC 5280 §4.2 and §5.2, RFC 6960 §4.4)."""

from __future__ import annotations

from cryptography import x509

from fleetid.errors import VerificationError

__all__ = ["refuse_unknown_critical"]


def refuse_unknown_critical(extensions: x509.Extensions, where: str) -> None:
    """Raise ``VerificationError`` if ``extensions`` hold a critical one pyca does not parse."""
    for extension in extensions:
        if extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            raise VerificationError(
                f"{where} has a critical extension {extension.oid.dotted_string} this relying "
                "party does not understand"
            )
