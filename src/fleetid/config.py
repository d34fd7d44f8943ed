"""Settings for the fleet authority: one frozen value, built from arguments and the environment.

12-factor: every setting has a default, and the environment overrides it:

* ``FLEETID_DATABASE_URL``: a SQLAlchemy URL (``postgresql+psycopg://user@host/db``); unset means
  SQLite in ``<data-dir>/fleetid.db`` (see ``fleetid.store.engine``).
* ``FLEETID_PUBLIC_URL``: the base URL that issued certificates name for OCSP and CRLs (RFC 5280
  §4.2.2.1, §4.2.1.13); unset means the plain-HTTP listener, ``http://HOST:PORT``.
* ``FLEETID_V2X_PASSPHRASE``: unlocks the V2X authorities' key store (``fleetid v2x init``); the
  V2X routes are served when the data directory holds a hierarchy. Never logged (``repr=False``).

Domain code takes a ``Settings`` and never reads the environment itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from fleetid.errors import ConfigError
from fleetid.policy import DEFAULT_POLICY, Policy

__all__ = [
    "DATABASE_URL_ENV",
    "PUBLIC_URL_ENV",
    "V2X_PASSPHRASE_ENV",
    "Listen",
    "Settings",
    "parse_listen",
]

DATABASE_URL_ENV = "FLEETID_DATABASE_URL"
PUBLIC_URL_ENV = "FLEETID_PUBLIC_URL"
V2X_PASSPHRASE_ENV = "FLEETID_V2X_PASSPHRASE"  # noqa: S105 - the name of the variable


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


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the authority needs to run; build it with ``Settings.load``."""

    data_dir: Path
    database_url: str | None = None
    http: Listen | None = None
    https: Listen | None = None
    public_url: str | None = None
    policy: Policy = field(default=DEFAULT_POLICY)
    v2x_passphrase: bytes | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        data_dir: Path | str,
        *,
        environ: Mapping[str, str] | None = None,
        http: Listen | None = None,
        https: Listen | None = None,
        policy: Policy = DEFAULT_POLICY,
    ) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get(DATABASE_URL_ENV) or None
        public = env.get(PUBLIC_URL_ENV) or None
        v2x_passphrase = env.get(V2X_PASSPHRASE_ENV) or None
        return cls(
            data_dir=Path(data_dir),
            database_url=url,
            http=http,
            https=https,
            public_url=public.rstrip("/") if public else None,
            policy=policy,
            v2x_passphrase=v2x_passphrase.encode() if v2x_passphrase else None,
        )

    def with_listeners(self, *, http: Listen | None, https: Listen | None) -> Settings:
        return replace(self, http=http, https=https)

    @property
    def base_url(self) -> str:
        """Where relying parties fetch this authority's OCSP and CRLs."""
        if self.public_url:
            return self.public_url
        if self.http is not None:
            return f"http://{self.http}"
        if self.https is not None:
            return f"https://{self.https}"
        raise ConfigError(f"no public URL: set ${PUBLIC_URL_ENV} or a listener")
