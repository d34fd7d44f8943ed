"""The ``fleetid`` command line: one module per verb group, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fleetid import __version__
from fleetid.cli import audit, ca, ceremony, crl, demo, device, line, revoke, se, serve, token, v2x
from fleetid.cli import filter as filter_verb
from fleetid.errors import FleetIdError

__all__ = ["main"]

# Each verb module adds its subcommands and sets ``func`` on the parser it creates.
_VERBS = (audit, ca, ceremony, crl, demo, device, line, revoke, se, serve, token, v2x, filter_verb)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetid",
        description="Device identity at fleet scale: mint, enrol, refresh, re-key and revoke.",
    )
    parser.add_argument("--version", action="version", version=f"fleetid {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for verb in _VERBS:
        verb.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
    except FleetIdError as exc:
        print(f"fleetid: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
