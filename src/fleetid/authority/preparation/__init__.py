"""The credential preparation service, SM-DP+ in shape: ``PreparationService``."""

from fleetid.authority.preparation.service import (
    AuthenticateClientAnswer,
    CredentialIssuer,
    EventRegistrar,
    InitiateAuthenticationAnswer,
    Order,
    PackageKind,
    PackageState,
    PreparationService,
)

__all__ = [
    "AuthenticateClientAnswer",
    "CredentialIssuer",
    "EventRegistrar",
    "InitiateAuthenticationAnswer",
    "Order",
    "PackageKind",
    "PackageState",
    "PreparationService",
]
