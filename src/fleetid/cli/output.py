"""What the operator's commands share: ``--data-dir``/``--config``, ``--json``, and their output.

Every command that prints takes ``--json`` (docs/operations.md, "Conventions"): the
same facts as the text, as one JSON document on stdout, times in RFC 3339 UTC, bytes in hex.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from fleetid.config import Settings
    from fleetid.store.inspection import Inspection

__all__ = [
    "OneLineArgumentParser",
    "add_authority_arguments",
    "add_json_flag",
    "emit",
    "format_span",
    "inspection",
    "jsonable",
    "load_settings",
    "parse_span",
]


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and exit status 2 (every error is one
    line); the sub-command parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("fleetid").strip() or "usage"
        self.exit(2, f"fleetid: {command}: {message} (see {self.prog} --help)\n")


def add_authority_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data-dir`` and ``--config`` (default: DATA_DIR/fleetid.toml if present); a command
    that can use the admin API instead (``fleetid.cli.remote``) does not require ``--data-dir``."""
    help_text = "the authority's directory" + ("" if required else " (or --ca-url)")
    parser.add_argument("--data-dir", type=Path, required=required, help=help_text)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="the config file (default: $FLEETID_CONFIG, else DATA_DIR/fleetid.toml if present)",
    )


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


@contextmanager
def inspection(args: argparse.Namespace) -> Iterator[Inspection]:
    """The read-only queries of ``--data-dir``'s database (``fleetid.store.inspection``); a driver
    error is one line."""
    from fleetid.store.engine import database_errors, engine_from_settings
    from fleetid.store.inspection import Inspection

    engine = engine_from_settings(load_settings(args))
    try:
        with database_errors(), Inspection.open(engine) as db:
            yield db
    finally:
        engine.dispose()


def load_settings(args: argparse.Namespace) -> Settings:
    """The settings of ``--data-dir`` (which must exist) with ``--config``."""
    from fleetid.config import Settings
    from fleetid.errors import ConfigError

    if not args.data_dir.is_dir():
        raise ConfigError(f"data directory {args.data_dir} does not exist")
    return Settings.load(args.data_dir, config=getattr(args, "config", None))


def parse_span(text: str) -> timedelta:
    """``--expiring-within 30d``: a duration as the config file writes it."""
    from fleetid.config import parse_duration
    from fleetid.errors import ConfigError

    try:
        return parse_duration(int(text) if text.isdigit() else text, what="the duration")
    except ConfigError as exc:  # argparse reports a type's ArgumentTypeError as a usage error
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_span(span: timedelta) -> str:
    """``7d``, ``12h``, ``90s``: a duration as ``parse_span`` reads it."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def jsonable(value: Any) -> Any:
    """``value`` as JSON types (``fleetid.authority.operator_views.as_json``, which the admin
    API answers with too): times as RFC 3339, bytes as hex."""
    from fleetid.authority.operator_views import as_json

    return as_json(value)


def emit(
    args: argparse.Namespace, document: Any, text: Callable[[], Iterable[str]] | None = None
) -> None:
    """Print ``document`` as JSON under ``--json``, else the lines ``text`` gives."""
    if getattr(args, "json", False) or text is None:
        json.dump(jsonable(document), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    for line in text():
        sys.stdout.write(line + "\n")
