"""``fleetid fido``: set up, load a BLOB, refuse a forged one in one line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from fleetid import cli
from fleetid.clock import SystemClock
from fleetid.sim.demo_fido import MetadataService, mds_entry, new_authenticator


def test_init_load_and_refuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = SystemClock().now()
    mds = MetadataService.create(now)
    root = tmp_path / "mds-root.pem"
    root.write_bytes(mds.root.public_bytes(serialization.Encoding.PEM))
    key = new_authenticator("Acme Key", now)
    blob = tmp_path / "blob.jwt"
    blob.write_text(
        mds.blob(
            2, now.date() + timedelta(days=7), [mds_entry(key, [("FIDO_CERTIFIED", now.date())])]
        )
    )
    data = tmp_path / "authority"
    data.mkdir()

    assert cli.main(["fido", "load-metadata", "--data-dir", str(data), str(blob)]) != 0
    assert "fleetid fido init" in capsys.readouterr().err

    args = ["fido", "init", "--data-dir", str(data), "--rp-id", "example.org"]
    assert cli.main([*args, "--origin", "https://example.org", "--metadata-root", str(root)]) == 0
    assert cli.main(["fido", "load-metadata", "--data-dir", str(data), str(blob)]) == 0
    assert "metadata BLOB 2 loaded: 1 authenticator models" in capsys.readouterr().out

    forged = tmp_path / "forged.jwt"
    forger = MetadataService.create(now, name="forger")
    forged.write_text(forger.blob(3, now.date() + timedelta(days=7), []))
    assert cli.main(["fido", "load-metadata", "--data-dir", str(data), str(forged)]) == 1
    err = capsys.readouterr().err
    assert "does not chain to the metadata root" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1

    assert cli.main(["fido", "load-metadata", "--data-dir", str(data), str(blob)]) == 1
    assert "not newer than BLOB 2" in capsys.readouterr().err
    assert cli.main(["fido", "operators", "--data-dir", str(data), "alice"]) == 0
    assert capsys.readouterr().out == ""
