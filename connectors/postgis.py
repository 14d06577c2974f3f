"""Serve a PostGIS table or view, queried in place at request time.

Every request becomes one parameterised SELECT (and a ``count(*)`` when the caller wants the
number matched): bbox, property equality, datetime, CQL2 filter, sort and paging all run in
the database. Values only ever travel as bound parameters and identifiers come from the
reflected table, never from the request. Geometries come back as GeoJSON in the table's CRS;
the hub transforms them when another CRS is asked for.
"""

from __future__ import annotations

import base64
import dataclasses
import decimal
import json
import logging
import math
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar, Literal, NoReturn

import geoalchemy2  # importing it also registers the geometry types for reflection
import httpx
import numpy as np
import psycopg.errors
import shapely
from pydantic import Field, field_validator
from pygeofilter import ast, values
from shapely.geometry import shape
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    and_,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from connectors._cql import attributes, reproject_literals
from connectors._crs import box_ring, northing_first
from connectors.base import (
    CRS84,
    Capabilities,
    CollectionInfo,
    Connector,
    ConnectorSettings,
    Feature,
    FeaturePage,
    FeatureQuery,
    FieldInfo,
)
from connectors.errors import (
    ConnectorConfigError,
    ConnectorError,
    UnsupportedQuery,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

GEOMETRY_NAMES = frozenset({"geometry", "geom", "the_geom", "shape"})
"""Names a filter may use for the geometry, besides the geometry column's own name."""

JsonType = Literal["string", "number", "integer", "boolean", "date", "date-time", "object", "array"]
Kind = Literal["boolean", "number", "string", "date", "datetime", "geometry", "other"]

_GEOMETRY_TYPES = {
    "POINT": "Point",
    "LINESTRING": "LineString",
    "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint",
    "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon",
    "GEOMETRYCOLLECTION": "GeometryCollection",
    "GEOMETRY": "Geometry",
}

_SPATIAL_FUNCTIONS = {
    ast.SpatialComparisonOp.INTERSECTS: func.ST_Intersects,
    ast.SpatialComparisonOp.DISJOINT: func.ST_Disjoint,
    ast.SpatialComparisonOp.CONTAINS: func.ST_Contains,
    ast.SpatialComparisonOp.WITHIN: func.ST_Within,
    ast.SpatialComparisonOp.TOUCHES: func.ST_Touches,
    ast.SpatialComparisonOp.CROSSES: func.ST_Crosses,
    ast.SpatialComparisonOp.OVERLAPS: func.ST_Overlaps,
    ast.SpatialComparisonOp.EQUALS: func.ST_Equals,
}


class PostgisSettings(ConnectorSettings):
    """A PostGIS table or view; the password, if any, comes from an environment variable."""

    dsn: str = Field(description="postgresql:// URL without password")
    password_env: str | None = Field(None, description="Environment variable with the password")
    table: str = Field(pattern=r"^[^.\s]+(\.[^.\s]+)?$", description="[schema.]table or view")
    id_column: str | None = Field(None, description="Feature id column; the primary key if absent")
    geometry_column: str | None = Field(None, description="Detected when the table has one")
    time_column: str | None = None
    pool_size: int = Field(5, ge=1, le=50)

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: str) -> str:
        """A PostgreSQL URL that carries no password."""
        try:
            url = make_url(value)
        except sa_exc.ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from exc
        if url.get_backend_name() != "postgresql":
            raise ValueError("dsn must be a postgresql:// URL")
        if url.password:
            raise ValueError("dsn must not contain a password: name an environment variable in password_env")
        return value


@dataclasses.dataclass(slots=True)
class _Schema:
    """What ``open()`` learned about the table."""

    table: Table
    id_column: Column[Any]
    geometry: Column[Any]
    srid: int
    crs: str
    flip: bool
    """PostGIS keeps x/y; a latitude-first CRS needs its axes swapped on the way in and out."""
    geometry_type: str | None
    columns: dict[str, Column[Any]]
    """Property columns by name (everything but geometry columns)."""
    kinds: dict[str, Kind]
    time_column: Column[Any] | None


def _kind(column_type: Any) -> Kind:
    """The comparison class of a column type."""
    if isinstance(column_type, geoalchemy2.Geometry | geoalchemy2.Geography):
        return "geometry"
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Integer | Numeric | Float):
        return "number"
    if isinstance(column_type, String):
        return "string"
    if isinstance(column_type, DateTime):
        return "datetime"
    if isinstance(column_type, Date):
        return "date"
    return "other"


def _json_type(column_type: Any) -> JsonType:
    """The JSON Schema type of a column's values."""
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Integer):
        return "integer"
    if isinstance(column_type, Numeric | Float):
        return "number"
    if isinstance(column_type, DateTime):
        return "date-time"
    if isinstance(column_type, Date):
        return "date"
    type_name = type(column_type).__name__.upper()
    if type_name in ("JSON", "JSONB"):
        return "object"
    if type_name == "ARRAY":
        return "array"
    return "string"


def _json_value(value: Any) -> Any:
    """A database value as a JSON value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return value
    return str(value)


def _literal_kind(value: Any) -> Kind | None:
    """The comparison class of a CQL2 literal (None when it is not a scalar literal)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    return None


def _like_pattern(node: ast.Like) -> str:
    """The node's pattern in SQL LIKE syntax (``%``, ``_``, escape ``\\``)."""
    out: list[str] = []
    chars = iter(node.pattern)
    for ch in chars:
        if ch == node.escapechar:
            ch = next(chars, "")
            out.append("\\" + ch if ch in "%_\\" else ch)
        elif ch == node.wildcard:
            out.append("%")
        elif ch == node.singlechar:
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


class _Untranslatable(Exception):
    """The expression holds something this translator will not put into SQL."""


class _SqlFilter:
    """Translates a pygeofilter AST (literals already in the table's CRS) into SQL.

    Null handling follows the in-memory evaluation the hub checks results with: ``=`` and
    ``<>`` treat null as a value (IS [NOT] DISTINCT FROM) and an ordering comparison, LIKE or
    spatial test on null is false rather than unknown. Type mismatches are refused, not guessed.
    """

    def __init__(self, schema: _Schema, geometry_names: frozenset[str]):
        self.schema = schema
        self.geometry_names = geometry_names

    def condition(self, node: Any) -> ColumnElement[bool]:
        """A boolean SQL expression for a predicate node."""
        if isinstance(node, ast.And):
            return and_(self.condition(node.lhs), self.condition(node.rhs))
        if isinstance(node, ast.Or):
            return or_(self.condition(node.lhs), self.condition(node.rhs))
        if isinstance(node, ast.Not):
            return not_(self.condition(node.sub_node))
        if isinstance(node, ast.Comparison):
            return self._comparison(node)
        if isinstance(node, ast.Between):
            lhs, kind = self.scalar(node.lhs)
            low, low_kind = self.scalar(node.low)
            high, high_kind = self.scalar(node.high)
            self._same(kind, low_kind, high_kind)
            lhs, low, high = (self._ordered(e, kind) for e in (lhs, low, high))
            test = and_(low <= lhs, lhs <= high)
            return func.coalesce(not_(test) if node.not_ else test, false())
        if isinstance(node, ast.Like):
            lhs, kind = self.scalar(node.lhs)
            self._same(kind, "string")
            pattern = literal(_like_pattern(node), String)
            matched = lhs.ilike(pattern, escape="\\") if node.nocase else lhs.like(pattern, escape="\\")
            return func.coalesce(not_(matched) if node.not_ else matched, false())
        if isinstance(node, ast.In):
            lhs, kind = self.scalar(node.lhs)
            options = []
            for option in node.sub_nodes:
                expr, option_kind = self.scalar(option)
                self._same(kind, option_kind)
                options.append(expr)
            if not options:
                raise _Untranslatable("IN without values")
            if node.not_:
                return or_(lhs.is_(None), lhs.not_in(options))
            return func.coalesce(lhs.in_(options), false())
        if isinstance(node, ast.IsNull):
            if not isinstance(node.lhs, ast.Attribute):
                raise _Untranslatable("IS NULL of an expression")
            column = self._attribute(node.lhs)[0]
            return column.is_not(None) if node.not_ else column.is_(None)
        if isinstance(node, ast.SpatialComparisonPredicate):
            spatial = _SPATIAL_FUNCTIONS.get(node.op)
            if spatial is None:
                raise _Untranslatable(f"spatial operator {node.op}")
            return func.coalesce(spatial(self.geometry(node.lhs), self.geometry(node.rhs)), false())
        if isinstance(node, ast.Relate):
            pattern = literal(str(node.pattern), String)
            relate = func.ST_Relate(self.geometry(node.lhs), self.geometry(node.rhs), pattern)
            return func.coalesce(relate, false())
        if isinstance(node, bool):
            return true() if node else false()
        raise _Untranslatable(type(node).__name__)

    def _comparison(self, node: ast.Comparison) -> ColumnElement[bool]:
        lhs, lhs_kind = self.scalar(node.lhs)
        rhs, rhs_kind = self.scalar(node.rhs)
        kind = self._same(lhs_kind, rhs_kind)
        if node.op == ast.ComparisonOp.EQ:
            return lhs.is_not_distinct_from(rhs)
        if node.op == ast.ComparisonOp.NE:
            return lhs.is_distinct_from(rhs)
        if kind == "boolean":
            raise _Untranslatable("ordering of booleans")
        lhs, rhs = self._ordered(lhs, kind), self._ordered(rhs, kind)
        ordered = {
            ast.ComparisonOp.LT: lhs < rhs,
            ast.ComparisonOp.LE: lhs <= rhs,
            ast.ComparisonOp.GT: lhs > rhs,
            ast.ComparisonOp.GE: lhs >= rhs,
        }[node.op]
        return func.coalesce(ordered, false())

    @staticmethod
    def _ordered(expr: ColumnElement[Any], kind: Kind) -> ColumnElement[Any]:
        """Text compares by code point, as Python (and so the hub's check) does."""
        return expr.collate("C") if kind == "string" else expr

    @staticmethod
    def _same(*kinds: Kind) -> Kind:
        if len(set(kinds)) != 1 or kinds[0] in ("geometry", "other"):
            raise _Untranslatable(f"comparison of {' and '.join(kinds)}")
        return kinds[0]

    def _attribute(self, node: ast.Attribute) -> tuple[ColumnElement[Any], Kind]:
        if node.name in self.schema.columns:
            return self.schema.columns[node.name], self.schema.kinds[node.name]
        if node.name in self.geometry_names:
            return self.schema.geometry, "geometry"
        raise _Untranslatable(f"unknown attribute {node.name!r}")

    def scalar(self, node: Any) -> tuple[ColumnElement[Any], Kind]:
        """A non-spatial value: attribute, literal, arithmetic or case/accent function."""
        if isinstance(node, ast.Attribute):
            return self._attribute(node)
        if isinstance(node, ast.Arithmetic):
            lhs, lhs_kind = self.scalar(node.lhs)
            rhs, rhs_kind = self.scalar(node.rhs)
            self._same(lhs_kind, rhs_kind, "number")
            if node.op == ast.ArithmeticOp.ADD:
                return lhs + rhs, "number"
            if node.op == ast.ArithmeticOp.SUB:
                return lhs - rhs, "number"
            if node.op == ast.ArithmeticOp.MUL:
                return lhs * rhs, "number"
            # True division as in Python; division by zero gives null (no match), not an error.
            return cast(lhs, Float) / func.nullif(cast(rhs, Float), 0), "number"
        if isinstance(node, ast.Function):
            if node.name.lower() in ("lower", "casei") and len(node.arguments) == 1:
                argument, kind = self.scalar(node.arguments[0])
                self._same(kind, "string")
                return func.lower(argument), "string"
            raise _Untranslatable(f"function {node.name}")
        literal_kind = _literal_kind(node)
        if literal_kind is None:
            raise _Untranslatable(type(node).__name__)
        if isinstance(node, float) and not math.isfinite(node):
            raise _Untranslatable("non-finite number")
        sql_type = {
            "boolean": Boolean(),
            "number": Float() if isinstance(node, float) else Integer(),
            "string": String(),
            "date": Date(),
            "datetime": DateTime(timezone=True),
        }[literal_kind]
        return literal(node, sql_type), literal_kind

    def geometry(self, node: Any) -> ColumnElement[Any]:
        """A geometry operand: the geometry attribute or a literal in the table's CRS."""
        if isinstance(node, ast.Attribute):
            column, kind = self._attribute(node)
            if kind != "geometry":
                raise _Untranslatable(f"{node.name!r} is not a geometry")
            return column
        if isinstance(node, values.Geometry):
            geom = shape(node.geometry)
            if self.schema.flip:
                geom = shapely.transform(geom, lambda c: c[:, ::-1])
            wkb = shapely.to_wkb(geom)
            return func.ST_GeomFromWKB(literal(wkb, LargeBinary), literal(self.schema.srid, Integer))
        raise _Untranslatable(type(node).__name__)


def _crs_of(srid: int) -> tuple[str, bool]:
    """The CRS URI for an SRID and whether its authority axis order is the reverse of x/y."""
    if srid == 4326:
        return CRS84, False  # PostGIS keeps lon/lat, which is exactly CRS84
    uri = f"http://www.opengis.net/def/crs/EPSG/0/{srid}"
    return uri, northing_first(uri)


def _split_table(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return schema or "public", table


class PostgisConnector(Connector):
    """A PostGIS table or view queried in place through an async SQLAlchemy engine."""

    kind: ClassVar[str] = "postgis"
    settings_model: ClassVar[type[ConnectorSettings]] = PostgisSettings

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient):
        if not isinstance(settings, PostgisSettings):
            raise ConnectorConfigError("the postgis connector needs PostgisSettings", source_id=source_id)
        super().__init__(settings, source_id=source_id, http=http)
        self.pg_settings = settings
        self.schema_name, self.table_name = _split_table(settings.table)
        self._engine: AsyncEngine | None = None
        self._schema: _Schema | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def _engine_url(self) -> Any:
        url = make_url(self.pg_settings.dsn).set(drivername="postgresql+psycopg")
        if self.pg_settings.password_env:
            password = os.environ.get(self.pg_settings.password_env)
            if password is None:
                raise ConnectorConfigError(
                    f"environment variable {self.pg_settings.password_env} is not set",
                    source_id=self.source_id,
                )
            url = url.set(password=password)
        return url

    async def open(self) -> None:
        """Create the connection pool and reflect the table."""
        timeout = self.pg_settings.timeout
        # The server cancels a statement a little before the hub gives up on the request, so
        # the connection comes back clean and the error says what happened.
        statement_ms = max(1, int(timeout * 900))
        engine = create_async_engine(
            self._engine_url(),
            pool_size=self.pg_settings.pool_size,
            max_overflow=0,
            pool_timeout=timeout,
            connect_args={
                "connect_timeout": max(1, math.ceil(timeout)),
                "options": f"-c statement_timeout={statement_ms} -c TimeZone=UTC",
                "application_name": f"urban-twin-hub/{self.source_id}"[:63],
            },
        )
        try:
            async with engine.connect() as conn:
                self._schema = await conn.run_sync(self._reflect)
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, sa_exc.SQLAlchemyError | OSError):
                self._raise(exc, opening=True)
            raise
        self._engine = engine

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def _reflect(self, conn: Connection) -> _Schema:
        """Read the table's columns, key, geometry column and SRID (runs in the sync bridge)."""
        settings = self.pg_settings
        found = conn.execute(
            text(
                "SELECT f_geometry_column, srid, type FROM geometry_columns "
                "WHERE f_table_schema = :schema AND f_table_name = :table"
            ),
            {"schema": self.schema_name, "table": self.table_name},
        ).all()
        try:
            table = Table(self.table_name, MetaData(), schema=self.schema_name, autoload_with=conn)
        except sa_exc.NoSuchTableError:
            raise ConnectorConfigError(
                f"no table or view {settings.table!r} in this database", source_id=self.source_id
            ) from None
        geometry_rows = {str(row[0]): (int(row[1]), str(row[2])) for row in found}
        if settings.geometry_column is not None:
            geometry_name = settings.geometry_column
            if geometry_name not in geometry_rows:
                raise self._config(f"{geometry_name!r} is not a registered geometry column")
        elif len(geometry_rows) == 1:
            geometry_name = next(iter(geometry_rows))
        elif geometry_rows:
            raise self._config(
                f"{settings.table} has several geometry columns "
                f"({', '.join(sorted(geometry_rows))}): set geometry_column"
            )
        else:
            raise self._config(f"{settings.table} has no geometry column in geometry_columns")
        srid, geometry_type = geometry_rows[geometry_name]
        if srid <= 0:
            raise self._config(f"geometry column {geometry_name!r} has no SRID")
        if settings.id_column is not None:
            if settings.id_column not in table.c:
                raise self._config(f"id_column {settings.id_column!r} is not a column")
            id_column = table.c[settings.id_column]
        else:
            keys = list(table.primary_key.columns)
            if len(keys) != 1:
                raise self._config(f"{settings.table} has no single-column primary key: set id_column")
            id_column = keys[0]
        columns = {c.name: c for c in table.c if c.name not in geometry_rows}
        kinds = {name: _kind(c.type) for name, c in columns.items()}
        time_column = None
        if settings.time_column is not None:
            if settings.time_column not in columns:
                raise self._config(f"time_column {settings.time_column!r} is not a column")
            if kinds[settings.time_column] not in ("date", "datetime"):
                raise self._config(f"time_column {settings.time_column!r} is not a date or timestamp")
            time_column = columns[settings.time_column]
        crs, flip = _crs_of(srid)
        return _Schema(
            table=table,
            id_column=id_column,
            geometry=table.c[geometry_name],
            srid=srid,
            crs=crs,
            flip=flip,
            geometry_type=_GEOMETRY_TYPES.get(geometry_type.upper().rstrip("ZM"), "Geometry"),
            columns=columns,
            kinds=kinds,
            time_column=time_column,
        )

    def _config(self, message: str) -> ConnectorConfigError:
        return ConnectorConfigError(message, source_id=self.source_id)

    def _raise(self, exc: BaseException, *, opening: bool = False) -> NoReturn:
        """Translate a driver error into the connector's own error types."""
        original = getattr(exc, "orig", None) or exc
        if isinstance(original, psycopg.errors.QueryCanceled):
            raise UpstreamTimeout(
                f"the database did not answer within {self.pg_settings.timeout:g} s",
                source_id=self.source_id,
            ) from exc
        sqlstate = getattr(original, "sqlstate", None) or ""
        if opening and (sqlstate[:2] in ("28", "3D", "42") or _refused_by_server(original)):
            # Bad credentials, unknown database, or no access to the table: the steward's to fix.
            raise ConnectorConfigError(
                f"the database refused the registration's settings: {original}".strip(),
                source_id=self.source_id,
            ) from exc
        if isinstance(exc, sa_exc.TimeoutError):
            raise UpstreamTimeout(
                "no database connection became free in time", source_id=self.source_id
            ) from exc
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | OSError) or (
            isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
        ):
            raise UpstreamUnavailable(
                f"the database cannot be reached: {str(original).strip()}", source_id=self.source_id
            ) from exc
        raise UpstreamInvalidResponse(
            f"the database rejected a query: {str(original).strip()}", source_id=self.source_id
        ) from exc

    def _ready(self) -> tuple[AsyncEngine, _Schema]:
        if self._engine is None or self._schema is None:
            raise UpstreamUnavailable("the PostGIS source is not open", source_id=self.source_id)
        return self._engine, self._schema

    def _check_collection(self, collection: str) -> None:
        if collection != self.table_name:
            raise UnsupportedQuery(f"no collection {collection!r}", source_id=self.source_id)

    # --- describe -----------------------------------------------------------------------

    async def describe(self) -> list[CollectionInfo]:
        """The table as one collection: columns, extents and what it can do."""
        engine, schema = self._ready()
        geometry = schema.geometry
        extent_sql = select(
            func.ST_XMin(func.ST_Extent(geometry)),
            func.ST_YMin(func.ST_Extent(geometry)),
            func.ST_XMax(func.ST_Extent(geometry)),
            func.ST_YMax(func.ST_Extent(geometry)),
        ).select_from(schema.table)
        try:
            async with engine.connect() as conn:
                bounds = (await conn.execute(extent_sql)).one()
                times = None
                if schema.time_column is not None:
                    times = (
                        await conn.execute(select(func.min(schema.time_column), func.max(schema.time_column)))
                    ).one()
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            self._raise(exc)
        extent = None
        if None not in tuple(bounds):
            minx, miny, maxx, maxy = (float(v) for v in bounds)
            if schema.flip:
                minx, miny, maxx, maxy = miny, minx, maxy, maxx
            xs, ys = box_ring(minx, miny, maxx, maxy, schema.crs, CRS84)
            extent = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
        temporal = None
        if times is not None:
            temporal = (self._instant(times[0], end=False), self._instant(times[1], end=True))
        settings = self.pg_settings
        return [
            CollectionInfo(
                id=self.table_name,
                title=self.table_name,
                fields=[FieldInfo(name=n, type=_json_type(c.type)) for n, c in schema.columns.items()],
                storage_crs=schema.crs,
                crs=[CRS84] if schema.crs == CRS84 else [CRS84, schema.crs],
                extent_crs84=extent,
                temporal_extent=temporal,
                time_field=settings.time_column,
                id_field=schema.id_column.name,
                geometry_type=schema.geometry_type,
                capabilities=Capabilities(
                    filter=True,
                    sort=True,
                    datetime=schema.time_column is not None,
                    crs=(schema.crs,),
                ),
            )
        ]

    @staticmethod
    def _instant(value: Any, *, end: bool) -> str | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        else:
            moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
            if end:
                moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
        return moment.isoformat().replace("+00:00", "Z")

    # --- queries ------------------------------------------------------------------------

    def _geometry_names(self, schema: _Schema) -> frozenset[str]:
        return (GEOMETRY_NAMES | {schema.geometry.name}) - set(schema.columns)

    def _box(self, schema: _Schema, query: FeatureQuery) -> ColumnElement[Any]:
        """The bbox as a polygon in the table's CRS, densified when it had to be transformed."""
        assert query.bbox is not None
        box = query.bbox
        if box.crs == schema.crs:
            minx, miny, maxx, maxy = box.as_tuple()
            if schema.flip:
                minx, miny, maxx, maxy = miny, minx, maxy, maxx
            return func.ST_MakeEnvelope(
                literal(minx, Float), literal(miny, Float), literal(maxx, Float),
                literal(maxy, Float), literal(schema.srid, Integer),
            )  # fmt: skip
        xs, ys = box_ring(*box.as_tuple(), box.crs, schema.crs)
        if schema.flip:
            xs, ys = ys, xs
        polygon = shapely.Polygon(np.column_stack([xs, ys]))
        return func.ST_GeomFromWKB(
            literal(shapely.to_wkb(polygon), LargeBinary), literal(schema.srid, Integer)
        )

    def _equals(self, column: Column[Any], kind: Kind, expected: str) -> ColumnElement[bool]:
        """Equality with a query-string value, compared as text (typed when that is exact)."""
        if kind == "string":
            return column == literal(expected, String)
        if kind == "number" and isinstance(column.type, Integer):
            try:
                number = int(expected)
            except ValueError:
                return false()
            # Typed, so an index can serve it; "007" is not the text of any integer.
            return column == literal(number, column.type) if str(number) == expected else false()
        if kind == "number":
            # The text of a float is not unique ("1", "1.0", "1e0"): compare the numbers.
            try:
                real = float(expected)
            except ValueError:
                return false()
            return column == literal(real, Float) if math.isfinite(real) else false()
        return cast(column, Text) == literal(expected, Text)

    def _during(self, schema: _Schema, query: FeatureQuery) -> list[ColumnElement[bool]]:
        """Conditions putting the time column inside the query interval."""
        assert query.datetime is not None and schema.time_column is not None
        column = schema.time_column
        conditions: list[ColumnElement[bool]] = [column.is_not(None)]
        start, end = query.datetime.start, query.datetime.end
        if schema.kinds[column.name] == "date":
            # A date stands for its whole day: it matches when that day meets the interval.
            if start is not None:
                conditions.append(column >= literal(start.astimezone(UTC).date(), Date))
            if end is not None:
                conditions.append(column <= literal(end.astimezone(UTC).date(), Date))
            return conditions
        if start is not None:
            conditions.append(column >= literal(_aware(start), DateTime(timezone=True)))
        if end is not None:
            conditions.append(column <= literal(_aware(end), DateTime(timezone=True)))
        return conditions

    def _conditions(self, schema: _Schema, query: FeatureQuery) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if query.bbox is not None:
            conditions.append(func.ST_Intersects(schema.geometry, self._box(schema, query)))
        for name, expected in query.property_equals.items():
            if name not in schema.columns:
                return [false()]
            conditions.append(self._equals(schema.columns[name], schema.kinds[name], expected))
        if query.datetime is not None:
            if schema.time_column is None:
                raise UnsupportedQuery("this table has no time column", source_id=self.source_id)
            conditions.extend(self._during(schema, query))
        if query.filter is not None:
            conditions.append(self._filter(schema, query.filter, query.filter_crs))
        return conditions

    def _filter(self, schema: _Schema, node: ast.Node, filter_crs: str) -> ColumnElement[bool]:
        translator = _SqlFilter(schema, self._geometry_names(schema))
        try:
            return translator.condition(reproject_literals(node, filter_crs, schema.crs))
        except _Untranslatable as exc:
            raise UnsupportedQuery(
                f"this filter cannot be run in the database: {exc}", source_id=self.source_id
            ) from exc

    def _order(self, schema: _Schema, sortby: Sequence[Any]) -> list[ColumnElement[Any]]:
        order: list[ColumnElement[Any]] = []
        for key in sortby:
            column = schema.columns.get(key.property)
            if column is None:
                raise UnsupportedQuery(f"cannot sort by {key.property!r}", source_id=self.source_id)
            order.append(column.asc().nulls_last() if key.ascending else column.desc().nulls_last())
        # The id breaks ties so that pages never overlap or skip.
        order.append(schema.id_column.asc())
        return order

    def _columns(self, schema: _Schema) -> list[ColumnElement[Any]]:
        geometry: ColumnElement[Any] = schema.geometry
        if schema.flip:
            geometry = func.ST_FlipCoordinates(geometry)
        # Options 0: no ``crs`` member, which RFC 7946 GeoJSON does not have.
        geojson = func.ST_AsGeoJSON(geometry, literal(9, Integer), literal(0, Integer))
        return [schema.id_column, geojson, *schema.columns.values()]

    def _feature(self, schema: _Schema, row: Sequence[Any]) -> Feature:
        names = schema.columns
        return {
            "type": "Feature",
            "id": _json_value(row[0]),
            "geometry": json.loads(row[1]) if row[1] is not None else None,
            "properties": {name: _json_value(value) for name, value in zip(names, row[2:], strict=True)},
        }

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of matching rows as features, in the table's CRS."""
        self._check_collection(collection)
        engine, schema = self._ready()
        conditions = self._conditions(schema, query)
        where = and_(true(), *conditions)
        # Without a count, one extra row tells whether there is a next page.
        fetch = query.limit if query.count else query.limit + 1
        counted = select(func.count()).select_from(schema.table).where(where)
        columns = self._columns(schema)
        if query.count:
            # The count rides along as an uncorrelated subquery: evaluated once, no second
            # round trip (which cost as much as the page itself).
            columns = [counted.scalar_subquery(), *columns]
        statement = (
            select(*columns)
            .where(where)
            .order_by(*self._order(schema, query.sortby))
            .offset(query.offset)
            .limit(fetch)
        )
        total = None
        try:
            async with engine.connect() as conn:
                rows: Sequence[Sequence[Any]] = (await conn.execute(statement)).all()
                if query.count:
                    if rows:
                        total = int(rows[0][0])
                    elif query.offset == 0:
                        total = 0
                    else:  # paged past the end: the page carried no count
                        total = int((await conn.execute(counted)).scalar_one())
                    rows = [row[1:] for row in rows]
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            self._raise(exc)
        features = [self._feature(schema, row) for row in rows[: query.limit]]
        more = len(rows) > query.limit if total is None else query.offset + len(features) < total
        return FeaturePage(features=features, crs=schema.crs, number_matched=total, has_more=more)

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One row by id, in the table's CRS (the hub transforms it to ``crs``)."""
        self._check_collection(collection)
        engine, schema = self._ready()
        column = schema.id_column
        kind = _kind(column.type)
        if kind == "number" and isinstance(column.type, Integer):
            try:
                key: ColumnElement[bool] = column == literal(int(feature_id), column.type)
            except ValueError:
                return None
        elif kind == "string":
            key = column == literal(feature_id, String)
        else:
            key = cast(column, Text) == literal(feature_id, Text)
        statement = select(*self._columns(schema)).where(key).limit(1)
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(statement)).first()
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            self._raise(exc)
        return None if row is None else self._feature(schema, row)

    def supports_filter(self, collection: str, expression: ast.Node) -> bool:
        """Whether every part of the expression translates into SQL exactly."""
        if self._schema is None or collection != self.table_name:
            return False
        schema = self._schema
        known = set(schema.columns) | self._geometry_names(schema)
        if not set(attributes(expression)) <= known:
            return False
        try:
            # Literals stay where they are: only the shape of the expression matters here.
            _SqlFilter(schema, self._geometry_names(schema)).condition(
                reproject_literals(expression, schema.crs, schema.crs)
            )
        except (_Untranslatable, ConnectorError):
            return False
        return True


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_BUSY_SERVER = ("too many clients", "starting up", "shutting down", "recovery mode")


def _refused_by_server(error: BaseException) -> bool:
    """A connection the server itself refused (unknown database or role, bad password).

    libpq reports these before any SQLSTATE reaches psycopg, so the server's FATAL message
    is all there is; a busy or restarting server is unavailable, not misconfigured.
    """
    message = str(error)
    return "FATAL:" in message and not any(busy in message for busy in _BUSY_SERVER)
