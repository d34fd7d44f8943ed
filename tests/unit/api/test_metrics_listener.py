"""The metrics listener (``fleetid serve --metrics``): Prometheus text at ``/metrics``, and under
``--workers`` the sum of every worker process's values, read from the multiprocess directory.
The exposition is read back with prometheus-client's own parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.authority_server import free_port

from fleetid.api.metrics_listener import METRICS_PATH, start_metrics_listener
from fleetid.config import Listen
from fleetid.metrics import MULTIPROCESS_ENV

_LABELS = {"provisioner": "listener-test", "credential_type": "token-device"}

# A worker: the directory in its environment from the start (as uvicorn's spawned workers get it).
_FROM_ENVIRONMENT = """
from fleetid.metrics import ISSUANCE
ISSUANCE.labels("listener-test", "token-device").inc(3)
"""
# The serving process itself: prometheus-client imported first, the directory chosen after.
_CHOSEN_AFTER_IMPORT = """
import sys
from pathlib import Path
from fleetid.metrics import ISSUANCE, use_multiprocess_directory
use_multiprocess_directory(Path(sys.argv[1]))
ISSUANCE.labels("listener-test", "token-device").inc(4)
"""


def _run(code: str, directory: Path, *, env_dir: bool) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    if env_dir:
        env[MULTIPROCESS_ENV] = str(directory)
    subprocess.run([sys.executable, "-c", code, str(directory)], env=env, check=True, timeout=60)


def _scrape(listen: Listen) -> dict[str, float]:
    response = httpx.get(f"http://{listen}{METRICS_PATH}", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.labels == _LABELS:
                samples[sample.name] = sample.value
    return samples


def test_the_listener_sums_every_worker_of_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(_FROM_ENVIRONMENT, tmp_path, env_dir=True)
    _run(_CHOSEN_AFTER_IMPORT, tmp_path, env_dir=False)
    assert len(list(tmp_path.glob("*.db"))) == 2  # one file per writing process
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))
    listen = Listen(host="127.0.0.1", port=free_port())
    stop = start_metrics_listener(listen)
    try:
        assert _scrape(listen) == {"fleetid_issuance_total": 7.0}
    finally:
        stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{listen}{METRICS_PATH}", timeout=2)  # stopped


def test_without_a_directory_the_listener_serves_this_process_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(_FROM_ENVIRONMENT, tmp_path, env_dir=True)
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    listen = Listen(host="127.0.0.1", port=free_port())
    stop = start_metrics_listener(listen)
    try:
        assert _scrape(listen) == {}  # the other process's values are not this one's
    finally:
        stop()
