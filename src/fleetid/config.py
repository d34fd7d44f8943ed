"""Settings for the fleet authority: one frozen value, built from arguments and the environment.

12-factor: every setting has a default, and the environment overrides it:

* ``FLEETID_DATABASE_URL``: a SQLAlchemy URL (``postgresql+psycopg://user@host/db``); unset means
  SQLite in ``<data-dir>/fleetid.db`` (see ``fleetid.store.engine``).
* ``FLEETID_PUBLIC_URL`` (``fleetid serve --public-url``): the base URL that issued certificates
  name for OCSP and CRLs (RFC 5280 §4.2.2.1, §4.2.1.13), and the issuing CA for the root CRL
  when set at ``ca init``. Plain ``http://`` as RFC 5280/5019 practice has it (the artefacts are
  signed; https would be circular for the server's own TLS certificate). Unset means the public
  plain-HTTP listener (``--public-http``), else the loopback one. A URL naming a loopback or
  unspecified address is refused for certificates (``check_public_url``) unless
  ``FLEETID_ALLOW_LOOPBACK_URLS=1`` (``--allow-loopback-urls``) says this is a test.
* ``FLEETID_V2X_PASSPHRASE``: unlocks the V2X authorities' key store (``fleetid v2x init``); the
  V2X routes are served when the data directory holds a hierarchy. Never logged (``repr=False``).
* ``FLEETID_HSM``: where ``fleetid ca init`` makes the fleet CA's keys: ``software`` (the default,
  ``fleetid.hsm.software`` in the data dir) or ``pkcs11`` (a token, ``fleetid.hsm.pkcs11``), with
  ``FLEETID_PKCS11_MODULE`` (the module's path; unset: SoftHSM2 where Debian puts it),
  ``FLEETID_PKCS11_TOKEN`` (the token label) and, for ``ca init`` only, ``FLEETID_PKCS11_SO_PIN``
  (to set the token's random user PIN; never logged). The choice is recorded in the data dir
  (``fleetid.authority.ca_hsm``); later opens follow the record.

The same settings, and the issuance policy, can be written in one TOML file (docs/operations.md):
``fleetid.toml`` in the data dir, or the file ``--config`` or ``$FLEETID_CONFIG`` names
(``read_config_file``; docs/operations.md shows every key). The precedence is: a command-line
flag, then the environment, then the file, then the default. A key the file does not know is
refused, so that a typo is not a silently ignored setting.

Domain code takes a ``Settings`` and never reads the environment itself.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from fleetid.errors import ConfigError
from fleetid.policy import DEFAULT_POLICY, Cadence, CredentialType, Policy
from fleetid.request_limits import (
    DEFAULT_LIMITS,
    LIMIT_ENVIRONMENT,
    RATE_KEYS,
    TIMEOUT_KEYS,
    RequestLimits,
    limits_from_environment,
    limits_from_tables,
)

__all__ = [
    "ALLOW_LOOPBACK_URLS_ENV",
    "CONFIG_ENV",
    "CONFIG_FILENAME",
    "DATABASE_URL_ENV",
    "ENVIRONMENT",
    "HSM_BACKENDS",
    "HSM_ENV",
    "KEY_TYPES",
    "PKCS11_MODULE_ENV",
    "PKCS11_SO_PIN_ENV",
    "PKCS11_TOKEN_ENV",
    "PROVISIONER_TYPES",
    "PUBLIC_URL_ENV",
    "V2X_PASSPHRASE_ENV",
    "ConfigFile",
    "Listen",
    "Settings",
    "check_public_url",
    "parse_duration",
    "parse_listen",
    "read_config_file",
]

DATABASE_URL_ENV = "FLEETID_DATABASE_URL"
PUBLIC_URL_ENV = "FLEETID_PUBLIC_URL"
ALLOW_LOOPBACK_URLS_ENV = "FLEETID_ALLOW_LOOPBACK_URLS"
V2X_PASSPHRASE_ENV = "FLEETID_V2X_PASSPHRASE"  # noqa: S105 - the name of the variable
HSM_ENV = "FLEETID_HSM"
PKCS11_MODULE_ENV = "FLEETID_PKCS11_MODULE"
PKCS11_TOKEN_ENV = "FLEETID_PKCS11_TOKEN"  # noqa: S105 - the name of the variable
PKCS11_SO_PIN_ENV = "FLEETID_PKCS11_SO_PIN"
CONFIG_ENV = "FLEETID_CONFIG"
HSM_BACKENDS = ("software", "pkcs11")
CONFIG_FILENAME: Final = "fleetid.toml"
#: The provisioners a config file may enable (``fleetid.authority.provisioners``' type keys).
PROVISIONER_TYPES: Final = ("token", "attestation")
#: The key types a profile may accept (the CSR check accepts these curves, csr.ACCEPTED_CURVES).
KEY_TYPES: Final = {"P-256": "secp256r1", "P-384": "secp384r1"}

#: Every environment variable fleetid reads, and what it sets (``fleetid serve --help``).
ENVIRONMENT: Final = {
    CONFIG_ENV: "the config file (default: DATA_DIR/fleetid.toml when present)",
    DATABASE_URL_ENV: "SQLAlchemy database URL (default: SQLite DATA_DIR/fleetid.db)",
    PUBLIC_URL_ENV: "base URL certificates name for OCSP and CRLs",
    ALLOW_LOOPBACK_URLS_ENV: "1: certificates may name loopback URLs (tests only)",
    V2X_PASSPHRASE_ENV: "unlocks the V2X authorities' key store",
    HSM_ENV: f"the fleet CA's HSM at ca init: {' or '.join(HSM_BACKENDS)}",
    PKCS11_MODULE_ENV: "the PKCS#11 module's path",
    PKCS11_TOKEN_ENV: "the PKCS#11 token label",
    PKCS11_SO_PIN_ENV: "the token's SO PIN, for ca init only",
    **LIMIT_ENVIRONMENT,
}


@dataclass(frozen=True, kw_only=True)
class Listen:
    """A listening address, ``host:port`` (IPv6 hosts in brackets: ``[::1]:8443``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT`` as given on the command line; a bad form raises ``ConfigError``."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen address {text!r} is not HOST:PORT")
    return Listen(host=host, port=int(port))


def _parse_public_url(text: str) -> str:
    """An absolute ``http(s)://HOST[:PORT][/PATH]`` without query or fragment, no trailing /."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"public URL {text!r} is not http://HOST[:PORT][/PATH]")
    return text.strip().rstrip("/")


def check_public_url(url: str, *, allow_loopback: bool) -> str:
    """``url`` if relying parties elsewhere can reach it: a loopback or unspecified host (which
    would be baked into every certificate) is refused unless ``allow_loopback`` (tests)."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        local = host == "localhost" or host.endswith(".localhost")
    else:
        local = address.is_loopback or address.is_unspecified
    if local and not allow_loopback:
        raise ConfigError(
            f"certificates would name {url}, which relying parties cannot reach: give the public"
            " base URL (--public-url or $FLEETID_PUBLIC_URL), or --allow-loopback-urls for a test"
        )
    return url


_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object, *, what: str) -> timedelta:
    """A duration as the config file writes it: ``"30d"``, ``"12h"``, ``"1d12h"``, ``"90m"``,
    ``"45s"``, or a number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if parts and _DURATION.sub("", text).strip() == "":
            seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts)
            if seconds > 0:
                return timedelta(seconds=seconds)
    raise ConfigError(f"{what} = {value!r} is not a duration (e.g. '30d', '12h', 3600)")


# The config file's keys: every table and the keys each may hold (anything else is a typo).
_TOP_KEYS: Final = {
    "public_url",
    "allow_loopback_urls",
    "database_url",
    "listen",
    "hsm",
    "v2x",
    "profiles",
    "provisioners",
    "rate_limits",
    "timeouts",
}
_TABLE_KEYS: Final = {
    "listen": {"http", "https", "public_http"},
    "hsm": {"backend", "module", "token"},
    "v2x": {"passphrase_file", "passphrase_env", "delivered_retention"},
    "provisioners": {"enabled", "token_ttl", "challenge_ttl"},
    "rate_limits": {"outstanding_challenges", *RATE_KEYS},
    "timeouts": TIMEOUT_KEYS,
}
_PROFILE_KEYS: Final = {"validity", "refresh_window", "key_types"}


@dataclass(frozen=True, kw_only=True)
class ConfigFile:
    """What a config file says; ``None`` where it says nothing (the environment or the default
    decides). The V2X passphrase is read from its source, never written in the file itself."""

    path: Path
    public_url: str | None = None
    allow_loopback_urls: bool | None = None
    database_url: str | None = None
    http: Listen | None = None
    https: Listen | None = None
    public_http: Listen | None = None
    hsm: str | None = None
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    v2x_passphrase: bytes | None = field(default=None, repr=False)
    v2x_delivered_retention: timedelta | None = None
    provisioners: tuple[str, ...] | None = None
    policy: Policy = field(default=DEFAULT_POLICY)
    limits: RequestLimits = field(default=DEFAULT_LIMITS)


def _table(document: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] is a table")
    unknown = sorted(set(value) - _TABLE_KEYS.get(name, set(value)))
    if unknown:
        raise ConfigError(f"{path}: [{name}] has no key {', '.join(unknown)}")
    return value


def _text(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and not (isinstance(value, str) and value):
        raise ConfigError(f"{where}{key} is a non-empty string, not {value!r}")
    return value


def _profiles(document: Mapping[str, Any], path: Path, policy: Policy) -> Policy:
    """The policy with each ``[profiles.TYPE]`` table's validity, refresh window, key types."""
    tables = document.get("profiles", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: [profiles] is a table of credential types")
    profiles = dict(policy.profiles)
    for name, table in tables.items():
        try:
            credential_type = CredentialType(name)
        except ValueError:
            known = ", ".join(str(t) for t in CredentialType)
            raise ConfigError(f"{path}: no credential type {name!r} (one of {known})") from None
        if not isinstance(table, dict) or set(table) - _PROFILE_KEYS:
            raise ConfigError(
                f"{path}: [profiles.{name}] holds only {', '.join(sorted(_PROFILE_KEYS))}"
            )
        profile = profiles[credential_type]
        where = f"profiles.{name}."
        lifetime = profile.cadence.lifetime
        if "validity" in table:
            lifetime = parse_duration(table["validity"], what=where + "validity")
        window = profile.cadence.renewal_window
        if "refresh_window" in table:
            window = parse_duration(table["refresh_window"], what=where + "refresh_window")
        key_types = profile.key_types
        if "key_types" in table:
            key_types = _key_types(table["key_types"], where + "key_types")
        try:
            cadence = Cadence(lifetime=lifetime, renewal_window=window)
        except ConfigError as exc:
            raise ConfigError(f"{path}: [profiles.{name}]: {exc}") from None
        profiles[credential_type] = replace(profile, cadence=cadence, key_types=key_types)
    return replace(policy, profiles=profiles)


def _key_types(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(v in KEY_TYPES for v in value):
        raise ConfigError(f"{where} is a list of {', '.join(KEY_TYPES)}, not {value!r}")
    return tuple(KEY_TYPES[v] for v in value)


def _provisioners(table: Mapping[str, Any], path: Path) -> tuple[str, ...] | None:
    enabled = table.get("enabled")
    if enabled is None:
        return None
    if not isinstance(enabled, list) or not all(v in PROVISIONER_TYPES for v in enabled):
        raise ConfigError(
            f"{path}: provisioners.enabled lists {', '.join(PROVISIONER_TYPES)}, not {enabled!r}"
        )
    return tuple(enabled)


def _delivered_retention(table: Mapping[str, Any]) -> timedelta | None:
    """``[v2x] delivered_retention``: how long the butterfly RA keeps a downloaded batch."""
    value = table.get("delivered_retention")
    return None if value is None else parse_duration(value, what="v2x.delivered_retention")


def _v2x_passphrase(table: Mapping[str, Any], path: Path, env: Mapping[str, str]) -> bytes | None:
    """The passphrase from the source the file names: a file (its first line) or a variable."""
    source_file = _text(table, "passphrase_file", "v2x.")
    source_env = _text(table, "passphrase_env", "v2x.")
    if source_file is not None and source_env is not None:
        raise ConfigError(f"{path}: [v2x] names one passphrase source, not two")
    if source_file is not None:
        secret_path = Path(source_file)
        if not secret_path.is_absolute():
            secret_path = path.parent / secret_path
        try:
            lines = secret_path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"{path}: v2x.passphrase_file: {exc.strerror}") from None
        return lines[0].encode() if lines and lines[0] else None
    if source_env is not None:
        return env.get(source_env, "").encode() or None
    return None


def read_config_file(path: Path, environ: Mapping[str, str] | None = None) -> ConfigFile:
    """Parse and check ``path`` (TOML 1.0, Python's ``tomllib``): every refusal is one
    ``ConfigError`` naming the file and the key."""
    try:
        return _read_config_file(path, os.environ if environ is None else environ)
    except ConfigError as exc:
        if str(path) in str(exc):
            raise
        raise ConfigError(f"{path}: {exc}") from None


def _read_config_file(path: Path, env: Mapping[str, str]) -> ConfigFile:
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: no setting {', '.join(unknown)}")
    listen = _table(document, "listen", path)
    hsm = _table(document, "hsm", path)
    provisioners = _table(document, "provisioners", path)
    limits = _table(document, "rate_limits", path)
    backend = _text(hsm, "backend", "hsm.")
    if backend is not None and backend not in HSM_BACKENDS:
        raise ConfigError(f"{path}: hsm.backend is one of {', '.join(HSM_BACKENDS)}")
    allow = document.get("allow_loopback_urls")
    if allow is not None and not isinstance(allow, bool):
        raise ConfigError(f"{path}: allow_loopback_urls is true or false")
    policy = _profiles(document, path, DEFAULT_POLICY)
    if "token_ttl" in provisioners:
        ttl = parse_duration(provisioners["token_ttl"], what="provisioners.token_ttl")
        policy = replace(policy, token_ttl=ttl)
    if "challenge_ttl" in provisioners:
        ttl = parse_duration(provisioners["challenge_ttl"], what="provisioners.challenge_ttl")
        policy = replace(policy, challenge_ttl=ttl)
    if "outstanding_challenges" in limits:
        bound = limits["outstanding_challenges"]
        if not isinstance(bound, int) or isinstance(bound, bool) or bound < 1:
            raise ConfigError(f"{path}: rate_limits.outstanding_challenges is a positive integer")
        policy = replace(policy, outstanding_challenges=bound)
    public = _text(document, "public_url", "")
    return ConfigFile(
        path=path,
        public_url=_parse_public_url(public) if public else None,
        allow_loopback_urls=allow,
        database_url=_text(document, "database_url", ""),
        **{
            name: parse_listen(text)
            for name in ("http", "https", "public_http")
            if (text := _text(listen, name, "listen.")) is not None
        },
        hsm=backend,
        pkcs11_module=_text(hsm, "module", "hsm."),
        pkcs11_token=_text(hsm, "token", "hsm."),
        v2x_passphrase=_v2x_passphrase(_table(document, "v2x", path), path, env),
        v2x_delivered_retention=_delivered_retention(_table(document, "v2x", path)),
        provisioners=_provisioners(provisioners, path),
        policy=policy,
        limits=limits_from_tables(limits, _table(document, "timeouts", path)),
    )


def _config_file(data_dir: Path, config: Path | None, env: Mapping[str, str]) -> ConfigFile | None:
    """The file ``config`` or ``$FLEETID_CONFIG`` names (it must exist), else the data dir's
    ``fleetid.toml`` if there is one."""
    named = config or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if named is not None:
        return read_config_file(named, env)
    default = data_dir / CONFIG_FILENAME
    return read_config_file(default, env) if default.is_file() else None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the authority needs to run; build it with ``Settings.load``."""

    data_dir: Path
    database_url: str | None = None
    http: Listen | None = None
    https: Listen | None = None
    public_http: Listen | None = None  # plain HTTP for revocation artefacts only
    public_url: str | None = None
    allow_loopback_urls: bool = False  # tests only: certificates may name loopback URLs
    policy: Policy = field(default=DEFAULT_POLICY)
    v2x_passphrase: bytes | None = field(default=None, repr=False)
    # How long the butterfly RA keeps a downloaded batch; None: its default (one day).
    v2x_delivered_retention: timedelta | None = None
    # The fleet CA's HSM; None: not chosen (ca init makes a software HSM, open follows the record).
    hsm: str | None = None
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    pkcs11_so_pin: str | None = field(default=None, repr=False)
    # The config file these settings were read with (``fleetid reload`` reads it again), and
    # the provisioners it enables (None: every one the authority has).
    config_file: Path | None = None
    provisioners: tuple[str, ...] | None = None
    # Request rates and timeouts (``fleetid.request_limits``).
    limits: RequestLimits = field(default=DEFAULT_LIMITS)

    @classmethod
    def load(
        cls,
        data_dir: Path | str,
        *,
        environ: Mapping[str, str] | None = None,
        config: Path | None = None,
        http: Listen | None = None,
        https: Listen | None = None,
        public_http: Listen | None = None,
        public_url: str | None = None,
        allow_loopback_urls: bool = False,
        policy: Policy | None = None,
    ) -> Settings:
        """Flags (the arguments), then ``environ``, then the config file, then the defaults."""
        env = os.environ if environ is None else environ
        file = _config_file(Path(data_dir), config, env) or ConfigFile(path=Path())
        url = env.get(DATABASE_URL_ENV) or file.database_url
        public = public_url or env.get(PUBLIC_URL_ENV) or file.public_url
        allow = (
            allow_loopback_urls
            or env.get(ALLOW_LOOPBACK_URLS_ENV, "") in ("1", "true", "yes")
            or bool(file.allow_loopback_urls)
        )
        v2x_passphrase = env.get(V2X_PASSPHRASE_ENV) or None
        hsm = env.get(HSM_ENV) or None
        if hsm is not None and hsm not in HSM_BACKENDS:
            raise ConfigError(f"${HSM_ENV} is one of {', '.join(HSM_BACKENDS)}, not {hsm!r}")
        return cls(
            data_dir=Path(data_dir),
            database_url=url,
            http=http or file.http,
            https=https or file.https,
            public_http=public_http or file.public_http,
            public_url=_parse_public_url(public) if public else None,
            allow_loopback_urls=allow,
            policy=file.policy if policy is None else policy,
            v2x_passphrase=v2x_passphrase.encode() if v2x_passphrase else file.v2x_passphrase,
            v2x_delivered_retention=file.v2x_delivered_retention,
            hsm=hsm or file.hsm,
            pkcs11_module=env.get(PKCS11_MODULE_ENV) or file.pkcs11_module,
            pkcs11_token=env.get(PKCS11_TOKEN_ENV) or file.pkcs11_token,
            pkcs11_so_pin=env.get(PKCS11_SO_PIN_ENV) or None,
            config_file=None if file.path == Path() else file.path,
            provisioners=file.provisioners,
            limits=limits_from_environment(file.limits, env),
        )

    @property
    def statement_timeout_s(self) -> float | None:
        """The longest one SQL statement may run (``fleetid.store.engine``)."""
        timeout = self.limits.statement_timeout
        return timeout.total_seconds() if timeout else None

    def with_listeners(self, *, http: Listen | None, https: Listen | None) -> Settings:
        return replace(self, http=http, https=https)

    @property
    def base_url(self) -> str:
        """Where relying parties fetch this authority's OCSP and CRLs."""
        if self.public_url:
            return self.public_url
        if self.public_http is not None:
            return f"http://{self.public_http}"
        if self.http is not None:
            return f"http://{self.http}"
        if self.https is not None:
            return f"https://{self.https}"
        raise ConfigError(f"no public URL: set ${PUBLIC_URL_ENV} or a listener")

    @property
    def certificate_base_url(self) -> str:
        """``base_url`` as certificates may name it (``check_public_url``)."""
        return check_public_url(self.base_url, allow_loopback=self.allow_loopback_urls)
