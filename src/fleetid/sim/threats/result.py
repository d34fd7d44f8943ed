"""What a threat scenario reports: one ``ThreatResult`` per scenario, one ``Outcome`` per device.

The table ``fleetid threats run`` prints and its ``--json`` are renderings of these values
(docs/threat-model.md). A verdict is ``stopped`` only with the control that refused and the
refusal observed (a status word, an exception, a rejected signature); ``compromised`` only when
the stolen material was used and accepted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Outcome", "ThreatResult", "Verdict"]


class Verdict(enum.StrEnum):
    STOPPED = "stopped"
    COMPROMISED = "compromised"


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What the attacker got against one device, and why.

    ``evidence`` is what was observed: for ``stopped`` the refusal (status word, exception,
    rejected signature), for ``compromised`` the acceptance of the stolen material.
    """

    verdict: Verdict
    control: str
    evidence: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.evidence:
            raise ValueError("an outcome states what was observed")


@dataclass(frozen=True, kw_only=True)
class ThreatResult:
    """One scenario's run: the threat, the attacker's access, the control, both devices."""

    name: str
    threat: str
    capability: str
    control: str
    se_device: Outcome | None
    software_device: Outcome | None
    figures: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The ``--json`` object: ``name``, ``control``, ``se_device``, ``software_device``
        (``"stopped"``, ``"compromised"`` or null) and the details behind them."""

        def verdict(outcome: Outcome | None) -> str | None:
            return None if outcome is None else outcome.verdict.value

        def details(outcome: Outcome | None) -> dict[str, object] | None:
            if outcome is None:
                return None
            return {"control": outcome.control, "evidence": list(outcome.evidence)}

        return {
            "name": self.name,
            "threat": self.threat,
            "capability": self.capability,
            "control": self.control,
            "se_device": verdict(self.se_device),
            "software_device": verdict(self.software_device),
            "se_device_detail": details(self.se_device),
            "software_device_detail": details(self.software_device),
            "figures": dict(self.figures),
        }
