"""V2X amplification: the receiver flags one pseudonym in two places, the report revokes the
vehicle's chain by linked CRL, and its next batch is refused, SE and software vehicle alike."""

from __future__ import annotations

from fleetid.sim.threats import v2x_amplification
from fleetid.sim.threats.result import Verdict


def test_the_amplifying_vehicle_is_flagged_and_revoked() -> None:
    result = v2x_amplification.run()
    for outcome in (result.se_device, result.software_device):
        assert outcome is not None
        assert outcome.verdict is Verdict.STOPPED
        flagged, revoked, batch = outcome.evidence
        assert flagged.startswith("flagged by the receiver: position-jump")
        assert revoked.endswith("6/6 of its pseudonyms refused (CertificateRevokedError)")
        assert batch == "its next batch request: refused (BatchRefusedError)"
