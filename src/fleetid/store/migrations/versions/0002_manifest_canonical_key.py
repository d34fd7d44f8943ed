"""Line manifest: the vehicle's canonical key, generated on the card at manufacture, and the
card's attestation of it (ETSI TS 102 941 §6.2.3.2: the EA knows the canonical key of each
ITS-S from its manufacturer).

The line may have created the manifest with ``create_all`` at the new shape before this revision
ran; the columns are added only where missing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = ("canonical_public_key", "canonical_attestation")


def _present() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("line_manifest")}


def upgrade() -> None:
    present = _present()
    missing = [name for name in _COLUMNS if name not in present]
    if not missing:
        return
    with op.batch_alter_table("line_manifest") as batch:
        for name in missing:
            # DER SubjectPublicKeyInfo / DER X.509 key-attestation certificate.
            batch.add_column(sa.Column(name, sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    present = _present()
    with op.batch_alter_table("line_manifest") as batch:
        for name in _COLUMNS:
            if name in present:
                batch.drop_column(name)
