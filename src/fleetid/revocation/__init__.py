"""Revocation: one registry, three connectivity profiles (OCSP, CRLs, pre-distributed filters).

The public surface: the registry (``RevocationRegistry``, the one source of truth and the
publishers' read API), the publishers (``OcspResponder``; ``CrlPublisher`` with ``publisher_for``
building a fleet CA's; ``FilterPublisher``) and the relying party's one checker per channel
(``verify_ocsp_response``, ``verify_crl``, ``FilterVerifier``). The exports load on first use, so
a device that imports a checker loads neither SQLAlchemy nor numpy nor the authority.

Modules: ``registry``; ``ocsp`` (responder, delegated responder certificates); ``crl`` (sharded
full and delta CRLs; SQL in ``fleetid.store.crl_repository``); ``filter`` (``format``, ``exact``,
``builder``), built by ``publish`` and carried by ``channels`` (MQTT, HTTP, in-process);
``linkage``, ``linked_crl``, ``linked_crl_channel`` (V2X linked CRLs, IEEE 1609.2); ``check``
(the relying party's side: pure, with no I/O and none of the authority's dependencies).
Everything not exported here is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetid._lazy import lazy_exports

if TYPE_CHECKING:
    from fleetid.revocation.check.crl import verify_crl
    from fleetid.revocation.check.filter import FilterVerifier
    from fleetid.revocation.check.ocsp import verify_ocsp_response
    from fleetid.revocation.crl import CrlPublisher, publisher_for
    from fleetid.revocation.ocsp import OcspResponder
    from fleetid.revocation.publish import FilterPublisher
    from fleetid.revocation.registry import RevocationRegistry

__all__ = [
    "CrlPublisher",
    "FilterPublisher",
    "FilterVerifier",
    "OcspResponder",
    "RevocationRegistry",
    "publisher_for",
    "verify_crl",
    "verify_ocsp_response",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "fleetid.revocation.registry": ("RevocationRegistry",),
        "fleetid.revocation.ocsp": ("OcspResponder",),
        "fleetid.revocation.crl": ("CrlPublisher", "publisher_for"),
        "fleetid.revocation.publish": ("FilterPublisher",),
        "fleetid.revocation.check.ocsp": ("verify_ocsp_response",),
        "fleetid.revocation.check.crl": ("verify_crl",),
        "fleetid.revocation.check.filter": ("FilterVerifier",),
    },
)
