"""Where the fleet CA publishes: the URL paths of OCSP and of the CRLs, relative to the base URL.

End-entity certificates (RFC 5280 §4.2) carry an authorityInfoAccess OCSP URL (§4.2.2.1) and a
cRLDistributionPoints URL (§4.2.1.13) on the server that issued them
(``Settings.certificate_base_url``, never a loopback address outside tests): ``OCSP_PATH`` and
``crl_path(generation, crl_shard(serial))``, one CRL partition per shard
(``fleetid.revocation.crl`` serves them). An issuing CA made with a public URL configured names
its root's CRL (``root_crl_point``), so that the whole chain can be checked.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509

from fleetid.config import Settings, check_public_url

__all__ = [
    "CRL_SHARDS",
    "OCSP_PATH",
    "crl_path",
    "crl_shard",
    "delta_crl_path",
    "root_crl_path",
    "root_crl_point",
]

OCSP_PATH: Final = "/ocsp"

# CRL partitions per issuing-CA generation (the Let's Encrypt model): a certificate's shard is
# fixed by its serial and written into its CRL distribution point, so no CRL grows without bound.
CRL_SHARDS: Final = 16


def crl_shard(serial_number: int) -> int:
    """The CRL partition of a certificate: its serial number modulo ``CRL_SHARDS``."""
    return serial_number % CRL_SHARDS


def crl_path(generation: int, shard: int) -> str:
    """Shard ``shard``'s full CRL of issuing-CA generation ``generation`` (relative to base URL)."""
    return f"/crl/issuing-{generation}/{shard}.crl"


def delta_crl_path(generation: int, shard: int) -> str:
    """The shard's delta CRL (RFC 5280 §5.2.4), named by its full CRL's freshestCRL (§5.2.6)."""
    return f"/crl/issuing-{generation}/{shard}-delta.crl"


def root_crl_path(generation: int) -> str:
    """The CRL root generation ``generation`` signs over the issuing CAs it certified."""
    return f"/crl/root-{generation}.crl"


def root_crl_point(settings: Settings, root_generation: int) -> x509.CRLDistributionPoints | None:
    """The cRLDistributionPoints of an issuing CA (RFC 5280 §4.2.1.13): its root's CRL, so that
    a relying party checking the whole chain (``openssl verify -crl_check_all``) finds it. Only
    with a configured public URL: a CA certificate outlives any listener address."""
    if settings.public_url is None:
        return None
    url = check_public_url(settings.public_url, allow_loopback=settings.allow_loopback_urls)
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url + root_crl_path(root_generation))],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )
