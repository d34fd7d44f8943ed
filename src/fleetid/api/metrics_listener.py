"""The metrics listener of ``fleetid serve --metrics ADDR:PORT``: Prometheus text at ``/metrics``.

A listener of its own, apart from the authority's: scrapers reach it on an operations network
and never the EST or revocation routes, and devices never reach it. prometheus-client serves it
(``start_http_server``, a thread of the serving process). With ``--workers`` the workers update
files in the multiprocess directory (``fleetid.metrics.use_multiprocess_directory``) and this
listener, in the supervising process, adds them up at each scrape (``MultiProcessCollector``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

from fleetid.config import Listen
from fleetid.metrics import MULTIPROCESS_ENV

__all__ = ["METRICS_PATH", "start_metrics_listener"]

METRICS_PATH: Final = "/metrics"


def start_metrics_listener(listen: Listen) -> Callable[[], None]:
    """Serve the metrics on ``listen`` from a thread; returns what stops it."""
    registry = REGISTRY
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, thread = start_http_server(listen.port, addr=listen.host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
