"""Demo stage: the key ceremony with split custody, then the provisioning line.

A 3-of-5 ceremony creates the manufacturer keys inside the software HSM; an activation with only
two custodians is shown failing; three custodians activate it. The line then takes the demo's
devices (plus one chip with a failing RNG and one chip cloning another's serial) from a blank
wafer to attested, locked devices. The audit log is verified end to end and one device's entries
are proved against the signed checkpoint, as a third party would.

What later stages get, in ``ctx.state["line"]`` (a ``DemoLine``): the data directory, the
ceremony record (root and line CA certificates), the activated HSM, the wafer, and the secured
devices as manifest entries (unit, serial, IDevID, attestation public key). ``DemoLine.client``
powers a device's card and returns a ``SecureElementClient``; ``DemoLine.session_keys`` gives
the HSM-held SCP03 keys of a device for a secure channel (key version ``DEVICE_KVN``).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
import tomllib
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from fleetid.clock import SystemClock
from fleetid.errors import CeremonyError
from fleetid.factory import ceremony
from fleetid.factory.auditlog import (
    AuditLogReader,
    leaf_hash,
    load_verifier_key,
    verify_inclusion,
)
from fleetid.factory.line import (
    HsmSessionKeys,
    ManifestEntry,
    UnitState,
    fewer_collections,
    open_line,
)
from fleetid.hsm.base import Hsm
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.demo import DemoContext, drill
from fleetid.sim.wafer import Defect, Wafer

__all__ = ["DemoLine", "stage_ceremony_and_line"]


@dataclass
class DemoLine:
    """The demo's factory, for the stages that follow."""

    data_dir: Path
    record: ceremony.CeremonyRecord
    hsm: Hsm
    wafer: Wafer
    devices: list[ManifestEntry] = field(default_factory=list)

    def client(self, device: ManifestEntry) -> SecureElementClient:
        return SecureElementClient(self.wafer.power_on(device.unit))

    def session_keys(self, device: ManifestEntry) -> HsmSessionKeys:
        """The device's SCP03 keys, diversified in the HSM (use with key version DEVICE_KVN)."""
        keys = self.hsm.derive_scp03_keys(
            self.record.line_master_label, bytes.fromhex(device.serial)
        )
        return HsmSessionKeys(self.hsm, enc=keys.enc, mac=keys.mac, length=keys.enc.length)


def stage_ceremony_and_line(ctx: DemoContext) -> None:
    console = ctx.console
    clock = SystemClock()
    root = Path(tempfile.mkdtemp(prefix="fleetid-demo-factory-"))

    # --- the ceremony ------------------------------------------------------------------------
    custodians = ("alice", "bob", "carol", "dave", "erin")
    config_path = ceremony.write_example_config(
        root / "ceremony", ceremony_id="demo-ceremony-1", threshold=3, custodians=custodians
    )
    config = ceremony.CeremonyConfig.load(config_path)
    data = root / "data"
    outcome = ceremony.init_ceremony(config, data, clock=clock)
    record = outcome.record
    ceremony.verify_transcript(record)
    console.print(
        f"  ceremony {record.ceremony_id}: config sha256 {config.config_sha256[:16]}…, "
        f"custody {record.threshold}-of-{record.total}, KEK KCV {record.kek_kcv.hex().upper()}"
    )
    for key in record.transcript["keys"]:
        if key["role"] != "transport":
            check = key.get("spki_sha256", key.get("kcv", ""))
            console.print(f"    in the HSM: {key['label']:<18} {key['role']:<20} {check[:16]}")
    console.print(f"    {len(outcome.share_files)} share files, one per custodian")

    two = ceremony.read_shares(outcome.share_files[:2])
    try:
        ceremony.activate(data, two, clock=clock)
    except CeremonyError as refused:
        console.print(f"  {drill('[red]activation with 2 of 5 refused[/red]')}: {refused}")
    else:  # pragma: no cover - a 2-of-5 activation must never succeed
        raise CeremonyError("a 2-of-5 activation succeeded")
    three = ceremony.read_shares([outcome.share_files[i] for i in (0, 2, 4)])
    ceremony.activate(data, three, clock=clock)
    console.print("  [green]HSM activated[/green] by alice, carol and erin (3 of 5)")

    # --- the line ----------------------------------------------------------------------------
    doc = tomllib.loads((root / "ceremony" / "transport-keys.toml").read_text())
    transport = StaticKeys(**{role: bytes.fromhex(doc[role]) for role in ("enc", "mac", "dek")})
    good = ctx.devices
    wafer = Wafer.fabricate(
        None,
        lot="DEMO",
        count=good + 2,
        transport_keys=transport,
        defects={good: Defect.KEYGEN_FAILS},
        clones={good + 1: 0},
    )
    line = open_line(data, clock=clock, collections=fewer_collections)
    started = time.perf_counter()
    report = line.run([u.unit for u in wafer.units], wafer)
    elapsed = time.perf_counter() - started
    manifest = line.manifest()
    for entry in manifest:
        if entry.state is UnitState.SECURED:
            detail = f"IDevID {entry.idevid_fingerprint and entry.idevid_fingerprint[:16]}…"
            style = "green"
        else:  # the defective and the cloned chip fabricated above
            detail = drill(entry.reason or "")
            style = "yellow"
        console.print(
            f"  {entry.unit} {entry.serial} [{style}]{entry.state.value}[/{style}] {detail}"
        )
    again = line.run([u.unit for u in wafer.units], wafer)
    console.print(
        f"  re-run: {again.processed} processed, {again.already_done} already done (idempotent)"
    )

    # --- the audit log, checked as an outsider would -------------------------------------------
    reader = AuditLogReader(data, record.log_origin)
    _, log_key = load_verifier_key(data)
    verified = reader.verify_all(log_key)
    secured = [e for e in manifest if e.state is UnitState.SECURED]
    proof = reader.prove_serial(secured[0].serial)
    root_hash = base64.b64decode(proof["root_hash_b64"])
    for item in proof["entries"]:
        verify_inclusion(
            leaf_hash(item["leaf"].encode()),
            item["index"],
            proof["tree_size"],
            [bytes.fromhex(node) for node in item["inclusion_proof_hex"]],
            root_hash,
        )
    kinds = [json.loads(item["leaf"])["kind"] for item in proof["entries"]]
    console.print(
        f"  audit log: {verified.entries} entries, {verified.checkpoints} signed checkpoints "
        f"verified; entry 0 is the ceremony transcript"
    )
    console.print(f"  proof for {secured[0].serial}: {', '.join(kinds)} included in the checkpoint")

    hsm, _ = ceremony.open_activated_hsm(data, clock=clock)
    demo_line = DemoLine(data_dir=data, record=record, hsm=hsm, wafer=wafer, devices=secured)
    # The factory's files go when the demo lets go of it.
    weakref.finalize(demo_line, shutil.rmtree, root, True)
    ctx.state["line"] = demo_line
    ctx.record(
        "ceremony", f"{record.threshold}-of-{record.total}; {drill('2-of-5 activation refused')}"
    )
    ctx.record("line: secured", str(report.secured))
    ctx.record(
        drill("line: defective chip quarantined / cloned serial refused"),
        f"{report.quarantined} / {report.duplicates}",
    )
    ctx.record("line throughput (demo, one process)", f"{report.processed / elapsed:.0f} devices/s")
    ctx.record("audit log entries verified", str(verified.entries))
