"""``fleetid completion bash|zsh|fish`` and the examples in every command's ``--help``."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from tests.operator_fixtures import run_cli
from tests.optional import require_tool

from fleetid.cli import build_parser
from fleetid.cli.help_examples import EXAMPLES, commands


def _bash_complete(script: Path, words: list[str]) -> set[str]:
    """What bash offers for ``words`` (the last one being typed), through the script's function."""
    line = " ".join(words)
    probe = f"""
source {shlex.quote(str(script))}
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={shlex.quote(line)}
COMP_POINT={len(line)}
_shtab_fleetid
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    return {w.strip() for w in done.stdout.splitlines() if w.strip()}


def test_bash_completion_offers_verbs_and_their_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("bash")
    status, out, _ = run_cli(capsys, "completion", "bash")
    assert status == 0
    script = tmp_path / "fleetid.bash"
    script.write_text(out)
    assert {"cert", "ceremony"} <= _bash_complete(script, ["fleetid", "ce"])
    assert _bash_complete(script, ["fleetid", "cert", ""]) >= {"list", "show"}
    assert "--expiring-within" in _bash_complete(script, ["fleetid", "cert", "list", "--exp"])
    assert _bash_complete(script, ["fleetid", "cert", "list", "--status", ""]) == {
        "valid",
        "revoked",
        "expired",
    }


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_every_verb(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli(capsys, "completion", shell)
    assert status == 0
    for verb in ("cert", "doctor", "backup", "restore", "reload", "token", "serve"):
        assert verb in out


@pytest.mark.parametrize("shell", ["tcsh", "powershell", ""])
def test_an_unsupported_shell_is_one_line(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "completion", shell)
    assert status == 1 and out == ""
    assert err == f"fleetid: ConfigError: no completion for {shell!r}: one of bash, zsh, fish\n"


def test_every_command_has_examples_in_its_help() -> None:
    missing = [" ".join(path) for path, _ in commands(build_parser()) if path not in EXAMPLES]
    assert missing == []


def test_no_example_names_a_command_that_does_not_exist() -> None:
    existing = {path for path, _ in commands(build_parser())}
    assert set(EXAMPLES) - existing == set()


@pytest.mark.parametrize(
    "example", [line for lines in EXAMPLES.values() for line in lines], ids=lambda line: line[:60]
)
def test_each_example_is_a_command_the_cli_accepts(example: str) -> None:
    words = shlex.split(example.partition(" > ")[0])
    assert words[0] == "fleetid"
    parsed = build_parser().parse_args(words[1:])
    assert callable(parsed.func)


def test_help_prints_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "cert", "list", "--help")
    assert status == 0
    assert "examples:\n  fleetid cert list --data-dir /var/lib/fleetid --device gw-0001\n" in out


def test_serve_help_lists_every_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    from fleetid.config import ENVIRONMENT

    _, out, _ = run_cli(capsys, "serve", "--help")
    for name in ENVIRONMENT:
        assert f"  {name} " in out
    assert "FLEETID_CONFIG" in ENVIRONMENT and "FLEETID_DATABASE_URL" in ENVIRONMENT


def test_a_usage_error_is_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "doctor", "--data-dir", "x", "--colour", "blue")
    assert (status, out) == (2, "")
    assert err == "fleetid: usage: unrecognized arguments: --colour blue (see fleetid --help)\n"
