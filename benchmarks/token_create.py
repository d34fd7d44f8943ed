"""Bulk enrolment tokens: N tokens the old way (one ``fleetid token create`` process each) against
``fleetid token create --count N`` (one process, one transaction, one audit checkpoint).

Both run in this one invocation on two fresh authorities (``fleetid ca init``), through the real
command line in subprocesses, and the script prints both wall times and the ratio.

    .venv/bin/python benchmarks/token_create.py            # N = 100
    .venv/bin/python benchmarks/token_create.py --count 300

Each token is verified afterwards: the second authority's ``fleetid token list`` shows N unused
tokens, and ``fleetid audit verify`` passes on both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CLI = "import sys; from fleetid.cli import main; sys.exit(main())"


def _fleetid(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    done = subprocess.run(
        [sys.executable, "-c", _CLI, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"fleetid {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _one_process_each(data_dir: Path, count: int) -> float:
    start = time.perf_counter()
    for n in range(1, count + 1):
        _fleetid("token", "create", "--data-dir", str(data_dir), "--device-id", f"gw-{n:04d}")
    return time.perf_counter() - start


def _bulk(data_dir: Path, count: int) -> float:
    start = time.perf_counter()
    _fleetid(
        "token",
        "create",
        "--data-dir",
        str(data_dir),
        "--device-prefix",
        "gw-",
        "--count",
        str(count),
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="tokens per method (100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetid-tokens-") as tmp:
        before, after = Path(tmp) / "loop", Path(tmp) / "bulk"
        for data_dir in (before, after):
            _fleetid("ca", "init", "--data-dir", str(data_dir))
        looped = _one_process_each(before, args.count)
        bulk = _bulk(after, args.count)
        listed = json.loads(
            _fleetid("token", "list", "--data-dir", str(after), "--state", "unused", "--json")
        )
        assert len(listed) == args.count, len(listed)
        for data_dir in (before, after):
            assert _fleetid("audit", "verify", "--data-dir", str(data_dir)).startswith("OK")
    print(f"tokens: {args.count}")
    for label, seconds in (
        ("before, one `fleetid token create` process each", looped),
        (f"after, one `fleetid token create --count {args.count}`", bulk),
    ):
        print(f"{label:<52} {seconds:8.2f} s ({seconds / args.count * 1000:7.1f} ms a token)")
    print(f"speed-up: {looped / bulk:.0f}x")


if __name__ == "__main__":
    main()
