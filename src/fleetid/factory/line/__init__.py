"""The provisioning line: blank secure element in, attested and locked device out.

Per unit, four steps (the seed's "line" pattern):

1. IDENTIFIED: power on a blank card from the wafer (transport keys, OP_READY) and read its chip
   serial (CPLC, GET DATA 9F7F). The device serial is the 10-byte KDD built from the CPLC
   (fabricator, type, batch, IC serial), in upper-case hex.
2. INJECTED: open SCP03 with the transport keys and PUT KEY the per-device ENC/MAC/DEK,
   diversified from the line master key inside the HSM and wrapped there under the transport
   Key-DEK. The host handles ciphertext, KCVs and session keys only: the SCP03 session keys come
   from the HSM's AES-CMAC (``HsmSessionKeys``), so no static key ever reaches this process.
3. CERTIFIED: GENERATE the attestation key on the card (slot F0); the line CA (HSM) issues the
   IEEE 802.1AR IDevID for its public key, serial in an RFC 4108 HardwareModuleName. GENERATE
   the vehicle's canonical signing key too (slot ``CANONICAL_KEY_HANDLE``, sign only, never
   exportable): the key an EA knows the vehicle by (ETSI TS 102 941 §6.2.3.2). The manifest
   records its public key.
4. SECURED: STORE DATA the IDevID chain, the manufacturer trust anchor and the firmware
   verification key; SET STATUS INITIALIZED then SECURED (GPCS §5.1.1): the card refuses
   re-personalisation from then on. Then the card ATTESTs the canonical key (its certificate
   chains to the IDevID; the challenge is ``canonical_challenge(serial)``), and the manifest
   records that certificate, so an EA can import the manufactured vehicles from the manifest and
   check each canonical key against the manufacturer root itself.

Durability. Steps 1-3 of a batch commit in one transaction, step 4 in another; each commit
writes the manifest rows and their audit-log entries (with the serial) together, and the log
signs a checkpoint covering them. The certificate is recorded *before* it is installed (a
write-ahead record), so every certificate that ever reaches a card is in the log. A card can be
ahead of the manifest after a crash, never behind, and each step recognises that: a card that
already holds the device key set (GET DATA 00E0) skips PUT KEY but must authenticate with the
HSM-derived keys; an attestation key is regenerated unless one was certified; a card already
SECURED is only recorded. Re-running processes every unit without a final state, once.

Quarantine. A unit that fails a step never gets a certificate onto its card: the manifest row
says ``quarantined`` with the reason, and the log has a ``quarantine`` entry. A STORE DATA
failure happens after issuance; that IDevID is recorded as void (never installed) and the unit is
quarantined. A second chip presenting a serial already accepted gets a ``duplicate`` row of its
own and a ``duplicate-serial`` log entry, and is not touched further.

The package, along its jobs: ``provisioning`` (``ProvisioningLine``: the batches, the steps, the
commits), ``values`` (configuration, manifest entry, report, card source), ``manifest``
(``ManifestReader`` over the store's ``LineManifestRows``), ``session_keys`` (``HsmSessionKeys``),
``encoding`` (DER encoded once per object), ``crash`` (``CrashPlan``: fault injection for the crash
tests) and ``collector`` (the garbage-collector policy). The card steps themselves are
``fleetid.factory.personalisation``. Entry points choose the crash plan and the collector policy
(``fleetid line run`` reads ``FLEETID_LINE_CRASH`` and passes ``fewer_collections``); nothing
in the package reads the environment.
"""

from fleetid.factory.line.collector import CollectorPolicy, default_collections, fewer_collections
from fleetid.factory.line.crash import CRASH_ENV, CRASH_POINTS, NO_CRASH, CrashPlan
from fleetid.factory.line.manifest import ManifestReader
from fleetid.factory.line.provisioning import ProvisioningLine, open_line
from fleetid.factory.line.session_keys import HsmSessionKeys
from fleetid.factory.line.values import (
    DEVICE_KVN,
    CardSource,
    LineConfig,
    LineReport,
    ManifestEntry,
)
from fleetid.factory.personalisation import (
    CANONICAL_KEY_HANDLE,
    canonical_challenge,
    device_serial,
)
from fleetid.store.line_manifest_rows import Step, UnitState

__all__ = [
    "CANONICAL_KEY_HANDLE",
    "CRASH_ENV",
    "CRASH_POINTS",
    "DEVICE_KVN",
    "NO_CRASH",
    "CardSource",
    "CollectorPolicy",
    "CrashPlan",
    "HsmSessionKeys",
    "LineConfig",
    "LineReport",
    "ManifestEntry",
    "ManifestReader",
    "ProvisioningLine",
    "Step",
    "UnitState",
    "canonical_challenge",
    "default_collections",
    "device_serial",
    "fewer_collections",
    "open_line",
]
