"""Authority compromise: out of scope for these attacks; the row says what protects against it.

An attacker inside the fleet CA, the V2X Root CA or the manufacturer's line would issue
identities rather than steal them. No scenario runs: neither device variant is attacked, so
both results are null. The row names the controls (docs/hsm.md, docs/audit-log.md) and what an
operator must do.
"""

from __future__ import annotations

from fleetid.sim.threats.result import ThreatResult

__all__ = ["run"]


def run(_target: object = None) -> ThreatResult:
    return ThreatResult(
        name="authority-compromise",
        threat="Authority compromise (out of scope)",
        capability="the issuing CA's or the line's keys",
        control=(
            "HSM custody (keys by label, never exported), M-of-N split custody of the KEK, "
            "the signed audit log; operator: roll the compromised CA over and revoke it"
        ),
        se_device=None,
        software_device=None,
        figures={
            "operator action": "roll the CA over (roll_issuing_ca / roll_root), revoke the old "
            "one, devices refresh under the new chain"
        },
    )
