"""``fleetid v2x init|publish|stats`` and the on-disk hierarchy behind them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from fleetid.authority.v2x import V2xTrustStore
from fleetid.authority.v2x.on_disk import init_v2x, open_v2x
from fleetid.cli import main
from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.device.v2x import ItsStation, SoftwareV2xKeys
from fleetid.errors import ConfigError, NotFoundError, PolicyError, VerificationError

PASSPHRASE = "correct-horse-battery"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETID_V2X_PASSPHRASE", PASSPHRASE)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("family", ["brainpool", "nist"])
def test_init_publish_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    code, out, _ = run(capsys, "v2x", "init", "--data-dir", str(tmp_path), "--family", family)
    assert code == 0
    ids = json.loads(out)
    assert ids["family"] == family
    for role in ("root", "ea", "aa", "ra", "ra-enc", "pca", "pca-enc", "la1", "la2"):
        assert (tmp_path / "v2x" / "keys" / f"{role}.p8").stat().st_mode & 0o077 == 0
    assert len({ids["ra"], ids["pseudonym_ca"], ids["ea"], ids["aa"]}) == 4
    for database in ("ra.db", "pca.db", "la1.db", "la2.db", "butterfly.json"):
        assert (tmp_path / "v2x" / database).is_file()
    code, out, _ = run(
        capsys,
        "v2x",
        "publish",
        "--data-dir",
        str(tmp_path),
        "--revoke-ca",
        ids["aa"],
        "--out",
        str(tmp_path / "pub"),
    )
    assert code == 0
    published = json.loads(out)
    assert (published["ctl_sequence"], published["crl_entries"]) == (1, [ids["aa"]])
    # A relying party given the root verifies what was published and sees the AA revoked.
    from fleetid.clock import SystemClock

    store = open_v2x(tmp_path, passphrase=PASSPHRASE.encode(), clock=SystemClock())
    trust = V2xTrustStore(store.hierarchy.root.certificate.encoded, clock=SystemClock())
    store.close()
    trust.apply_ctl((tmp_path / "pub" / "ctl.oer").read_bytes())
    assert trust.apply_crl((tmp_path / "pub" / "crl.oer").read_bytes()) == 1
    with pytest.raises(VerificationError, match="revoked"):
        trust.ca(bytes.fromhex(ids["aa"]), "aa")
    code, out, _ = run(capsys, "v2x", "stats", "--data-dir", str(tmp_path))
    stats = json.loads(out)
    assert (code, stats["revoked_cas"], stats["ctl_sequence"]) == (0, 1, 1)


@pytest.mark.usefixtures("env")
def test_init_twice_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "v2x", "init", "--data-dir", str(tmp_path))[0] == 0
    code, _, err = run(capsys, "v2x", "init", "--data-dir", str(tmp_path))
    assert code == 1 and "already" in err


def test_passphrase_required_and_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETID_V2X_PASSPHRASE", raising=False)
    code, _, err = run(capsys, "v2x", "init", "--data-dir", str(tmp_path))
    assert code == 1 and "FLEETID_V2X_PASSPHRASE" in err
    monkeypatch.setenv("FLEETID_V2X_PASSPHRASE", "short")
    code, _, err = run(capsys, "v2x", "init", "--data-dir", str(tmp_path))
    assert code == 1 and "12 characters" in err
    monkeypatch.setenv("FLEETID_V2X_PASSPHRASE", PASSPHRASE)
    assert run(capsys, "v2x", "init", "--data-dir", str(tmp_path))[0] == 0
    monkeypatch.setenv("FLEETID_V2X_PASSPHRASE", "the-wrong-passphrase")
    code, _, err = run(capsys, "v2x", "stats", "--data-dir", str(tmp_path))
    assert code == 1 and "wrong passphrase" in err


@pytest.mark.usefixtures("env")
def test_no_hierarchy_and_bad_revoke_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "v2x", "stats", "--data-dir", str(tmp_path))
    assert code == 1 and "v2x init" in err
    run(capsys, "v2x", "init", "--data-dir", str(tmp_path))
    for bad in ("zz", "00" * 4, "00" * 8):
        code, _, err = run(
            capsys, "v2x", "publish", "--data-dir", str(tmp_path), "--revoke-ca", bad
        )
        assert code == 1, bad


def test_state_survives_reopening_and_stale_lists_are_resigned(tmp_path: Path) -> None:
    clock = ManualClock()
    store = init_v2x(tmp_path, family_name="brainpool", passphrase=PASSPHRASE.encode(), clock=clock)
    family = store.hierarchy.family
    canonical = SoftwareSigner(generate_key(family.end_entity))
    store.hierarchy.ea.register_canonical_key(b"VIN-1", canonical.public_key())
    station = ItsStation(
        its_id=b"VIN-1",
        canonical_key=canonical,
        keys=SoftwareV2xKeys(),
        family=family,
        trust=store.hierarchy.trust_store(),
        clock=clock,
    )
    station.enrol(store.hierarchy.ea.handle_enrolment)
    store.close()
    clock.advance(timedelta(days=10))  # past the CTL's and CRL's nextUpdate
    reopened = open_v2x(tmp_path, passphrase=PASSPHRASE.encode(), clock=clock)
    stats = reopened.stats()
    assert (stats["ecs_issued"], stats["ctl_sequence"]) == (1, 1)
    station.trust = reopened.hierarchy.trust_store()
    station.request_tickets(1, reopened.hierarchy.aa.handle_authorization)
    assert reopened.stats()["ats_issued"] == 1
    reopened.close()
    with pytest.raises(ConfigError):
        init_v2x(tmp_path, family_name="brainpool", passphrase=PASSPHRASE.encode(), clock=clock)


def test_revoking_a_ca_outside_the_hierarchy_is_not_found_and_revokes_nothing(
    tmp_path: Path,
) -> None:
    store = init_v2x(
        tmp_path, family_name="nist", passphrase=PASSPHRASE.encode(), clock=ManualClock()
    )
    try:
        ea = store.hierarchy.ea.certificate.hashed_id8
        with pytest.raises(NotFoundError, match=(b"\x00" * 8).hex()) as refused:
            store.publish(revoke=(ea, b"\x00" * 8))
        assert not isinstance(refused.value, PolicyError)
        assert store.hierarchy.revoked == []  # the EA's revocation rolled back with it
        assert store.stats()["revoked_cas"] == 0
        store.publish(revoke=(ea,))
        assert store.stats()["revoked_cas"] == 1
    finally:
        store.close()
