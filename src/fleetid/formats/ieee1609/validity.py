"""What a 1609.2 certificate says about time and permissions: its validity period in Time32
seconds, whether a moment falls inside it, and the psids it grants or may issue for.

Pure functions of a decoded ``Certificate``; the moment to check is an argument.
"""

from __future__ import annotations

from datetime import datetime

from fleetid.errors import VerificationError
from fleetid.formats.ieee1609.certificate import Certificate
from fleetid.formats.ieee1609.tai_time import time32

__all__ = [
    "app_psids",
    "check_validity",
    "issue_psids",
    "validity_bounds",
]

# IEEE 1609.2 §6.3.8: the length of each Duration unit in seconds (a year is 31 556 952 s).
_UNIT_SECONDS = {
    "microseconds": 1e-6,
    "milliseconds": 1e-3,
    "seconds": 1,
    "minutes": 60,
    "hours": 3600,
    "sixtyHours": 216_000,
    "years": 31_556_952,
}


def validity_bounds(certificate: Certificate) -> tuple[int, int]:
    """(start, end) of a certificate's validity in Time32 seconds."""
    period = certificate.tbs["validityPeriod"]
    unit, count = period["duration"]
    start = int(period["start"])
    return start, start + int(count * _UNIT_SECONDS[unit])


def check_validity(certificate: Certificate, moment: datetime) -> None:
    """``VerificationError`` unless ``moment`` falls within the certificate's validity."""
    start, end = validity_bounds(certificate)
    now = time32(moment)
    if not start <= now < end:
        raise VerificationError("the certificate is not valid at this time")


def issue_psids(certificate: Certificate) -> set[int] | None:
    """The psids a CA certificate may issue for (None: all)."""
    psids: set[int] = set()
    for group in certificate.tbs.get("certIssuePermissions", []):
        kind, ranges = group["subjectPermissions"]
        if kind == "all":
            return None
        psids.update(int(item["psid"]) for item in ranges)
    return psids


def app_psids(certificate: Certificate) -> set[int]:
    """The psids a certificate grants (its appPermissions)."""
    return {int(item["psid"]) for item in certificate.tbs.get("appPermissions", [])}
