"""The ``fleetid`` loggers captured as JSON lines (``fleetid.structured_logs.JsonFormatter``)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fleetid.structured_logs import JsonFormatter

__all__ = ["Captured", "capture_json_logs"]


class Captured:
    """What was logged, as text and as parsed JSON lines."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]

    def access(self, request_id: str) -> dict[str, Any]:
        """The one access-log line of ``request_id``."""
        (line,) = [
            e
            for e in self.entries()
            if e["logger"] == "fleetid.access" and e["request_id"] == request_id
        ]
        return line


@contextmanager
def capture_json_logs(name: str = "fleetid", level: int = logging.DEBUG) -> Iterator[Captured]:
    captured = Captured()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield captured
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
