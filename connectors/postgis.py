"""Serve a PostGIS table or view, queried in place at request time.

Every request becomes one parameterised SELECT (and a ``count(*)`` when the caller wants the
number matched): bbox, property equality, datetime, CQL2 filter, sort and paging all run in
the database. Values only ever travel as bound parameters and identifiers come from the
reflected table, never from the request.

The database also writes each feature as GeoJSON text, transformed into the requested CRS
when that is one of the few it is asked for often (``OUTPUT_CRS``), so the hub parses one JSON
document per page instead of converting row by row. Reads run outside explicit transactions
(autocommit): a single SELECT needs none, and BEGIN/ROLLBACK cost two round trips a request.
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
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar, Literal, NoReturn

import geoalchemy2  # importing it also registers the geometry types for reflection
import httpx
import numpy as np
import orjson
import psycopg
import psycopg.errors
import shapely
from pydantic import Field, field_validator
from pygeofilter import ast, values
from shapely.geometry import shape
from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Select,
    String,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal_column,
    not_,
    null,
    or_,
    select,
    text,
    true,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from connectors._cql import attributes, reproject_literals
from connectors._crs import EPSG_PREFIX, WGS84, box_ring, crs_for, epsg_code, northing_first
from connectors._network import AddressNotAllowed, NetworkPolicy, UnresolvableHost, network_policy
from connectors.base import (
    CRS84,
    ETRS89,
    RD_NEW,
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

WEB_MERCATOR = EPSG_PREFIX + "3857"

MAX_CACHED_STATEMENTS = 256
"""Statements kept per source, one per query shape (a filter's literal values are no part of it)."""

OUTPUT_CRS: tuple[str, ...] = (CRS84, RD_NEW, ETRS89, WGS84, WEB_MERCATOR)
"""Output CRSs PostGIS transforms into itself, besides the table's own. For these it runs the
same PROJ operations as the hub's pyproj (on RD data they agree to a few nanometres)."""

JsonType = Literal["string", "number", "integer", "boolean", "date", "date-time", "object", "array"]
Kind = Literal["boolean", "number", "string", "date", "datetime", "geometry", "other"]
Rendering = Literal["json", "float", "numeric", "timestamp", "timestamptz", "python"]
"""How a column's values get into the feature JSON: as PostgreSQL writes them (``json``), with
non-finite numbers as null (``float``; ``numeric`` through float8), formatted as Python's
``isoformat`` does (``timestamp``, ``timestamptz`` in UTC with ``Z``), or converted in Python
(``python``: the types whose JSON text PostgreSQL writes differently)."""

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


@dataclasses.dataclass(frozen=True, slots=True)
class _Output:
    """How geometries are written in one output CRS."""

    crs: str
    srid: int
    flip: bool
    """PostGIS writes x/y; a latitude-first CRS gets its axes swapped."""
    decimals: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Prepared:
    """A compiled statement and the values of the bind parameters no request sets."""

    sql: str
    defaults: dict[str, Any]


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
    outputs: dict[str, _Output]
    """The CRSs the database writes geometries in, the table's own first."""
    renderings: dict[str, Rendering]
    """How each property column gets into the feature JSON."""
    selected: list[Column[Any]] = dataclasses.field(init=False)
    """The columns a page reads: id, geometry and properties, each once."""
    in_python: tuple[str, ...] = dataclasses.field(init=False)
    """Properties converted in Python (written as null in the feature JSON, then replaced)."""
    id_in_sql: bool = dataclasses.field(init=False)
    aggregated: bool = dataclasses.field(init=False)
    """Whether a page is one row of joined feature texts (nothing converted in Python)."""

    def __post_init__(self) -> None:
        selected = {self.id_column.name: self.id_column, self.geometry.name: self.geometry}
        self.selected = list({**selected, **self.columns}.values())
        self.in_python = tuple(n for n, r in self.renderings.items() if r == "python")
        self.id_in_sql = _rendering(self.id_column.type) == "json"
        self.aggregated = self.id_in_sql and not self.in_python


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


_SAME_JSON = (Boolean, Integer, String, Date, JSON, Uuid)
"""Types whose values PostgreSQL writes in JSON exactly as ``_json_value`` does."""


def _rendering(column_type: Any) -> Rendering:
    """How a column's values get into the feature JSON (see ``Rendering``)."""
    if isinstance(column_type, _SAME_JSON):
        return "json"
    if isinstance(column_type, ARRAY) and isinstance(
        column_type.item_type, Boolean | Integer | String | Date
    ):
        return "json"
    if isinstance(column_type, Float):
        return "float"
    if isinstance(column_type, Numeric):
        return "numeric"
    if isinstance(column_type, DateTime):
        return "timestamptz" if column_type.timezone else "timestamp"
    return "python"


def _sql_text(constant: str) -> ColumnElement[str]:
    """A constant of this module's own as an SQL string literal (never a request's value)."""
    return literal_column("'" + constant.replace("'", "''") + "'", Text)


def _sql_int(constant: int) -> ColumnElement[int]:
    """An integer of this module's own (an SRID, a precision) written into the SQL."""
    return literal_column(str(int(constant)), Integer)


class _Binds:
    """The values of one statement, each bound under a name given in the order of binding.

    A statement built again for another request of the same shape binds its values in the same
    order, so a statement cached for that shape takes the new values under the same names.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any, type_: Any) -> BindParameter[Any]:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return bindparam(name, value, type_=type_)


_INFINITY: ColumnElement[float] = literal_column("'Infinity'::float8", Double)
_FLOAT8_MAX: ColumnElement[Any] = literal_column("1.7976931348623157e308", Numeric)
_SECOND = _sql_text("second")
_UTC = _sql_text("UTC")
_ISO_SECONDS = 'YYYY-MM-DD"T"HH24:MI:SS'


def _float_json(number: ColumnElement[Any]) -> ColumnElement[Any]:
    """A float as JSON that reads back as a float: null when not finite (NaN is not below
    infinity either), and with ``.0`` where PostgreSQL writes a whole number as an integer."""
    written = cast(number, Text)
    whole = and_(number == func.trunc(number), func.strpos(written, _sql_text("e")) == _sql_int(0))
    return case(
        (func.abs(number) < _INFINITY, cast(case((whole, written + _sql_text(".0")), else_=written), JSON))
    )


def _property_sql(column: ColumnElement[Any], rendering: Rendering) -> ColumnElement[Any]:
    """A property column as the value the feature JSON holds (see ``Rendering``)."""
    if rendering == "json":
        return column
    if rendering == "float":
        return _float_json(column)
    if rendering == "numeric":
        # float8 is what Python's float() of the Decimal gives; out of its range is null.
        return case((func.abs(column) <= _FLOAT8_MAX, _float_json(cast(column, Double))))
    if rendering in ("timestamp", "timestamptz"):
        moment, zone = column, ""
        if rendering == "timestamptz":
            moment, zone = func.timezone(_UTC, column), '"Z"'
        # isoformat() writes microseconds only when there are some.
        return case(
            (
                moment == func.date_trunc(_SECOND, moment),
                func.to_char(moment, _sql_text(_ISO_SECONDS + zone)),
            ),
            else_=func.to_char(moment, _sql_text(_ISO_SECONDS + ".US" + zone)),
        )
    return null()


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


def _spatial(node: Any) -> bool:
    """Whether an expression holds a spatial test or a geometry literal."""
    if isinstance(node, ast.SpatialComparisonPredicate | ast.Relate | ast.BBox | values.Geometry):
        return True
    if isinstance(node, values.Envelope) or (isinstance(node, ast.Function) and node.name.lower() == "bbox"):
        return True
    if isinstance(node, ast.Node):
        return any(_spatial(child) for child in node.get_sub_nodes())
    if isinstance(node, list):
        return any(_spatial(child) for child in node)
    return False


class _Untranslatable(Exception):
    """The expression holds something this translator will not put into SQL."""


class _SqlFilter:
    """Translates a pygeofilter AST (literals already in the table's CRS) into SQL.

    Null handling follows the in-memory evaluation the hub checks results with: ``=`` and
    ``<>`` treat null as a value (IS [NOT] DISTINCT FROM) and an ordering comparison, LIKE or
    spatial test on null is false rather than unknown. Type mismatches are refused, not guessed.
    """

    def __init__(self, schema: _Schema, geometry_names: frozenset[str], binds: _Binds):
        self.schema = schema
        self.geometry_names = geometry_names
        self.binds = binds

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
            pattern = self.binds(_like_pattern(node), String())
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
            pattern = self.binds(str(node.pattern), String())
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
        return self.binds(node, sql_type), literal_kind

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
            return func.ST_GeomFromWKB(
                self.binds(wkb, LargeBinary()), self.binds(self.schema.srid, Integer())
            )
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

    settings: PostgisSettings

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient):
        super().__init__(settings, source_id=source_id, http=http)
        self.schema_name, self.table_name = _split_table(self.settings.table)
        self._engine: AsyncEngine | None = None
        self._schema: _Schema | None = None
        self._statements: dict[tuple[Any, ...], _Prepared] = {}

    # --- lifecycle ----------------------------------------------------------------------

    def _engine_url(self) -> Any:
        url = make_url(self.settings.dsn).set(drivername="postgresql+psycopg")
        if self.settings.password_env:
            password = os.environ.get(self.settings.password_env)
            if password is None:
                raise ConnectorConfigError(
                    f"environment variable {self.settings.password_env} is not set",
                    source_id=self.source_id,
                )
            url = url.set(password=password)
        return url

    async def check_network(self, policy: NetworkPolicy) -> None:
        """Refuse a database host that is, or resolves to, an address ``policy`` does not allow."""
        await self._pinned_addresses(policy, resolve_now=False)

    async def _pinned_addresses(self, policy: NetworkPolicy, *, resolve_now: bool = True) -> dict[str, str]:
        """libpq parameters that make every connection go to the checked addresses of the host.

        With ``hostaddr`` libpq connects to those addresses without resolving the name again,
        so a DNS answer that changes after the check (rebinding) is never followed; it still
        verifies TLS against ``host``. Without ``resolve_now`` an unresolvable name passes.
        """
        url = make_url(self.settings.dsn)
        if {"host", "hostaddr", "service"} & set(url.query):
            raise ConnectorConfigError(
                "name the database host in the dsn itself (postgresql://host:port/db): hosts given "
                "as host, hostaddr or service parameters cannot be checked against allowed_networks",
                source_id=self.source_id,
            )
        if not url.host:
            # libpq's default is the local Unix socket
            policy.check_local_socket("the database's local socket")
            return {}
        port = url.port or 5432
        try:
            addresses = await policy.addresses(url.host, port)
        except UnresolvableHost as exc:
            if not resolve_now:
                return {}  # may be down for now: checked again when the hub connects
            exc.source_id = self.source_id
            raise
        except AddressNotAllowed as exc:
            exc.source_id = self.source_id
            raise
        return {"host": ",".join([url.host] * len(addresses)), "hostaddr": ",".join(map(str, addresses))}

    async def open(self) -> None:
        """Create the connection pool and reflect the table."""
        policy = network_policy(self.http)
        pinned = await self._pinned_addresses(policy) if policy is not None else {}
        timeout = self.settings.timeout
        # The server cancels a statement a little before the hub gives up on the request, so
        # the connection comes back clean and the error says what happened.
        statement_ms = max(1, int(timeout * 900))
        engine = create_async_engine(
            self._engine_url(),
            # Every request is one read-only statement: no BEGIN/ROLLBACK round trips around it.
            # The statement timeout is a session setting, so it holds without a transaction.
            isolation_level="AUTOCOMMIT",
            pool_size=self.settings.pool_size,
            max_overflow=0,
            pool_timeout=timeout,
            connect_args={
                "connect_timeout": max(1, math.ceil(timeout)),
                "options": f"-c statement_timeout={statement_ms} -c TimeZone=UTC",
                "application_name": f"urban-twin-hub/{self.source_id}"[:63],
                **pinned,
            },
        )
        self._statements.clear()
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
        settings = self.settings
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
            outputs=self._outputs(conn, crs, srid, flip),
            renderings={name: _rendering(c.type) for name, c in columns.items()},
        )

    @staticmethod
    def _outputs(conn: Connection, crs: str, srid: int, flip: bool) -> dict[str, _Output]:
        """The table's own CRS (at full precision, as stored) and those of ``OUTPUT_CRS`` this
        database knows, with the hub's precision: 9 decimals for degrees, 3 for metres."""
        outputs = {crs: _Output(crs, srid, flip, 9)}
        wanted = {uri: epsg_code(uri) for uri in OUTPUT_CRS if uri not in outputs}
        known = {
            int(row[0])
            for row in conn.execute(
                text("SELECT srid FROM spatial_ref_sys WHERE srid IN :srids").bindparams(
                    bindparam("srids", expanding=True)
                ),
                {"srids": sorted({code for code in wanted.values() if code is not None})},
            )
        }
        for uri, code in wanted.items():
            if code in known:
                decimals = 9 if crs_for(uri).is_geographic else 3
                outputs[uri] = _Output(uri, code, northing_first(uri), decimals)
        return outputs

    def _config(self, message: str) -> ConnectorConfigError:
        return ConnectorConfigError(message, source_id=self.source_id)

    def _raise(self, exc: BaseException, *, opening: bool = False) -> NoReturn:
        """Translate a driver error into the connector's own error types."""
        original = getattr(exc, "orig", None) or exc
        if isinstance(original, psycopg.errors.QueryCanceled):
            raise UpstreamTimeout(
                f"the database did not answer within {self.settings.timeout:g} s",
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
        if isinstance(
            exc,
            sa_exc.OperationalError
            | sa_exc.InterfaceError
            | psycopg.OperationalError
            | psycopg.InterfaceError
            | OSError,
        ) or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated):
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
        settings = self.settings
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
                    bbox=True,
                    sort=True,
                    datetime=schema.time_column is not None,
                    crs=tuple(schema.outputs),
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

    def _box(self, schema: _Schema, query: FeatureQuery, binds: _Binds) -> ColumnElement[Any]:
        """The bbox as a polygon in the table's CRS, densified when it had to be transformed."""
        assert query.bbox is not None
        box = query.bbox
        if box.crs == schema.crs:
            minx, miny, maxx, maxy = box.as_tuple()
            if schema.flip:
                minx, miny, maxx, maxy = miny, minx, maxy, maxx
            return func.ST_MakeEnvelope(
                binds(minx, Float()), binds(miny, Float()), binds(maxx, Float()),
                binds(maxy, Float()), binds(schema.srid, Integer()),
            )  # fmt: skip
        xs, ys = box_ring(*box.as_tuple(), box.crs, schema.crs)
        if schema.flip:
            xs, ys = ys, xs
        polygon = shapely.Polygon(np.column_stack([xs, ys]))
        return func.ST_GeomFromWKB(
            binds(shapely.to_wkb(polygon), LargeBinary()), binds(schema.srid, Integer())
        )

    @staticmethod
    def _equals(column: Column[Any], kind: Kind, expected: str, binds: _Binds) -> ColumnElement[bool]:
        """Equality with a query-string value, compared as text (typed when that is exact)."""
        if kind == "string":
            return column == binds(expected, String())
        if kind == "number" and isinstance(column.type, Integer):
            try:
                number = int(expected)
            except ValueError:
                return false()
            # Typed, so an index can serve it; "007" is not the text of any integer.
            return column == binds(number, column.type) if str(number) == expected else false()
        if kind == "number":
            # The text of a float is not unique ("1", "1.0", "1e0"): compare the numbers.
            try:
                real = float(expected)
            except ValueError:
                return false()
            return column == binds(real, Float()) if math.isfinite(real) else false()
        return cast(column, Text) == binds(expected, Text())

    @staticmethod
    def _during(schema: _Schema, query: FeatureQuery, binds: _Binds) -> list[ColumnElement[bool]]:
        """Conditions putting the time column inside the query interval."""
        assert query.datetime is not None and schema.time_column is not None
        column = schema.time_column
        conditions: list[ColumnElement[bool]] = [column.is_not(None)]
        start, end = query.datetime.start, query.datetime.end
        if schema.kinds[column.name] == "date":
            # A date stands for its whole day: it matches when that day meets the interval.
            if start is not None:
                conditions.append(column >= binds(start.astimezone(UTC).date(), Date()))
            if end is not None:
                conditions.append(column <= binds(end.astimezone(UTC).date(), Date()))
            return conditions
        if start is not None:
            conditions.append(column >= binds(_aware(start), DateTime(timezone=True)))
        if end is not None:
            conditions.append(column <= binds(_aware(end), DateTime(timezone=True)))
        return conditions

    def _conditions(self, schema: _Schema, query: FeatureQuery, binds: _Binds) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if query.bbox is not None:
            conditions.append(func.ST_Intersects(schema.geometry, self._box(schema, query, binds)))
        for name, expected in query.property_equals.items():
            if name not in schema.columns:
                return [false()]
            conditions.append(self._equals(schema.columns[name], schema.kinds[name], expected, binds))
        if query.datetime is not None:
            if schema.time_column is None:
                raise UnsupportedQuery("this table has no time column", source_id=self.source_id)
            conditions.extend(self._during(schema, query, binds))
        if query.filter is not None:
            conditions.append(self._filter(schema, query.filter, query.filter_crs, binds))
        return conditions

    def _filter(self, schema: _Schema, node: ast.Node, filter_crs: str, binds: _Binds) -> ColumnElement[bool]:
        translator = _SqlFilter(schema, self._geometry_names(schema), binds)
        try:
            return translator.condition(reproject_literals(node, filter_crs, schema.crs))
        except _Untranslatable as exc:
            raise UnsupportedQuery(
                f"this filter cannot be run in the database: {exc}", source_id=self.source_id
            ) from exc

    def _order(
        self, schema: _Schema, sortby: Sequence[Any], columns: ReadOnlyColumnCollection[str, Any]
    ) -> list[ColumnElement[Any]]:
        """ORDER BY terms over ``columns`` (the table's, or those of a page selected from it)."""
        order: list[ColumnElement[Any]] = []
        for key in sortby:
            if key.property not in schema.columns:
                raise UnsupportedQuery(f"cannot sort by {key.property!r}", source_id=self.source_id)
            column = columns[key.property]
            order.append(column.asc().nulls_last() if key.ascending else column.desc().nulls_last())
        # The id breaks ties so that pages never overlap or skip.
        order.append(columns[schema.id_column.name].asc())
        return order

    def _output(self, schema: _Schema, crs: str, filter: ast.Node | None = None) -> _Output:
        """The output CRS: the one asked for when the database writes it, else the table's.

        With a spatial filter the page stays in the table's CRS, where the filter ran: the hub
        checks the features against it, and coordinates rounded in another CRS could put a
        feature on the wrong side of a literal's edge.
        """
        if filter is not None and _spatial(filter):
            return schema.outputs[schema.crs]
        return schema.outputs.get(crs) or schema.outputs[schema.crs]

    def _features(
        self,
        schema: _Schema,
        output: _Output,
        rows: Select[Any],
        sortby: Sequence[Any] = (),
        extra: Sequence[ColumnElement[Any]] = (),
    ) -> Select[Any]:
        """The rows ``rows`` selects (``schema.selected``, sorted by ``sortby``) as GeoJSON
        Feature texts, after the columns ``extra``.

        The features come joined by commas in one row (``schema.aggregated``): one value is
        much cheaper to receive than a row per feature. When some values are converted in
        Python, there is a row per feature instead, its values after the feature text.
        The JSON is built over the page only, so offset rows and rows a sort passes over cost
        no JSON; PostgreSQL knows the page comes sorted, so sorting again costs nothing.
        """
        page = rows.subquery("page")
        columns = page.c
        # row_to_json() names the lateral row alone, which a column of that name would shadow.
        alias = "properties"
        while alias in columns:
            alias = "_" + alias
        properties = (
            select(*(_property_sql(columns[n], r).label(n) for n, r in schema.renderings.items()))
            .correlate(page)
            .lateral(alias)
        )
        geometry: ColumnElement[Any] = columns[schema.geometry.name]
        if output.srid != schema.srid:
            geometry = func.ST_Transform(geometry, _sql_int(output.srid))
        if output.flip:
            geometry = func.ST_FlipCoordinates(geometry)
        # Options 0: no ``crs`` member, which RFC 7946 GeoJSON does not have.
        geojson = func.ST_AsGeoJSON(geometry, _sql_int(output.decimals), _sql_int(0))
        identifier = columns[schema.id_column.name]
        id_json = cast(func.to_json(identifier), Text) if schema.id_in_sql else null()
        feature = (
            _sql_text('{"type":"Feature","id":')
            + func.coalesce(id_json, _sql_text("null"))
            + _sql_text(',"geometry":')
            + func.coalesce(geojson, _sql_text("null"))
            + _sql_text(',"properties":')
            + cast(func.row_to_json(properties.table_valued()), Text)
            + _sql_text("}")
        )
        order = self._order(schema, sortby, columns)
        if schema.aggregated:
            joined = func.string_agg(feature, aggregate_order_by(_sql_text(","), *order))
            return select(*extra, joined).select_from(page.join(properties, true()))
        in_python = [columns[name] for name in schema.in_python]
        if not schema.id_in_sql:
            in_python.append(identifier)
        return select(*extra, feature, *in_python).select_from(page.join(properties, true())).order_by(*order)

    def _decode(self, schema: _Schema, rows: Sequence[Sequence[Any]], at: int) -> list[Feature]:
        """The features in column ``at`` of ``rows`` (see ``_features``)."""
        if schema.aggregated:
            document = "[" + (rows[0][at] or "") + "]"
        else:
            document = "[" + ",".join([row[at] for row in rows]) + "]"
        try:
            features: list[Feature] = orjson.loads(document)
        except orjson.JSONDecodeError:
            try:  # a json column may hold integers beyond 64 bits, which orjson refuses
                features = json.loads(document)
            except ValueError as exc:
                raise UpstreamInvalidResponse(
                    f"the database wrote a feature that is not JSON: {exc}", source_id=self.source_id
                ) from exc
        if not schema.aggregated:
            for feature, row in zip(features, rows, strict=True):
                properties = feature["properties"]
                for index, name in enumerate(schema.in_python, start=at + 1):
                    properties[name] = _json_value(row[index])
                if not schema.id_in_sql:
                    feature["id"] = _json_value(row[-1])
        return features

    def _prepared(
        self, engine: AsyncEngine, shape: tuple[Any, ...], build: Callable[[], Select[Any]]
    ) -> _Prepared:
        """The compiled statement for a query shape, built and compiled the first time the
        shape is asked for (a request's statement costs more to build than to run).

        Bind parameters are named in binding order (``_Binds``), so one compiled statement
        serves every request of its shape, each with its own values.
        """
        prepared = self._statements.get(shape)
        if prepared is None:
            compiled = build().compile(dialect=engine.dialect)
            prepared = _Prepared(str(compiled), dict(compiled.params))
            if len(self._statements) >= MAX_CACHED_STATEMENTS:
                del self._statements[next(iter(self._statements))]
            self._statements[shape] = prepared
        return prepared

    @staticmethod
    async def _fetch(
        conn: AsyncConnection, prepared: _Prepared, values: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Run a compiled statement on the driver's own connection: rows of plain tuples."""
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, psycopg.AsyncConnection)
        try:
            cursor = await driver.execute(prepared.sql, {**prepared.defaults, **values})
            return await cursor.fetchall()
        except psycopg.Error:
            if driver.broken or driver.closed:
                await conn.invalidate()  # the pool must not hand out a dead connection again
            raise

    @staticmethod
    def _shape(engine: AsyncEngine, condition: ColumnElement[Any]) -> str:
        """A condition's SQL text: conditions with equal texts make equal statements."""
        return str(condition.compile(dialect=engine.dialect))

    def _page(
        self, schema: _Schema, output: _Output, where: ColumnElement[bool], sortby: Sequence[Any], count: bool
    ) -> Select[Any]:
        """A page of the rows matching ``where``, with their count when asked for."""
        rows = (
            select(*schema.selected)
            .where(where)
            .order_by(*self._order(schema, sortby, schema.table.c))
            .offset(bindparam("offset", type_=Integer()))
            .limit(bindparam("limit", type_=Integer()))
        )
        # The count rides along as an uncorrelated subquery: evaluated once, no second round
        # trip (which cost as much as the page itself).
        extra = (
            [select(func.count()).select_from(schema.table).where(where).scalar_subquery()] if count else []
        )
        return self._features(schema, output, rows, sortby, extra)

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of matching rows as features, in ``query.crs`` when the database writes it
        (see ``OUTPUT_CRS``), else in the table's CRS."""
        self._check_collection(collection)
        engine, schema = self._ready()
        output = self._output(schema, query.crs, query.filter)
        binds = _Binds()
        where = and_(true(), *self._conditions(schema, query, binds))
        where_sql = self._shape(engine, where)
        statement = self._prepared(
            engine,
            ("page", output.crs, query.count, query.sortby, where_sql),
            lambda: self._page(schema, output, where, query.sortby, query.count),
        )
        # Without a count, one extra row tells whether there is a next page.
        fetch = query.limit if query.count else query.limit + 1
        total = None
        try:
            async with engine.connect() as conn:
                params = {**binds.values, "offset": query.offset, "limit": fetch}
                rows: Sequence[Sequence[Any]] = await self._fetch(conn, statement, params)
                if query.count:
                    if rows:  # an aggregated page is one row, with the count even when empty
                        total = int(rows[0][0])
                    elif query.offset == 0:
                        total = 0
                    else:  # paged past the end: the page carried no count
                        counted = self._prepared(
                            engine,
                            ("count", where_sql),
                            lambda: select(func.count()).select_from(schema.table).where(where),
                        )
                        total = int((await self._fetch(conn, counted, binds.values))[0][0])
        except (sa_exc.SQLAlchemyError, psycopg.Error, OSError) as exc:
            self._raise(exc)
        features = self._decode(schema, rows, 1 if query.count else 0)
        more = len(features) > query.limit if total is None else query.offset + len(features) < total
        del features[query.limit :]
        return FeaturePage(features=features, crs=output.crs, number_matched=total, has_more=more)

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One row by id, in ``crs`` when the database writes it (the hub only asks for those)."""
        self._check_collection(collection)
        engine, schema = self._ready()
        column = schema.id_column
        kind = _kind(column.type)
        binds = _Binds()
        if kind == "number" and isinstance(column.type, Integer):
            try:
                key: ColumnElement[bool] = column == binds(int(feature_id), column.type)
            except ValueError:
                return None
        elif kind == "string":
            key = column == binds(feature_id, String())
        else:
            key = cast(column, Text) == binds(feature_id, Text())
        output = self._output(schema, crs)
        statement = self._prepared(
            engine,
            ("item", output.crs, self._shape(engine, key)),
            lambda: self._features(schema, output, select(*schema.selected).where(key).limit(_sql_int(1))),
        )
        try:
            async with engine.connect() as conn:
                rows = await self._fetch(conn, statement, binds.values)
        except (sa_exc.SQLAlchemyError, psycopg.Error, OSError) as exc:
            self._raise(exc)
        features = self._decode(schema, rows, 0) if rows else []
        return features[0] if features else None

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
            _SqlFilter(schema, self._geometry_names(schema), _Binds()).condition(
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
