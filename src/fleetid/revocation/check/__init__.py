"""The relying party's side of revocation: one checker per channel, and nothing else.

* ``ocsp`` — an OCSP response (RFC 6960 §3.2): signer and delegation, CertID, nonce and replay,
  status and freshness;
* ``crl`` — CRLs (RFC 5280 §6.3): issuer and signature, CRL numbers, scope, delta bases,
  freshness, and the CRLs one relying party holds;
* ``filter`` — the offline filter: signature, chain of deltas, rollback, and the answer.

The device verifier, the device's CRL client, the authority's own checks and every test use these
and only these. They take time as an argument and do no I/O; importing one loads neither the
authority, the store, SQLAlchemy, the HSM nor numpy (an import-linter contract in pyproject.toml
and ``tests/unit/revocation/test_check_imports.py`` hold that). This package re-exports nothing.
"""

from __future__ import annotations

__all__: list[str] = []
