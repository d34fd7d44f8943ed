"""``fleetid threats list|run [NAME] [--json]`` over the CLI: the table, the JSON tools read,
and one line with a non-zero exit for a scenario that does not exist."""

from __future__ import annotations

import json
import os

from tests.authority_server import fleetid


def test_list_names_every_scenario() -> None:
    ran = fleetid("threats", "list", "--json")
    assert ran.returncode == 0, ran.stderr
    names = [item["name"] for item in json.loads(ran.stdout)]
    assert names[0] == "flash-extraction" and "v2x-amplification" in names and len(names) == 8
    plain = fleetid("threats", "list")
    assert plain.returncode == 0 and "bus-attacks" in plain.stdout
    one = fleetid("threats", "list", "key-cloning")
    assert one.returncode == 0 and one.stdout.startswith("key-cloning")
    assert len(one.stdout.splitlines()) == 1


def test_run_one_scenario_as_json() -> None:
    ran = fleetid("threats", "run", "bus-attacks", "--json")
    assert ran.returncode == 0, ran.stderr
    (result,) = json.loads(ran.stdout)
    assert result["name"] == "bus-attacks"
    assert result["se_device"] == "stopped" and result["software_device"] is None
    assert "SCP03" in result["control"]


def test_run_prints_the_table() -> None:
    ran = fleetid("threats", "run", "flash-extraction", env={**os.environ, "COLUMNS": "200"})
    assert ran.returncode == 0, ran.stderr
    for text in ("Flash extraction", "stopped", "compromised", "SE device", "software device"):
        assert text in ran.stdout


def test_an_unknown_scenario_is_one_line_and_exit_1() -> None:
    ran = fleetid("threats", "run", "flash")
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr.startswith("fleetid: NotFoundError: no threat scenario 'flash'")
    assert ran.stderr.count("\n") == 1


def test_threats_without_a_verb_is_a_usage_error() -> None:
    ran = fleetid("threats")
    assert ran.returncode == 2 and "VERB" in ran.stderr
