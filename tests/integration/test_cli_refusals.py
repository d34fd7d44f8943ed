"""The authority's CLI refuses bad requests with one line and exit 1 (the EST path itself is
checked black-box in tests/conformance)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.authority_server import fleetid


@pytest.fixture
def authority(tmp_path: Path) -> Path:
    data_dir = tmp_path / "authority"
    result = fleetid("ca", "init", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return data_dir


def test_cli_refusals(authority: Path) -> None:
    unknown = fleetid(
        "revoke", "--data-dir", str(authority), "ab" * 20, "--reason", "keyCompromise"
    )
    assert unknown.returncode == 1
    assert "NotFoundError" in unknown.stderr
    bad_reason = fleetid("revoke", "--data-dir", str(authority), "ab", "--reason", "lostIt")
    assert bad_reason.returncode == 1
    assert "not an RFC 5280" in bad_reason.stderr
    twice = fleetid("ca", "init", "--data-dir", str(authority))
    assert twice.returncode == 1
    assert "already" in twice.stderr
    public = fleetid("serve", "--data-dir", str(authority), "--http", "0.0.0.0:8080")
    assert public.returncode == 1
    assert "loopback only" in public.stderr
