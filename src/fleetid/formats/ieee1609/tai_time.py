"""IEEE 1609.2 time: Time32 (seconds) and Time64 (microseconds) of TAI since 2004-01-01 UTC.

IEEE 1609.2 §6.3.7/§6.3.9 count International Atomic Time from 2004-01-01T00:00:00Z, so a Time32
is the UTC seconds since that instant plus the leap seconds inserted since then (TAI−UTC was 32 s
at the epoch). The table ends with the leap second of 2016-12-31, the last one announced; a new
announcement means a new entry here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = [
    "EPOCH",
    "datetime_from_time32",
    "datetime_from_time64",
    "leap_seconds_since_epoch",
    "time32",
    "time64",
]

EPOCH = datetime(2004, 1, 1, tzinfo=UTC)

# UTC instants from which one more leap second has been inserted since the epoch (IERS
# Bulletin C): after 2005-12-31, 2008-12-31, 2012-06-30, 2015-06-30 and 2016-12-31.
_LEAPS = (
    datetime(2006, 1, 1, tzinfo=UTC),
    datetime(2009, 1, 1, tzinfo=UTC),
    datetime(2012, 7, 1, tzinfo=UTC),
    datetime(2015, 7, 1, tzinfo=UTC),
    datetime(2017, 1, 1, tzinfo=UTC),
)
_MAX_TIME32 = 2**32 - 1


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("IEEE 1609.2 time needs an aware datetime")
    return moment.astimezone(UTC)


def leap_seconds_since_epoch(moment: datetime) -> int:
    """Leap seconds inserted between the 2004 epoch and ``moment`` (UTC)."""
    moment = _utc(moment)
    return sum(1 for leap in _LEAPS if moment >= leap)


def time64(moment: datetime) -> int:
    """Microseconds of TAI since the 2004 epoch."""
    moment = _utc(moment)
    if moment < EPOCH:
        raise ValueError("IEEE 1609.2 time starts on 2004-01-01")
    elapsed = moment - EPOCH
    micros = (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000 + elapsed.microseconds
    return micros + leap_seconds_since_epoch(moment) * 1_000_000


def time32(moment: datetime) -> int:
    """Whole seconds of TAI since the 2004 epoch."""
    value = time64(moment) // 1_000_000
    if value > _MAX_TIME32:
        raise ValueError("Time32 overflows after 2140")
    return value


def datetime_from_time64(value: int) -> datetime:
    """The UTC instant of a Time64 (a moment inside a leap second maps to the next second)."""
    if value < 0:
        raise ValueError("Time64 is unsigned")
    guess = EPOCH + timedelta(microseconds=value)
    # Subtract the leap seconds inserted before the instant; one correction step can cross a
    # leap boundary, so settle on a fixed point.
    for _ in range(3):
        moment = (
            EPOCH
            + timedelta(microseconds=value)
            - timedelta(seconds=leap_seconds_since_epoch(guess))
        )
        if moment == guess:
            break
        guess = moment
    return guess


def datetime_from_time32(value: int) -> datetime:
    """The UTC instant of a Time32."""
    if not 0 <= value <= _MAX_TIME32:
        raise ValueError("Time32 is a 32-bit unsigned integer")
    return datetime_from_time64(value * 1_000_000)
