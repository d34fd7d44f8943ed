"""Structured logs: one JSON object per line, and the request a line belongs to.

``configure_logging(level, "json")`` (``fleetid serve --log-format json``) sends every logger
through ``JsonFormatter``: ``time`` (UTC, RFC 3339), ``level``, ``logger``, ``pid``,
``message``, the fields a call passes as ``extra={"fields": {...}}``, and the fields of the
request being answered. The access log (``fleetid.api.access_log``) opens a request's fields with
``bind_request`` (its request ID, method and path); code deeper down adds what it learns
(``annotate(provisioner=..., device=...)``), and every line logged while the request runs, on
whichever thread it is handed to with its context, carries them.

Log lines name and count; they never hold a key, a token's secret or a passphrase: callers log
identifiers (device serials, certificate serials, reason codes), never request bodies or
credentials.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "annotate",
    "bind_request",
    "configure_logging",
    "release_request",
    "request_fields",
]

LOG_FORMATS: Final = ("text", "json")
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("fleetid_request", default=None)


def bind_request(fields: dict[str, Any]) -> Token[dict[str, Any] | None]:
    """Make ``fields`` (mutable: ``annotate`` adds to it) the current request's fields."""
    return _REQUEST.set(fields)


def release_request(token: Token[dict[str, Any] | None]) -> None:
    _REQUEST.reset(token)


def request_fields() -> dict[str, Any] | None:
    """The current request's fields, if a request is being answered in this context."""
    return _REQUEST.get()


def annotate(**fields: Any) -> None:
    """Add what is now known about the current request (no-op outside one)."""
    current = _REQUEST.get()
    if current is not None:
        current.update(fields)


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which worker of ``fleetid serve --workers``
            "message": record.getMessage(),
        }
        current = _REQUEST.get()
        if current is not None:
            line.update(current)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(
    level: str | int = logging.INFO,
    log_format: Literal["text", "json"] = "text",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route every logger to ``stream`` (standard error) at ``level``; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return handler
