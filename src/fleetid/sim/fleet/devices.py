"""One device of the simulated fleet, from its row to a live ``DeviceAgent`` and back.

A device is a row (``fleetid.store.fleet_sim_repository.SimDevice``) and its secure element,
sealed on disk. To act, the simulation powers the card, rebuilds the agent from the row (its
current certificate and SE key handle) and lets the agent do what it does in the field; what
changed goes back into the row. Nothing of the device stays in memory between batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.authority.revoke import revoke_device
from fleetid.clock import ManualClock
from fleetid.device.agent import AgentState, Credential, DeviceAgent
from fleetid.device.truststore import TrustStore
from fleetid.errors import AuthenticationError, PolicyError
from fleetid.se.client import SecureElementClient
from fleetid.sim.fleet.authorities import Authority
from fleetid.sim.fleet.factory import open_card
from fleetid.sim.fleet.options import FleetOptions
from fleetid.store.fleet_sim_repository import SimDevice

__all__ = ["LIVE", "DeviceWorld", "day_of", "time_of"]

LIVE: Final = ("enrolled", "rekeyed", "transferred")
_DER = serialization.Encoding.DER
# Within a simulated day: lifecycle at noon, publication in the evening, then contacts.
LIFECYCLE_HOUR: Final = timedelta(hours=12)
PUBLISH_HOUR: Final = timedelta(hours=20)
SYNC_HOUR: Final = timedelta(hours=20, minutes=30)


def time_of(start: datetime, day: int, hour: timedelta = LIFECYCLE_HOUR) -> datetime:
    return start + timedelta(days=day) + hour


def day_of(start: datetime, moment: datetime) -> int:
    return (moment - start) // timedelta(days=1)


@dataclass
class DeviceWorld:
    """What acting on a device needs: the run, its clock and both authorities."""

    options: FleetOptions
    start: datetime
    clock: ManualClock
    authorities: Mapping[str, Authority]

    def agent(self, row: SimDevice) -> DeviceAgent:
        client = SecureElementClient(open_card(self.options, row.unit))
        client.select_identity()
        anchors = [self.authorities["a"].root]
        if row.authority == "b":
            anchors.append(self.authorities["b"].root)
        agent = DeviceAgent(
            se=client,
            clock=self.clock,
            cadence=self.authorities[row.authority].cadence,
            trust=TrustStore(anchors),
        )
        if row.certificate is not None and row.handle is not None:
            agent.credential = Credential(
                certificate=x509.load_der_x509_certificate(row.certificate),
                handle=row.handle,
                intermediates=(),
            )
            agent.state = AgentState.REKEYED if row.state == "rekeyed" else AgentState.ENROLLED
        return agent

    def credential_columns(self, agent: DeviceAgent) -> dict[str, Any]:
        """The row's columns for the agent's current credential."""
        assert agent.credential is not None  # noqa: S101 - called after an issuance
        renew = agent.cadence.renew_from(agent.credential.not_after)
        return {
            "serial": agent.credential.serial,
            "handle": agent.credential.handle,
            "certificate": agent.credential.certificate.public_bytes(_DER),
            "renew_day": max(day_of(self.start, renew), day_of(self.start, self.clock.now()) + 1),
        }

    # -- what a device does ----------------------------------------------------------------

    def enrol(self, row: SimDevice) -> dict[str, Any]:
        agent = self.agent(row)
        agent.enrol(self.authorities[row.authority].transport)
        return {"state": "enrolled", **self.credential_columns(agent)}

    def renew(self, row: SimDevice) -> tuple[str | None, dict[str, Any]]:
        """The agent's cadence: a refresh in the window, a recovery past expiry. A credential
        the authority has already replaced (a run killed after the issuance and before the row
        was written) is recovered by attested enrolment, as a device that lost its state would,
        and counted as the action that was due, so a resumed run reports what an uninterrupted
        one does."""
        agent = self.agent(row)
        transport = self.authorities[row.authority].transport
        assert agent.credential is not None  # noqa: S101 - live rows hold a credential
        now = self.clock.now()
        if now >= agent.credential.not_after:
            action: str | None = "recover"
        elif agent.cadence.renewal_due(agent.credential.not_after, now):
            action = "refresh"
        else:
            return None, {"renew_day": day_of(self.start, now) + 1}
        try:
            done = agent.tick(transport)
        except AuthenticationError:
            agent.enrol(transport)
        else:
            if done is None:  # the authority's renewal window (RFC 9773) has not started
                return None, {"renew_day": day_of(self.start, now) + 1}
        return action, self.credential_columns(agent)

    def rekey(self, row: SimDevice) -> dict[str, Any]:
        agent = self.agent(row)
        transport = self.authorities[row.authority].transport
        try:
            agent.rekey(transport)
        except AuthenticationError:
            agent.enrol(transport)
        return {"state": "rekeyed", **self.credential_columns(agent)}

    def transfer(self, row: SimDevice) -> dict[str, Any]:
        agent = self.agent(row)
        old, new = self.authorities["a"].transport, self.authorities["b"]
        try:
            agent.transfer(old, new.transport, new.root)
        except AuthenticationError:  # released already, before a kill: enrol at B
            agent.trust = TrustStore([*agent.trust.anchors, new.root])
            agent.enrol(new.transport)
        return {"state": "transferred", "authority": "b", **self.credential_columns(agent)}

    def revoke(self, row: SimDevice, reason: str, day: int) -> dict[str, Any]:
        """The operator revokes the device at its authority (its certificate stays in the
        row: it is the peer every other device must now reject)."""
        authority = self.authorities[row.authority]
        assert row.serial is not None  # noqa: S101 - only enrolled devices are revoked
        with contextlib.suppress(PolicyError):  # revoked already, before a kill
            revoke_device(authority.ca.store, self._device_id(row), reason, clock=self.clock)
        state = "revoked" if reason == "keyCompromise" else "decommissioned"
        return {"state": state, "revoked_day": day, "renew_day": None, "next_sync_day": None}

    def _device_id(self, row: SimDevice) -> str:
        assert row.certificate is not None  # noqa: S101
        certificate = x509.load_der_x509_certificate(row.certificate)
        (name,) = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(name.value)
