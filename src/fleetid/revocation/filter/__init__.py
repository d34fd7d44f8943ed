"""The offline revocation filter (``docs/revocation-filter.md``), one module per job:

* ``format`` — the signed binary format, parsed strictly, and ``certificate_id``, the 16-byte key
  the filter is over (the registry, the builder and the device compute it there);
* ``exact`` — the per-key maths in plain integers (what a device evaluates);
* ``builder`` — the numpy builder of full and delta filters (the authority's side).

The device's check is ``fleetid.revocation.check.filter``. This package re-exports nothing, so that
importing the format or the maths does not load the builder's numpy.
"""

from __future__ import annotations

__all__: list[str] = []
