"""Renewal windows: when the authority asks each certificate to be renewed (RFC 9773 spirit).

A cadence renews a certificate in the ``renewal_window`` before it expires. Devices left to
themselves all renew when that window opens, so certificates issued together (a production
batch, a fleet's first enrolment) come back together: a renewal storm. The authority instead
gives each certificate its own slice of the first half of the renewal window, placed by a hash
of its serial: deterministic (every API process, and every repeated question, gives the same
answer), uniform over a fleet, and leaving the second half as slack for retries and devices that
were offline. The slice is ``SLICE`` of the renewal window wide, so a device that picks any
moment inside it still renews early enough.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final

from fleetid.formats.renewal_info import RenewalWindow
from fleetid.policy.cadence import Cadence

__all__ = ["SLICE", "SPREAD", "suggested_window"]

#: The share of the renewal window over which renewals are spread, and each window's width.
SPREAD: Final = 0.5
SLICE: Final = 1 / 32


def _fraction(serial: int) -> float:
    """A uniform number in [0, 1) from ``serial``: SHA-256 of its decimal form."""
    digest = hashlib.sha256(b"fleetid renewal window " + str(serial).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def suggested_window(cadence: Cadence, not_after: datetime, serial: int) -> RenewalWindow:
    """The window in which the certificate ``serial``, expiring at ``not_after``, is renewed."""
    opens = cadence.renew_from(not_after)
    width = cadence.renewal_window * SLICE
    start = opens + (cadence.renewal_window * SPREAD - width) * _fraction(serial)
    return RenewalWindow(start=start, end=start + width)
