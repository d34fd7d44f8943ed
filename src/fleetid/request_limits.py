"""The HTTP edge's limits as settings: request rates and timeouts.

``[rate_limits]`` and ``[timeouts]`` in ``fleetid.toml`` (docs/reliability.md), each overridden
by its environment variable:

* ``client_rate`` / ``client_burst`` (``FLEETID_CLIENT_RATE``): requests per second, and the
  burst, one client address may send (a token bucket per address; ``fleetid.api.rate_limits``).
* ``provisioner_rate`` / ``provisioner_burst`` (``FLEETID_PROVISIONER_RATE``): enrolments per
  second each provisioner (``token``, ``attestation``) takes from all clients together.
* ``[timeouts] request`` (``FLEETID_REQUEST_TIMEOUT``): the longest a request may take before
  its answer starts (503 with ``Retry-After``; ``fleetid.api.request_timeout``).
* ``[timeouts] statement`` (``FLEETID_STATEMENT_TIMEOUT``): the longest one SQL statement may
  run (PostgreSQL's ``statement_timeout``; on SQLite, an interrupt from its progress handler).

A rate of 0 turns that limit off (the default for rates); a burst defaults to twice the rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Final

from fleetid.errors import ConfigError

__all__ = [
    "CLIENT_RATE_ENV",
    "DEFAULT_LIMITS",
    "LIMIT_ENVIRONMENT",
    "PROVISIONER_RATE_ENV",
    "RATE_KEYS",
    "REQUEST_TIMEOUT_ENV",
    "STATEMENT_TIMEOUT_ENV",
    "TIMEOUT_KEYS",
    "RequestLimits",
    "limits_from_environment",
    "limits_from_tables",
]

CLIENT_RATE_ENV: Final = "FLEETID_CLIENT_RATE"
PROVISIONER_RATE_ENV: Final = "FLEETID_PROVISIONER_RATE"
REQUEST_TIMEOUT_ENV: Final = "FLEETID_REQUEST_TIMEOUT"
STATEMENT_TIMEOUT_ENV: Final = "FLEETID_STATEMENT_TIMEOUT"
LIMIT_ENVIRONMENT: Final = {
    CLIENT_RATE_ENV: "requests per second one client address may send (0: no limit)",
    PROVISIONER_RATE_ENV: "enrolments per second each provisioner takes (0: no limit)",
    REQUEST_TIMEOUT_ENV: "the longest a request may take before its answer (e.g. 30s)",
    STATEMENT_TIMEOUT_ENV: "the longest one SQL statement may run (e.g. 10s)",
}
RATE_KEYS: Final = {"client_rate", "client_burst", "provisioner_rate", "provisioner_burst"}
TIMEOUT_KEYS: Final = {"request", "statement"}


@dataclass(frozen=True, kw_only=True)
class RequestLimits:
    """Rates in requests per second (0: unlimited), bursts in requests, timeouts (None: none)."""

    client_rate: float = 0.0
    client_burst: int = 0
    provisioner_rate: float = 0.0
    provisioner_burst: int = 0
    request_timeout: timedelta | None = timedelta(seconds=30)
    statement_timeout: timedelta | None = timedelta(seconds=10)

    def burst(self, rate: float, burst: int) -> int:
        """``burst`` if set, else twice ``rate`` (at least one request)."""
        return burst if burst > 0 else max(1, round(2 * rate))


DEFAULT_LIMITS: Final = RequestLimits()


def _rate(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{what} is a number of requests per second (0: no limit)")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{what} is a number of requests per second (0: no limit)")
    return float(value)


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} is a positive integer")
    return value


def _timeout(value: object, what: str) -> timedelta:
    # Imported here: fleetid.config imports this module.
    from fleetid.config import parse_duration

    return parse_duration(value, what=what)


def _number(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


def limits_from_tables(rates: Mapping[str, Any], timeouts: Mapping[str, Any]) -> RequestLimits:
    """The limits a config file's ``[rate_limits]`` and ``[timeouts]`` tables set."""
    limits = DEFAULT_LIMITS
    if "client_rate" in rates:
        limits = replace(limits, client_rate=_rate(rates["client_rate"], "rate_limits.client_rate"))
    if "provisioner_rate" in rates:
        rate = _rate(rates["provisioner_rate"], "rate_limits.provisioner_rate")
        limits = replace(limits, provisioner_rate=rate)
    if "client_burst" in rates:
        burst = _count(rates["client_burst"], "rate_limits.client_burst")
        limits = replace(limits, client_burst=burst)
    if "provisioner_burst" in rates:
        burst = _count(rates["provisioner_burst"], "rate_limits.provisioner_burst")
        limits = replace(limits, provisioner_burst=burst)
    if "request" in timeouts:
        limits = replace(limits, request_timeout=_timeout(timeouts["request"], "timeouts.request"))
    if "statement" in timeouts:
        statement = _timeout(timeouts["statement"], "timeouts.statement")
        limits = replace(limits, statement_timeout=statement)
    return limits


def limits_from_environment(limits: RequestLimits, env: Mapping[str, str]) -> RequestLimits:
    """``limits`` with what the environment overrides."""
    if env.get(CLIENT_RATE_ENV):
        rate = _rate(_number(env[CLIENT_RATE_ENV]), f"${CLIENT_RATE_ENV}")
        limits = replace(limits, client_rate=rate)
    if env.get(PROVISIONER_RATE_ENV):
        rate = _rate(_number(env[PROVISIONER_RATE_ENV]), f"${PROVISIONER_RATE_ENV}")
        limits = replace(limits, provisioner_rate=rate)
    for name in (REQUEST_TIMEOUT_ENV, STATEMENT_TIMEOUT_ENV):
        text = env.get(name)
        if text:
            duration = _timeout(int(text) if text.isdigit() else text, f"${name}")
            if name == REQUEST_TIMEOUT_ENV:
                limits = replace(limits, request_timeout=duration)
            else:
                limits = replace(limits, statement_timeout=duration)
    return limits
