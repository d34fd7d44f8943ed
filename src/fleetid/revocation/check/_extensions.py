"""What both X.509 revocation checkers read alike: a signer's keyUsage, and a critical extension
they do not understand (RFC 5280 §4.2 and §5.2, RFC 6960 §4.4), which refuses the artefact."""

from __future__ import annotations

from cryptography import x509

from fleetid.errors import VerificationError

__all__ = ["key_usage", "refuse_unknown_critical"]


def key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    """The certificate's keyUsage (RFC 5280 §4.2.1.3), or None when it has none (any use)."""
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def refuse_unknown_critical(extensions: x509.Extensions, where: str) -> None:
    """Raise ``VerificationError`` if ``extensions`` hold a critical one pyca does not parse."""
    for extension in extensions:
        if extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            raise VerificationError(
                f"{where} has a critical extension {extension.oid.dotted_string} this relying "
                "party does not understand"
            )
