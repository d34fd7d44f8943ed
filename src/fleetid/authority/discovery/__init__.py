"""The discovery service, SM-DS in shape (spec-22): ``DiscoveryService``."""

from fleetid.authority.discovery.service import DiscoveryService

__all__ = ["DiscoveryService"]
