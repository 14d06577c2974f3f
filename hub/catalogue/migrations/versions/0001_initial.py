"""The sources table; on PostgreSQL also its PostGIS extent and spatial index.

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

from hub.errors import ConfigurationError

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Values are spelled out rather than imported from the models: a migration records the schema
# as it was at this revision, whatever the code says later.
_CLASSIFICATIONS = "'open', 'internal', 'confidential', 'personal'"


def upgrade() -> None:
    """Create the sources table; on PostgreSQL with a generated PostGIS extent."""
    postgresql = op.get_context().dialect.name == "postgresql"
    if postgresql:
        _require_postgis()
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    columns: list[sa.Column[object]] = [
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("connector", sa.String(255), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("licence", sa.Text(), nullable=True),
        sa.Column("registration", sa.JSON(), nullable=False),
        sa.Column("minx", sa.Double(), nullable=True),
        sa.Column("miny", sa.Double(), nullable=True),
        sa.Column("maxx", sa.Double(), nullable=True),
        sa.Column("maxy", sa.Double(), nullable=True),
        sa.Column("seeded", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]
    if postgresql:
        # Derived by the database from the four bounds, so it cannot drift from them;
        # ST_MakeEnvelope is immutable and strict, so an unknown extent gives NULL.
        columns.append(
            sa.Column(
                "extent",
                Geometry("POLYGON", srid=4326, spatial_index=False),
                sa.Computed("ST_MakeEnvelope(minx, miny, maxx, maxy, 4326)", persisted=True),
                nullable=True,
            )
        )
    op.create_table(
        "sources",
        *columns,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.CheckConstraint(f"classification IN ({_CLASSIFICATIONS})", name=op.f("ck_sources_classification")),
        sa.CheckConstraint(
            "(minx IS NULL AND miny IS NULL AND maxx IS NULL AND maxy IS NULL)"
            " OR (minx IS NOT NULL AND miny IS NOT NULL AND maxx IS NOT NULL"
            " AND maxy IS NOT NULL AND minx <= maxx AND miny <= maxy)",
            name=op.f("ck_sources_extent"),
        ),
    )
    if postgresql:
        op.create_index("ix_sources_extent", "sources", ["extent"], postgresql_using="gist")


def downgrade() -> None:
    """Drop the sources table; the postgis extension stays, other schemas may use it."""
    op.drop_table("sources")


def _require_postgis() -> None:
    # Offline (SQL script) mode has no server to ask.
    if op.get_context().as_sql:
        return
    available = op.get_bind().execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"))
    if available.first() is None:
        raise ConfigurationError(
            "the catalogue needs PostGIS, and this PostgreSQL server does not have it installed"
        )
