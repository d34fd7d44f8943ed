"""Initial schema: the authority's tables and the factory's (audit log, line manifest).

The factory tables may exist already when the audit log or the line created them with
``create_all`` before the first migration ran; they are created only if missing.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Tables that fleetid.factory may have created before Alembic first ran.
_FACTORY = True


def upgrade() -> None:
    op.create_table(
        "audit_log_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_audit_log_checkpoints")),
        if_not_exists=_FACTORY,
    )
    op.create_table(
        "audit_log_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("logged_at", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log_entries")),
        if_not_exists=_FACTORY,
    )
    op.create_index(
        "ix_audit_log_entries_serial",
        "audit_log_entries",
        ["serial"],
        unique=False,
        if_not_exists=_FACTORY,
    )
    op.create_table(
        "ca_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("hsm_label", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_key_id", sa.LargeBinary(length=20), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('root', 'issuing')", name=op.f("ck_ca_keys_role")),
        sa.CheckConstraint("active IN (0, 1)", name=op.f("ck_ca_keys_active")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_keys")),
        sa.UniqueConstraint("hsm_label", name=op.f("uq_ca_keys_hsm_label")),
        sa.UniqueConstraint("role", "generation", name="uq_ca_keys_role_generation"),
    )
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    # The revocation sequence starts at 0; fleetid.store.repositories bumps it under a row lock.
    op.bulk_insert(counters, [{"name": "revocation", "value": 0}])
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("idevid_serial", sa.String(length=64), nullable=True),
        sa.Column("idevid_key_sha256", sa.LargeBinary(length=32), nullable=True),
        sa.Column("provisioner", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'enrolled', 'revoked', 'transferred')",
            name=op.f("ck_devices_status"),
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_devices")),
    )
    op.create_index("ix_devices_idevid_serial", "devices", ["idevid_serial"], unique=False)
    op.create_index("ix_devices_status", "devices", ["status"], unique=False)
    op.create_table(
        "enrolment_challenges",
        sa.Column("nonce", sa.LargeBinary(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_enrolment_challenges")),
    )
    op.create_index(
        "ix_enrolment_challenges_expires_at", "enrolment_challenges", ["expires_at"], unique=False
    )
    op.create_table(
        "line_manifest",
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("key_version", sa.Integer(), nullable=True),
        sa.Column("key_kcvs", sa.String(length=32), nullable=True),
        sa.Column("attestation_public_key", sa.LargeBinary(), nullable=True),
        sa.Column("idevid_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("idevid", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("unit", name=op.f("pk_line_manifest")),
        if_not_exists=_FACTORY,
    )
    op.create_index(
        "ix_line_manifest_state", "line_manifest", ["state"], unique=False, if_not_exists=_FACTORY
    )
    op.create_index(
        "ux_line_manifest_serial_accepted",
        "line_manifest",
        ["serial"],
        unique=True,
        sqlite_where=sa.text("state != 'duplicate'"),
        postgresql_where=sa.text("state != 'duplicate'"),
        if_not_exists=_FACTORY,
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("profile", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("public_key_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=24), nullable=True),
        sa.Column("revocation_seq", sa.BigInteger(), nullable=True),
        sa.Column("superseded_by", sa.BigInteger(), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "(status = 'revoked') = (revoked_at IS NOT NULL AND revocation_reason IS NOT NULL"
            " AND revocation_seq IS NOT NULL)",
            name=op.f("ck_certificates_revocation_complete"),
        ),
        sa.CheckConstraint(
            "revocation_reason IS NULL OR revocation_reason IN ('unspecified', 'keyCompromise',"
            " 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation',"
            " 'certificateHold', 'removeFromCRL', 'privilegeWithdrawn', 'aACompromise')",
            name=op.f("ck_certificates_reason"),
        ),
        sa.CheckConstraint("status IN ('valid', 'revoked')", name=op.f("ck_certificates_status")),
        sa.CheckConstraint("length(serial) = 40", name=op.f("ck_certificates_serial_length")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.device_id"], name=op.f("fk_certificates_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["ca_keys.id"], name=op.f("fk_certificates_issuer_id_ca_keys")
        ),
        sa.ForeignKeyConstraint(
            ["superseded_by"],
            ["certificates.id"],
            name=op.f("fk_certificates_superseded_by_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("revocation_seq", name=op.f("uq_certificates_revocation_seq")),
        sa.UniqueConstraint("serial", name="uq_certificates_serial"),
    )
    op.create_index("ix_certificates_device_id", "certificates", ["device_id"], unique=False)
    op.create_index("ix_certificates_not_after", "certificates", ["not_after"], unique=False)
    op.create_index(
        "ix_certificates_public_key_sha256", "certificates", ["public_key_sha256"], unique=False
    )
    op.create_index("ix_certificates_status", "certificates", ["status"], unique=False)
    op.create_table(
        "enrolment_tokens",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("certificate_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_enrolment_tokens_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_enrolment_tokens")),
    )
    op.create_index(
        "ix_enrolment_tokens_device_id", "enrolment_tokens", ["device_id"], unique=False
    )
    op.create_index(
        "ix_enrolment_tokens_expires_at", "enrolment_tokens", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_enrolment_tokens_expires_at", table_name="enrolment_tokens")
    op.drop_index("ix_enrolment_tokens_device_id", table_name="enrolment_tokens")
    op.drop_table("enrolment_tokens")
    op.drop_index("ix_certificates_status", table_name="certificates")
    op.drop_index("ix_certificates_public_key_sha256", table_name="certificates")
    op.drop_index("ix_certificates_not_after", table_name="certificates")
    op.drop_index("ix_certificates_device_id", table_name="certificates")
    op.drop_table("certificates")
    op.drop_index(
        "ux_line_manifest_serial_accepted",
        table_name="line_manifest",
        sqlite_where=sa.text("state != 'duplicate'"),
        postgresql_where=sa.text("state != 'duplicate'"),
    )
    op.drop_index("ix_line_manifest_state", table_name="line_manifest")
    op.drop_table("line_manifest")
    op.drop_index("ix_enrolment_challenges_expires_at", table_name="enrolment_challenges")
    op.drop_table("enrolment_challenges")
    op.drop_index("ix_devices_status", table_name="devices")
    op.drop_index("ix_devices_idevid_serial", table_name="devices")
    op.drop_table("devices")
    op.drop_table("counters")
    op.drop_table("ca_keys")
    op.drop_index("ix_audit_log_entries_serial", table_name="audit_log_entries")
    op.drop_table("audit_log_entries")
    op.drop_table("audit_log_checkpoints")
