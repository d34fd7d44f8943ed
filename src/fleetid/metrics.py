"""Every Prometheus metric fleetid exposes, defined once (docs/operations.md, "Metrics and logs").

The code where an event happens updates the metric here and nothing else: issuance
(``authority/enrolment.py``, ``authority/lifecycle.py``), refusals (``api/errors.py``), OCSP
answers and revocation publication (``revocation/``), HSM signatures (``hsm/base.py``), the line
(``factory/line/provisioning.py``) and the group-commit writer (through its batch hook,
``api/writes.py``). ``fleetid serve --metrics ADDR:PORT`` serves them (``api/metrics_listener.py``).

Under ``fleetid serve --workers N`` every worker is a process of its own: prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``use_multiprocess_directory`` before a
worker starts) keeps each worker's values in a file there, and the listener adds them up. Every
metric has labels, so no value exists before its first update, when the mode is already chosen.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, values

__all__ = [
    "DB_POOL_CONNECTIONS",
    "GROUP_COMMIT_BATCH",
    "HSM_SIGN_SECONDS",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "ISSUANCE",
    "ISSUANCE_SECONDS",
    "LINE_QUARANTINES",
    "LINE_UNITS",
    "MULTIPROCESS_ENV",
    "OCSP_RESPONSES",
    "PUBLICATION_LAG",
    "REFUSALS",
    "observe_publication_lag",
    "use_multiprocess_directory",
]

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: a software-HSM signature takes well under a millisecond, an enrolment a few.
_FAST: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Seconds from a revocation to the artefact that carries it: OCSP within the poll interval,
# CRLs and filters on their publication cadence (minutes to a day).
_LAG: Final = (0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)

ISSUANCE = Counter(
    "fleetid_issuance",
    "Certificates issued, by provisioner (token, attestation; refresh, rekey) and credential type",
    ["provisioner", "credential_type"],
)
ISSUANCE_SECONDS = Histogram(
    "fleetid_issuance_seconds",
    "Time to check and issue one certificate (from the request's checks to its record)",
    ["provisioner", "credential_type"],
    buckets=_FAST,
)
REFUSALS = Counter(
    "fleetid_refusals",
    "Requests refused with a problem details answer, by reason code",
    ["reason"],
)
PUBLICATION_LAG = Histogram(
    "fleetid_revocation_publication_lag_seconds",
    "Time from a revocation to the first artefact of a channel that carries it",
    ["channel"],
    buckets=_LAG,
)
OCSP_RESPONSES = Counter(
    "fleetid_ocsp_responses",
    "OCSP answers: cache hit or miss (pre-signed), nonce (signed fresh), or error status",
    ["cache"],
)
HSM_SIGN_SECONDS = Histogram(
    "fleetid_hsm_sign_seconds",
    "Time of one signature in the HSM, by backend",
    ["backend"],
    buckets=_FAST,
)
LINE_UNITS = Counter(
    "fleetid_line_units",
    "Units the provisioning line finished, by outcome (secured, quarantined, duplicate)",
    ["outcome"],
)
LINE_QUARANTINES = Counter(
    "fleetid_line_quarantines",
    "Units the line quarantined, by the step that failed",
    ["failed_step"],
)
DB_POOL_CONNECTIONS = Gauge(
    "fleetid_db_pool_connections",
    "Database connections of the pool (checked out, idle), summed over live workers",
    ["state"],
    multiprocess_mode="livesum",
)
GROUP_COMMIT_BATCH = Histogram(
    "fleetid_group_commit_batch_size",
    "Units committed together by the group-commit writer, by outcome of the commit",
    ["outcome"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
HTTP_REQUESTS = Counter(
    "fleetid_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "fleetid_http_request_seconds",
    "Time to answer one HTTP request, by route template",
    ["route"],
    buckets=_FAST,
)


def observe_publication_lag(channel: str, now: datetime, revoked_at: Iterable[datetime]) -> None:
    """One lag observation per revocation that ``channel`` publishes for the first time now."""
    lag = PUBLICATION_LAG.labels(channel=channel)
    for when in revoked_at:
        lag.observe(max(0.0, (now - when).total_seconds()))


def use_multiprocess_directory(directory: Path) -> None:
    """Keep this process's values, and those of the processes it starts, in ``directory``.

    Called before any metric is updated (every metric has labels, so none holds a value yet);
    prometheus-client chooses the file-backed values from the environment.
    """
    os.environ[MULTIPROCESS_ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
