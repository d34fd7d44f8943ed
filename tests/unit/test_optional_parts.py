"""The suite on a machine without the optional parts: it collects, and what needs them skips.

A fresh clone may lack pyscard, python-pkcs11 and tpm2-pytss (extras), imgtool, the Debian tools
(openssl, curl, SoftHSM2, pcscd, ssss, swtpm) and the services (PostgreSQL, Mosquitto). Each test
here runs pytest in a subprocess with all of them hidden: the Python packages by an import hook,
the tools by an empty PATH, the services by pointing their addresses at a closed port. Collection
must then show no error, each test that needs a hidden part must skip and say which, and under
``CI=true`` the same tests must fail instead.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

REPO = Path(__file__).resolve().parents[2]
HIDDEN_MODULES = ("smartcard", "pkcs11", "imgtool", "tpm2_pytss")

_SITECUSTOMIZE = f"""
import sys

class _Hidden:
    # An optional package that is not installed: the import fails as it would on a fresh machine.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Hidden())
"""

# One test per hidden part, each of which needs it.
NEEDS_A_HIDDEN_PART = {
    "tests/unit/se/test_pcsc_bridge.py::"
    "test_atr_parses_with_pyscard_as_t1_only_with_our_historical_bytes": "pyscard",
    "tests/integration/test_hsm.py::test_module_override_must_exist": "pkcs11",
    "tests/integration/test_imgtool_interop.py": "imgtool",
    "tests/unit/tpm/test_device.py::test_a_deleted_key_signs_no_more": "tpm2_pytss",
    "tests/unit/formats/test_checkpoint.py::"
    "test_openssl_verifies_our_checkpoint_signature": "openssl",
    "tests/unit/crypto/test_shamir.py::test_ssss_combine_rebuilds_our_kek": "ssss-combine",
    "tests/unit/store/test_repositories.py::test_migration_is_idempotent[postgresql]": "PostgreSQL",
    "tests/integration/test_mqtt_filter.py::"
    "test_retained_pair_reaches_a_device_that_connects_later": "MQTT broker",
}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bare")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    (root / "bin").mkdir()
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER")}
    env.update(
        PATH=str(root / "bin"),
        PYTHONPATH=str(root / "site"),
        FLEETID_TEST_POSTGRES=f"postgresql+psycopg://postgres@127.0.0.1:{port}/test",
        FLEETID_TEST_MQTT=f"127.0.0.1:{port}",
    )
    return env


def _pytest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_hook_really_hides_the_optional_packages(bare_env: dict[str, str]) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import smartcard"],
        env=bare_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0
    assert "No module named 'smartcard'" in probe.stderr


def test_the_whole_suite_collects_without_the_optional_parts(bare_env: dict[str, str]) -> None:
    result = _pytest(bare_env, "--collect-only", "-q", "tests")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "error" not in result.stdout.splitlines()[-1].lower()
    collected = re.search(r"(\d+) tests? collected", result.stdout)
    assert collected is not None and int(collected.group(1)) > 1000


def _outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """``module.path::test`` (or a module) -> (skipped|failure|error|passed, reason), from JUnit."""
    outcomes = {}
    # The file is our own pytest's report of this run, not untrusted input.
    for case in ElementTree.parse(junit).getroot().iter("testcase"):  # noqa: S314
        where = "::".join(filter(None, (case.get("classname"), case.get("name"))))
        found = next((e for e in case if e.tag in ("skipped", "failure", "error")), None)
        if found is None:
            outcomes[where] = ("passed", "")
        else:
            outcomes[where] = (found.tag, f"{found.get('message')} {found.text}")
    return outcomes


def _run_needing_hidden_parts(
    env: dict[str, str], tmp_path: Path
) -> dict[str, list[tuple[str, str]]]:
    """Each test of NEEDS_A_HIDDEN_PART -> the outcomes of its cases, run in a bare subprocess."""
    junit = tmp_path / "junit.xml"
    _pytest(
        env,
        "-p",
        "no:xdist",
        "--continue-on-collection-errors",
        f"--junitxml={junit}",
        *NEEDS_A_HIDDEN_PART,
    )
    outcomes = _outcomes(junit)
    by_node = {}
    for node in NEEDS_A_HIDDEN_PART:
        module, _, test = node.removesuffix(".py").partition(".py::")
        where = module.replace("/", ".") + (f"::{test}" if test else "")
        by_node[node] = [outcome for key, outcome in outcomes.items() if key.startswith(where)]
    return by_node


def test_each_test_that_needs_a_hidden_part_skips_and_names_it(
    bare_env: dict[str, str], tmp_path: Path
) -> None:
    for node, cases in _run_needing_hidden_parts(bare_env, tmp_path).items():
        part = NEEDS_A_HIDDEN_PART[node]
        assert cases, node
        assert all(kind == "skipped" and part in reason for kind, reason in cases), (node, cases)


def test_under_ci_the_same_tests_fail_instead(bare_env: dict[str, str], tmp_path: Path) -> None:
    ci = {**bare_env, "CI": "true"}
    for node, cases in _run_needing_hidden_parts(ci, tmp_path).items():
        part = NEEDS_A_HIDDEN_PART[node]
        assert cases, node
        for kind, reason in cases:
            assert kind in ("failure", "error"), (node, cases)
            assert part in reason and "required under CI=true" in reason, (node, reason)
