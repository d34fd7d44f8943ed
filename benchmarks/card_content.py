"""Card content management costs, beside same-run baselines (CPU time, this process).

Prints, from one run on this machine:
- ``CardState.to_bytes`` (what every flash write serialises) of a personalised card with its
  content registry (identity and boot applets recorded), against the same state with no registry
  (the form before card content management existed): the baseline;
- one applet upgrade (identity 1 -> 2: INSTALL [for load], LOAD blocks, INSTALL [for install],
  the card's DAP check, SCP03 0x33) against one SCP03 session open on the ISD, the baseline.

Usage: python benchmarks/card_content.py [--rounds 2000] [--upgrades 30]
"""

from __future__ import annotations

import argparse
import os
import time

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.se.applet_management import AppletManagement, sign_load_file
from fleetid.se.client import SecureElementClient
from fleetid.se.packages import IDENTITY_V2
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.test_card import manufacture_test_card


def cpu_us(op: object, rounds: int) -> float:
    assert callable(op)
    start = time.process_time()
    for _ in range(rounds):
        op()
    return (time.process_time() - start) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--upgrades", type=int, default=30)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} (the machine is shared: CPU time, not wall)")

    signer = SoftwareSigner(new_private_key())
    made = manufacture_test_card(applet_signing_key=signer.public_key())
    state = made.card._state  # the serial form is what is measured
    content = state.content
    state.content = None
    baseline = cpu_us(state.to_bytes, args.rounds)
    state.content = content
    with_content = cpu_us(state.to_bytes, args.rounds)
    print(f"card state to_bytes, no content registry   {baseline:8.1f} us   baseline")
    print(
        f"card state to_bytes, with the registry     {with_content:8.1f} us   "
        f"{with_content / baseline:.2f} x"
    )

    keys = StaticKeys(os.urandom(16), os.urandom(16), os.urandom(16))
    load_file = sign_load_file(IDENTITY_V2, signer)
    cards = [
        manufacture_test_card(keys=keys, applet_signing_key=signer.public_key())
        for _ in range(args.upgrades)
    ]
    clients = [SecureElementClient(c.card) for c in cards]
    for client in clients:
        client.select_isd()

    def session(client: SecureElementClient) -> None:
        client.select_isd()
        client.open_secure_channel(keys, 0x33, key_version=0x30)

    start = time.process_time()
    for client in clients:
        session(client)
    opened = (time.process_time() - start) / len(clients) * 1e3
    start = time.process_time()
    for client in clients:
        AppletManagement(client).load_and_install(IDENTITY_V2, load_file)
    upgraded = (time.process_time() - start) / len(clients) * 1e3
    print(f"SCP03 session open (0x33) on the ISD       {opened:8.2f} ms   baseline")
    print(
        f"identity 1 -> 2 upgrade in that session    {upgraded:8.2f} ms   {upgraded / opened:.2f} x"
    )


if __name__ == "__main__":
    main()
