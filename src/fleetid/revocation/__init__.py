"""Revocation: one registry, three connectivity profiles (OCSP, CRLs, pre-distributed filters).

Modules:

* ``registry`` — the one source of truth (what was revoked, when, in which order) and the
  publishers' read API over it (its SQL is ``fleetid.store.revocation_repository``);
* ``ocsp`` — the OCSP responder and its delegated responder certificates (RFC 6960);
* ``crl`` — the sharded full and delta CRL publisher (RFC 5280; its SQL is
  ``fleetid.store.crl_repository``);
* ``filter`` — the exact, signed offline filter: ``format`` (the binary format and the certificate
  ids it is over), ``exact`` (the per-key maths) and ``builder`` (numpy); ``publish`` builds it from
  the registry and ``channels`` carries it (MQTT, HTTP, in-process broadcast);
* ``linkage``, ``linked_crl`` — V2X linkage-seed revocation (IEEE 1609.2);
* ``check`` — the relying party's side, one checker per channel (``check.ocsp``, ``check.crl``,
  ``check.filter``): pure, with no I/O and none of the authority's dependencies. The device
  verifier, the device's CRL client and the tests use them and nothing else.

Import from the submodules; this package re-exports nothing, so importing one channel does not pull
in the dependencies of another (the filter builder needs numpy, the publishers SQLAlchemy).
"""

from __future__ import annotations

__all__: list[str] = []
