"""Issuance policy: certificate profiles per credential type and their renewal cadence."""

from __future__ import annotations

from fleetid.policy.cadence import Cadence
from fleetid.policy.profiles import (
    DEFAULT_POLICY,
    CredentialType,
    Policy,
    Profile,
)

__all__ = ["DEFAULT_POLICY", "Cadence", "CredentialType", "Policy", "Profile"]
