"""The ``fleetid`` command line: one module per verb group, each with ``register(subparsers)``.

``main`` is the one place where a failure becomes what the operator sees: one line on stderr,
``fleetid: <family>: <what went wrong>``, and a non-zero exit status, never a traceback. It maps the
``FleetIdError`` tree (a secure element's status word becomes a sentence, ISO 7816-4 §5.6),
operating-system errors (a file or directory that cannot be read or written), a reader that
closed the pipe (``fleetid audit prove ... | head``: exit quietly, as ``cat`` does) and Ctrl-C.
Anything else is a defect in fleetid and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

from fleetid import __version__
from fleetid.cli import (
    applet,
    audit,
    ca,
    ceremony,
    crl,
    demo,
    device,
    line,
    revoke,
    se,
    serve,
    threats,
    token,
    v2x,
    worker,
)
from fleetid.cli import discovery as discovery_verb
from fleetid.cli import fido as fido_verb
from fleetid.cli import filter as filter_verb
from fleetid.cli import package as package_verb
from fleetid.cli.help_examples import attach as attach_examples
from fleetid.cli.operator_verbs import VERBS as OPERATOR_VERBS
from fleetid.cli.output import OneLineArgumentParser
from fleetid.errors import FleetIdError, SecureElementError

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILURE", "EXIT_INTERRUPTED", "describe_error", "main"]

EXIT_FAILURE: Final = 1
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, what a shell reports for `cmd | head`

# Each verb module adds its subcommands and sets ``func`` on the parser it creates.
_VERBS = (
    *(audit, ca, ceremony, crl, demo, device, line, revoke, se, serve, token, v2x, filter_verb),
    applet,
    fido_verb,
    package_verb,
    discovery_verb,
    threats,
    worker,
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="fleetid",
        description="Device identity at fleet scale: mint, enrol, refresh, re-key and revoke.",
    )
    parser.add_argument("--version", action="version", version=f"fleetid {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for verb in (*_VERBS, *OPERATOR_VERBS):  # the operator's verbs last
        verb.register(subparsers)
    attach_examples(parser)  # examples in every command's --help
    return parser


def describe_error(exc: FleetIdError | OSError) -> str:
    """The line an operator reads for ``exc`` (after ``fleetid: ``): its family, then what."""
    if isinstance(exc, SecureElementError):
        from fleetid.formats.apdu import status_word_meaning

        meaning = exc.meaning or status_word_meaning(exc.sw)
        sentence = f"the secure element refused: {meaning} (SW {exc.sw:04X})"
        return f"{type(exc).__name__}: {sentence}" + (f"; {exc.detail}" if exc.detail else "")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return f"{exc.filename}: {reason}" if exc.filename is not None else reason
    return f"{type(exc).__name__}: {exc}"


def _fail(message: str) -> int:
    # One line: a message that spans lines (a library's) is joined rather than cut.
    print(f"fleetid: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here rather than at interpreter exit
    except BrokenPipeError:
        # The reader went away; stdout must not be flushed again at exit (Python docs, signal).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("fleetid: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (FleetIdError, OSError) as exc:
        return _fail(describe_error(exc))
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
