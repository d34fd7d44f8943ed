"""``fleetid demo`` with every logger at debug in JSON, then a token enrolment and a V2X key store
under a passphrase in the same logging: no log line holds any private key, token secret,
passphrase or random secret the run created (``tests/secret_scan.py``; its own test plants
each kind in a test double to prove it finds them)."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.asgi_app import asgi_request, enrol_with_token
from tests.secret_scan import SecretRecorder, scan

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import create_token
from fleetid.cli import main
from fleetid.clock import ManualClock
from fleetid.config import V2X_PASSPHRASE_ENV, Settings
from fleetid.structured_logs import JsonFormatter

pytestmark = pytest.mark.slow

PASSPHRASE = "correct horse battery staple 23"


def _debug_json(stream: io.StringIO) -> Any:
    """Stands in for ``logging.basicConfig``: the demo's own set-up call gets debug in JSON."""

    def configure(**_ignored: Any) -> None:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.DEBUG)

    return configure


def _token_enrolment(data: Path) -> None:

    settings = Settings.load(data, environ={"FLEETID_PUBLIC_URL": "http://pki.fleet.test"})
    ca = FleetCa.init(settings, clock=ManualClock(), name="Secret Fleet")
    try:
        with ca.store.transaction() as tx:
            token = create_token(tx, device_id="gw-secret", clock=ca.clock, ttl=timedelta(1))
        app = create_app(settings, clock=ca.clock, ca=ca)
        assert enrol_with_token(app, token).status_code == 200
        assert enrol_with_token(app, token).status_code == 401  # a refusal is logged too
        wrong = asgi_request(app, "POST", "/.well-known/est/simpleenroll", auth=("u", "p"))
        assert wrong.status_code in (401, 415)
    finally:
        ca.close()


def test_no_log_line_holds_a_secret_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = SecretRecorder()
    recorder.install(monkeypatch)
    recorder.add_text("the V2X key store passphrase", PASSPHRASE)
    stream = io.StringIO()
    monkeypatch.setattr(logging, "basicConfig", _debug_json(stream))
    logging.basicConfig()
    monkeypatch.setenv(V2X_PASSPHRASE_ENV, PASSPHRASE)
    monkeypatch.setenv("COLUMNS", "200")

    assert main(["demo", "--devices", "3"]) == 0
    _token_enrolment(tmp_path / "tokens")
    assert main(["v2x", "init", "--data-dir", str(tmp_path / "tokens")]) == 0
    capsys.readouterr()

    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(e["level"] == "debug" for e in entries)
    assert sum(e["logger"] == "fleetid.access" for e in entries) > 10  # the demo's requests
    assert any(e["message"] == "refused" for e in entries)
    assert len(recorder.keys) > 50 and recorder.values
    assert any("token" in where for where, _ in recorder.texts)  # the token's secret
    hits = scan(lines, recorder.needles())
    assert not hits, [(lines[n - 1][:200], what) for n, what in hits[:5]]
