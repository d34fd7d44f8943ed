"""``fleetid.structured_logs``: one JSON object per line, with the fields of the request being
answered, and nothing of a request outside it."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import copy_context
from typing import Literal

from fleetid.structured_logs import annotate, bind_request, configure_logging, release_request


@contextmanager
def _configured(level: str, log_format: Literal["text", "json"]) -> Iterator[io.StringIO]:
    """``configure_logging`` to a buffer, the root logger as it was afterwards."""
    root = logging.getLogger()
    handlers, level_before = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(level, log_format, stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level_before)


def _line(stream: io.StringIO) -> dict[str, object]:
    (text,) = stream.getvalue().splitlines()
    parsed: dict[str, object] = json.loads(text)
    return parsed


def test_a_json_line_has_time_level_logger_pid_message_and_fields() -> None:
    with _configured("DEBUG", "json") as stream:
        logging.getLogger("fleetid.test").debug("hello %s", "world", extra={"fields": {"n": 1}})
    line = _line(stream)
    assert line["level"] == "debug" and line["logger"] == "fleetid.test"
    assert line["message"] == "hello world" and line["n"] == 1
    assert isinstance(line["pid"], int)
    assert str(line["time"]).endswith("+00:00")


def test_the_request_fields_follow_the_context_and_annotations() -> None:
    log = logging.getLogger("fleetid.test")
    fields: dict[str, object] = {"request_id": "r-1"}
    with _configured("INFO", "json") as stream:
        token = bind_request(fields)
        annotate(device="gw-7")
        context = copy_context()  # what a thread handed the request's work runs in
        worker = threading.Thread(target=context.run, args=(log.info, "in the worker"))
        worker.start()
        worker.join()
        release_request(token)
        annotate(device="gw-8")  # no request: nothing to annotate
        log.info("after")
    inside, after = (json.loads(text) for text in stream.getvalue().splitlines())
    assert (inside["request_id"], inside["device"]) == ("r-1", "gw-7")
    assert "request_id" not in after and "device" not in after
    assert fields == {"request_id": "r-1", "device": "gw-7"}


def test_an_exception_is_one_line_too() -> None:
    with _configured("INFO", "json") as stream:
        try:
            raise ValueError("broken")
        except ValueError:
            logging.getLogger("fleetid.test").exception("failed")
    line = _line(stream)
    assert "ValueError: broken" in str(line["exception"])


def test_text_format_is_not_json() -> None:
    with _configured("INFO", "text") as stream:
        logging.getLogger("fleetid.test").info("plain")
        logging.getLogger("fleetid.test").debug("below the level")
    (text,) = stream.getvalue().splitlines()
    assert text.endswith("INFO fleetid.test: plain")
