"""Devices per second through the whole provisioning line, with the raw sign rate in the same run.

For each HSM backend (the software HSM; SoftHSM2 through PKCS#11 when ``softhsm2-util`` exists):

1. a ceremony in a temporary data directory, activated with 3 of 5 shares;
2. ``raw sign/s``: the line CA signer (hash, sign, verify-before-return) in a one-second loop;
3. ``line devices/s``: W worker processes (default: one per core), each with its own activated
   HSM handle and an in-memory wafer slice of emulated cards, run the full line (CPLC, SCP03 with
   HSM-held transport keys, PUT KEY of HSM-wrapped keys, on-card attestation key, IDevID, STORE
   DATA, SECURED) while sharing one SQLite manifest + Merkle audit log (commits serialised by the
   line lock). Each worker first runs one first-article unit, untimed, so that what a process
   does once (ASN.1 compilation, template checks, SQLite's cache) is not charged to the lot. The
   clock starts when every worker has its cards and its first article, and stops when the last
   is done.

The emulated cards run on the same cores as the line, so the figure includes the card side's
CPU (SCP03 unwrapping, sealing flash, key generation); a real line's cards bring their own.

Each backend is measured ``--runs`` times (a fresh ceremony each time; the raw sign rate is
taken in the same run, just before the line), and every run is printed with the median, because
a shared machine is noisy. The load average is printed too.

Run: ``.venv/bin/python benchmarks/line.py [devices] [workers] [--runs R] [--backend B]``
(defaults: 2000 devices, one worker per core, 3 runs, both backends).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import shutil
import statistics
import subprocess
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from fleetid.clock import SystemClock
from fleetid.factory import ceremony
from fleetid.factory.line import LineConfig, LineReport, fewer_collections, open_line
from fleetid.se.client import Transport
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.wafer import Wafer

SO_PIN = "bench-so-pin"


def _transport(config_dir: Path) -> StaticKeys:
    doc = tomllib.loads((config_dir / "transport-keys.toml").read_text())
    enc, mac, dek = (bytes.fromhex(doc[role]) for role in ("enc", "mac", "dek"))
    return StaticKeys(enc=enc, mac=mac, dek=dek)


class _TimedCards:
    """The wafer, with the CPU time its emulated cards spend answering APDUs counted apart."""

    def __init__(self, wafer: Wafer) -> None:
        self._wafer = wafer
        self.card_seconds = 0.0

    def power_on(self, unit: str) -> Transport:
        card = self._wafer.power_on(unit)
        outer = self

        class _Timed:
            def transmit(self, command: bytes) -> bytes:
                start = time.thread_time()
                try:
                    return card.transmit(command)
                finally:
                    outer.card_seconds += time.thread_time() - start

        return _Timed()


def _worker(
    data: str, config_dir: str, worker: int, count: int, barrier: Any, results: Any
) -> None:
    clock = SystemClock()
    line = open_line(
        Path(data),
        clock=clock,
        config=LineConfig(batch_size=128),
        collections=fewer_collections,
    )
    wafer = Wafer.fabricate(
        None,
        lot=f"W{worker}",
        count=count + 1,
        transport_keys=_transport(Path(config_dir)),
        ic_serials={i: bytes((0xB0 + worker,)) + i.to_bytes(3, "big") for i in range(count + 1)},
    )
    first_article, *units = [u.unit for u in wafer.units]
    # One unit per worker before the clock starts, as a line runs a first article: what a
    # process does once (compiling the ASN.1 module, checking certificate templates, warming
    # SQLite's cache) is not charged to the lot.
    if line.run([first_article], wafer).secured != 1:
        raise RuntimeError("the first article was not secured")
    cards = _TimedCards(wafer)
    barrier.wait()
    cpu = time.process_time()
    report: LineReport = line.run(units, cards)
    cpu = time.process_time() - cpu
    results.put(
        (worker, time.perf_counter(), report.secured, report.quarantined, cpu, cards.card_seconds)
    )


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


def _line_rate(
    data: Path, config_dir: Path, devices: int, workers: int
) -> tuple[float, int, int, float, float]:
    """Devices/s, secured, quarantined, and CPU ms per device: the line host, the cards."""
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
    done: list[tuple[int, float, int, int, float, float]] = []
    while len(done) < len(processes):
        try:
            done.append(results.get(timeout=1.0))
        except queue.Empty:
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead:
                for process in processes:
                    process.kill()
                raise RuntimeError(f"a line worker died (exit code {dead[0]})") from None
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a line worker exited with {process.exitcode}")
    end = max(d[1] for d in done)
    secured = sum(d[2] for d in done)
    quarantined = sum(d[3] for d in done)
    cpu, card = sum(d[4] for d in done), sum(d[5] for d in done)
    return (
        devices / (end - start),
        secured,
        quarantined,
        1000 * (cpu - card) / devices,
        1000 * card / devices,
    )


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


def _one_run(backend: str, devices: int, workers: int) -> tuple[float, float, float, float] | None:
    """Raw sign/s, line devices/s, host and card CPU ms per device, in a fresh data directory;
    None without SoftHSM2."""
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        if backend == "pkcs11" and not _softhsm(root):
            return None
        data, config_dir = _setup(root, backend)
        raw = _raw_sign_rate(data)
        rate, secured, quarantined, host_ms, card_ms = _line_rate(
            data, config_dir, devices, workers
        )
        if secured != devices or quarantined:
            raise SystemExit(f"{backend}: {secured} of {devices} secured")
        return raw, rate, host_ms, card_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("devices", type=int, nargs="?", default=2000)
    parser.add_argument("workers", type=int, nargs="?", default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", choices=("software", "pkcs11", "both"), default="both")
    args = parser.parse_args()
    backends = ("software", "pkcs11") if args.backend == "both" else (args.backend,)
    print(
        f"provisioning line: {args.devices} devices, {args.workers} worker process(es), "
        f"{args.runs} run(s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{'backend':<14} {'run':>4} {'raw sign/s':>11} {'line devices/s':>15} "
        f"{'host CPU ms/dev':>16} {'card CPU ms/dev':>16}"
    )
    for backend in backends:
        name = "software HSM" if backend == "software" else "SoftHSM2"
        results = []
        for run in range(1, args.runs + 1):
            # Each run in a process of its own: SoftHSM2 reads SOFTHSM2_CONF once per process,
            # and every run has a fresh token directory.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as one:
                result = one.submit(_one_run, backend, args.devices, args.workers).result()
            if result is None:
                break
            results.append(result)
            raw, rate, host_ms, card_ms = result
            print(
                f"{name:<14} {run:>4} {raw:>11.0f} {rate:>15.1f} {host_ms:>16.2f} {card_ms:>16.2f}",
                flush=True,
            )
        if results:
            raw, rate, host_ms, card_ms = (
                statistics.median(column) for column in zip(*results, strict=True)
            )
            print(
                f"{name:<14} {'med':>4} {raw:>11.0f} {rate:>15.1f} {host_ms:>16.2f} "
                f"{card_ms:>16.2f}  (load {os.getloadavg()[0]:.1f})"
            )
    print(
        "host CPU: the line process (HSM, SCP03 host, certificates, manifest and log) per device; "
        "card CPU: the emulated cards answering its APDUs, which a real line's cards do on their "
        "own silicon"
    )


if __name__ == "__main__":
    main()
