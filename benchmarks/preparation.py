"""Credential packages prepared and downloaded per second end to end, beside the
same-run cost of the cryptography each package needs at the preparation service.

End to end, per package: the operator's order (a configuration package, the discovery event
registered), then the device's whole unattended download over the real HTTP app in process:
ES9+ InitiateAuthentication (the service signs), AuthenticateClient (an SE key attestation made
on the emulated card, verified to the manufacturer root), a one-time key generated and attested
in the SE, GetBoundProfilePackage (ECDH-ES, HKDF, AES-GCM, the service's signature), the device's
checks of the service's chain and signatures, LOAD BOUND PACKAGE in the SE, and HandleNotification
(signed in the SE, verified); SQLite underneath. Discovery polls are a separate row.

The limit is 1 / (the cost of the service's ECDH + sign + AEAD for one package, timed alone in
this run): a one-time key pair, ECDH and HKDF with AES-256-GCM over the package
(``seal_package``) and one P-256 ECDSA signature. The end-to-end rate also pays for the
device's side, two attestation checks per download and four HTTP round trips; the service-side
share of the wall time is printed so the two can be told apart.

Run: ``.venv/bin/python benchmarks/preparation.py [packages]``. The last line is for tools::

    preparation: <n> packages/s end to end, <l>/s ECDH + sign + AEAD limit, <r> of it
"""

from __future__ import annotations

import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.preparation import PackageKind
from fleetid.authority.preparation.for_ca import PackageServices, order_for_device
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.package_seal import seal_package
from fleetid.crypto.signer import SoftwareSigner
from fleetid.device.package_transport import HttpPackageTransport, in_process_client
from fleetid.device.truststore import TrustStore
from fleetid.device.unattended import UnattendedDownloader
from fleetid.sim.software_line import SoftwareLine

_CONTENT = b'{"apn": "fleet.example", "ntp": "time.fleet.example"}' * 4
_URL = "http://fleet.fleetid.invalid"


def _cost(operation: Callable[[], object]) -> float:
    """Seconds per call, timed alone (``timeit``'s autorange: at least 0.2 s of calls)."""
    number, seconds = timeit.Timer(operation).autorange()
    return seconds / number


def _limit() -> tuple[float, float, float]:
    """(seconds per package, of which sealing, of which signing)."""
    recipient = new_private_key().public_key()
    signer = SoftwareSigner(new_private_key())
    sealed = _cost(lambda: seal_package(recipient, _CONTENT, b"\x00" * 16))
    signed = _cost(lambda: signer.sign(_CONTENT + bytes(200)))
    return sealed + signed, sealed, signed


class _Timed:
    """Wraps a service's methods and adds up the wall time spent inside them."""

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


def main(argv: list[str]) -> None:
    packages = int(argv[1]) if len(argv) > 1 else 40
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
        service = _Timed(
            preparation,
            (
                "order",
                "initiate_authentication",
                "authenticate_client",
                "get_bound_package",
                "handle_notification",
            ),
        )
        start = time.perf_counter()
        for device, agent in zip(devices, agents, strict=True):
            order = order_for_device(
                ca,
                preparation,
                serial=device.serial,
                kind=PackageKind.CONFIGURATION,
                content=_CONTENT,
            )
            agent.download(transport, order.event_id, preparation.address)
        elapsed = time.perf_counter() - start
        poll_start = time.perf_counter()
        for agent in agents[:10]:
            agent.discover(transport)
        poll = (time.perf_counter() - poll_start) / min(10, len(agents))
        client.close()
        ca.close()
    per_package, sealed, signed = _limit()
    rate, limit = packages / elapsed, 1 / per_package
    print(f"packages end to end:        {packages} in {elapsed:.2f} s = {rate:,.1f} /s")
    print(f"  service-side share:       {service.total / elapsed:.0%} of the wall time")
    print(f"  per package:              {elapsed / packages * 1e3:.1f} ms, of which")
    for name, spent in service.spent.items():
        print(f"    {name + ':':<27}{spent / packages * 1e3:.1f} ms")
    print(f"discovery poll (ES11):      {poll * 1e3:.1f} ms")
    print(
        f"limit (ECDH + sign + AEAD): {limit:,.0f} /s"
        f" (seal {sealed * 1e6:.0f} µs, sign {signed * 1e6:.0f} µs)"
    )
    print(f"preparation: {rate:,.1f} packages/s end to end, {limit:,.0f}/s ECDH + sign + AEAD"
          f" limit, {rate / limit:.3f} of it")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv)
