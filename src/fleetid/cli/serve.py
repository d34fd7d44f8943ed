"""``fleetid serve``: the authority under uvicorn, plain HTTP on loopback and/or TLS.

``--http 127.0.0.1:PORT`` is for tests and the demo and is refused on a non-loopback address.
``--https ADDR:PORT`` serves TLS with a server certificate from the fleet PKI
(``FleetCa.tls_server_files``), for the host named in ADDR. It asks for a client certificate
optionally, with every CA certificate of the fleet and the operator CA as client trust anchors,
and hands a verified one to the app (``fleetid.api.peer_certificate``): a device re-enrols with
its current credential as TLS client certificate (RFC 7030 §3.3.2), and an operator reaches the
admin API (``fleetid.api.admin``). ``--public-http ADDR:PORT`` serves the CRLs, OCSP and CA
certificates (only those, ``fleetid.api.public``) over plain HTTP on a public address. All
listeners run in one process and one event loop, sharing one app.

``--public-url`` (or ``$FLEETID_PUBLIC_URL``) is the base URL every certificate names for its CRL
and OCSP; a loopback or unspecified one is refused before anything binds, unless
``--allow-loopback-urls`` says this is a test (``fleetid.config.check_public_url``).

``--workers N`` (N > 1, one listener) runs N uvicorn worker processes on the listener instead; each
opens the CA and the database itself (``worker_app``). All issuance state is in the database, so
the workers need nothing else in common; on SQLite they take turns writing (WAL, busy timeout).

``--metrics ADDR:PORT`` serves the Prometheus metrics (``fleetid.metrics``) at ``/metrics`` on a
listener of its own; with ``--workers`` the workers keep their values in a multiprocess directory
made for the run, and the listener sums them. ``--log-format json`` writes every log line, the
access log's included (``--log-level info``), as one JSON object (``fleetid.structured_logs``).

The listeners, public URL, database and HSM can come from the config file (``--config``, else
``<data-dir>/fleetid.toml``; ``fleetid.config``); a flag wins over the environment, which wins
over the file. ``--help`` lists the environment variables. SIGHUP (``fleetid reload``) re-reads
the profiles, provisioners and trust anchors (``fleetid.cli.reload``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fleetid.cli.output import add_authority_arguments
from fleetid.structured_logs import LOG_FORMATS

if TYPE_CHECKING:
    from fastapi import FastAPI

    from fleetid.authority.fleet_ca import FleetCa

__all__ = ["register", "worker_app"]

# How the parent hands the listener to worker processes (uvicorn imports ``worker_app`` there).
_WORKER_ENV: Final = "FLEETID_SERVE_WORKER"
# How long the supervisor waits for a worker's answer before it replaces the worker.
_WORKER_HEALTHCHECK_S: Final = 60
# Beside the server certificate: the fleet's CA certificates, as TLS client trust anchors.
_CLIENT_ANCHORS: Final = "client-anchors.pem"


def register(subparsers: Any) -> None:
    from fleetid.config import ENVIRONMENT

    parser = subparsers.add_parser(
        "serve",
        help="run the authority (EST over HTTP(S))",
        description="Run the authority. Settings: a flag, else the environment, else the config"
        " file, else the default.",
        epilog="environment variables (they override the config file):\n"
        + "\n".join(f"  {name:<28} {meaning}" for name, meaning in ENVIRONMENT.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_authority_arguments(parser)
    parser.add_argument("--http", metavar="127.0.0.1:PORT", help="plain HTTP, loopback only")
    parser.add_argument("--https", metavar="ADDR:PORT", help="TLS listener")
    parser.add_argument(
        "--tls-name",
        action="append",
        default=[],
        metavar="HOST",
        help="extra DNS name or IP for the TLS certificate (repeatable)",
    )
    parser.add_argument(
        "--public-http",
        metavar="ADDR:PORT",
        help="plain HTTP on a public address serving only CRLs and OCSP (RFC 5019 practice)",
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="base URL relying parties fetch CRLs and OCSP from, written into every certificate,"
        " e.g. http://pki.example.com (default: $FLEETID_PUBLIC_URL, else http://<--public-http>)",
    )
    parser.add_argument(
        "--allow-loopback-urls",
        action="store_true",
        help="tests only: let certificates name a loopback or unspecified address",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (N > 1 needs exactly one of --http, --https)",
    )
    parser.add_argument(
        "--metrics",
        metavar="ADDR:PORT",
        help="Prometheus metrics at /metrics on a listener of their own (all workers summed)",
    )
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="json: one object per line"
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="info and below add one access-log line per request",
    )
    parser.set_defaults(func=_serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    from fleetid.config import parse_listen

    metrics = parse_listen(args.metrics) if args.metrics else None
    multiprocess_dir = None
    if metrics is not None and args.workers > 1:
        # Before anything records a value: the workers inherit the directory's variable.
        import tempfile

        from fleetid.metrics import use_multiprocess_directory

        multiprocess_dir = Path(tempfile.mkdtemp(prefix="fleetid-metrics-"))
        use_multiprocess_directory(multiprocess_dir)
    _configure_logs(args.log_format, args.log_level)
    stop_metrics = None
    try:
        if metrics is not None:
            from fleetid.api.metrics_listener import start_metrics_listener

            stop_metrics = start_metrics_listener(metrics)
        return _serve_listeners(args)
    finally:
        if stop_metrics is not None:
            stop_metrics()
        if multiprocess_dir is not None:
            import shutil

            shutil.rmtree(multiprocess_dir, ignore_errors=True)


def _configure_logs(log_format: str, log_level: str) -> None:
    from fleetid.structured_logs import configure_logging

    configure_logging(log_level.upper(), "json" if log_format == "json" else "text")


def _logs(args: argparse.Namespace) -> dict[str, Any]:
    """uvicorn's logging: none of its own, through the root logger ``_configure_logs`` set up;
    the access log is ``fleetid.api.access_log``'s."""
    return {"log_config": None, "log_level": args.log_level, "access_log": False}


def _serve_listeners(args: argparse.Namespace) -> int:
    import uvicorn

    from fleetid.api import create_app
    from fleetid.api.peer_certificate import PeerCertificateProtocol
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.cli.output import load_settings
    from fleetid.cli.reload import pid_file, reload_app
    from fleetid.clock import SystemClock
    from fleetid.config import Settings, parse_listen
    from fleetid.errors import ConfigError, FleetIdError

    load_settings(args)  # the data directory exists and the config file parses
    settings = Settings.load(
        args.data_dir,
        config=args.config,
        http=parse_listen(args.http) if args.http else None,
        https=parse_listen(args.https) if args.https else None,
        public_http=parse_listen(args.public_http) if args.public_http else None,
        public_url=args.public_url,
        allow_loopback_urls=args.allow_loopback_urls,
    )
    http, https, public_http = settings.http, settings.https, settings.public_http
    if http is None and https is None:
        raise ConfigError("give --http 127.0.0.1:PORT, --https ADDR:PORT, or both")
    if http is not None and not _is_loopback(http.host):
        raise ConfigError(f"plain HTTP is served on loopback only, not {http.host}")
    if args.workers < 1:
        raise ConfigError("--workers is at least 1")
    if args.workers > 1 and public_http is not None:
        raise ConfigError("--public-http runs in one process: leave out --workers")
    if args.workers > 1:
        return _serve_workers(args, settings)
    settings.certificate_base_url  # noqa: B018 - refuses a loopback URL before binding
    clock = SystemClock()
    ca = FleetCa.open(settings, clock=clock)
    app = create_app(settings, clock=clock, ca=ca)
    servers = []
    if http is not None:
        config = uvicorn.Config(
            app, host=http.host, port=http.port, http=PeerCertificateProtocol, **_logs(args)
        )
        servers.append(uvicorn.Server(config))
    if https is not None:
        config = uvicorn.Config(
            app,
            host=https.host,
            port=https.port,
            **_logs(args),
            **_tls_options(ca, [https.host, *args.tls_name]),
        )
        servers.append(uvicorn.Server(config))
    if public_http is not None:
        from fleetid.api.public import revocation_only

        config = uvicorn.Config(
            revocation_only(app),
            host=public_http.host,
            port=public_http.port,
            **_logs(args),
            lifespan="off",  # the app's background work runs once, under the other listener
        )
        servers.append(uvicorn.Server(config))
    _warn_if_v2x_locked(settings)

    async def announce() -> None:
        # Said once every listener's socket is bound and accepting, never before (uvicorn
        # sets ``started`` after binding; a failed bind ends ``run`` without it).
        while not all(server.started for server in servers):
            await asyncio.sleep(0.05)
        for server in servers:
            print(f"fleetid: serving on {server.config.host}:{server.config.port}", flush=True)

    def reload() -> None:
        # SIGHUP: the config file again; a bad one is refused and the old settings stay.
        try:
            said = reload_app(app, servers)
        except (FleetIdError, OSError) as exc:
            said = f"reload refused: {exc}"
        print(f"fleetid: {said}", file=sys.stderr, flush=True)

    async def leave(pid: Path) -> None:
        # uvicorn re-raises SIGTERM once it has shut down, so no ``finally`` runs after it: the
        # pid file goes as soon as the shutdown starts.
        while not any(server.should_exit for server in servers):
            await asyncio.sleep(0.1)
        pid.unlink(missing_ok=True)

    async def run() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
        side = [asyncio.ensure_future(announce()), asyncio.ensure_future(leave(pid))]
        try:
            await asyncio.gather(*(server.serve() for server in servers))
        finally:
            for task in side:
                task.cancel()

    reload_app(app, servers)  # the provisioners the config file enables, from the start
    try:
        # uvicorn's own loop choice (uvloop when installed), as ``uvicorn.run`` would make it.
        with (
            pid_file(settings.data_dir) as pid,
            asyncio.Runner(loop_factory=servers[0].config.get_loop_factory()) as runner,
        ):
            runner.run(run())
    finally:
        ca.close()
    return 0


def _tls_options(ca: FleetCa, names: list[str]) -> dict[str, Any]:
    """uvicorn's TLS settings: the server certificate for ``names``, and client certificates
    asked for optionally, verified against every CA certificate of the fleet (all generations,
    so credentials of an earlier issuing CA or root authenticate until they expire)."""
    import ssl

    from cryptography import x509

    from fleetid.api.admin.authentication import operator_ca
    from fleetid.api.peer_certificate import PeerCertificateProtocol, client_trust_pem

    cert_file, key_file = ca.tls_server_files(names)
    with ca.store.transaction() as tx:
        anchors = [x509.load_der_x509_certificate(k.certificate) for k in tx.ca_keys.all()]
    # The operator CA too: its certificates authenticate operators to the admin API.
    anchors.append(operator_ca(ca).certificate)
    anchors_file = cert_file.parent / _CLIENT_ANCHORS
    anchors_file.write_bytes(client_trust_pem(anchors))
    return {
        "ssl_certfile": str(cert_file),
        "ssl_keyfile": str(key_file),
        "ssl_cert_reqs": ssl.CERT_OPTIONAL,
        "ssl_ca_certs": str(anchors_file),
        "http": PeerCertificateProtocol,
    }


def worker_app() -> FastAPI:
    """The app of one worker process (``--workers``): settings from the parent's environment."""
    from fleetid.api import create_app
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.cli.reload import reload_app
    from fleetid.clock import SystemClock
    from fleetid.config import Settings, parse_listen

    spec = json.loads(os.environ[_WORKER_ENV])
    _configure_logs(spec["log_format"], spec["log_level"])
    settings = Settings.load(
        Path(spec["data_dir"]),
        config=Path(spec["config"]) if spec.get("config") else None,
        http=parse_listen(spec["http"]) if spec["http"] else None,
        https=parse_listen(spec["https"]) if spec["https"] else None,
        public_url=spec["public_url"],
        allow_loopback_urls=spec["allow_loopback_urls"],
    )
    clock = SystemClock()
    app = create_app(settings, clock=clock, ca=FleetCa.open(settings, clock=clock))
    reload_app(app, [])  # the provisioners the config file enables
    return app


def _serve_workers(args: argparse.Namespace, settings: Any) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from fleetid.api.peer_certificate import PeerCertificateProtocol
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.cli.reload import pid_file
    from fleetid.clock import SystemClock
    from fleetid.errors import ConfigError

    http, https = settings.http, settings.https
    if (http is None) == (https is None):
        raise ConfigError("--workers serves one listener: give --http or --https, not both")
    listen = http or https
    settings.certificate_base_url  # noqa: B018 - refuses a loopback URL before binding
    tls: dict[str, Any] = {"http": PeerCertificateProtocol}
    ca = FleetCa.open(settings, clock=SystemClock())  # migrates once, before the workers start
    try:
        if https is not None:
            tls = _tls_options(ca, [https.host, *args.tls_name])
    finally:
        ca.close()
    os.environ[_WORKER_ENV] = json.dumps(
        {
            "data_dir": str(settings.data_dir.resolve()),
            "http": None if http is None else str(http),
            "https": None if https is None else str(https),
            "public_url": settings.public_url,
            "allow_loopback_urls": settings.allow_loopback_urls,
            "log_format": args.log_format,
            "log_level": args.log_level,
            "config": None if settings.config_file is None else str(settings.config_file),
        }
    )
    _warn_if_v2x_locked(settings)
    config = uvicorn.Config(
        "fleetid.cli.serve:worker_app",
        factory=True,
        host=listen.host,
        port=listen.port,
        workers=args.workers,
        # A worker answers the supervisor's health check only once it is up: on a loaded host
        # that takes more than uvicorn's 5 s, and the worker would be killed and started again.
        timeout_worker_healthcheck=_WORKER_HEALTHCHECK_S,
        **_logs(args),
        **tls,
    )
    # What ``uvicorn.run`` does for workers, with the announcement after the bind, not before.
    socket = config.bind_socket()
    print(f"fleetid: serving on {listen} with {args.workers} workers", flush=True)
    # uvicorn's supervisor restarts the workers on SIGHUP: each reads the settings anew.
    with pid_file(settings.data_dir):
        Multiprocess(config, sockets=[socket]).run()
    return 0


def _warn_if_v2x_locked(settings: Any) -> None:
    from fleetid.api.routes.etsi import v2x_unavailable_reason

    reason = v2x_unavailable_reason(settings)
    if reason is not None:
        print(f"fleetid: warning: {reason}; the V2X routes answer 503", file=sys.stderr, flush=True)
