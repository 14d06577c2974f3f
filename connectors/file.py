"""Serve GeoJSON and GeoPackage files: read once when the source opens, queried in memory.

The whole file is parsed in ``open()`` (off the event loop) and indexed: an STRtree over the
geometries for ``bbox``, a dict for ids, numeric arrays for the time field, and lazily built
per-field columns for equality and sorting. A request then only touches the features it
returns, so a page costs the same whether the file has a hundred features or a hundred
thousand. Features stay in the file's own CRS; the hub transforms the output when needed.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import httpx
import numpy as np
import numpy.typing as npt
import orjson
import pyogrio
import pyogrio.errors
import pyogrio.raw
import shapely
from pydantic import ValidationInfo, field_validator
from pygeofilter import ast
from pygeofilter.backends.native.evaluate import NativeEvaluator
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from connectors._cql import attributes, fingerprint, function_names, reproject_literals
from connectors._crs import (
    WGS84,
    box_ring,
    northing_first,
    uri_for,
)
from connectors._text import as_text
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
from connectors.errors import ConnectorConfigError, UnsupportedQuery, UpstreamUnavailable

log = logging.getLogger(__name__)

JsonType = Literal["string", "number", "integer", "boolean", "date", "date-time", "object", "array"]

GEOMETRY_NAMES = frozenset({"geometry", "geom", "the_geom", "shape"})
"""Names a filter may use for a feature's geometry, besides the layer's own geometry column."""

GEOJSON_SUFFIXES = frozenset({".geojson", ".json"})

OFFLOAD_FILTER_ABOVE = 2_000
"""Evaluate a CQL2 filter in a worker thread when the layer has more features than this."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_SLASH_DATE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})(.*)$")

_OGR_TYPES: dict[str, JsonType] = {
    "OFTInteger": "integer",
    "OFTInteger64": "integer",
    "OFTReal": "number",
    "OFTDate": "date",
    "OFTDateTime": "date-time",
    "OFTIntegerList": "array",
    "OFTInteger64List": "array",
    "OFTRealList": "array",
    "OFTStringList": "array",
}


class FileSettings(ConnectorSettings):
    """A GeoJSON or GeoPackage file (any vector format GDAL reads works the same way)."""

    path: Path
    layer: str | None = None
    """GeoPackage table to serve; every feature table becomes a collection when absent."""
    id_field: str | None = None
    """Property holding feature ids; else the GeoPackage fid, else the GeoJSON id or position."""
    time_field: str | None = None
    """Property holding the feature's date or date-time, for ``datetime`` queries."""

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, value: Path, info: ValidationInfo) -> Path:
        """Resolve a relative path against the ``base_dir`` of the validation context."""
        context = info.context if isinstance(info.context, dict) else {}
        base_dir = context.get("base_dir")
        if not value.is_absolute() and base_dir is not None:
            value = Path(base_dir) / value
        return value


# --- values ------------------------------------------------------------------------------


def _epoch_us(moment: datetime) -> int:
    """Microseconds since 1970 (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def _as_datetime(value: str) -> datetime:
    """An RFC 3339 / ISO 8601 date-time, naive values taken as UTC."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _time_span(value: Any) -> tuple[int, int] | None:
    """The first and last microsecond a time value covers (a date covers its whole day)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        instant = _epoch_us(value)
        return instant, instant
    if isinstance(value, date):
        start = _epoch_us(datetime(value.year, value.month, value.day, tzinfo=UTC))
        return start, start + _DAY_US - 1
    if not isinstance(value, str):
        return None
    text = value.strip()
    # GDAL writes dates as YYYY/MM/DD, and so do many municipal exports.
    slashed = _SLASH_DATE.match(text)
    if slashed:
        year, month, day, rest = slashed.groups()
        text = f"{year}-{month}-{day}{rest}"
    try:
        if _ISO_DATE.match(text):
            return _time_span(date.fromisoformat(text))
        return _time_span(_as_datetime(text))
    except ValueError:
        return None


def _infer_type(column: Iterable[Any]) -> JsonType:
    """The JSON Schema type every non-null value of a column fits."""
    kinds: set[str] = set()
    all_dates = all_datetimes = True
    for value in column:
        if value is None:
            continue
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, int):
            kinds.add("integer")
        elif isinstance(value, float):
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("string")
            if all_dates and not _ISO_DATE.match(value):
                all_dates = False
            if all_datetimes and not _ISO_DATETIME.match(value):
                all_datetimes = False
        elif isinstance(value, dict):
            kinds.add("object")
        elif isinstance(value, list):
            kinds.add("array")
        else:
            kinds.add("string")
    if kinds == {"string"}:
        if all_dates:
            return "date"
        if all_datetimes:
            return "date-time"
        return "string"
    if kinds == {"integer", "number"}:
        return "number"
    if len(kinds) == 1:
        return cast(JsonType, kinds.pop())
    return "string"


def _typed(value: Any, kind: JsonType) -> Any:
    """A property value as CQL2 compares it: ISO text of a date field becomes a date."""
    if not isinstance(value, str):
        return value
    try:
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "date-time":
            return _as_datetime(value)
    except ValueError:
        return value
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    """Orders numbers before text before anything else, so mixed columns still sort."""
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True, default=str))


def _positions(coordinates: Any) -> Any:
    """Coordinates as nested lists (shapely's mapping gives tuples)."""
    if coordinates and isinstance(coordinates[0], int | float):
        return list(coordinates)
    return [_positions(part) for part in coordinates]


def _geojson(geom: BaseGeometry | None) -> dict[str, Any] | None:
    """A shapely geometry as a GeoJSON dict with list coordinates."""
    if geom is None:
        return None
    found = mapping(geom)
    if found["type"] == "GeometryCollection":
        return {"type": found["type"], "geometries": [_geojson(g) for g in geom.geoms]}
    return {"type": found["type"], "coordinates": _positions(found["coordinates"])}


def _copy_geometry(geometry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy the hub may change in place (it transforms positions where they are)."""
    if geometry is None:
        return None
    # Stored geometries are plain JSON (see _geojson) with finite coordinates: a round trip
    # through orjson copies them exactly, several times faster than walking the positions.
    copied: dict[str, Any] = orjson.loads(orjson.dumps(geometry))
    return copied


def _casefold(value: str) -> str:
    return value.casefold()


def _strip_accents(value: str) -> str:
    decomposed = unicodedata.normalize("NFD", value)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


FILTER_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "lower": _casefold,  # CQL2 CASEI, as the pygeofilter parsers name it
    "casei": _casefold,
    "accenti": _strip_accents,
}

# A comparison with a null value raises TypeError (and casei/accenti of null AttributeError);
# a spatial test on a missing geometry raises AttributeError; division by zero has no value
# (as in SQL). None of these is a match.
_NO_MATCH = (TypeError, AttributeError, ZeroDivisionError, shapely.errors.GEOSException)


# --- layers ------------------------------------------------------------------------------


@dataclass(slots=True)
class _RawLayer:
    """What a reader produced: features in storage CRS and authority axis order."""

    name: str
    crs: str
    ids: list[Any]
    properties: list[dict[str, Any]]
    geometries: list[BaseGeometry | None]
    geojson: list[dict[str, Any] | None]
    field_types: dict[str, JsonType]
    geometry_column: str


@dataclass(slots=True, eq=False)
class _Layer:
    """One collection held in memory with its indexes."""

    info: CollectionInfo
    crs: str
    features: list[Feature]
    eval_items: list[dict[str, Any]]
    tree: shapely.STRtree
    by_id: dict[str, int]
    field_types: dict[str, JsonType]
    geometry_names: frozenset[str]
    time_start: npt.NDArray[np.int64]
    time_end: npt.NDArray[np.int64]
    time_known: npt.NDArray[np.bool_]
    all_rows: npt.NDArray[np.intp]
    bounds: BaseGeometry | None
    """The box around every geometry, in the data CRS."""
    located_rows: npt.NDArray[np.intp]
    """Rows that have a geometry."""
    _text: dict[str, npt.NDArray[np.object_]] = field(default_factory=dict)
    _ranks: dict[tuple[str, bool], npt.NDArray[np.int64]] = field(default_factory=dict)
    _predicates: dict[tuple[str, str], Callable[[dict[str, Any]], bool]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self.features)

    def text_column(self, name: str) -> npt.NDArray[np.object_]:
        """Every feature's value of ``name`` as text (built on first use, then kept)."""
        found = self._text.get(name)
        if found is None:
            found = np.empty(len(self.features), dtype=object)
            found[:] = [as_text(f["properties"].get(name)) for f in self.features]
            self._text[name] = found
        return found

    def ranks(self, name: str, ascending: bool) -> npt.NDArray[np.int64]:
        """Dense sort ranks of ``name`` in the wanted direction, nulls ranked last either way."""
        key = (name, ascending)
        found = self._ranks.get(key)
        if found is not None:
            return found
        column = [f["properties"].get(name) for f in self.features]
        present = [i for i, value in enumerate(column) if value is not None]
        present.sort(key=lambda i: _sort_key(column[i]))
        ranks = np.full(len(column), len(column) + 1, dtype=np.int64)
        rank, previous = -1, None
        for i in present:
            current = _sort_key(column[i])
            if rank < 0 or current != previous:
                rank += 1
                previous = current
            ranks[i] = rank
        if not ascending:
            known = ranks <= len(column)
            ranks[known] = rank - ranks[known]
        self._ranks[key] = ranks
        return ranks

    def predicate(self, node: ast.Node, filter_crs: str) -> Callable[[dict[str, Any]], bool]:
        """The expression compiled into a test of an evaluation item (cached per expression)."""
        key = (filter_crs, fingerprint(node))
        found = self._predicates.get(key)
        if found is None:
            found = self._compile(node, filter_crs)
            with self._lock:
                if len(self._predicates) >= 256:
                    self._predicates.clear()
                self._predicates[key] = found
        return found

    def _compile(self, node: ast.Node, filter_crs: str) -> Callable[[dict[str, Any]], bool]:
        """Reproject the literals to the data CRS and compile with pygeofilter's evaluator."""
        local = reproject_literals(node, filter_crs, self.crs)
        # pygeofilter's evaluator writes a function call into Python source it then evals, and
        # any name it does not know resolves to a Python builtin (eval, exec, open): only the
        # CQL2 functions defined here may ever reach it.
        unknown = set(function_names(local)) - set(FILTER_FUNCTIONS)
        if unknown:
            raise UnsupportedQuery(f"unsupported filter function(s): {', '.join(sorted(unknown))}")
        attribute_map = {name: "geometry" for name in self.geometry_names}
        attribute_map["*"] = "properties.*"
        evaluator = NativeEvaluator(
            function_map=dict(FILTER_FUNCTIONS), attribute_map=attribute_map, use_getattr=False
        )
        compiled = cast(Callable[[dict[str, Any]], Any], evaluator.evaluate(local))

        def matches(item: dict[str, Any]) -> bool:
            try:
                return bool(compiled(item))
            except _NO_MATCH:
                return False

        return matches

    def copy_feature(self, row: int, *, geometry: bool = True) -> Feature:
        """A copy of one stored feature that the caller may change freely (without its
        geometry, which is then None, when the caller does not use it)."""
        stored = self.features[row]
        return {
            "type": "Feature",
            "id": stored["id"],
            "geometry": _copy_geometry(stored["geometry"]) if geometry else None,
            "properties": dict(stored["properties"]),
        }


def _storage_uri(crs: CRS) -> tuple[str, bool]:
    """The URI to report for a layer's CRS and whether stored x/y must be swapped to match it.

    GeoPackage and GeoJSON store x/y (lon/lat); EPSG:4326 data is reported as its lon/lat
    twin CRS84, any other latitude-first CRS gets its coordinates swapped into axis order.
    """
    uri = uri_for(crs)
    if uri == WGS84:
        return CRS84, False
    return uri, northing_first(uri)


def _swap_xy(geometries: Sequence[BaseGeometry | None]) -> list[BaseGeometry | None]:
    array = np.array(geometries, dtype=object)
    swapped = shapely.transform(array, lambda coords: coords[:, ::-1])
    return list(swapped)


def _legacy_crs(document: dict[str, Any]) -> str:
    """The CRS a GeoJSON document declares with the pre-RFC 7946 ``crs`` member, else CRS84."""
    member = document.get("crs")
    if not isinstance(member, dict):
        return CRS84
    name = (member.get("properties") or {}).get("name")
    if not isinstance(name, str):
        return CRS84
    try:
        uri, swap = _storage_uri(CRS.from_user_input(name))
    except (CRSError, ValueError) as exc:
        raise ConnectorConfigError(f"GeoJSON declares an unknown crs {name!r}") from exc
    # Legacy documents naming EPSG:4326 hold lon/lat in practice, as CRS84 does.
    return CRS84 if swap and uri.endswith("/4326") else uri


def _read_geojson(path: Path, name: str) -> _RawLayer:
    """Parse a GeoJSON file with the json module: ids, nulls and number types stay exact."""
    with path.open("rb") as handle:
        document = json.load(handle)
    if not isinstance(document, dict):
        raise ConnectorConfigError(f"{path.name} is not a GeoJSON object")
    if document.get("type") == "FeatureCollection":
        members = document.get("features") or []
    elif document.get("type") == "Feature":
        members = [document]
    else:
        raise ConnectorConfigError(f"{path.name} is neither a Feature nor a FeatureCollection")
    crs = _legacy_crs(document)
    ids: list[Any] = []
    properties: list[dict[str, Any]] = []
    geometries: list[BaseGeometry | None] = []
    geojson: list[dict[str, Any] | None] = []
    for position, member in enumerate(members, start=1):
        props = member.get("properties") or {}
        geometry = member.get("geometry")
        ids.append(member["id"] if member.get("id") is not None else position)
        properties.append(props)
        geometries.append(shape(geometry) if geometry else None)
        geojson.append(geometry if geometry else None)
    names: dict[str, None] = {}
    for props in properties:
        names.update(dict.fromkeys(props))
    field_types = {n: _infer_type(p.get(n) for p in properties) for n in names}
    if crs != CRS84 and northing_first(crs):
        geometries = _swap_xy(geometries)
        geojson = [_geojson(g) for g in geometries]
    return _RawLayer(name, crs, ids, properties, geometries, geojson, field_types, "geometry")


def _ogr_value(value: Any, ogr_type: str, subtype: str) -> Any:
    """One value read by pyogrio as a plain JSON value."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if subtype == "OFSTBoolean":
        return bool(value)
    if ogr_type in ("OFTInteger", "OFTInteger64"):
        return int(value)
    if subtype == "OFSTJSON" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _read_ogr(path: Path, name: str) -> _RawLayer:
    """Read one layer of a GeoPackage (or any OGR source) with pyogrio."""
    info = pyogrio.read_info(path, layer=name)
    meta, fids, wkb, columns = pyogrio.raw.read(path, layer=name, return_fids=True, datetime_as_string=True)
    if not meta.get("crs"):
        raise ConnectorConfigError(f"layer {name!r} of {path.name} has no coordinate system")
    try:
        crs, swap = _storage_uri(CRS.from_user_input(meta["crs"]))
    except (CRSError, ValueError) as exc:
        raise ConnectorConfigError(f"layer {name!r}: unusable CRS {meta['crs']!r}") from exc
    field_names = [str(n) for n in meta["fields"]]
    ogr_types = list(meta.get("ogr_types") or ["OFTString"] * len(field_names))
    subtypes = list(meta.get("ogr_subtypes") or ["OFSTNone"] * len(field_names))
    values_by_field = [
        [_ogr_value(v, t, s) for v in column.tolist()]
        for column, t, s in zip(columns, ogr_types, subtypes, strict=True)
    ]
    count = len(fids)
    properties = [{n: values_by_field[j][i] for j, n in enumerate(field_names)} for i in range(count)]
    field_types: dict[str, JsonType] = {}
    for j, n in enumerate(field_names):
        if subtypes[j] == "OFSTBoolean":
            field_types[n] = "boolean"
        elif subtypes[j] == "OFSTJSON":
            field_types[n] = _infer_type(values_by_field[j])
        else:
            field_types[n] = _OGR_TYPES.get(ogr_types[j]) or _infer_type(values_by_field[j])
    geometries: list[BaseGeometry | None] = list(shapely.from_wkb(wkb)) if wkb is not None else [None] * count
    if swap:
        geometries = _swap_xy(geometries)
    geojson = [_geojson(g) for g in geometries]
    geometry_column = str(info.get("geometry_name") or "geom")
    return _RawLayer(
        name, crs, [int(f) for f in fids], properties, geometries, geojson, field_types,
        geometry_column,
    )  # fmt: skip


def _build_layer(raw: _RawLayer, settings: FileSettings, title: str) -> _Layer:
    """Index a layer: ids, time spans, the spatial tree, and its description."""
    for setting, name in (("id_field", settings.id_field), ("time_field", settings.time_field)):
        if name is not None and name not in raw.field_types:
            raise ConnectorConfigError(f"{setting} {name!r} is not a field of layer {raw.name!r}")
    count = len(raw.ids)
    ids = list(raw.ids)
    if settings.id_field is not None:
        ids = [
            props.get(settings.id_field) if props.get(settings.id_field) is not None else fallback
            for props, fallback in zip(raw.properties, raw.ids, strict=True)
        ]
    features: list[Feature] = [
        {"type": "Feature", "id": ids[i], "geometry": raw.geojson[i], "properties": raw.properties[i]}
        for i in range(count)
    ]
    by_id: dict[str, int] = {}
    for row, value in enumerate(ids):
        by_id.setdefault(str(value), row)
    if len(by_id) < count:
        log.warning(
            "layer %s: %d features share an id with an earlier one; get_feature returns the first",
            raw.name, count - len(by_id),
        )  # fmt: skip

    typed_fields = [n for n, t in raw.field_types.items() if t in ("date", "date-time")]
    eval_items = []
    for props, geom in zip(raw.properties, raw.geometries, strict=True):
        if typed_fields:
            props = dict(props)
            for n in typed_fields:
                props[n] = _typed(props.get(n), raw.field_types[n])
        eval_items.append({"properties": props, "geometry": geom})

    time_start = np.zeros(count, dtype=np.int64)
    time_end = np.zeros(count, dtype=np.int64)
    time_known = np.zeros(count, dtype=bool)
    temporal_extent: tuple[str | None, str | None] | None = None
    if settings.time_field is not None:
        for row, props in enumerate(raw.properties):
            span = _time_span(props.get(settings.time_field))
            if span is not None:
                time_start[row], time_end[row] = span
                time_known[row] = True
        if time_known.any():
            first = _EPOCH + int(time_start[time_known].min()) * _MICROSECOND
            last = _EPOCH + int(time_end[time_known].max()) * _MICROSECOND
            temporal_extent = (
                first.isoformat().replace("+00:00", "Z"),
                last.isoformat().replace("+00:00", "Z"),
            )
        else:
            temporal_extent = (None, None)

    geometries = np.array(raw.geometries, dtype=object)
    tree = shapely.STRtree(geometries)
    present = [g for g in raw.geometries if g is not None]
    extent = None
    bounds = None
    if present:
        minx, miny, maxx, maxy = shapely.total_bounds(present).tolist()
        bounds = shapely.box(minx, miny, maxx, maxy)
        if raw.crs != CRS84:
            xs, ys = box_ring(minx, miny, maxx, maxy, raw.crs, CRS84)
            minx, miny, maxx, maxy = xs.min(), ys.min(), xs.max(), ys.max()
        extent = (float(minx), float(miny), float(maxx), float(maxy))
    kinds = {g.geom_type for g in present}
    geometry_type = kinds.pop() if len(kinds) == 1 else ("Geometry" if kinds else None)

    geometry_names = (GEOMETRY_NAMES | {raw.geometry_column}) - set(raw.field_types)
    info = CollectionInfo(
        id=raw.name,
        title=title,
        fields=[FieldInfo(name=n, type=t) for n, t in raw.field_types.items()],
        storage_crs=raw.crs,
        crs=[CRS84] if raw.crs == CRS84 else [CRS84, raw.crs],
        extent_crs84=extent,
        temporal_extent=temporal_extent,
        time_field=settings.time_field,
        id_field=settings.id_field,
        geometry_type=geometry_type,
        capabilities=Capabilities(
            filter=True,
            bbox=True,
            sort=True,
            datetime=settings.time_field is not None,
            crs=(raw.crs,),
        ),
    )
    return _Layer(
        info=info,
        crs=raw.crs,
        features=features,
        eval_items=eval_items,
        tree=tree,
        by_id=by_id,
        field_types=dict(raw.field_types),
        geometry_names=frozenset(geometry_names),
        time_start=time_start,
        time_end=time_end,
        time_known=time_known,
        all_rows=np.arange(count, dtype=np.intp),
        bounds=bounds,
        located_rows=np.array([i for i, g in enumerate(raw.geometries) if g is not None], dtype=np.intp),
    )


def _load(settings: FileSettings) -> dict[str, _Layer]:
    """Read and index every layer the settings select (blocking: run it in a thread)."""
    path = settings.path
    if not path.is_file():
        raise ConnectorConfigError(f"file not found: {path}")
    try:
        if path.suffix.lower() in GEOJSON_SUFFIXES:
            if settings.layer not in (None, path.stem):
                raise ConnectorConfigError(
                    f"layer {settings.layer!r}: a GeoJSON file has one layer, {path.stem!r}"
                )
            raws = [_read_geojson(path, path.stem)]
        else:
            listed = pyogrio.list_layers(path)
            # Attribute tables (no geometry type) are not feature collections.
            feature_tables = [str(n) for n, kind in listed if kind is not None]
            if settings.layer is not None:
                if settings.layer not in feature_tables:
                    known = ", ".join(feature_tables) or "none"
                    raise ConnectorConfigError(
                        f"layer {settings.layer!r} is not a feature table of {path.name} "
                        f"(feature tables: {known})"
                    )
                feature_tables = [settings.layer]
            raws = [_read_ogr(path, name) for name in feature_tables]
    except (OSError, ValueError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        # json.JSONDecodeError is a ValueError; both mean the steward pointed at a bad file.
        raise ConnectorConfigError(f"cannot read {path.name}: {exc}") from exc
    return {raw.name: _build_layer(raw, settings, raw.name) for raw in raws}


# --- the connector -----------------------------------------------------------------------


class FileConnector(Connector):
    """A GeoJSON or GeoPackage file held in memory; every query is answered from its indexes."""

    kind: ClassVar[str] = "file"
    settings_model: ClassVar[type[ConnectorSettings]] = FileSettings

    settings: FileSettings

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient):
        super().__init__(settings, source_id=source_id, http=http)
        self._layers: dict[str, _Layer] | None = None

    async def open(self) -> None:
        """Read and index the file once, off the event loop."""
        try:
            self._layers = await asyncio.to_thread(_load, self.settings)
        except ConnectorConfigError as exc:
            exc.source_id = self.source_id
            raise

    async def close(self) -> None:
        """Drop the in-memory copy."""
        self._layers = None

    def _layer(self, collection: str) -> _Layer:
        if self._layers is None:
            raise UpstreamUnavailable("the file source is not open", source_id=self.source_id)
        layer = self._layers.get(collection)
        if layer is None:
            raise UnsupportedQuery(f"no collection {collection!r}", source_id=self.source_id)
        return layer

    async def describe(self) -> list[CollectionInfo]:
        """One collection per layer: fields, extents, CRS and capabilities."""
        if self._layers is None:
            raise UpstreamUnavailable("the file source is not open", source_id=self.source_id)
        return [copy.deepcopy(layer.info) for layer in self._layers.values()]

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of matching features, in the file's CRS."""
        layer = self._layer(collection)
        if query.filter is not None and len(layer) > OFFLOAD_FILTER_ABOVE:
            # Evaluating a filter over many features is CPU work that would stall the loop.
            return await asyncio.to_thread(self._query, layer, query)
        return self._query(layer, query)

    def _query(self, layer: _Layer, query: FeatureQuery) -> FeaturePage:
        """Select, sort and page (runs on the loop or in a worker thread)."""
        rows = self._select(layer, query)
        if query.sortby and len(rows) > 1:
            # lexsort takes the primary key last; the row number keeps ties in file order.
            keys = [rows] + [layer.ranks(k.property, k.ascending)[rows] for k in reversed(query.sortby)]
            rows = rows[np.lexsort(keys)]
        total = len(rows)
        page = rows[query.offset : query.offset + query.limit]
        return FeaturePage(
            features=[layer.copy_feature(row, geometry=not query.skip_geometry) for row in page.tolist()],
            crs=layer.crs,
            number_matched=total,
            has_more=query.offset + len(page) < total,
        )

    def _select(self, layer: _Layer, query: FeatureQuery) -> npt.NDArray[np.intp]:
        """Row numbers (in file order) of the features matching every criterion."""
        try:
            if query.bbox is not None:
                box = query.bbox
                xs, ys = box_ring(*box.as_tuple(), box.crs, layer.crs)
                polygon = shapely.Polygon(np.column_stack([xs, ys]))
                if layer.bounds is not None and polygon.covers(layer.bounds):
                    rows = layer.located_rows  # a zoomed-out map: no need to test each feature
                else:
                    hits: npt.NDArray[np.intp] = layer.tree.query(polygon, predicate="intersects")
                    rows = np.sort(hits)
            else:
                rows = layer.all_rows
            for name, expected in query.property_equals.items():
                if name not in layer.field_types:
                    return rows[:0]
                rows = rows[layer.text_column(name)[rows] == expected]
            if query.datetime is not None:
                if layer.info.time_field is None:
                    raise UnsupportedQuery(f"collection {layer.info.id!r} has no time field")
                keep = layer.time_known[rows]
                if query.datetime.start is not None:
                    keep &= layer.time_end[rows] >= _epoch_us(query.datetime.start)
                if query.datetime.end is not None:
                    keep &= layer.time_start[rows] <= _epoch_us(query.datetime.end)
                rows = rows[keep]
            if query.filter is not None:
                matches = layer.predicate(query.filter, query.filter_crs)
                items = layer.eval_items
                rows = np.fromiter((row for row in rows.tolist() if matches(items[row])), dtype=np.intp)
        except UnsupportedQuery as exc:
            exc.source_id = self.source_id
            raise
        return rows

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One feature by id, in the file's CRS (the hub transforms it to ``crs``)."""
        layer = self._layer(collection)
        row = layer.by_id.get(feature_id)
        return None if row is None else layer.copy_feature(row)

    def supports_filter(self, collection: str, expression: ast.Node) -> bool:
        """Whether every attribute is a field or the geometry and the evaluator handles it all."""
        if self._layers is None or collection not in self._layers:
            return False
        layer = self._layers[collection]
        known = set(layer.field_types) | layer.geometry_names
        if not set(attributes(expression)) <= known:
            return False
        try:
            # Compiling (literals left where they are) proves every node has an evaluator.
            layer.predicate(expression, layer.crs)
        except Exception:  # pygeofilter raises bare exceptions for nodes it cannot handle
            return False
        return True
