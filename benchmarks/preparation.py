"""Credential packages per second at the preparation service, beside the device-side cost of
each download and the same-run cost of the cryptography each package needs.

Per package, in one process over the real HTTP app (in process: ASGI, no socket, no TLS) and
SQLite (``synchronous=FULL``):

* **prepared**: the operator's orders, in batches of ``--batch`` (``order_for_devices``: one
  manifest read, one commit for the packages, one ES12 registration for their events);
* **served**: the four ES9+ requests of the device's download, timed at the device's HTTP calls
  (request encoding, the ASGI app, the service, the answer): InitiateAuthentication (the service
  signs), AuthenticateClient (an SE key attestation checked to the manufacturer root),
  GetBoundProfilePackage (the one-time key's attestation checked; ECDH-ES, HKDF, AES-256-GCM;
  the service's signature) and HandleNotification (verified; the package settles and its event
  leaves discovery);
* **device side**: everything else of the download: three key attestations and a key
  generation on the emulated card, the device's checks of the service's chain and three
  signatures, LOAD BOUND PACKAGE and the notification signed on the card. On a fleet this runs
  on the devices, not on the server, so it is not in the server-side rate.

The server-side rate is packages / (prepared + served) in wall time, and packages per second of
the server's CPU time (the process's CPU time less the device thread's: steadier on a shared
machine, and what the limits are measured in). Two same-run limits, each 1 / (the cost
of its cryptography, timed alone with ``timeit``):

* ``ECDH + sign + AEAD``: a one-time key pair, ECDH, HKDF and AES-256-GCM over the package
  (``seal_package``) and one P-256 signature;
* ``path crypto``: all the cryptography of the served path: the sealing, the three signatures
  (serverSigned1, smdpSigned2, the package), the two SE key-attestation checks
  (``KeyProofVerifier``, with the line CA's path remembered as the service remembers it) and the
  notification's signature check.

``--per-order`` orders one package at a time instead (one commit and one ES12 registration
each), as the service did before batches.

Run: ``.venv/bin/python benchmarks/preparation.py [packages] [--batch N] [--per-order]``. The last
line is for tools::

    preparation: <s> packages/s server side (<c>/s per core by CPU time), <l>/s ECDH + sign +
    AEAD limit, <r> of it; <p>/s path crypto limit, <q> of it; <e> packages/s end to end with
    the emulated device

(the ratios are of the CPU-time rate).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from fleetid.api import create_app
from fleetid.authority.attestation.base import VerificationPolicy
from fleetid.authority.attestation.key_proof import KeyProofVerifier
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import lifecycle_service
from fleetid.authority.preparation import PackageKind
from fleetid.authority.preparation.for_ca import (
    PackageServices,
    order_for_device,
    order_for_devices,
)
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.package_seal import seal_package
from fleetid.crypto.signer import SoftwareSigner, verify_signature
from fleetid.device.package_transport import HttpPackageTransport, in_process_client
from fleetid.device.truststore import TrustStore
from fleetid.device.unattended import UnattendedDownloader
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.package_messages import attestation_challenge
from fleetid.se.wire import Curve
from fleetid.sim.software_line import LineDevice, SoftwareLine

_CONTENT = b'{"apn": "fleet.example", "ntp": "time.fleet.example"}' * 4
_URL = "http://fleet.fleetid.invalid"
_DER = Encoding.DER
_SERVED: tuple[str, ...] = ("initiate_authentication", "authenticate_client")
_SERVED += ("get_bound_package", "handle_notification")


def _cost(operation: Callable[[], object]) -> float:
    """Seconds per call, timed alone (``timeit``'s autorange: at least 0.2 s of calls)."""
    number, seconds = timeit.Timer(operation).autorange()
    return seconds / number


class _Limits:
    """The same-run cost of the cryptography one package needs at the service."""

    def __init__(self, device: LineDevice, policy: VerificationPolicy, now: datetime) -> None:
        recipient = new_private_key().public_key()
        signer = SoftwareSigner(new_private_key())
        self.seal = _cost(lambda: seal_package(recipient, _CONTENT, b"\x00" * 16))
        self.sign = _cost(lambda: signer.sign(_CONTENT + bytes(200)))
        signature = signer.sign(b"notification")
        self.verify = _cost(
            lambda: verify_signature(signer.public_key(), signature, b"notification")
        )
        # A real SE key attestation, checked as the service checks it (the line CA remembered).
        se = device.client()
        handle = se.generate_key(Curve.P256, KeyUsage.SIGN).handle
        challenge = attestation_challenge(bytes(16), bytes(16))
        attestation = se.attest(handle, challenge).public_bytes(_DER)
        chain = [c.public_bytes(_DER) for c in se.attestation_chain()]
        proofs = KeyProofVerifier()

        def check() -> None:
            proofs.verify(
                attestation=attestation,
                chain=chain,
                policy=policy,
                usage=KeyUsage.SIGN,
                challenge=challenge,
                now=now,
            )

        check()
        self.attestation = _cost(check)

    @property
    def minimal(self) -> float:
        """ECDH + sign + AEAD: seconds per package."""
        return self.seal + self.sign

    @property
    def path(self) -> float:
        """All the served path's cryptography: seconds per package."""
        return self.seal + 3 * self.sign + 2 * self.attestation + self.verify


class _Timed:
    """Wraps an object's methods and adds up the wall time spent inside them."""

    def __init__(self, target: Any, names: tuple[str, ...]) -> None:
        self.spent = dict.fromkeys(names, 0.0)
        for name in names:
            setattr(target, name, self._wrap(name, getattr(target, name)))

    @property
    def total(self) -> float:
        return sum(self.spent.values())

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.spent[name] += time.perf_counter() - start

        return timed


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", type=int, nargs="?", default=60)
    parser.add_argument("--batch", type=int, default=60, help="orders per batch")
    parser.add_argument("--per-order", action="store_true", help="one order at a time")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    packages = args.packages
    clock = ManualClock()
    line = SoftwareLine(clock=clock)
    devices = [line.make_device() for _ in range(packages)]
    with tempfile.TemporaryDirectory(prefix="fleetid-bench-preparation-") as root:
        settings = Settings.load(Path(root), environ={"FLEETID_PUBLIC_URL": _URL})
        ca = FleetCa.init(settings, clock=clock, name="Bench")
        trust_manufacturer(Path(root), line.root)
        import_manifest(ca.store, [d.manifest_record() for d in devices], clock.now())
        app = create_app(settings, clock=clock, ca=ca)
        services: PackageServices = app.state.packages
        preparation = services.preparation
        client = in_process_client(app, _URL)
        transport = HttpPackageTransport(client, {_URL: client})
        agents = [
            UnattendedDownloader(se=d.client(), trust=TrustStore([ca.root]), clock=clock)
            for d in devices
        ]
        # Warm up: the service's certificate, the templates and the path cache.
        warm = line.make_device()
        import_manifest(ca.store, [warm.manifest_record()], clock.now())
        order = order_for_device(
            ca, preparation, serial=warm.serial, kind=PackageKind.CONFIGURATION, content=_CONTENT
        )
        UnattendedDownloader(se=warm.client(), trust=TrustStore([ca.root]), clock=clock).download(
            transport, order.event_id, preparation.address
        )
        start, order_cpu = time.perf_counter(), time.process_time()
        orders = []
        if args.per_order:
            for device in devices:
                orders.append(
                    order_for_device(
                        ca,
                        preparation,
                        serial=device.serial,
                        kind=PackageKind.CONFIGURATION,
                        content=_CONTENT,
                    )
                )
        else:
            for first in range(0, packages, args.batch):
                orders += order_for_devices(
                    ca,
                    preparation,
                    serials=[d.serial for d in devices[first : first + args.batch]],
                    kind=PackageKind.CONFIGURATION,
                    content=_CONTENT,
                )
        prepared = time.perf_counter() - start
        order_cpu = time.process_time() - order_cpu
        served = _Timed(transport, _SERVED)
        start, cpu, device_cpu = time.perf_counter(), time.process_time(), time.thread_time()
        for record, agent in zip(orders, agents, strict=True):
            agent.download(transport, record.event_id, preparation.address)
        downloads = time.perf_counter() - start
        # The device side runs in this thread; the app and the service in the server's threads
        # (the event loop and its worker pool), so their CPU time is the process's less ours.
        device_cpu = time.thread_time() - device_cpu
        server_cpu = time.process_time() - cpu - device_cpu
        poll_start = time.perf_counter()
        for agent in agents[:10]:
            agent.discover(transport)
        poll = (time.perf_counter() - poll_start) / min(10, len(agents))
        attestation = lifecycle_service(ca).attestation
        assert attestation is not None
        limits = _Limits(warm, attestation.policy, clock.now())
        client.close()
        ca.close()
    load = os.getloadavg()
    server = prepared + served.total
    device_side = downloads - served.total
    rate, end_to_end = packages / server, packages / (prepared + downloads)
    minimal, path = 1 / limits.minimal, 1 / limits.path
    mode = "one order at a time" if args.per_order else f"batches of {args.batch}"
    print(f"load average:               {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"packages:                   {packages}, ordered in {mode}")
    each = server / packages * 1e3
    print(f"server side:                {rate:,.1f} packages/s ({each:.2f} ms each)")
    print(f"  prepared (orders):        {prepared / packages * 1e3:.2f} ms")
    for name, spent in served.spent.items():
        print(f"  served {name + ':':<20}{spent / packages * 1e3:.2f} ms")
    print(f"device side (emulated SE):  {device_side / packages * 1e3:.2f} ms a download")
    cpu_each = (order_cpu + server_cpu) / packages
    print(
        f"server side by CPU time:    {1 / cpu_each:,.1f} packages/s per core"
        f" ({cpu_each * 1e3:.2f} ms CPU each; the device's {device_cpu / packages * 1e3:.2f} ms)"
    )
    print(f"end to end:                 {end_to_end:,.1f} packages/s")
    print(f"discovery poll (ES11):      {poll * 1e3:.1f} ms, device side included")
    print(
        f"limit, ECDH + sign + AEAD:  {minimal:,.0f} /s"
        f" (seal {limits.seal * 1e6:.0f} µs, sign {limits.sign * 1e6:.0f} µs)"
    )
    print(
        f"limit, path crypto:         {path:,.0f} /s (+ 2 more signatures, 2 attestation checks"
        f" at {limits.attestation * 1e6:.0f} µs, 1 verification at {limits.verify * 1e6:.0f} µs)"
    )
    by_cpu = 1 / cpu_each
    print(f"preparation: {rate:,.1f} packages/s server side ({by_cpu:,.1f}/s per core by CPU"
          f" time), {minimal:,.0f}/s ECDH + sign + AEAD limit, {by_cpu / minimal:.3f} of it;"
          f" {path:,.0f}/s path crypto limit, {by_cpu / path:.3f} of it; {end_to_end:,.1f}"
          f" packages/s end to end with the emulated device")  # fmt: skip


if __name__ == "__main__":
    main()
