"""Shared pytest set-up."""

from __future__ import annotations

import os

from hypothesis import settings

# Database fixtures (``backend``, ``db_url``, ``engine``): SQLite and PostgreSQL alike.
pytest_plugins = ["tests.db_fixtures"]

settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
