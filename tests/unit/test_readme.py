"""The README's examples run: its Python blocks execute, and every ``fleetid`` line of its shell
blocks is a command the CLI accepts, with the README's placeholders filled in.

The shell lines are parsed by the CLI's own argument parser rather than run, because they name an
operator's paths and hosts; the conformance suite (tests/conformance) runs the same commands for
real against a live server.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fleetid.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"

# What the README writes for the values an operator supplies, and a value of the right shape.
PLACEHOLDERS = {
    "[--name ORG]": "--name Example",
    "SERIAL_HEX": "1f2e3d",
    "SERIAL": "1f2e3d",
    "SHA256": "ab" * 32,
}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _fleetid_lines() -> list[str]:
    lines = []
    for block in _blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.partition(" # ")[0].strip()
            if command.startswith("fleetid "):
                lines.append(command)
    return lines


def test_the_readme_has_examples() -> None:
    assert len(_blocks("python")) >= 1
    assert len(_fleetid_lines()) >= 25


@pytest.mark.parametrize("line", _fleetid_lines())
def test_each_fleetid_line_is_a_command_the_cli_accepts(line: str) -> None:
    for placeholder, value in PLACEHOLDERS.items():
        line = line.replace(placeholder, value)
    arguments = shlex.split(line)[1:]
    try:
        parsed = build_parser().parse_args(arguments)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"the CLI refuses the README's line {line!r} (exit {exc.code})")
    assert callable(getattr(parsed, "func", None)), line


def test_a_line_the_cli_does_not_know_is_caught() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ca", "init", "--data-dir", "D", "--colour", "blue"])


@pytest.mark.parametrize("block", _blocks("python"))
def test_each_python_example_runs(block: str) -> None:
    exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102
