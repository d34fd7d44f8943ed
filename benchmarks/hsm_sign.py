"""ECDSA signatures per second through each HSM backend, next to raw pyca in the same run.

Rows per curve:

* ``pyca raw``: ``EllipticCurvePrivateKey.sign`` (hash + sign, no verify): the baseline;
* ``software HSM``: ``SoftwareHsm.signer(...).sign`` (hash, sign, verify-before-return);
* ``SoftHSM2 HSM``: ``Pkcs11Hsm.signer(...).sign`` (hash, CKM_ECDSA, DER, verify-before-return);
* ``SoftHSM2 token only``: the token's CKM_ECDSA + DER encoding, without the verify, to show what
  verify-before-return costs.

Then per-device SCP03 key preparation (derive ENC/MAC/DEK, wrap the three under a transport DEK,
release) per second on both backends, the HSM share of the provisioning line.

Run: ``.venv/bin/python benchmarks/hsm_sign.py [seconds-per-row]``. SoftHSM2 rows are left out,
with a note, when ``softhsm2-util`` is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from fleetid.hsm import Hsm, KeyKind, SoftwareHsm

KEK = os.urandom(16)
SO_PIN = "bench-so-pin"
CURVES = {"P-256": (ec.SECP256R1(), hashes.SHA256()), "P-384": (ec.SECP384R1(), hashes.SHA384())}


def rate(operation: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            operation()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def softhsm(directory: Path) -> Hsm | None:
    util = shutil.which("softhsm2-util")
    if util is None:
        print("note: softhsm2-util not found; SoftHSM2 rows skipped")
        return None
    conf = directory / "softhsm2.conf"
    (directory / "tokens").mkdir()
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "bench-pin",
            "--so-pin",
            SO_PIN,
        ],
        check=True,
        capture_output=True,
    )
    from fleetid.hsm.pkcs11 import Pkcs11Hsm

    return Pkcs11Hsm.initialise(
        token_label="bench",  # noqa: S106 - a token name, not a password
        so_pin=SO_PIN,
        state_file=directory / "p11.json",
        kek=KEK,
    )


def device_keys_rate(hsm: Hsm, seconds: float) -> float:
    hsm.unwrap_aes_key("master", aes_key_wrap_with_padding(KEK, os.urandom(16)), KeyKind.MASTER)
    hsm.unwrap_aes_key(
        "transport", aes_key_wrap_with_padding(KEK, os.urandom(16)), KeyKind.TRANSPORT
    )
    serial = iter(range(1 << 62))

    def one_device() -> None:
        keys = hsm.derive_scp03_keys("master", next(serial).to_bytes(10, "big"))
        for key in keys.derived():
            hsm.wrap_for_put_key(key, "transport")
        hsm.release(keys)

    return rate(one_device, seconds)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    message = os.urandom(600)  # about a TBSCertificate
    with tempfile.TemporaryDirectory() as temporary:
        backends: dict[str, Hsm] = {"software HSM": SoftwareHsm.initialise(None, KEK)}
        token = softhsm(Path(temporary))
        if token is not None:
            backends["SoftHSM2 HSM"] = token
        print(f"{'curve':6} {'path':22} {'sign/s':>10} {'vs pyca':>8}")
        for curve_name, (curve, hash_algorithm) in CURVES.items():
            key = ec.generate_private_key(curve)
            baseline = rate(lambda k=key, h=hash_algorithm: k.sign(message, ec.ECDSA(h)), seconds)
            print(f"{curve_name:6} {'pyca raw':22} {baseline:10.0f} {1.0:8.2f}")
            for name, hsm in backends.items():
                label = f"bench-{curve_name}"
                hsm.generate_ec_key(label, curve_name)
                signer = hsm.signer(label)
                measured = rate(lambda s=signer: s.sign(message), seconds)
                print(f"{curve_name:6} {name:22} {measured:10.0f} {measured / baseline:8.2f}")
                if name.startswith("SoftHSM2"):
                    digest = hashes.Hash(hash_algorithm)
                    digest.update(message)
                    value = digest.finalize()
                    only = rate(lambda h=hsm, lb=label, d=value: h._sign_digest(lb, d), seconds)
                    row = f"{curve_name:6} {'SoftHSM2 token only':22} {only:10.0f}"
                    print(f"{row} {only / baseline:8.2f}")
        print()
        print(f"{'per-device SCP03 keys (derive 3 + wrap 3)':44} {'devices/s':>10}")
        for name, hsm in backends.items():
            print(f"{name:44} {device_keys_rate(hsm, seconds):10.0f}")
        for hsm in backends.values():
            hsm.close()


if __name__ == "__main__":
    main()
