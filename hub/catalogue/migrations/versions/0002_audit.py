"""The audit trail: records, caller identities, chain head, declarations of destruction, legal
holds; triggers that keep records append-only outside a purge.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENESIS = "0" * 64

# Tables whose rows are never updated; the first two lose rows only inside a purge.
_PURGEABLE = ("audit_records", "audit_callers")
_PERMANENT = ("audit_declarations", "audit_destroyed_ranges")


def upgrade() -> None:
    """Create the audit tables, the chain head row and the append-only triggers."""
    hash_ = sa.String(64)
    op.create_table(
        "audit_records",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("parent_span_id", sa.String(16), nullable=True),
        sa.Column("foreign_span_id", sa.String(16), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("http_method", sa.String(16), nullable=False),
        sa.Column("http_status", sa.SmallInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("collection_id", sa.String(255), nullable=True),
        sa.Column("result_count", sa.Integer(), nullable=True),
        sa.Column("activity_id", sa.String(64), nullable=False),
        sa.Column("activity_uri", sa.Text(), nullable=False),
        sa.Column("data_subject_id", hash_, nullable=True),
        sa.Column("data_subject_id_type", sa.String(255), nullable=True),
        sa.Column("denied_reason", sa.Text(), nullable=True),
        sa.Column("caller_id", sa.BigInteger(), nullable=True),
        sa.Column("content_hash", hash_, nullable=False),
        sa.Column("chain_hash", hash_, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
        sa.CheckConstraint("kind IN ('request', 'data-subject')", name=op.f("ck_audit_records_kind")),
        sa.CheckConstraint("status_code IN (0, 1, 2)", name=op.f("ck_audit_records_status_code")),
    )
    op.create_index("ix_audit_records_trace_id", "audit_records", ["trace_id"])
    op.create_index("ix_audit_records_data_subject_id", "audit_records", ["data_subject_id"])
    op.create_index("ix_audit_records_caller_id", "audit_records", ["caller_id"])
    op.create_index("ix_audit_records_activity_id_end_time", "audit_records", ["activity_id", "end_time"])

    op.create_table(
        "audit_callers",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("issuer", sa.Text(), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("identity_hash", hash_, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_callers")),
        sa.UniqueConstraint("identity_hash", name=op.f("uq_audit_callers_identity_hash")),
    )

    chain = op.create_table(
        "audit_chain",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("last_record_id", sa.BigInteger(), nullable=False),
        sa.Column("last_chain_hash", hash_, nullable=False),
        sa.Column("last_caller_id", sa.BigInteger(), nullable=False),
        sa.Column("last_declaration_id", sa.Integer(), nullable=False),
        sa.Column("last_declaration_hash", hash_, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    op.bulk_insert(
        chain,
        [
            {
                "id": 1,
                "last_record_id": 0,
                "last_chain_hash": _GENESIS,
                "last_caller_id": 0,
                "last_declaration_id": 0,
                "last_declaration_hash": _GENESIS,
            }
        ],
    )

    op.create_table(
        "audit_declarations",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("grounds", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("activity_id", sa.String(64), nullable=False),
        sa.Column("activity_uri", sa.Text(), nullable=False),
        sa.Column("retention", sa.String(64), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("caller_count", sa.Integer(), nullable=False),
        sa.Column("held_count", sa.Integer(), nullable=False),
        sa.Column("first_record_id", sa.BigInteger(), nullable=False),
        sa.Column("last_record_id", sa.BigInteger(), nullable=False),
        sa.Column("previous_hash", hash_, nullable=False),
        sa.Column("declaration_hash", hash_, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_declarations")),
    )

    op.create_table(
        "audit_destroyed_ranges",
        sa.Column("first_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_chain_hash", hash_, nullable=False),
        sa.Column("declaration_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("first_id", name=op.f("pk_audit_destroyed_ranges")),
        sa.ForeignKeyConstraint(
            ["declaration_id"],
            ["audit_declarations.id"],
            name=op.f("fk_audit_destroyed_ranges_declaration_id_audit_declarations"),
        ),
    )
    op.create_index("ix_audit_destroyed_ranges_declaration_id", "audit_destroyed_ranges", ["declaration_id"])

    op.create_table(
        "audit_legal_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("activity_id", sa.String(64), nullable=True),
        sa.Column("data_subject_id", hash_, nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("from_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("until_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_legal_holds")),
    )

    op.create_table(
        "audit_destructions_in_progress",
        sa.Column("declaration_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("declaration_id", name=op.f("pk_audit_destructions_in_progress")),
    )

    if op.get_context().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()


def _postgresql_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND TG_TABLE_NAME IN ('audit_records', 'audit_callers')
               AND EXISTS (SELECT 1 FROM audit_destructions_in_progress) THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
        END
        $$
        """
    )
    for table in (*_PURGEABLE, *_PERMANENT):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )


def _sqlite_triggers() -> None:
    for table in (*_PURGEABLE, *_PERMANENT):
        op.execute(
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE refused'); END"
        )
        only_in_purge = (
            "WHEN NOT EXISTS (SELECT 1 FROM audit_destructions_in_progress) " if table in _PURGEABLE else ""
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} {only_in_purge}"
            "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE refused'); END"
        )


def downgrade() -> None:
    """Drop the audit tables (their triggers go with them) and the trigger function."""
    for table in (
        "audit_destructions_in_progress",
        "audit_legal_holds",
        "audit_destroyed_ranges",
        "audit_declarations",
        "audit_chain",
        "audit_callers",
        "audit_records",
    ):
        op.drop_table(table)
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_refuse_change()")
