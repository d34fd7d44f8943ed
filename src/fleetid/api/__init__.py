"""The authority's HTTP API (FastAPI): EST under ``/.well-known/est/``, problem-details errors."""

from __future__ import annotations

from fleetid.api.app import create_app

__all__ = ["create_app"]
