"""B2: ``fleetid serve`` refuses a loopback or unspecified public URL (certificates would name
it) unless the operator says this is a test. What the public listener serves is checked
black-box in tests/conformance/test_crl.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.authority_server import fleetid, free_port

pytestmark = pytest.mark.slow

_CLI = "import sys; from fleetid.cli import main; sys.exit(main())"


def _serve_refused(data_dir: Path, *args: str, env: dict[str, str]) -> str:
    """``fleetid serve`` that must refuse before binding: one line on stderr, non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-c", _CLI, "serve", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "serving on" not in result.stdout
    return result.stderr


def test_loopback_and_unspecified_urls_are_refused_unless_a_test(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    data_dir = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data_dir), env=env).returncode == 0
    port = free_port()
    # The README's old line: loopback URLs baked into every certificate, without a word.
    out = _serve_refused(data_dir, "--https", f"127.0.0.1:{port}", env=env)
    assert "relying parties cannot reach" in out and "--public-url" in out
    out = _serve_refused(data_dir, "--https", f"127.0.0.1:{port}",
                         "--public-http", f"0.0.0.0:{port}", env=env)  # fmt: skip
    assert "http://0.0.0.0" in out
    for url in ("http://[::1]:8080", "http://localhost", "http://0.0.0.0:80"):
        out = _serve_refused(data_dir, "--https", f"127.0.0.1:{port}", "--public-url", url,
                             env=env)  # fmt: skip
        assert "relying parties cannot reach" in out, url
    out = _serve_refused(data_dir, "--https", f"127.0.0.1:{port}", "--public-url", "ftp://x",
                         env=env)  # fmt: skip
    assert "is not http://HOST" in out
    # ca init with a loopback public URL is refused before anything is made.
    other = tmp_path / "other"
    refused = fleetid("ca", "init", "--data-dir", str(other),
                      env={**env, "FLEETID_PUBLIC_URL": "http://127.0.0.1:9"})  # fmt: skip
    assert refused.returncode != 0 and "cannot reach" in refused.stderr, refused.stderr
    assert not other.exists()
    helped = fleetid("serve", "--help", env=env)
    assert "--public-url" in helped.stdout and "--allow-loopback-urls" in helped.stdout
