"""The key ceremony: one reviewed config file in, keys inside the HSM, custodian shares out.

The model is Let's Encrypt's ``boulder/cmd/ceremony``: the only input is a configuration file
that witnesses have reviewed (its SHA-256 is in the transcript), and the output is public
material (certificates, public keys, check values) plus one share file per custodian. Split custody
follows the YubiHSM 2 / DNSSEC root-KSK pattern: a fresh key-encryption key (KEK) protects the
HSM's stored keys and its activation; it exists in the clear only during ``init_ceremony``, is
split M-of-N with Shamir (:mod:`fleetid.crypto.shamir`) and then forgotten. M custodians bring it
back with ``activate``.

``init_ceremony`` creates, inside the HSM:

* the manufacturer root CA key and its self-signed certificate;
* the line CA key and its certificate (issued by the root);
* the line master key-derivation key (AES) that diversifies per-device SCP03 keys;
* the audit-log signing key (ECDSA P-256, as C2SP signed-note type 0x02 requires);
* the firmware signing key, whose public half the line installs on every card;
* the card batch's transport keys, imported wrapped under the KEK (RFC 5649).

Its transcript (who, when, which keys, fingerprints, M/N, the config hash) is signed in the HSM by
the audit-log key and by the root key, and becomes the first entry of the audit log.

The package, one module per job: ``config`` (the reviewed TOML and an example to start from),
``record`` (the public record the line reads), ``transcript`` (built, signed, verified), ``run``
(``init_ceremony``), ``activation`` (M shares in, an activated HSM out; the emulated activation
state), ``hsm_factory`` (which HSM) and ``files`` (shares and private state through
``fleetid.private_file``). Nothing here reads the environment: the ``fleetid ceremony`` command
reads the SO PIN from the variable the config names, and a PKCS#11 module path, and passes them.
"""

from __future__ import annotations

from fleetid.factory.ceremony.activation import (
    ACTIVATION_FILE,
    activate,
    deactivate,
    open_activated_hsm,
    read_shares,
)
from fleetid.factory.ceremony.config import (
    CeremonyConfig,
    HsmSpec,
    KeySpec,
    TransportKeys,
    write_example_config,
)
from fleetid.factory.ceremony.record import RECORD_FILE, CeremonyRecord, load_record
from fleetid.factory.ceremony.run import CeremonyOutcome, init_ceremony
from fleetid.factory.ceremony.transcript import verify_transcript

__all__ = [
    "ACTIVATION_FILE",
    "RECORD_FILE",
    "CeremonyConfig",
    "CeremonyOutcome",
    "CeremonyRecord",
    "HsmSpec",
    "KeySpec",
    "TransportKeys",
    "activate",
    "deactivate",
    "init_ceremony",
    "load_record",
    "open_activated_hsm",
    "read_shares",
    "verify_transcript",
    "write_example_config",
]
