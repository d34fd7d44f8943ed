"""The operator credentials the operator CA issued (``fleetid.authority.operator_ca``): one row a
certificate, with its role and, once revoked, when and by whom. Revision 0014 creates it."""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, String, Table

from fleetid.store.schema import UtcDateTime, metadata

__all__ = ["operator_credentials"]

operator_credentials = Table(
    "operator_credentials",
    metadata,
    Column("serial", String(64), primary_key=True),  # lowercase hex, as certificates are keyed
    Column("name", String(128), nullable=False, index=True),
    Column("role", String(32), nullable=False),
    Column("certificate", LargeBinary, nullable=False),  # DER
    Column("issued_at", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revoked_by", String(128), nullable=True),
)
