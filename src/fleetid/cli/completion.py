"""``fleetid completion bash|zsh|fish``: a shell completion script for the whole command line,
generated from the argument parser itself by shtab (so it never lags behind the commands).

Install with ``fleetid completion bash > /etc/bash_completion.d/fleetid``, ``fleetid completion
zsh > "${fpath[1]}/_fleetid"`` or ``fleetid completion fish > ~/.config/fish/completions/
fleetid.fish``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["SHELLS", "register"]

SHELLS = ("bash", "zsh", "fish")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("completion", help="print a shell completion script")
    parser.add_argument("shell", metavar="SHELL", help="bash, zsh or fish")
    parser.set_defaults(func=_completion)


def _completion(args: argparse.Namespace) -> int:
    import shtab

    from fleetid.cli import build_parser
    from fleetid.errors import ConfigError

    if args.shell not in SHELLS:
        raise ConfigError(f"no completion for {args.shell!r}: one of {', '.join(SHELLS)}")
    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return 0
