"""The fleet simulation: ``fleetid demo --devices N --years Y`` carries a fleet
through the ceremony, the line, attested enrolment and simulated years of life, and reports.

``run_fleet(FleetOptions(...))`` runs (or, with ``resume=True``, continues) a run; the modules:
``options`` and ``plan`` (what is asked, seeded per device), ``factory`` (ceremony and line over
lots on every core), ``authorities`` (the fleet CAs in process), ``devices`` (a row to an agent
and back), ``lifecycle`` (enrolment and the days), ``check`` (revocation convergence),
``report`` and ``report_html`` (the figures), ``runner`` (the stages, resumable).
"""

from __future__ import annotations

from fleetid.sim.fleet.options import FleetOptions
from fleetid.sim.fleet.report import FleetReport
from fleetid.sim.fleet.runner import run_fleet

__all__ = ["FleetOptions", "FleetReport", "run_fleet"]
