"""The TLS server certificate of ``fleetid serve``, issued by the fleet CA, as files.

Its key is a software key in ``<data-dir>/ca/tls`` (mode 0600, ``fleetid.private_file``): TLS
stacks (``ssl``, uvicorn) need the key in process. The certificate is renewed when the policy's
cadence says so, when the issuing CA changed, or when a host is added.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.authority.ca_init import CA_DIR
from fleetid.crypto.keys import new_private_key
from fleetid.policy import CredentialType
from fleetid.private_file import write_private_key

if TYPE_CHECKING:
    from fleetid.authority.fleet_ca import FleetCa

__all__ = ["TLS_DIR", "tls_server_files"]

TLS_DIR: Final = "tls"


def tls_server_files(ca: FleetCa, hosts: list[str]) -> tuple[Path, Path]:
    """A TLS server certificate for ``hosts`` (chain PEM file, key PEM file), renewed when due.

    The chain file holds the server certificate then the issuing CA (RFC 8446 §4.4.2 order).
    """
    tls_dir = ca.settings.data_dir / CA_DIR / TLS_DIR
    cert_path, key_path = tls_dir / "server.crt", tls_dir / "server.key"
    if cert_path.exists() and key_path.exists() and not _due(ca, cert_path, hosts):
        return cert_path, key_path
    key = new_private_key()
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    with ca.store.transaction() as tx:
        certificate, _ = ca.issue(
            tx,
            public_key=key.public_key(),
            credential_type=CredentialType.TLS_SERVER,
            common_name=hosts[0],
            device_id=None,
            alt_names=tuple(names),
        )
    write_private_key(key_path, key)
    cert_path.write_bytes(
        b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in (certificate, ca.issuing.certificate)
        )
    )
    return cert_path, key_path


def _due(ca: FleetCa, cert_path: Path, hosts: list[str]) -> bool:
    try:
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return True
    named = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )
    cadence = ca.settings.policy.profile(CredentialType.TLS_SERVER).cadence
    stale = current.issuer != ca.issuing.certificate.subject
    return (
        stale
        or not set(hosts) <= named
        or cadence.renewal_due(current.not_valid_after_utc, ca.clock.now())
    )
