"""``fleetid reload`` and the SIGHUP handler of ``fleetid serve`` (docs/operations.md, "Reload").

A running ``fleetid serve`` writes its process id to ``<data-dir>/fleetid.pid``. On SIGHUP it
re-reads the config file and takes, without dropping a connection:

* the credential profiles, token and challenge lifetimes and rate limits (``Policy``): the next
  issuance uses them;
* the provisioners the file enables (``[provisioners] enabled``), out of those the server has;
* the trust anchors: every CA generation in the database is added to the TLS listener's client
  trust (a rollover's new root and issuing CA authenticate devices at once);
* the manufacturer roots of ``trust/manufacturers`` (also followed on their own as they change).

A config file that does not parse is refused and the server keeps what it had. ``fleetid
reload --data-dir D`` checks the config file first (so a typo is reported here, with a non-zero
exit, rather than in the server's log), then signals the server. With ``--workers N``, SIGHUP
makes uvicorn's supervisor restart the workers, each of which reads the settings anew.

Which CA generation issues is read when the server starts: after ``fleetid ca rollover`` the
running server keeps issuing under the previous generation (valid, and trusted) until restarted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fleetid.cli.output import add_authority_arguments, add_json_flag, emit

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["PID_FILENAME", "pid_file", "register", "reload_app"]

PID_FILENAME: Final = "fleetid.pid"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reload", help="have a running fleetid serve re-read its config file (SIGHUP)"
    )
    add_authority_arguments(parser)
    add_json_flag(parser)
    parser.set_defaults(func=_reload)


@contextlib.contextmanager
def pid_file(data_dir: Path) -> Iterator[Path]:
    """``<data-dir>/fleetid.pid`` holding this process's id while the block runs."""
    path = data_dir / PID_FILENAME
    path.write_text(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()


def _server_pid(data_dir: Path) -> int:
    from fleetid.errors import NotFoundError

    path = data_dir / PID_FILENAME
    try:
        pid = int(path.read_text().strip())
    except FileNotFoundError:
        raise NotFoundError(f"no fleetid serve runs on {data_dir} (no {PID_FILENAME})") from None
    except ValueError:
        raise NotFoundError(f"{path} holds no process id") from None
    try:
        os.kill(pid, 0)  # signal 0: is it there, may we signal it
    except ProcessLookupError:
        raise NotFoundError(f"no process {pid} ({path} is stale)") from None
    return pid


def _reload(args: argparse.Namespace) -> int:
    from fleetid.cli.output import load_settings

    settings = load_settings(args)  # a config file that does not parse fails here, not there
    pid = _server_pid(args.data_dir)
    os.kill(pid, signal.SIGHUP)
    source = settings.config_file or "no config file"
    emit(args, {"pid": pid, "config": source}, lambda: [f"reload signalled to {pid} ({source})"])
    return 0


def reload_app(app: FastAPI, servers: list[Any]) -> str:
    """Re-read the config file into the running ``app``; what was reloaded, in words."""
    from cryptography import x509

    from fleetid.api.peer_certificate import client_trust_pem
    from fleetid.authority.provisioners.attestation import manufacturer_roots
    from fleetid.config import Settings

    current: Settings = app.state.settings
    fresh = Settings.load(current.data_dir, config=current.config_file)
    settings = replace(current, policy=fresh.policy, provisioners=fresh.provisioners)
    ca = app.state.ca
    service = app.state.enrolment
    every = getattr(app.state, "all_provisioners", None)
    if every is None:
        every = app.state.all_provisioners = dict(service.provisioners)
    enabled = settings.provisioners
    service.provisioners = {key: p for key, p in every.items() if enabled is None or key in enabled}
    ca.settings = settings
    app.state.settings = settings
    with ca.store.transaction() as tx:
        anchors = [x509.load_der_x509_certificate(k.certificate) for k in tx.ca_keys.all()]
    pem = client_trust_pem(anchors).decode()
    for server in servers:
        context = getattr(server.config, "ssl", None)
        if context is not None:
            context.load_verify_locations(cadata=pem)
    roots = manufacturer_roots(current.data_dir)
    return (
        f"reloaded {settings.config_file or 'defaults'}: profiles, provisioners "
        f"({', '.join(service.provisioners) or 'none'}), {len(anchors)} CA certificates,"
        f" {len(roots)} manufacturer roots"
    )
