"""``fleetid ca bootstrap --ca-url URL --fingerprint SHA256``: fetch the fleet root and pin it, as
``step ca bootstrap`` does.

RFC 7030 §4.1.1 (bootstrap distribution of CA certificates): the first ``/cacerts`` is fetched
over TLS that is not yet authenticated, and its answer is trusted only through an out-of-band
check, here the root's SHA-256 fingerprint the operator was given (``fleetid ca certs | openssl
x509 -fingerprint -sha256`` on the authority). The certificate with that fingerprint must be a
self-signed CA. Then ``/cacerts`` is fetched again over TLS verified against the pinned root, so
the server is shown to hold a certificate of that PKI, and the root is written as PEM.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Final

from fleetid.cli.output import add_json_flag, emit

__all__ = ["parse_fingerprint", "register_into"]

_HEX64: Final = re.compile(r"[0-9a-f]{64}")


def register_into(verbs: Any) -> None:
    bootstrap = verbs.add_parser(
        "bootstrap", help="fetch the fleet root from a running authority and pin it by fingerprint"
    )
    bootstrap.add_argument("--ca-url", required=True, help="the authority's https:// base URL")
    bootstrap.add_argument(
        "--fingerprint", required=True, metavar="SHA256", help="the root's SHA-256 (hex)"
    )
    bootstrap.add_argument(
        "--out",
        type=Path,
        default=Path("fleetid-root.pem"),
        metavar="FILE",
        help="where the pinned root is written (fleetid-root.pem)",
    )
    bootstrap.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_json_flag(bootstrap)
    bootstrap.set_defaults(func=_bootstrap)


def parse_fingerprint(text: str) -> bytes:
    """A SHA-256 fingerprint as hex, in either case, with or without colons."""
    from fleetid.errors import ConfigError

    digits = text.strip().lower().replace(":", "")
    if not _HEX64.fullmatch(digits):
        raise ConfigError(f"fingerprint {text!r} is not a SHA-256 (64 hex digits)")
    return bytes.fromhex(digits)


def _unauthenticated_cacerts(ca_url: str) -> list[Any]:
    import httpx

    from fleetid.device.transport import HttpTransport

    # RFC 7030 §4.1.1: not yet authenticated; the fingerprint check below is the trust.
    client = httpx.Client(base_url=ca_url, verify=False, timeout=10.0)  # noqa: S501
    transport = HttpTransport(client)
    try:
        certificates: list[Any] = transport.cacerts()
    finally:
        transport.close()
    return certificates


def _bootstrap(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from fleetid.crypto.pkix import issued_by
    from fleetid.device.transport import HttpTransport
    from fleetid.errors import ConfigError, VerificationError

    pinned = parse_fingerprint(args.fingerprint)
    if not args.ca_url.startswith("https://"):
        raise ConfigError(f"--ca-url {args.ca_url} is not https://: bootstrap needs TLS")
    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists: give --force to replace it")
    offered = _unauthenticated_cacerts(args.ca_url)
    root = next((c for c in offered if c.fingerprint(hashes.SHA256()) == pinned), None)
    if root is None:
        raise VerificationError(
            f"{args.ca_url} offers no certificate with SHA-256 {pinned.hex()}"
            f" ({len(offered)} offered): not the authority you were told of"
        )
    try:
        constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca or not issued_by(root, root):
        raise VerificationError("the certificate with that fingerprint is not a self-signed CA")
    pem = root.public_bytes(serialization.Encoding.PEM)
    staged = args.out.with_name(args.out.name + ".new")
    staged.write_bytes(pem)
    try:
        # Again, over TLS verified against the pinned root alone.
        verified = HttpTransport.connect(args.ca_url, ca_bundle=staged)
        try:
            verified.cacerts()
        finally:
            verified.close()
        staged.replace(args.out)
    finally:
        staged.unlink(missing_ok=True)
    document = {
        "root": args.out,
        "subject": root.subject.rfc4514_string(),
        "sha256": pinned.hex(),
        "not_after": root.not_valid_after_utc,
        "ca_url": args.ca_url,
    }
    emit(
        args,
        document,
        lambda: [f"pinned {document['subject']} (SHA-256 {pinned.hex()}) in {args.out}"],
    )
    return 0
