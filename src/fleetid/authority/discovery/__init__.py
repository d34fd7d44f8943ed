"""The discovery service, SM-DS in shape: ``DiscoveryService``."""

from fleetid.authority.discovery.service import DiscoveryAnswer, DiscoveryService

__all__ = ["DiscoveryAnswer", "DiscoveryService"]
