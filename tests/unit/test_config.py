"""The config file (``fleetid.toml``): what it sets, the precedence flag > environment > file >
default, and a clear refusal of every malformed file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from fleetid.config import Listen, Settings, parse_duration, read_config_file
from fleetid.errors import ConfigError
from fleetid.policy import DEFAULT_POLICY, CredentialType

FULL = """
public_url = "http://pki.example.com"
database_url = "postgresql://fleetid@db/fleetid"

[listen]
https = "0.0.0.0:8443"
public_http = "0.0.0.0:80"

[hsm]
backend = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token = "fleet"

[v2x]
passphrase_file = "v2x-passphrase"

[profiles.operational]
validity = "14d"
refresh_window = "4d"
key_types = ["P-256"]

[profiles.tls-server]
validity = "60d"

[provisioners]
enabled = ["attestation"]
token_ttl = "2h"
challenge_ttl = "90s"

[rate_limits]
outstanding_challenges = 3
"""


def _write(directory: Path, text: str) -> Path:
    path = directory / "fleetid.toml"
    path.write_text(text)
    return path


def test_every_setting_of_a_full_file_is_read(tmp_path: Path) -> None:
    _write(tmp_path, FULL)
    (tmp_path / "v2x-passphrase").write_text("correct horse\n")
    settings = Settings.load(tmp_path, environ={})
    assert settings.config_file == tmp_path / "fleetid.toml"
    assert settings.public_url == "http://pki.example.com"
    assert settings.database_url == "postgresql://fleetid@db/fleetid"
    assert settings.https == Listen(host="0.0.0.0", port=8443)  # noqa: S104 - parsed, not bound
    assert settings.public_http == Listen(host="0.0.0.0", port=80)  # noqa: S104
    assert settings.http is None
    assert (settings.hsm, settings.pkcs11_token) == ("pkcs11", "fleet")
    assert settings.v2x_passphrase == b"correct horse"
    assert settings.provisioners == ("attestation",)
    operational = settings.policy.profile(CredentialType.OPERATIONAL)
    assert operational.cadence.lifetime == timedelta(days=14)
    assert operational.cadence.renewal_window == timedelta(days=4)
    assert operational.key_types == ("secp256r1",)
    tls = settings.policy.profile(CredentialType.TLS_SERVER)
    assert tls.cadence.lifetime == timedelta(days=60)
    assert tls.cadence.renewal_window == DEFAULT_POLICY.profile("tls-server").cadence.renewal_window
    assert settings.policy.token_ttl == timedelta(hours=2)
    assert settings.policy.challenge_ttl == timedelta(seconds=90)
    assert settings.policy.outstanding_challenges == 3
    assert "correct horse" not in repr(settings)


def test_the_environment_overrides_the_file_and_a_flag_overrides_both(tmp_path: Path) -> None:
    _write(tmp_path, FULL)
    (tmp_path / "v2x-passphrase").write_text("from file\n")
    env = {
        "FLEETID_PUBLIC_URL": "http://env.example.com",
        "FLEETID_DATABASE_URL": "sqlite:///elsewhere.db",
        "FLEETID_V2X_PASSPHRASE": "from env",
    }
    settings = Settings.load(tmp_path, environ=env)
    assert settings.public_url == "http://env.example.com"
    assert settings.database_url == "sqlite:///elsewhere.db"
    assert settings.v2x_passphrase == b"from env"
    flagged = Settings.load(
        tmp_path,
        environ=env,
        public_url="http://flag.example.com",
        https=Listen(host="::1", port=1),
    )
    assert flagged.public_url == "http://flag.example.com"
    assert flagged.https == Listen(host="::1", port=1)


def test_config_names_a_file_elsewhere_and_fleetid_config_too(tmp_path: Path) -> None:
    other = tmp_path / "etc"
    other.mkdir()
    _write(other, 'public_url = "http://etc.example.com"\n')
    data = tmp_path / "data"
    data.mkdir()
    _write(data, 'public_url = "http://data.example.com"\n')
    assert Settings.load(data, environ={}).public_url == "http://data.example.com"
    assert (
        Settings.load(data, environ={}, config=other / "fleetid.toml").public_url
        == "http://etc.example.com"
    )
    env = {"FLEETID_CONFIG": str(other / "fleetid.toml")}
    assert Settings.load(data, environ=env).public_url == "http://etc.example.com"


def test_no_file_means_the_defaults(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, environ={})
    assert settings.config_file is None
    assert settings.policy == DEFAULT_POLICY
    assert settings.provisioners is None


def test_the_passphrase_from_a_named_variable(tmp_path: Path) -> None:
    _write(tmp_path, '[v2x]\npassphrase_env = "MY_SECRET"\n')
    assert Settings.load(tmp_path, environ={"MY_SECRET": "s3"}).v2x_passphrase == b"s3"
    assert Settings.load(tmp_path, environ={}).v2x_passphrase is None


def test_the_retention_of_delivered_batches(tmp_path: Path) -> None:
    assert Settings.load(tmp_path, environ={}).v2x_delivered_retention is None
    _write(tmp_path, '[v2x]\ndelivered_retention = "2h"\n')
    assert Settings.load(tmp_path, environ={}).v2x_delivered_retention == timedelta(hours=2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("public_url = [\n", "is not valid TOML"),
        ("publik_url = 'http://x'\n", "no setting publik_url"),
        ("[listen]\nhttp = 'nonsense'\n", "is not HOST:PORT"),
        ("[listen]\nport = 80\n", "[listen] has no key port"),
        ("listen = 3\n", "[listen] is a table"),
        ("public_url = 'ftp://x'\n", "is not http://HOST"),
        ("public_url = ''\n", "public_url is a non-empty string"),
        ("allow_loopback_urls = 'yes'\n", "allow_loopback_urls is true or false"),
        ("[hsm]\nbackend = 'tpm'\n", "hsm.backend is one of software, pkcs11"),
        ("[profiles.vehicle]\nvalidity = '1d'\n", "no credential type 'vehicle'"),
        ("[profiles.operational]\nlifetime = '1d'\n", "holds only key_types"),
        ("[profiles.operational]\nvalidity = 'soon'\n", "is not a duration"),
        ("[profiles.operational]\nvalidity = '5d'\n", "renewal window is positive and shorter"),
        ("[profiles.operational]\nkey_types = ['RSA-2048']\n", "key_types is a list of P-256"),
        ("[profiles.operational]\nkey_types = []\n", "key_types is a list of P-256"),
        ("[provisioners]\nenabled = ['magic']\n", "provisioners.enabled lists token"),
        ("[provisioners]\ntoken_ttl = 0\n", "is not a duration"),
        ("[rate_limits]\noutstanding_challenges = 0\n", "is a positive integer"),
        ("[rate_limits]\noutstanding_challenges = true\n", "is a positive integer"),
        ("[v2x]\npassphrase_file = 'absent'\n", "v2x.passphrase_file"),
        ("[v2x]\npassphrase_file = 'a'\npassphrase_env = 'B'\n", "one passphrase source"),
        ("[v2x]\ndelivered_retention = 'soon'\n", "v2x.delivered_retention = 'soon' is not"),
        ("[v2x]\ndelivered_retention = -5\n", "is not a duration"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Settings.load(tmp_path, environ={})
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_named_config_file_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*absent\.toml does not exist"):
        Settings.load(tmp_path, environ={}, config=tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "absent.toml", {})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("1d12h", 129600), (60, 60)],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text, what="x") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "d", "3w", "-1d", "0s", 0, -5, True, 1.5, "1d x"])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_duration(text, what="x")
