"""The discovery service, SM-DS in shape: ``DiscoveryService``."""

from fleetid.authority.discovery.service import DiscoveryService

__all__ = ["DiscoveryService"]
