"""Demo stage: an applet upgrade pushed to a few devices, with no recall.

Each device's card carries the fleet's applet-signing key (put there before SECURED) and a key
made on card. The authority pushes identity applet version 2 through each device's card relay
(``fleetid.authority.applet_rollout``): GET STATUS, INSTALL [for load], LOAD, INSTALL [for
install], GET STATUS, one audit log entry per card. The stage shows the versions before and
after, that each card's key still signs under the same public key, and two drills: a package
signed by another key, and a push back to version 1, both refused by the cards.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.applet_rollout import RolloutOutcome, RolloutResult, push_applet
from fleetid.clock import ManualClock
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import Signer, SoftwareSigner, verify_signature
from fleetid.device.card_relay import CardRelay
from fleetid.factory.auditlog import AuditLog
from fleetid.formats.attestation import KeyUsage
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.packages import IDENTITY_V1, IDENTITY_V2, AppletPackage
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.demo import DemoContext, drill, stage_directory
from fleetid.sim.test_card import manufacture_test_card

__all__ = ["stage_applets"]

_COHORT_MAX = 3  # a few seconds
_KVN = 0x30


def stage_applets(ctx: DemoContext) -> None:
    applet_key = SoftwareSigner(new_private_key())  # TEST: an HSM holds the fleet's
    cohort = []
    for _ in range(min(ctx.devices, _COHORT_MAX)):
        keys = StaticKeys(os.urandom(16), os.urandom(16), os.urandom(16))
        made = manufacture_test_card(
            keys=keys, key_version=_KVN, applet_signing_key=applet_key.public_key()
        )
        client = SecureElementClient(made.card)
        client.select_identity()
        client.open_secure_channel(keys, 0x33, key_version=_KVN)
        key = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN)
        cohort.append((made, key))
    keys_by_chip = {made.card.chip_serial: made.keys for made, _ in cohort}

    def relays() -> dict[str, CardRelay]:
        return {f"device-{i}": CardRelay(made.card) for i, (made, _) in enumerate(cohort)}

    with stage_directory("applets") as directory:
        audit = AuditLog.open(
            directory, SoftwareSigner(new_private_key()), "fleetid.demo/applets", ManualClock()
        )

        def push(package: AppletPackage, signer: Signer) -> list[RolloutResult]:
            return push_applet(
                package,
                relays(),
                signer=signer,
                audit=audit,
                card_keys=keys_by_chip.__getitem__,
                key_version=_KVN,
            )

        foreign = push(IDENTITY_V2, SoftwareSigner(new_private_key()))
        results = push(IDENTITY_V2, applet_key)
        for result in results:
            ctx.console.print(
                f"  {result.serial}: identity applet {result.before} -> {result.after} "
                f"({result.outcome})"
            )
        kept = 0
        for made, key in cohort:
            client = SecureElementClient(made.card)
            client.select_identity()
            message = os.urandom(32)
            signature = SecureElementSigner(client, key.handle).sign(message)
            verify_signature(key.public_key, signature, message)  # the key made before
            kept += 1
        down = push(IDENTITY_V1, applet_key)
        logged = len(audit.entries())
    upgraded = sum(r.outcome is RolloutOutcome.UPGRADED for r in results)
    ctx.console.print(
        f"  {upgraded}/{len(results)} cards upgraded, {kept} keys still sign after the upgrade; "
        f"{logged} audit entries with GET STATUS before and after"
    )
    ctx.record("applets: identity 1 -> 2 pushed", f"{upgraded}/{len(results)} cards")
    ctx.record(
        drill("applets: another signer"),
        ", ".join(sorted({f"{r.outcome} {r.status_word}" for r in foreign})),
    )
    ctx.record(
        drill("applets: back to version 1"),
        ", ".join(sorted({f"{r.outcome} {r.status_word}" for r in down})),
    )
