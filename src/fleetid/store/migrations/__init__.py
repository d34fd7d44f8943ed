"""Alembic migrations for the whole fleetid database (``fleetid.store.migrate`` runs them)."""
