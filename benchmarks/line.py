"""Devices per second through the whole provisioning line, with the raw sign rate in the same run.

For each HSM backend (the software HSM; SoftHSM2 through PKCS#11 when ``softhsm2-util`` exists):

1. a ceremony in a temporary data directory, activated with 3 of 5 shares;
2. ``raw sign/s``: the line CA signer (hash, sign, verify-before-return) in a one-second loop;
3. ``line devices/s``: W worker processes (default: one per core), each with its own activated
   HSM handle and an in-memory wafer slice of emulated cards, run the full line (CPLC, SCP03 with
   HSM-held transport keys, PUT KEY of HSM-wrapped keys, on-card attestation key, IDevID, STORE
   DATA, SECURED) while sharing one SQLite manifest + Merkle audit log (commits serialised by the
   line lock). The clock starts when every worker has its cards and stops when the last is done.

The emulated cards run on the same cores as the line, so the figure includes the card side's
CPU (SCP03 unwrapping, sealing flash, key generation); a real line's cards bring their own.

Run: ``.venv/bin/python benchmarks/line.py [devices] [workers]`` (default 2000, cpu count).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from fleetid.clock import SystemClock
from fleetid.factory import ceremony
from fleetid.factory.line import LineConfig, LineReport, open_line
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.wafer import Wafer

SO_PIN = "bench-so-pin"


def _transport(config_dir: Path) -> StaticKeys:
    doc = tomllib.loads((config_dir / "transport-keys.toml").read_text())
    enc, mac, dek = (bytes.fromhex(doc[role]) for role in ("enc", "mac", "dek"))
    return StaticKeys(enc=enc, mac=mac, dek=dek)


def _worker(
    data: str, config_dir: str, worker: int, count: int, barrier: Any, results: Any
) -> None:
    clock = SystemClock()
    line = open_line(Path(data), clock=clock, config=LineConfig(batch_size=128))
    wafer = Wafer.fabricate(
        None,
        lot=f"W{worker}",
        count=count,
        transport_keys=_transport(Path(config_dir)),
        ic_serials={i: bytes((0xB0 + worker,)) + i.to_bytes(3, "big") for i in range(count)},
    )
    units = [u.unit for u in wafer.units]
    barrier.wait()
    report: LineReport = line.run(units, wafer)
    results.put((worker, time.perf_counter(), report.secured, report.quarantined))


def _setup(root: Path, backend: str) -> tuple[Path, Path]:
    config_dir = root / "cfg"
    path = ceremony.write_example_config(config_dir, backend=backend)  # type: ignore[arg-type]
    data = root / "data"
    clock = SystemClock()
    outcome = ceremony.init_ceremony(ceremony.CeremonyConfig.load(path), data, clock=clock)
    ceremony.activate(data, ceremony.read_shares(outcome.share_files[:3]), clock=clock)
    return data, config_dir


def _raw_sign_rate(data: Path, seconds: float = 1.0) -> float:
    hsm, record = ceremony.open_activated_hsm(data, clock=SystemClock())
    signer = hsm.signer(record.line_ca_label)
    message = os.urandom(300)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        signer.sign(message)
        count += 1
    return count / (time.perf_counter() - start)


def _line_rate(data: Path, config_dir: Path, devices: int, workers: int) -> tuple[float, int, int]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    results = context.Queue()
    share = [devices // workers + (1 if w < devices % workers else 0) for w in range(workers)]
    processes = [
        context.Process(
            target=_worker, args=(str(data), str(config_dir), w, share[w], barrier, results)
        )
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    start = time.perf_counter()
    done = [results.get(timeout=3600) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a line worker exited with {process.exitcode}")
    end = max(finished for _, finished, _, _ in done)
    secured = sum(s for _, _, s, _ in done)
    quarantined = sum(q for _, _, _, q in done)
    return devices / (end - start), secured, quarantined


def _softhsm(root: Path) -> bool:
    util = shutil.which("softhsm2-util")
    if util is None:
        print("note: softhsm2-util not found; SoftHSM2 rows skipped")
        return False
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ["FLEETID_HSM_SO_PIN"] = SO_PIN
    subprocess.run(
        [util, "--init-token", "--free", "--label", "fleetid", "--so-pin", SO_PIN, "--pin", "0000"],
        check=True,
        capture_output=True,
    )
    return True


def main() -> None:
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else (os.cpu_count() or 1)
    print(f"provisioning line: {devices} devices, {workers} worker process(es)")
    print(f"{'backend':<14} {'raw sign/s':>12} {'line devices/s':>16} {'secured':>8}")
    for backend in ("software", "pkcs11"):
        with tempfile.TemporaryDirectory() as temporary:
            root = Path(temporary)
            if backend == "pkcs11" and not _softhsm(root):
                continue
            data, config_dir = _setup(root, backend)
            raw = _raw_sign_rate(data)
            rate, secured, quarantined = _line_rate(data, config_dir, devices, workers)
            name = "software HSM" if backend == "software" else "SoftHSM2"
            print(f"{name:<14} {raw:>12.0f} {rate:>16.1f} {secured:>8}")
            if secured != devices or quarantined:
                raise SystemExit(f"{backend}: {secured} of {devices} secured")


if __name__ == "__main__":
    main()
