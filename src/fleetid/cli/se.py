"""``fleetid se``: secure element verbs.

``fleetid se pcsc --silicon CHIP --flash FLASH`` powers up an emulated secure element kept in
files and inserts it into pcscd's ``vpcd`` virtual reader until interrupted, so that any PC/SC
application (pyscard, ``opensc-tool``, ``gp``, ``pcsc_scan``) can talk to it.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from fleetid.errors import ConfigError
from fleetid.se.pcsc import VPCD_DEFAULT_HOST, VPCD_DEFAULT_PORT, VpcdBridge, vpcd_port_from_config

__all__ = ["register"]

# pcsc-lite's standard reader configuration file that Debian's vsmartcard-vpcd installs.
_VPCD_CONF = Path("/etc/reader.conf.d/vpcd")


def register(subparsers: Any) -> None:
    se = subparsers.add_parser("se", help="emulated secure element")
    verbs = se.add_subparsers(dest="se_command", metavar="VERB", required=True)
    pcsc = verbs.add_parser(
        "pcsc",
        help="insert an emulated card into pcscd's vpcd reader until interrupted",
        description="Serve a persisted emulated secure element to pcscd through the vpcd "
        "virtual reader (Debian packages pcscd and vsmartcard-vpcd).",
    )
    pcsc.add_argument("--silicon", type=Path, required=True, help="the chip file (fused secret)")
    pcsc.add_argument("--flash", type=Path, required=True, help="the chip's sealed flash file")
    pcsc.add_argument("--host", default=VPCD_DEFAULT_HOST, help="vpcd host (default %(default)s)")
    pcsc.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"vpcd port (default: from {_VPCD_CONF}, else {VPCD_DEFAULT_PORT})",
    )
    pcsc.set_defaults(func=_serve_pcsc)


def _vpcd_port(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    try:
        return vpcd_port_from_config(_VPCD_CONF.read_text())
    except OSError:
        return VPCD_DEFAULT_PORT


def _serve_pcsc(args: argparse.Namespace) -> int:
    from fleetid.se.card import SecureElement  # the card pulls in every applet: load on use

    for path in (args.silicon, args.flash):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist")
    card = SecureElement.open(args.silicon, args.flash)
    port = _vpcd_port(args.port)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    bridge = VpcdBridge(card, host=args.host, port=port)
    try:
        bridge.start()
        print(
            f"chip {card.chip_serial.hex().upper()} waiting for vpcd at {args.host}:{port}; "
            "Ctrl-C removes the card",
            flush=True,
        )
        inserted = False
        while not stop.wait(0.2) and bridge.error is None:
            if bridge.connected.is_set() and not inserted:
                print("inserted into the vpcd reader", flush=True)
            inserted = bridge.connected.is_set()
    finally:
        bridge.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("card removed", flush=True)
    return 0 if bridge.error is None else 1
