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

Domain code takes a ``Settings`` and never reads the environment itself.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from fleetid.errors import ConfigError
from fleetid.policy import DEFAULT_POLICY, Policy

__all__ = [
    "ALLOW_LOOPBACK_URLS_ENV",
    "DATABASE_URL_ENV",
    "HSM_BACKENDS",
    "HSM_ENV",
    "PKCS11_MODULE_ENV",
    "PKCS11_SO_PIN_ENV",
    "PKCS11_TOKEN_ENV",
    "PUBLIC_URL_ENV",
    "V2X_PASSPHRASE_ENV",
    "Listen",
    "Settings",
    "check_public_url",
    "parse_listen",
]

DATABASE_URL_ENV = "FLEETID_DATABASE_URL"
PUBLIC_URL_ENV = "FLEETID_PUBLIC_URL"
ALLOW_LOOPBACK_URLS_ENV = "FLEETID_ALLOW_LOOPBACK_URLS"
V2X_PASSPHRASE_ENV = "FLEETID_V2X_PASSPHRASE"  # noqa: S105 - the name of the variable
HSM_ENV = "FLEETID_HSM"
PKCS11_MODULE_ENV = "FLEETID_PKCS11_MODULE"
PKCS11_TOKEN_ENV = "FLEETID_PKCS11_TOKEN"  # noqa: S105 - the name of the variable
PKCS11_SO_PIN_ENV = "FLEETID_PKCS11_SO_PIN"
HSM_BACKENDS = ("software", "pkcs11")


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
    # The fleet CA's HSM; None: not chosen (ca init makes a software HSM, open follows the record).
    hsm: str | None = None
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    pkcs11_so_pin: str | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        data_dir: Path | str,
        *,
        environ: Mapping[str, str] | None = None,
        http: Listen | None = None,
        https: Listen | None = None,
        public_http: Listen | None = None,
        public_url: str | None = None,
        allow_loopback_urls: bool = False,
        policy: Policy = DEFAULT_POLICY,
    ) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get(DATABASE_URL_ENV) or None
        public = public_url or env.get(PUBLIC_URL_ENV) or None
        allow = allow_loopback_urls or env.get(ALLOW_LOOPBACK_URLS_ENV, "") in ("1", "true", "yes")
        v2x_passphrase = env.get(V2X_PASSPHRASE_ENV) or None
        hsm = env.get(HSM_ENV) or None
        if hsm is not None and hsm not in HSM_BACKENDS:
            raise ConfigError(f"${HSM_ENV} is one of {', '.join(HSM_BACKENDS)}, not {hsm!r}")
        return cls(
            data_dir=Path(data_dir),
            database_url=url,
            http=http,
            https=https,
            public_http=public_http,
            public_url=_parse_public_url(public) if public else None,
            allow_loopback_urls=allow,
            policy=policy,
            v2x_passphrase=v2x_passphrase.encode() if v2x_passphrase else None,
            hsm=hsm,
            pkcs11_module=env.get(PKCS11_MODULE_ENV) or None,
            pkcs11_token=env.get(PKCS11_TOKEN_ENV) or None,
            pkcs11_so_pin=env.get(PKCS11_SO_PIN_ENV) or None,
        )

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
