"""``fleetid.cli.main``: the one place where a failure becomes one line on stderr and an exit
status, and where a defect in fleetid is not hidden."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from fleetid import cli
from fleetid.errors import ConfigError
from fleetid.se.client import error_for_sw


def _run_raising(
    monkeypatch: pytest.MonkeyPatch, raiser: Callable[[argparse.Namespace], int]
) -> int:
    """``fleetid demo`` with its action replaced by ``raiser``."""
    parsed = argparse.Namespace(func=raiser)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda self, argv=None: parsed)
    return cli.main(["demo"])


def _raise(exc: BaseException) -> Callable[[argparse.Namespace], int]:
    def action(_args: argparse.Namespace) -> int:
        raise exc

    return action


def test_a_fleetid_error_is_its_family_and_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_raising(monkeypatch, _raise(ConfigError("bad\nsetting"))) == 1
    assert capsys.readouterr().err == "fleetid: ConfigError: bad setting\n"


def test_an_os_error_names_its_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = FileNotFoundError(2, "No such file or directory", "/x/y")
    assert _run_raising(monkeypatch, _raise(error)) == 1
    assert capsys.readouterr().err == "fleetid: /x/y: No such file or directory\n"


def test_a_status_word_is_said_in_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_raising(monkeypatch, _raise(error_for_sw(0x6A88, "INS CA"))) == 1
    assert capsys.readouterr().err == (
        "fleetid: ReferencedDataNotFoundError: the secure element refused: "
        "the referenced key or data object is not on the card (SW 6A88); INS CA\n"
    )


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_raising(monkeypatch, _raise(KeyboardInterrupt())) == cli.EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "fleetid: interrupted\n"


def test_a_defect_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the FleetIdError tree and operating-system errors are mapped; a bug is not hidden."""
    with pytest.raises(ZeroDivisionError):
        _run_raising(monkeypatch, _raise(ZeroDivisionError()))
