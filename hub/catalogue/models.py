"""Database models of the catalogue: one row per registered source.

The extent is kept in two forms, so that one model serves both backends:

- Four float columns ``minx``, ``miny``, ``maxx``, ``maxy`` (CRS84 lon/lat) exist everywhere and are
  the only form the application writes. The embedded SQLite default answers spatial questions with
  plain comparisons on them, since SpatiaLite cannot be loaded there.
- On PostgreSQL the migration adds ``extent``, a PostGIS ``geometry(Polygon, 4326)`` column
  *generated* by the database from the four floats, with a GiST index. It is deliberately not
  mapped on the ORM class: nothing writes it, so it can never disagree with the floats, and SQLite
  never sees a geometry type it cannot handle. Queries reach it through :data:`extent_geometry`.
  :data:`DATABASE_ONLY` names it so that schema comparisons do not report it as unknown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hub.catalogue.registration import Classification

# Deterministic constraint names keep migrations identical on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EXTENT_SRID = 4326
EXTENT_INDEX = "ix_sources_extent"

# Objects the PostgreSQL migration creates that the ORM deliberately does not map, as
# (object type, name) pairs in the terms of alembic's ``include_object`` hook.
DATABASE_ONLY = frozenset({("column", "extent"), ("index", EXTENT_INDEX)})

# Tables that PostGIS itself owns in the schema the catalogue lives in.
FOREIGN_TABLES = frozenset({"spatial_ref_sys"})

# The generated geometry column, for PostGIS queries on ``sources`` only. Left unqualified
# (no table) so that it joins the query's one ``sources`` table instead of adding another.
extent_geometry = sa.column("extent", Geometry("POLYGON", srid=EXTENT_SRID))


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which stores no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes and store the UTC instant."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("catalogue timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        # SQLite's DateTime keeps no offset; normalising to naive UTC keeps stored text sortable.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Give back an aware UTC datetime whatever the backend returned."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the catalogue's tables."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


_CLASSIFICATIONS = ", ".join(f"'{c.value}'" for c in Classification)


class Source(Base):
    """A registered source; ``registration`` holds the full declaration, the rest is derived."""

    __tablename__ = "sources"
    __table_args__ = (
        sa.CheckConstraint(f"classification IN ({_CLASSIFICATIONS})", name="classification"),
        # All four bounds or none, and never inverted; the geometry column relies on it.
        sa.CheckConstraint(
            "(minx IS NULL AND miny IS NULL AND maxx IS NULL AND maxy IS NULL)"
            " OR (minx IS NOT NULL AND miny IS NOT NULL AND maxx IS NOT NULL"
            " AND maxy IS NOT NULL AND minx <= maxx AND miny <= maxy)",
            name="extent",
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    title: Mapped[str] = mapped_column(sa.Text)
    connector: Mapped[str] = mapped_column(sa.String(255))
    classification: Mapped[str] = mapped_column(sa.String(16))
    owner: Mapped[str | None] = mapped_column(sa.Text)
    licence: Mapped[str | None] = mapped_column(sa.Text)
    # Plain JSON rather than JSONB: the document is stored and returned as the steward wrote it
    # (JSONB would reorder its keys) and nothing queries inside it.
    registration: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    minx: Mapped[float | None] = mapped_column(sa.Double)
    miny: Mapped[float | None] = mapped_column(sa.Double)
    maxx: Mapped[float | None] = mapped_column(sa.Double)
    maxy: Mapped[float | None] = mapped_column(sa.Double)
    seeded: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        """The extent as minlon, minlat, maxlon, maxlat, or None when unknown."""
        if self.minx is None or self.miny is None or self.maxx is None or self.maxy is None:
            return None
        return (self.minx, self.miny, self.maxx, self.maxy)
