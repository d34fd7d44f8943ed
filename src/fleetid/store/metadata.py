"""The one ``MetaData`` every table of the store hangs off, whichever module defines it.

The authority's tables (``fleetid.store.schema``), the factory's (``auditlog_table``,
``manifest_table``), the CRL publications and the V2X authorities' (``v2x_tables``) all register
here, so that one Alembic history (``fleetid.store.migrations``) migrates every database and every
constraint is named by one convention, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]

# Constraint names are fixed so that Alembic revisions can refer to them on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
