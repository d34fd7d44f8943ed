"""Revocation: one registry, three connectivity profiles (OCSP, CRLs, pre-distributed filters).

Modules:

* ``fleetid.revocation.filter`` — the exact, signed offline filter (full and delta), its builder
  and the device-side ``FilterVerifier``; ``filter_format`` is its binary format.

Import from the submodules; this package re-exports nothing, so importing one channel does not pull
in the dependencies of another (the filter builder needs numpy).
"""

from __future__ import annotations

__all__: list[str] = []
