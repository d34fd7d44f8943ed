"""Schemathesis against the OpenAPI document of a running ``fleetid serve`` (HTTP, loopback):
every operation is called with generated requests (bounded: a few examples each, one seed), and
no answer may be a 5xx, an undocumented status, another media type than documented, or a body
that does not match its schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.authority_server import fleetid, free_port, serving
from tests.optional import require_module

_REPO = Path(__file__).resolve().parents[2]
_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def test_every_operation_answers_as_its_schema_says(tmp_path: Path) -> None:
    require_module("schemathesis", install="pip install -r requirements/test.txt")
    port = free_port()
    env = {
        **os.environ,
        "FLEETID_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "FLEETID_ALLOW_LOOPBACK_URLS": "1",
    }
    data_dir = tmp_path / "authority"
    made = fleetid("ca", "init", "--data-dir", str(data_dir), env=env)
    assert made.returncode == 0, made.stderr
    runner = Path(sys.executable).parent / "schemathesis"
    with serving(data_dir, [port], ["--http", f"127.0.0.1:{port}"], env=env):
        ran = subprocess.run(
            [
                str(runner),
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                ",".join(_CHECKS),
                "--max-examples",
                "5",
                "--seed",
                "9457",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **env,
                "PYTHONPATH": str(_REPO),
                "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
            },
            check=False,
        )
    summary = ran.stdout[-3000:]
    assert ran.returncode == 0, summary
    assert "API Operations:" in ran.stdout
    # Every operation was reached (none skipped for want of a serializer).
    assert "Serialization not possible" not in ran.stdout, summary
    assert " passed" in ran.stdout and "failures" not in ran.stdout, summary
