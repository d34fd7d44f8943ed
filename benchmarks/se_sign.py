"""SE sign-by-handle rate through ``transmit``, plain and inside SCP03, beside raw pyca signing.

Prints, from one run on this machine:
- raw pyca ECDSA P-256 sign/s (the baseline: the card's own signing primitive);
- SIGN by handle through ``SecureElement.transmit`` with plain APDUs, and at SCP03 levels 0x01
  (C-MAC) and 0x33 (C-DEC, C-MAC, R-ENC, R-MAC), each with its ratio to the baseline;
- SCP03 session opens/s (INITIALIZE UPDATE + EXTERNAL AUTHENTICATE, both sides).

Usage: python benchmarks/se_sign.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from fleetid.formats.attestation import KeyUsage
from fleetid.se.client import SecureElementClient
from fleetid.sim.test_card import manufacture_test_card


def rate(op: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``op`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(50):
        op()
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            op()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    digest = hashlib.sha256(b"benchmark").digest()
    raw_key = ec.generate_private_key(ec.SECP256R1())
    raw = rate(lambda: raw_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))), args.seconds)
    print(f"raw pyca ECDSA P-256 sign (prehashed)       {raw:10.0f} /s   baseline")

    device = manufacture_test_card()
    client = SecureElementClient(device.card)
    client.select_identity()
    handle = client.generate_key(ec.SECP256R1(), KeyUsage.SIGN).handle

    plain = rate(lambda: client.sign(handle, digest), args.seconds)
    print(
        f"SE SIGN by handle, plain APDUs              {plain:10.0f} /s   {plain / raw:.2f} of raw"
    )
    for level in (0x01, 0x33):
        client.open_secure_channel(device.keys, level, key_version=device.key_version)
        wrapped = rate(lambda: client.sign(handle, digest), args.seconds)
        print(
            f"SE SIGN by handle, SCP03 level {level:02X}          {wrapped:10.0f} /s   "
            f"{wrapped / raw:.2f} of raw"
        )
        client.close_secure_channel()

    def open_session() -> None:
        client.open_secure_channel(device.keys, 0x33, key_version=device.key_version)

    opens = rate(open_session, args.seconds)
    print(f"SCP03 session opens (S8, level 33)          {opens:10.0f} /s")


if __name__ == "__main__":
    main()
