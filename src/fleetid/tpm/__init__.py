"""TPM 2.0-rooted devices: a device whose root of trust is a TPM, beside the secure element.

``TpmDevice`` drives a TPM through tpm2-pytss (the extra ``tpm``): the EK and its certificate, the
attestation key (AK) and its certificate, operational keys made in the TPM and never exported,
TPM2_Certify of a key by the AK with an authority's challenge, signatures by TPM2_Sign
(``TpmSigner``, a ``Signer``). ``Swtpm`` runs Debian's software TPM (swtpm, libtpms) for tests
and the demo. ``read_certify`` reads the TPM structures of a TPM2_Certify for a verifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetid._lazy import lazy_exports

if TYPE_CHECKING:
    from fleetid.tpm.device import TpmDevice, TpmSigner
    from fleetid.tpm.evidence import read_certify
    from fleetid.tpm.swtpm import Swtpm

__all__ = ["Swtpm", "TpmDevice", "TpmSigner", "read_certify"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "fleetid.tpm.device": ("TpmDevice", "TpmSigner"),
        "fleetid.tpm.evidence": ("read_certify",),
        "fleetid.tpm.swtpm": ("Swtpm",),
    },
)
