"""What the authority says about each certificate it issues: metrics, the request's fields, a log
line (docs/operations.md, "Metrics and logs"). Identifiers only: never a key or a credential."""

from __future__ import annotations

import logging
import time

from cryptography import x509

from fleetid import metrics
from fleetid.policy import CredentialType
from fleetid.structured_logs import annotate

__all__ = ["record_issuance"]

_log = logging.getLogger("fleetid.authority.issuance")


def record_issuance(
    certificate: x509.Certificate,
    *,
    provisioner: str,
    credential_type: CredentialType,
    device_id: str,
    started: float,
) -> None:
    """Count one issued certificate and its latency since ``started`` (``time.perf_counter``)."""
    kind = credential_type.value
    metrics.ISSUANCE.labels(provisioner, kind).inc()
    metrics.ISSUANCE_SECONDS.labels(provisioner, kind).observe(time.perf_counter() - started)
    annotate(provisioner=provisioner, device=device_id)
    serial = f"{certificate.serial_number:x}"
    fields = {"serial": serial, "credential_type": kind}
    _log.info("issued", extra={"fields": fields})
