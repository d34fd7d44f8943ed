"""``fleetid token create --count N``, ``token list`` and ``token revoke`` through
``fleetid.cli.main``: the tokens work for EST, are audited, and a revoked one no longer enrols."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.operator_fixtures import Authority, authority, run_cli, run_json

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners import BasicCredentials, EnrolmentRequest
from fleetid.authority.provisioners.token import TokenProvisioner
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.errors import AuthenticationError
from fleetid.factory.auditlog import AuditLogReader, load_verifier_key

__all__ = ["authority"]


def _authorise(data_dir: Path, username: str, password: str) -> str:
    """Run the token provisioner on the credential, as an EST enrolment would."""
    ca = FleetCa.open(Settings.load(data_dir), clock=SystemClock())
    request = EnrolmentRequest(
        csr=None, basic=BasicCredentials(username=username, password=password)
    )  # type: ignore[arg-type]
    try:
        with ca.store.transaction() as tx:
            return TokenProvisioner(ca.clock).authorise(tx, request).device_id
    finally:
        ca.close()


def test_create_count_makes_one_token_per_device_in_one_run(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(authority.data_dir)
    made = run_json(
        capsys, "token", "create", "--data-dir", d, "--device-prefix", "gw-", "--count", "25"
    )
    assert isinstance(made, list)
    assert [t["device_id"] for t in made] == [f"gw-{n:04d}" for n in range(1, 26)]
    assert len({t["username"] for t in made}) == 25
    assert _authorise(authority.data_dir, made[7]["username"], made[7]["password"]) == "gw-0008"
    listed = run_json(capsys, "token", "list", "--data-dir", d, "--state", "unused")
    assert {t["username"] for t in listed} == {t["username"] for t in made} - {made[7]["username"]}  # type: ignore[union-attr]
    assert all("password" not in t for t in listed)  # type: ignore[union-attr]


def test_create_count_is_audited_under_one_checkpoint(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    origin, key = load_verifier_key(authority.data_dir)
    before = AuditLogReader(authority.data_dir, origin).verify_all(key)
    status, out, _ = run_cli(
        capsys,
        "token",
        "create",
        "--data-dir",
        str(authority.data_dir),
        "--device-prefix",
        "x-",
        "--count",
        "10",
    )
    assert status == 0 and len(out.splitlines()) == 10
    after = AuditLogReader(authority.data_dir, origin).verify_all(key)
    assert after.entries == before.entries + 10
    assert after.checkpoints == before.checkpoints + 1


def test_single_create_prints_user_colon_password(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli(
        capsys, "token", "create", "--data-dir", str(authority.data_dir), "--device-id", "gw-7"
    )
    assert status == 0
    username, password = out.strip().split(":")
    assert _authorise(authority.data_dir, username, password) == "gw-7"


def test_revoke_ends_an_unused_token(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(authority.data_dir)
    token = run_json(capsys, "token", "create", "--data-dir", d, "--device-id", "gw-8")
    assert isinstance(token, dict)
    revoked = run_json(capsys, "token", "revoke", token["username"], "--data-dir", d)
    assert revoked["username"] == token["username"]  # type: ignore[index]
    with pytest.raises(AuthenticationError, match="expired"):
        _authorise(authority.data_dir, token["username"], token["password"])
    (listed,) = run_json(capsys, "token", "list", "--data-dir", d, "--device", "gw-8")  # type: ignore[misc]
    assert listed["state"] == "expired"
    status, _, err = run_cli(capsys, "token", "revoke", token["username"], "--data-dir", d)
    assert status == 1 and "expired at" in err and "already" in err


def test_revoke_refuses_a_used_token(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(authority.data_dir)
    token = run_json(capsys, "token", "create", "--data-dir", d, "--device-id", "gw-9")
    assert isinstance(token, dict)
    _authorise(authority.data_dir, token["username"], token["password"])
    status, _, err = run_cli(capsys, "token", "revoke", token["username"], "--data-dir", d)
    assert status == 1
    assert err.startswith(f"fleetid: PolicyError: token {token['username']} enrolled gw-9 already")


def test_revoke_an_unknown_token_is_one_line(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(
        capsys, "token", "revoke", "t-nope", "--data-dir", str(authority.data_dir)
    )
    assert (status, err) == (1, "fleetid: NotFoundError: no enrolment token 't-nope'\n")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device-id", "a", "--count", "3"], "--count goes with --device-prefix"),
        (["--device-prefix", "a-", "--count", "0"], "--count is 1 to"),
        (["--device-prefix", "a-", "--count", "100001"], "--count is 1 to"),
        (["--device-prefix", "a:", "--count", "2"], "has no ':'"),
    ],
)
def test_create_refuses_bad_counts_and_ids_and_makes_nothing(
    authority: Authority, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    d = str(authority.data_dir)
    status, out, err = run_cli(capsys, "token", "create", "--data-dir", d, *extra)
    assert status == 1 and out == "" and message in err and len(err.splitlines()) == 1
    assert run_json(capsys, "token", "list", "--data-dir", d) == []


def test_list_a_bad_state_is_a_usage_error(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(
        capsys, "token", "list", "--data-dir", str(authority.data_dir), "--state", "x"
    )
    assert status == 2 and err.startswith("fleetid: token list: argument --state")
