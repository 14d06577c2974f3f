"""Connector for WFS 2.0 servers (PDOK, municipal GeoServer and MapServer) answering GML 3.2.

What a feature type offers is read from the server itself: GetCapabilities gives the feature
types, their CRSs and WGS84 extents, whether ``STARTINDEX`` paging works and which FES 2.0
operators the server evaluates; DescribeFeatureType gives the properties, their types and the
geometry property. GetFeature pages with ``STARTINDEX``/``COUNT`` (reading through from the
start on servers that cannot page), asks for the output CRS with ``SRSNAME``, and takes a bbox
as the ``BBOX`` parameter or, beside a filter, as a FES ``BBOX``.

What the hub relies on is checked here rather than assumed. A bbox given in the feature
type's own CRS is pushed down as it is and every returned feature is tested against it; a
bbox in another CRS is pushed down as an enclosing envelope in the type's CRS and the test
is done here on the box's densified outline (servers transform a box by its corners). Features
are then asked in the type's own CRS, in which the test is made, and the hub transforms them.
Equality on a property is pushed down as FES where the server can, and the answers are
checked; a server caught returning features that do not match is from then on only used to
narrow the search, and the matching is done here. A CRS the server offers is used only after
one feature written in it agreed with the hub's own transformation.

Feature ids are the ``gml:id`` the server writes (MapServer: ``<layer>.<key>``), which is what
``RESOURCEID`` takes back. Coordinates are handed on in the authority axis order of their
CRS (see ``connectors._gml``); CRS84 is offered wherever EPSG:4326 is, by swapping the axes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import quoteattr

import httpx
import numpy as np
import numpy.typing as npt
import shapely
from pydantic import Field, field_validator, model_validator
from pygeofilter import ast
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from connectors._cql import reproject_literals
from connectors._crs import WGS84, box_ring, crs_for, transformer
from connectors._fes import (
    FES20,
    FesEncoder,
    FesUnsupported,
    FilterCapabilities,
    conjunction,
    read_filter_capabilities,
    wrap,
)
from connectors._gml import (
    GML32,
    OWS_NAMESPACES,
    WFS20,
    Element,
    FeatureCollectionPage,
    GmlError,
    OwsException,
    SrsName,
    XmlError,
    children,
    local,
    parse_xml,
    qname,
    read_exception_report,
    read_feature_collection,
    read_srs_name,
    text_of,
    urn_for,
)
from connectors._http import origin, send
from connectors._text import as_text
from connectors.base import (
    CRS84,
    BBox,
    Capabilities,
    CollectionInfo,
    Connector,
    ConnectorSettings,
    Feature,
    FeaturePage,
    FeatureQuery,
    FieldInfo,
    FieldType,
)
from connectors.errors import (
    ConnectorConfigError,
    ConnectorError,
    UnsupportedQuery,
    UpstreamInvalidResponse,
    UpstreamUnavailable,
)

LOG = logging.getLogger(__name__)

ACCEPT = "application/gml+xml; version=3.2, text/xml;q=0.9, application/xml;q=0.8"
XSD = "http://www.w3.org/2001/XMLSchema"

DESCRIBE_CONCURRENCY = 4
MAX_GET_URL = 7000
"""Longer GetFeature requests are POSTed as XML: common web servers refuse request lines
much beyond 8 KB, and a densified polygon in a filter easily gets there."""
MAX_READ_FEATURES = 50_000
"""The most features one query reads through when the hub's answer must be found here."""
PARSE_OFF_LOOP_BYTES = 64 * 1024
"""Answers larger than this are parsed in a worker thread, away from the event loop."""
ENVELOPE_PADDING = 1e-6
"""Relative padding of an envelope pushed down for a box in another CRS, so that rounding in the
server's own transformation never trims a feature that the exact test here would keep."""

COUNT_SECONDS = 30.0
COUNT_QUERIES = 128
"""How long, and for how many queries, a RESULTTYPE=hits count is reused."""
TRANSFORM_TOLERANCE_METRES = 0.5
"""How far a server's reprojection may stray from the hub's before the hub does it itself
(grid-based and Helmert transformations between RD and ETRS89 differ by up to 25 cm)."""
EXTENT_PADDING = 0.1
EXTENT_MARGIN_DEGREES = 0.001
"""How much a WGS84BoundingBox is widened (relative, and in degrees) before the hub uses it."""

# Exception codes (OWS Common, WFS 2.0) that say the request was at fault, and those that say
# the server was.
_CLIENT_CODES = frozenset({
    "InvalidParameterValue", "MissingParameterValue", "OperationParsingFailed",
    "OptionNotSupported", "OperationNotSupported", "InvalidValue", "NoApplicableCode",
})  # fmt: skip
_SERVER_CODES = frozenset({"OperationProcessingFailed", "ServerBusy"})
_ID_LOCATORS = frozenset({"resourceid", "featureid"})
_TYPE_LOCATORS = frozenset({"typename", "typenames"})
_RESERVED_PARAMETERS = frozenset({
    "SERVICE", "VERSION", "REQUEST", "TYPENAMES", "TYPENAME", "SRSNAME", "BBOX", "FILTER",
    "STARTINDEX", "COUNT", "MAXFEATURES", "RESULTTYPE", "RESOURCEID", "FEATUREID", "SORTBY",
    "OUTPUTFORMAT", "PROPERTYNAME",
})  # fmt: skip
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NCNAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_COLLECTION_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_INTEGER = re.compile(r"^[+-]?\d+$")

_XS_TYPES: dict[str, FieldType] = {
    **dict.fromkeys(
        ("integer", "int", "long", "short", "byte", "nonNegativeInteger", "positiveInteger",
         "nonPositiveInteger", "negativeInteger", "unsignedLong", "unsignedInt", "unsignedShort",
         "unsignedByte"),
        "integer",
    ),
    **dict.fromkeys(("decimal", "double", "float"), "number"),
    "boolean": "boolean",
    "date": "date",
    "dateTime": "date-time",
}  # fmt: skip
_GML_TIME_TYPES = frozenset({"TimeInstantType", "TimeInstantPropertyType", "TimePositionType"})
_GML_GEOMETRY_TYPES: dict[str, str | None] = {
    "GeometryPropertyType": None,
    "GeometricPrimitivePropertyType": None,
    "GeometryAssociationType": None,
    "PointPropertyType": "Point",
    "CurvePropertyType": "LineString",
    "LineStringPropertyType": "LineString",
    "SurfacePropertyType": "Polygon",
    "PolygonPropertyType": "Polygon",
    "MultiPointPropertyType": "MultiPoint",
    "MultiCurvePropertyType": "MultiLineString",
    "MultiLineStringPropertyType": "MultiLineString",
    "MultiSurfacePropertyType": "MultiPolygon",
    "MultiPolygonPropertyType": "MultiPolygon",
    "MultiGeometryPropertyType": "GeometryCollection",
}

Check = Callable[[Feature], bool]


class WfsSettings(ConnectorSettings):
    """Connection settings of a WFS 2.0 source."""

    url: str = Field(
        description="The service endpoint (http or https); may carry fixed parameters such as "
        "MapServer's map=..."
    )
    version: Literal["2.0.0"] = Field("2.0.0", description="WFS version spoken")
    type_names: dict[str, str] = Field(
        default_factory=dict,
        description="Collection id -> feature type name as the capabilities write it "
        "(e.g. kadastralekaartv4:perceel); when set, only these types are exposed",
    )
    page_size: int = Field(
        1000, ge=1, le=10_000, description="Features per GetFeature request when reading through"
    )
    server_transforms: bool = Field(
        True,
        description="Ask the server for the CRS the hub wants (SRSNAME); off, features are "
        "asked in each type's own CRS and the hub transforms them",
    )
    count_with_hits: bool = Field(
        True, description="Ask RESULTTYPE=hits for numberMatched when the pages do not say it"
    )
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP header name -> name of the environment variable holding its value",
    )
    params_env: dict[str, str] = Field(
        default_factory=dict,
        description="Query parameter -> name of the environment variable holding its value "
        "(API keys some services take in the URL)",
    )
    username_env: str | None = Field(
        None, description="Environment variable holding the HTTP Basic user name"
    )
    password_env: str | None = Field(None, description="Environment variable holding the HTTP Basic password")
    verify_tls: bool = Field(True, description="Verify the source's TLS certificate")

    @field_validator("url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("url must be an absolute http(s) URL")
        if parts.fragment:
            raise ValueError("url must not have a fragment")
        fixed = {name.upper() for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
        clash = sorted(fixed & _RESERVED_PARAMETERS)
        if clash:
            raise ValueError(f"url must not fix WFS request parameters ({', '.join(clash)})")
        return value.rstrip("?")

    @field_validator("type_names")
    @classmethod
    def _type_names(cls, value: dict[str, str]) -> dict[str, str]:
        for collection, type_name in value.items():
            if not _COLLECTION_ID.match(collection):
                raise ValueError(f"{collection!r} is not a usable collection id")
            if not type_name.strip():
                raise ValueError(f"collection {collection!r} has an empty type name")
        return {k: v.strip() for k, v in value.items()}

    @field_validator("headers_env")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for header, variable in value.items():
            if not _HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            if not _ENV_NAME.match(variable):
                raise ValueError(f"{variable!r} is not an environment variable name")
        return value

    @field_validator("params_env")
    @classmethod
    def _param_names(cls, value: dict[str, str]) -> dict[str, str]:
        for parameter, variable in value.items():
            if not parameter or parameter.upper() in _RESERVED_PARAMETERS:
                raise ValueError(f"{parameter!r} cannot carry a secret: it is a WFS parameter")
            if not _ENV_NAME.match(variable):
                raise ValueError(f"{variable!r} is not an environment variable name")
        return value

    @field_validator("username_env", "password_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _basic_auth_pair(self) -> WfsSettings:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together")
        return self


@dataclass(frozen=True, slots=True)
class _FeatureType:
    """A feature type as GetCapabilities lists it."""

    name: str
    """The name as the server writes it, prefix included (``ms:perceel``)."""
    namespace: str | None
    local_name: str
    title: str
    abstract: str
    storage_crs: str
    crs: tuple[str, ...]
    """OGC URIs of the CRSs the server writes, its default first."""
    srs_names: Mapping[str, str]
    """OGC URI -> the server's own name for that CRS, which is what it is asked in."""
    extent_crs84: tuple[float, float, float, float] | None

    def offers(self, crs: str) -> bool:
        """Whether features can be had in ``crs`` (CRS84 through EPSG:4326)."""
        return crs in self.srs_names or (crs == CRS84 and WGS84 in self.srs_names)

    def srs_name(self, crs: str) -> str:
        """The name to ask the server for ``crs`` in (EPSG:4326's for CRS84)."""
        if crs in self.srs_names:
            return self.srs_names[crs]
        if crs == CRS84 and WGS84 in self.srs_names:
            return self.srs_names[WGS84]
        return urn_for(crs)


@dataclass(frozen=True, slots=True)
class _Service:
    """What GetCapabilities says about the whole service."""

    paging: bool
    count_default: int | None
    xml_post: bool
    filters: FilterCapabilities
    types: Mapping[str, _FeatureType]


@dataclass(frozen=True, slots=True)
class _Schema:
    """The properties of a feature type, from DescribeFeatureType."""

    fields: Mapping[str, FieldType]
    geometry: str | None
    geometry_type: str | None


@dataclass(frozen=True, slots=True)
class _Collection:
    id: str
    type: _FeatureType
    schema: _Schema


@dataclass(slots=True)
class _Plan:
    """How one query is asked of the server and what is done with the answer here."""

    params: dict[str, str]
    output: str
    """The CRS (URI) the features are handed on in."""
    ask: str
    """The CRS (URI) the server is asked for: ``output``, or EPSG:4326 for CRS84."""
    verify: list[Check] = field(default_factory=list)
    """Conditions the server applies and that are checked on what it returns."""
    local: list[Check] = field(default_factory=list)
    """Conditions applied here only (the query is then read through)."""
    empty: bool = False


@dataclass(slots=True)
class _Window:
    features: list[Feature]
    exhausted: bool
    number_matched: int | None


class WfsConnector(Connector):
    """Queries a WFS 2.0 server at request time."""

    kind: ClassVar[str] = "wfs"
    settings_model: ClassVar[type[ConnectorSettings]] = WfsSettings
    settings: WfsSettings

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient) -> None:
        super().__init__(settings, source_id=source_id, http=http)
        self._origin = origin(self.settings.url)
        self._own_client: httpx.AsyncClient | None = None
        self._service: _Service | None = None
        self._collections: dict[str, _Collection] = {}
        self._loose: set[str] = set()
        self._counts: OrderedDict[tuple[tuple[str, str], ...], tuple[float, int | None]] = OrderedDict()
        self._lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Check that the secrets are present, and make a client when TLS is not verified."""
        self._auth_headers()
        self._auth_params()
        self._basic_auth()
        if not self.settings.verify_tls and self._own_client is None:
            # The shared client verifies certificates for every source; only this one opts out.
            self._own_client = httpx.AsyncClient(verify=False, follow_redirects=False)

    async def close(self) -> None:
        """Close the client this connector made for itself, if any."""
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = None

    # -- the connector contract --------------------------------------------------------------

    async def describe(self) -> list[CollectionInfo]:
        """Harvest the feature types with their properties, CRSs, extents and capabilities."""
        service = await self._load_service(refresh=True)
        wanted = self._wanted_types(service)
        limiter = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

        async def one(collection_id: str, feature_type: _FeatureType) -> CollectionInfo:
            async with limiter:
                meta = await self._load_collection(collection_id, feature_type)
            self._collections[collection_id] = meta
            return self._info(meta, service)

        return list(await asyncio.gather(*(one(cid, ft) for cid, ft in wanted.items())))

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of ``collection`` answering ``query``, pushed down as far as is safe."""
        if query.sortby:
            raise UnsupportedQuery("this source does not sort", source_id=self.source_id)
        if query.datetime is not None:
            raise UnsupportedQuery("this source does not filter by time", source_id=self.source_id)
        meta = await self._meta(collection)
        plan = self._plan(meta, query)
        if plan.empty:
            return FeaturePage([], crs=plan.output, number_matched=0, has_more=False)
        if not plan.local:
            page = await self._direct(meta, plan, query)
            if page is not None:
                return page
            LOG.warning(
                "WFS source %s returned features of %s outside the bbox or property values "
                "asked for; the connector checks those itself from now on",
                self.source_id,
                collection,
            )
            self._loose.add(collection)
            plan = self._plan(meta, query)
        return await self._read_through(meta, plan, query)

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One feature by its ``gml:id`` in ``crs`` (``None`` when the server has none)."""
        meta = await self._meta(collection)
        if not _NCNAME.match(feature_id):
            return None  # not a gml:id, so no feature can have it
        offered = self.settings.server_transforms and meta.type.offers(crs)
        ask = crs if offered else meta.type.storage_crs
        params = {
            "REQUEST": "GetFeature",
            "RESOURCEID": feature_id,
            "SRSNAME": meta.type.srs_name(ask),
        }
        try:
            root = await self._xml(await self._send(meta, params), pushed=True)
        except _Rejected as exc:
            if exc.locator in _ID_LOCATORS:
                return None  # MapServer refuses ids that do not start with one of its layers
            raise
        page = await self._features(meta, root, ask, size=0)
        wanted_name = (meta.type.namespace, meta.type.local_name)
        for feature in page.features:
            if feature.get("id") == feature_id and (
                meta.type.namespace is None or wanted_name in page.type_names
            ):
                return self._in_crs(feature, page.crs or ask, crs)
        return None

    def supports_filter(self, collection: str, expression: ast.Node) -> bool:
        """Whether the server's Filter_Capabilities cover this expression as FES 2.0."""
        meta = self._collections.get(collection)
        service = self._service
        if meta is None or service is None or not service.filters.any:
            return False
        storage = meta.type.storage_crs
        try:
            encoded = self._encoder(meta, service).encode(reproject_literals(expression, storage, storage))
        except (FesUnsupported, UnsupportedQuery):
            return False
        return service.xml_post or len(encoded) * 3 < MAX_GET_URL

    # -- capabilities and schemas ------------------------------------------------------------

    async def _load_service(self, *, refresh: bool = False) -> _Service:
        if self._service is not None and not refresh:
            return self._service
        response = await self._send(None, {"REQUEST": "GetCapabilities"})
        root = await self._xml(response, pushed=False)
        if local(root) != "WFS_Capabilities":
            raise self._invalid(f"GetCapabilities answered {local(root) or 'no'} document")
        if root.get("version") and root.get("version") != self.settings.version:
            raise self._invalid(f"the server speaks WFS {root.get('version')}, not {self.settings.version}")
        self._service = _read_capabilities(root)
        return self._service

    def _wanted_types(self, service: _Service) -> dict[str, _FeatureType]:
        """Collection id -> feature type: the configured ones, else all under their local name."""
        if self.settings.type_names:
            chosen: dict[str, _FeatureType] = {}
            for collection, type_name in self.settings.type_names.items():
                found = _find_type(service, type_name)
                if found is None:
                    raise ConnectorConfigError(
                        f"the server has no feature type {type_name!r} (collection {collection!r})",
                        source_id=self.source_id,
                    )
                chosen[collection] = found
            return chosen
        locals_seen = [ft.local_name for ft in service.types.values()]
        chosen = {}
        for feature_type in service.types.values():
            collection = feature_type.local_name
            if locals_seen.count(collection) > 1 or not _COLLECTION_ID.match(collection):
                collection = re.sub(r"[^A-Za-z0-9_.\-]", "_", feature_type.name)
            chosen[collection] = feature_type
        return chosen

    async def _load_collection(self, collection: str, feature_type: _FeatureType) -> _Collection:
        """Schema and checked CRSs of one feature type."""
        meta = _Collection(collection, feature_type, await self._load_schema(feature_type))
        if not self.settings.server_transforms or len(feature_type.crs) < 2:
            return meta
        trusted = await self._trusted_crs(meta)
        if trusted == feature_type.crs:
            return meta
        names = {uri: feature_type.srs_names[uri] for uri in trusted}
        return dataclasses.replace(meta, type=dataclasses.replace(feature_type, crs=trusted, srs_names=names))

    async def _trusted_crs(self, meta: _Collection) -> tuple[str, ...]:
        """The type's CRSs in which the server writes what the hub's own transformation gives.

        A server's reprojection can be far off (MapServer 8.0 on Debian 12 writes EPSG:4258
        some 114 m away from RD, with a datum shift left out); one feature is read in each CRS
        and compared, and a CRS that disagrees is left to the hub to produce.
        """
        storage = meta.type.storage_crs
        reference = await self._first_feature(meta, storage)
        if reference is None or not reference.get("geometry"):
            return meta.type.crs
        source = shapely.get_coordinates(shape(reference["geometry"]))
        trusted = [storage]
        others = await asyncio.gather(*(self._first_feature(meta, crs) for crs in meta.type.crs[1:]))
        for crs, other in zip(meta.type.crs[1:], others, strict=True):
            if other is None or other.get("id") != reference.get("id") or not other.get("geometry"):
                trusted.append(crs)  # nothing to compare: taken on trust
                continue
            got = shapely.get_coordinates(shape(other["geometry"]))
            try:
                xs, ys = transformer(storage, crs).transform(source[:, 0], source[:, 1])
                error = (
                    _metres_apart(np.column_stack([xs, ys]), got, crs)
                    if got.shape == source.shape
                    else math.inf
                )
            except (UnsupportedQuery, ValueError):
                error = math.inf
            if error <= TRANSFORM_TOLERANCE_METRES:
                trusted.append(crs)
            else:
                LOG.warning(
                    "WFS source %s writes %s in %s %.3g m away from the hub's transformation; "
                    "the hub transforms into it itself", self.source_id, meta.type.name, crs, error,
                )  # fmt: skip
        return tuple(trusted)

    async def _first_feature(self, meta: _Collection, crs: str) -> Feature | None:
        params = {
            "REQUEST": "GetFeature", "TYPENAMES": meta.type.name, "COUNT": "1",
            "SRSNAME": meta.type.srs_name(crs),
        }  # fmt: skip
        try:
            root = await self._xml(await self._send(meta, params), pushed=True)
            page = await self._features(meta, root, crs, size=0)
        except ConnectorError as exc:
            LOG.info("WFS source %s: no feature of %s in %s (%s)", self.source_id, meta.id, crs, exc)
            return None
        return page.features[0] if page.features else None

    async def _load_schema(self, feature_type: _FeatureType) -> _Schema:
        """Properties and geometry of a type, from DescribeFeatureType (else from one feature)."""
        params = {"REQUEST": "DescribeFeatureType", "TYPENAMES": feature_type.name}
        response = await self._send(None, params, namespace_of=feature_type)
        try:
            root = await self._xml(response, pushed=False)
            schema = _read_schema(root, feature_type)
        except UpstreamInvalidResponse as exc:
            LOG.info("DescribeFeatureType of %s failed (%s); using a feature", feature_type.name, exc)
            schema = None
        if schema is None or (not schema.fields and schema.geometry is None):
            schema = await self._schema_from_feature(feature_type)
        return schema

    async def _schema_from_feature(self, feature_type: _FeatureType) -> _Schema:
        """What one feature shows when the server describes its type in a way not understood."""
        meta = _Collection("", feature_type, _Schema({}, None, None))
        params = {"REQUEST": "GetFeature", "TYPENAMES": feature_type.name, "COUNT": "1"}
        root = await self._xml(await self._send(meta, params), pushed=False)
        page = await self._features(meta, root, feature_type.storage_crs, size=0)
        if not page.features:
            return _Schema({}, None, None)
        feature = page.features[0]
        fields: dict[str, FieldType] = {
            name: "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "string"
            for name, value in (feature.get("properties") or {}).items()
        }
        geometry = feature.get("geometry")
        return _Schema(fields, None, geometry.get("type") if isinstance(geometry, dict) else None)

    async def _meta(self, collection: str) -> _Collection:
        """Planning facts for ``collection``, fetched once when ``describe`` has not run."""
        found = self._collections.get(collection)
        if found is not None:
            return found
        async with self._lock:
            found = self._collections.get(collection)
            if found is not None:
                return found
            service = await self._load_service()
            feature_type = self._wanted_types(service).get(collection)
            if feature_type is None:
                raise self._invalid(f"the source has no collection {collection!r}")
            meta = await self._load_collection(collection, feature_type)
            self._collections[collection] = meta
            return meta

    def _info(self, meta: _Collection, service: _Service) -> CollectionInfo:
        crs = list(meta.type.crs) if self.settings.server_transforms else [meta.type.storage_crs]
        if WGS84 in crs and CRS84 not in crs:
            crs.insert(crs.index(WGS84) + 1, CRS84)
        return CollectionInfo(
            id=meta.id,
            title=meta.type.title or meta.type.local_name,
            description=meta.type.abstract,
            fields=[FieldInfo(name=name, type=kind) for name, kind in meta.schema.fields.items()],
            storage_crs=meta.type.storage_crs,
            crs=crs,
            extent_crs84=meta.type.extent_crs84,
            geometry_type=meta.schema.geometry_type,
            capabilities=Capabilities(
                filter=service.filters.any,
                bbox=True,
                sort=False,
                datetime=False,
                crs=tuple(crs),
            ),
        )

    def _encoder(self, meta: _Collection, service: _Service) -> FesEncoder:
        storage = meta.type.storage_crs
        return FesEncoder(
            service.filters, meta.schema.fields, meta.schema.geometry, meta.type.srs_name(storage)
        )

    # -- query planning ----------------------------------------------------------------------

    def _plan(self, meta: _Collection, query: FeatureQuery) -> _Plan:
        service = self._service
        assert service is not None
        storage = meta.type.storage_crs
        encoder = self._encoder(meta, service)
        loose = meta.id in self._loose
        parts: list[tuple[str, Check | None]] = []
        local: list[Check] = []

        for name, expected in query.property_equals.items():
            kind = meta.schema.fields.get(name)
            test = None if kind is None else _equality_test(name, kind, expected)
            if kind is None or test is None:
                return _Plan({}, output=storage, ask=storage, empty=True)  # nothing can match
            try:
                parts.append((encoder.equals(name, _canonical(kind, expected)), test))
            except FesUnsupported:
                local.append(test)

        filter_part: str | None = None
        if query.filter is not None:
            try:
                moved = reproject_literals(query.filter, query.filter_crs, storage)
                filter_part = encoder.encode(moved)
            except FesUnsupported as exc:
                raise UnsupportedQuery(
                    f"the filter cannot be passed to the source: {exc}", source_id=self.source_id
                ) from exc
        if filter_part is not None:
            parts.insert(0, (filter_part, None))
        if len(parts) > 1 and not service.filters.logical:
            # The server cannot AND: it gets the filter (or the first equality), the rest is
            # matched here.
            local.extend(test for _, test in parts[1:] if test is not None)
            parts = parts[:1]

        params: dict[str, str] = {"REQUEST": "GetFeature", "TYPENAMES": meta.type.name}
        box_test: Check | None = None
        box_pushed = False
        if query.bbox is not None:
            box = query.bbox
            bounds = box.as_tuple() if box.crs == storage else _envelope_in(box, storage)
            if not parts:
                numbers = ",".join(_number(n) for n in bounds)
                params["BBOX"] = f"{numbers},{meta.type.srs_name(storage)}"
                box_pushed = True
            elif service.filters.logical:
                try:
                    parts.append((encoder.envelope(bounds), None))
                    box_pushed = True
                except FesUnsupported:
                    pass
            exact = box_pushed and box.crs == storage and not loose
            box_test = _box_test(box, storage)
        else:
            exact = False
        # With a spatial condition the features are asked in the storage CRS, the CRS of the
        # condition: MapServer 8 misplaces a BBOX given in one CRS when SRSNAME names another,
        # and the test here is exact (or, for a box in another CRS, within a millimetre) there.
        spatial = query.bbox is not None or (filter_part is not None and _is_spatial(filter_part))
        keep = spatial or not self.settings.server_transforms or not meta.type.offers(query.crs)
        output = storage if keep else query.crs

        verify = [test for _, test in parts if test is not None]
        if box_test is not None:
            (verify if exact else local).append(box_test)
        if loose:
            local.extend(verify)
            verify = []
        if parts:
            params["FILTER"] = wrap(conjunction([part for part, _ in parts]))
        ask = WGS84 if output == CRS84 and CRS84 not in meta.type.srs_names else output
        params["SRSNAME"] = meta.type.srs_name(ask)
        return _Plan(params, output=output, ask=ask, verify=verify, local=local)

    # -- reading pages -----------------------------------------------------------------------

    def _request_size(self, service: _Service) -> int:
        size = self.settings.page_size
        if service.count_default:
            size = min(size, service.count_default)
        return size

    async def _direct(self, meta: _Collection, plan: _Plan, query: FeatureQuery) -> FeaturePage | None:
        """The window the hub asked for, read at its offset; ``None`` when the server's answer
        fails a condition it was asked to apply."""
        service = self._service
        assert service is not None
        take = max(query.limit, 1)
        wanted = take + 1  # one more tells whether there are further features
        size = self._request_size(service)
        features: list[Feature] = []
        number_matched: int | None = None
        exhausted = False
        position = query.offset
        first = True
        while len(features) < wanted:
            window = await self._window(meta, plan, position, min(size, wanted - len(features)))
            if first:
                number_matched, first = window.number_matched, False
            if not all(check(f) for f in window.features for check in plan.verify):
                return None
            features.extend(window.features)
            position += len(window.features)
            if window.exhausted:
                exhausted = True
                break
        has_more = len(features) > take
        features = features[:take]
        if exhausted and number_matched is None and (features or query.offset == 0):
            number_matched = query.offset + len(features)
        if number_matched is None and query.count and self.settings.count_with_hits:
            number_matched = await self._hits(meta, plan)
        if number_matched is not None:
            has_more = query.offset + len(features) < number_matched
        return FeaturePage(features, crs=plan.output, number_matched=number_matched, has_more=has_more)

    async def _read_through(self, meta: _Collection, plan: _Plan, query: FeatureQuery) -> FeaturePage:
        """Read from the first feature on, matching here, until the window is known."""
        service = self._service
        assert service is not None
        size = self._request_size(service)
        checks = [*plan.verify, *plan.local]
        skip, take = query.offset, max(query.limit, 1)
        out: list[Feature] = []
        matched = 0
        position = 0
        one_more = False
        while True:
            window = await self._window(meta, plan, position, size)
            position += len(window.features)
            for feature in window.features:
                if not all(check(feature) for check in checks):
                    continue
                if matched >= skip:
                    if len(out) == take:
                        one_more = True
                        break
                    out.append(feature)
                matched += 1
            if one_more or window.exhausted:
                break
            if position >= MAX_READ_FEATURES:
                raise UnsupportedQuery(
                    "the source cannot answer this query itself and at most "
                    f"{MAX_READ_FEATURES} of its features are read to answer it; narrow it "
                    "with a bbox or a property",
                    source_id=self.source_id,
                )
        number_matched = None if one_more else matched
        return FeaturePage(out, crs=plan.output, number_matched=number_matched, has_more=one_more)

    async def _window(self, meta: _Collection, plan: _Plan, start: int, count: int) -> _Window:
        """Up to ``count`` features from server position ``start``, in the plan's output CRS."""
        service = self._service
        assert service is not None
        params = dict(plan.params)
        if service.paging:
            params["STARTINDEX"] = str(start)
            params["COUNT"] = str(count)
        else:
            params["COUNT"] = str(start + count)  # the server cannot skip: read and drop
        response = await self._send(meta, params)
        root = await self._xml(response, pushed=_pushes(plan))
        page = await self._features(meta, root, plan.ask, size=len(response.content))
        features = page.features if service.paging else page.features[start:]
        if page.crs is not None and page.crs != plan.ask:
            raise self._invalid(f"asked for features in {plan.ask}, the server wrote {page.crs}")
        if plan.output != plan.ask:
            for feature in features:
                _swap_axes(feature.get("geometry"))
        # A short page ends the features unless the server links a next one: some servers
        # cap COUNT without saying so in their capabilities.
        exhausted = not features or (len(features) < count and not page.has_next)
        return _Window(features, exhausted=exhausted, number_matched=page.number_matched)

    async def _hits(self, meta: _Collection, plan: _Plan) -> int | None:
        """numberMatched from a RESULTTYPE=hits request, when the server gives one.

        A client paging through a result asks the same count for every page: it is kept for a
        short while rather than asked again.
        """
        params = {k: v for k, v in plan.params.items() if k != "SRSNAME"}
        key = tuple(sorted(params.items()))
        now = time.monotonic()
        cached = self._counts.get(key)
        if cached is not None and now - cached[0] < COUNT_SECONDS:
            self._counts.move_to_end(key)
            return cached[1]
        params["RESULTTYPE"] = "hits"
        try:
            root = await self._xml(await self._send(meta, params), pushed=_pushes(plan))
        except ConnectorError as exc:
            LOG.info("WFS source %s gives no hits count: %s", self.source_id, exc)
            return None
        value = root.get("numberMatched") if local(root) == "FeatureCollection" else None
        count = int(value) if value is not None and value.isdigit() else None
        self._counts[key] = (now, count)
        while len(self._counts) > COUNT_QUERIES:
            self._counts.popitem(last=False)
        return count

    async def _features(
        self, meta: _Collection, root: Element, ask: str, *, size: int
    ) -> FeatureCollectionPage:
        """Parse a GetFeature answer (the large ones in a worker thread)."""
        if local(root) != "FeatureCollection":
            raise self._invalid(f"GetFeature answered {local(root) or 'no'} document")
        srs = read_srs_name(meta.type.srs_name(ask))
        try:
            if size > PARSE_OFF_LOOP_BYTES:
                return await asyncio.to_thread(_read_page, root, srs, meta.schema)
            return _read_page(root, srs, meta.schema)
        except GmlError as exc:
            raise self._invalid(f"the features cannot be read: {exc}") from exc

    def _in_crs(self, feature: Feature, got: str, wanted: str) -> Feature:
        """A feature in exactly the CRS the hub asked for."""
        geometry = feature.get("geometry")
        if got == wanted or not geometry:
            return feature
        if got == WGS84 and wanted == CRS84:
            _swap_axes(geometry)
            return feature
        try:
            feature["geometry"] = _transform_geometry(geometry, got, wanted)
        except (UnsupportedQuery, ValueError, TypeError) as exc:
            raise self._invalid(f"the feature cannot be read in {wanted}: {exc}") from exc
        return feature

    # -- HTTP --------------------------------------------------------------------------------

    async def _send(
        self,
        meta: _Collection | None,
        params: dict[str, str],
        *,
        namespace_of: _FeatureType | None = None,
    ) -> httpx.Response:
        """A KVP request, or an XML POST for a GetFeature too long for a URL."""
        full = {"SERVICE": "WFS", "VERSION": self.settings.version, **params}
        ns_type = namespace_of or (meta.type if meta is not None else None)
        if ns_type is not None and ns_type.namespace and ":" in ns_type.name:
            # Some servers need the namespace of a prefixed type name spelled out.
            prefix = ns_type.name.split(":", 1)[0]
            full["NAMESPACES"] = f"xmlns({prefix},{ns_type.namespace})"
        url = httpx.URL(self.settings.url).copy_merge_params({**full, **self._auth_params()})
        if len(str(url)) <= MAX_GET_URL or params.get("REQUEST") != "GetFeature" or meta is None:
            return await self._http("GET", url)
        service = self._service
        if service is None or not service.xml_post or "BBOX" in params:
            raise UnsupportedQuery(
                "the filter is too long for a URL and the source takes no XML requests",
                source_id=self.source_id,
            )
        body = _get_feature_xml(meta.type, params, self.settings.version)
        post_url = httpx.URL(self.settings.url).copy_merge_params(self._auth_params())
        return await self._http("POST", post_url, body)

    async def _http(self, method: str, url: httpx.URL, body: bytes | None = None) -> httpx.Response:
        """Send with the source's timeout, following redirects on the source's own host only."""
        client = self._own_client or self.http
        if not self.settings.verify_tls and self._own_client is None:
            await self.open()
            client = self._own_client or self.http
        headers = {"Accept": ACCEPT, **self._auth_headers()}
        if body is not None:
            headers["Content-Type"] = "text/xml; charset=UTF-8"
        auth = self._basic_auth()
        return await send(
            client,
            method,
            url,
            source_id=self.source_id,
            seconds=self.settings.timeout,
            headers=headers,
            content=body,
            auth=auth,
        )

    async def _xml(self, response: httpx.Response, *, pushed: bool) -> Element:
        """The answer's root element, with the source's errors mapped onto the hub's."""
        status = response.status_code
        if status in {401, 403}:
            raise UpstreamUnavailable(
                f"the source refused access (HTTP {status}); check its credentials",
                source_id=self.source_id,
            )
        content = response.content
        try:
            if len(content) > PARSE_OFF_LOOP_BYTES:
                root = await asyncio.to_thread(parse_xml, content)
            else:
                root = parse_xml(content)
        except XmlError as exc:
            if status == 429 or status >= 500:
                raise UpstreamUnavailable(
                    f"the source answered HTTP {status}", source_id=self.source_id
                ) from exc
            if 400 <= status < 500 and pushed:
                raise UnsupportedQuery(
                    f"the source rejected the query (HTTP {status})", source_id=self.source_id
                ) from exc
            kind = "HTML" if b"<html" in content[:512].lower() else "not XML"
            raise self._invalid(f"the source answered HTTP {status}, {kind}: {exc}") from exc
        exceptions = read_exception_report(root)
        if exceptions is not None:
            raise self._rejected(exceptions, status, pushed=pushed)
        if status == 429 or status >= 500:
            raise UpstreamUnavailable(f"the source answered HTTP {status}", source_id=self.source_id)
        if status >= 300:
            if pushed and 400 <= status < 500:
                raise UnsupportedQuery(
                    f"the source rejected the query (HTTP {status})", source_id=self.source_id
                )
            raise self._invalid(f"the source answered HTTP {status}")
        return root

    def _rejected(self, exceptions: list[OwsException], status: int, *, pushed: bool) -> ConnectorError:
        """The hub's error for an OWS exception report."""
        first = exceptions[0] if exceptions else OwsException("NoApplicableCode", "", "")
        message = f"{first.code}: {first.text}" if first.text else first.code
        locator = first.locator.lower()
        if first.code in _SERVER_CODES or status >= 500 or status == 429:
            return UpstreamUnavailable(f"the source failed: {message}", source_id=self.source_id)
        if locator in _TYPE_LOCATORS:
            # The type the capabilities listed is gone: the source changed, the query is fine.
            return self._invalid(f"the source no longer serves the feature type: {message}")
        if first.code in _CLIENT_CODES and pushed:
            return _Rejected(
                f"the source rejected the query: {message}",
                source_id=self.source_id,
                locator=locator,
            )
        return self._invalid(f"the source answered an exception: {message}")

    def _auth_headers(self) -> dict[str, str]:
        """The configured secret headers, read from the environment at call time."""
        return {h: self._secret(v, f"header {h}") for h, v in self.settings.headers_env.items()}

    def _auth_params(self) -> dict[str, str]:
        """The configured secret query parameters, read from the environment at call time."""
        return {p: self._secret(v, f"parameter {p}") for p, v in self.settings.params_env.items()}

    def _basic_auth(self) -> httpx.BasicAuth | None:
        if self.settings.username_env is None or self.settings.password_env is None:
            return None
        return httpx.BasicAuth(
            self._secret(self.settings.username_env, "the user name"),
            self._secret(self.settings.password_env, "the password"),
        )

    def _secret(self, variable: str, what: str) -> str:
        value = os.environ.get(variable)
        if not value:
            raise ConnectorConfigError(
                f"environment variable {variable} (for {what}) is not set", source_id=self.source_id
            )
        return value

    def _invalid(self, message: str) -> ConnectorError:
        return UpstreamInvalidResponse(message, source_id=self.source_id)


class _Rejected(UnsupportedQuery):
    """The source refused a request with an exception report; ``locator`` names the culprit."""

    def __init__(self, message: str, *, source_id: str, locator: str):
        super().__init__(message, source_id=source_id)
        self.locator = locator


# -- capabilities ------------------------------------------------------------------------------


def _read_capabilities(root: Element) -> _Service:
    """The parts of a WFS 2.0 capabilities document the connector uses."""
    constraints: dict[str, str] = {}
    xml_post = False
    filter_element = None
    types: dict[str, _FeatureType] = {}
    for section in children(root):
        name = local(section)
        if name == "OperationsMetadata":
            for node in section.iter():
                if local(node) == "Constraint" and _namespace(node) in OWS_NAMESPACES:
                    default = next((c for c in node.iter() if local(c) == "DefaultValue"), None)
                    if default is not None:
                        constraints[node.get("name", "")] = text_of(default)
                if local(node) == "Operation" and node.get("name") == "GetFeature":
                    xml_post = xml_post or any(local(n) == "Post" for n in node.iter())
        elif name == "FeatureTypeList":
            for element in children(section):
                if local(element) == "FeatureType":
                    feature_type = _read_feature_type(element)
                    if feature_type is not None:
                        types[feature_type.name] = feature_type
        elif name == "Filter_Capabilities":
            filter_element = section
    count_default = constraints.get("CountDefault", "")
    return _Service(
        paging=constraints.get("ImplementsResultPaging", "").upper() == "TRUE",
        count_default=int(count_default) if count_default.isdigit() and int(count_default) > 0 else None,
        xml_post=xml_post and constraints.get("XMLEncoding", "TRUE").upper() == "TRUE",
        filters=read_filter_capabilities(filter_element),
        types=types,
    )


def _namespace(element: Element) -> str | None:
    return qname(element)[0]


def _read_feature_type(element: Element) -> _FeatureType | None:
    values: dict[str, Element] = {}
    other: list[str] = []
    for child in children(element):
        name = local(child)
        if name == "OtherCRS" or name == "OtherSRS":
            other.append(text_of(child))
        else:
            values.setdefault(name, child)
    name_element = values.get("Name")
    if name_element is None or not text_of(name_element):
        return None
    type_name = text_of(name_element)
    prefix, _, local_name = type_name.rpartition(":")
    namespace = name_element.nsmap.get(prefix) if prefix else None
    srs_names: dict[str, str] = {}
    crs: list[str] = []
    for written in [text_of(values[n]) for n in ("DefaultCRS", "DefaultSRS") if n in values] + other:
        srs = read_srs_name(written)
        if srs is None or srs.uri in srs_names:
            continue
        srs_names[srs.uri] = written
        crs.append(srs.uri)
    if not crs:
        return None  # a type without a CRS the hub knows cannot be served
    return _FeatureType(
        name=type_name,
        namespace=namespace,
        local_name=local_name,
        title=text_of(values["Title"]) if "Title" in values else "",
        abstract=text_of(values["Abstract"]) if "Abstract" in values else "",
        storage_crs=crs[0],
        crs=tuple(crs),
        srs_names=srs_names,
        extent_crs84=_wgs84_box(values.get("WGS84BoundingBox")),
    )


def _wgs84_box(element: Element | None) -> tuple[float, float, float, float] | None:
    if element is None:
        return None
    corners = {local(c): text_of(c).split() for c in children(element)}
    try:
        minx, miny = (float(n) for n in corners["LowerCorner"][:2])
        maxx, maxy = (float(n) for n in corners["UpperCorner"][:2])
    except (KeyError, ValueError):
        return None
    if not all(math.isfinite(n) for n in (minx, miny, maxx, maxy)):
        return None
    # Servers derive this box from the corners of their extent in the data's CRS (MapServer
    # does), which cuts off the edges of a grid that is rotated against longitude/latitude, as
    # RD is. The hub skips a source whose extent misses a query's bbox: pad rather than lose.
    pad_x = (maxx - minx) * EXTENT_PADDING + EXTENT_MARGIN_DEGREES
    pad_y = (maxy - miny) * EXTENT_PADDING + EXTENT_MARGIN_DEGREES
    return (max(minx - pad_x, -180.0), max(miny - pad_y, -90.0),
            min(maxx + pad_x, 180.0), min(maxy + pad_y, 90.0))  # fmt: skip


def _find_type(service: _Service, name: str) -> _FeatureType | None:
    """A feature type by its written name, or by its local name when that is unambiguous."""
    if name in service.types:
        return service.types[name]
    by_local = [ft for ft in service.types.values() if ft.local_name == name.rpartition(":")[2]]
    return by_local[0] if len(by_local) == 1 else None


# -- schemas -----------------------------------------------------------------------------------


def _read_schema(root: Element, feature_type: _FeatureType) -> _Schema | None:
    """Fields and geometry property of ``feature_type`` from a DescribeFeatureType schema."""
    if local(root) != "schema":
        return None
    top = {(local(node), node.get("name")): node for node in children(root) if node.get("name")}
    element = top.get(("element", feature_type.local_name))
    if element is None:
        return None
    complex_type = next((c for c in children(element) if local(c) == "complexType"), None)
    if complex_type is None and element.get("type"):
        complex_type = top.get(("complexType", element.get("type").rpartition(":")[2]))
    if complex_type is None:
        return None
    fields: dict[str, FieldType] = {}
    geometry: str | None = None
    geometry_type: str | None = None
    for particle in _particles(complex_type, top, depth=0):
        name = particle.get("name") or (particle.get("ref") or "").rpartition(":")[2]
        if not name:
            continue
        kind, geometry_kind = _particle_type(particle)
        if kind == "geometry":
            if geometry is None:
                geometry, geometry_type = name, geometry_kind
            continue
        max_occurs = particle.get("maxOccurs", "1")
        fields[name] = (
            "array" if max_occurs == "unbounded" or (max_occurs.isdigit() and int(max_occurs) > 1) else kind
        )
    return _Schema(fields, geometry, geometry_type)


def _particles(
    node: Element, top: Mapping[tuple[str, str | None], Element], *, depth: int
) -> Iterable[Element]:
    """The property elements of a complex type, its bases' first (within this schema)."""
    if depth > 8:
        return
    for child in children(node):
        name = local(child)
        if name == "element":
            yield child
        elif name in {"complexContent", "sequence", "all", "choice"}:
            yield from _particles(child, top, depth=depth + 1)
        elif name in {"extension", "restriction"}:
            base = top.get(("complexType", (child.get("base") or "").rpartition(":")[2]))
            if base is not None and base is not node:
                yield from _particles(base, top, depth=depth + 1)
            yield from _particles(child, top, depth=depth + 1)


def _particle_type(particle: Element) -> tuple[FieldType | Literal["geometry"], str | None]:
    """A property's JSON type, or ``geometry`` with the GeoJSON type it holds."""
    written = particle.get("type")
    if written is None:
        inline = next(iter(children(particle)), None)
        if inline is not None and local(inline) == "simpleType":
            restriction = next((c for c in inline.iter() if local(c) == "restriction"), None)
            written = restriction.get("base") if restriction is not None else None
        elif inline is not None and local(inline) == "complexType":
            return "object", None
    local_type = (written or "string").rpartition(":")[2]
    if local_type in _GML_GEOMETRY_TYPES:
        return "geometry", _GML_GEOMETRY_TYPES[local_type]
    if local_type in _GML_TIME_TYPES:
        return "date-time", None
    return _XS_TYPES.get(local_type, "string"), None


# -- helpers -----------------------------------------------------------------------------------


def _read_page(root: Element, srs: SrsName | None, schema: _Schema) -> FeatureCollectionPage:
    return read_feature_collection(
        root, default_srs=srs, geometry_property=schema.geometry, fields=schema.fields
    )


def _get_feature_xml(feature_type: _FeatureType, params: Mapping[str, str], version: str) -> bytes:
    """A GetFeature request in the XML encoding, for filters too long for a URL."""
    attributes = [f'service="WFS" version={quoteattr(version)}']
    for key, attribute in (("STARTINDEX", "startIndex"), ("COUNT", "count"), ("RESULTTYPE", "resultType")):
        if key in params:
            attributes.append(f"{attribute}={quoteattr(params[key])}")
    query = [f"typeNames={quoteattr(feature_type.name)}"]
    if "SRSNAME" in params:
        query.append(f"srsName={quoteattr(params['SRSNAME'])}")
    if feature_type.namespace and ":" in feature_type.name:
        prefix = feature_type.name.split(":", 1)[0]
        query.append(f"xmlns:{prefix}={quoteattr(feature_type.namespace)}")
    filter_xml = params.get("FILTER", "")
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<wfs:GetFeature xmlns:wfs="{WFS20}" xmlns:fes="{FES20}" xmlns:gml="{GML32}" '
        f"{' '.join(attributes)}><wfs:Query {' '.join(query)}>{filter_xml}</wfs:Query>"
        "</wfs:GetFeature>"
    )
    return document.encode("utf-8")


def _metres_apart(expected: npt.NDArray[np.float64], got: npt.NDArray[np.float64], crs: str) -> float:
    """The largest distance between two position arrays in ``crs``, in metres (roughly, for
    degrees: what matters is whether it is centimetres or tens of metres)."""
    delta = np.abs(expected[:, :2] - got[:, :2])
    if crs_for(crs).is_geographic:
        delta = delta * 111_320.0
    return float(np.hypot(delta[:, 0], delta[:, 1]).max()) if len(delta) else 0.0


def _is_spatial(predicate: str) -> bool:
    """Whether a FES predicate written by the encoder has a spatial operator."""
    return "<fes:Intersects>" in predicate or "<fes:BBOX>" in predicate


def _pushes(plan: _Plan) -> bool:
    """Whether a request carries conditions the server may refuse (rather than just a page)."""
    return "FILTER" in plan.params or "BBOX" in plan.params


def _number(value: float) -> str:
    return repr(float(value))


def _canonical(kind: FieldType, expected: str) -> str:
    """The literal written for a query-string value compared with a property of ``kind``."""
    if kind == "integer":
        return str(int(expected))
    if kind == "number":
        return _number(float(expected))
    return expected


def _equality_test(name: str, kind: FieldType, expected: str) -> Check | None:
    """A check of ``properties[name] == expected`` as the other connectors compare query-string
    values: numbers as numbers, the rest as text; ``None`` when no value of the type can match."""
    if kind == "integer":
        if not _INTEGER.match(expected) or str(int(expected)) != expected.lstrip("+"):
            return None
        number = int(expected)
        return lambda f: _value(f, name) == number and not isinstance(_value(f, name), bool)
    if kind == "number":
        try:
            real = float(expected)
        except ValueError:
            return None
        if not math.isfinite(real):
            return None
        return lambda f: isinstance(_value(f, name), int | float) and _value(f, name) == real
    if kind == "boolean":
        if expected not in {"true", "false"}:
            return None
        truth = expected == "true"
        return lambda f: _value(f, name) is truth
    return lambda f: as_text(_value(f, name)) == expected


def _value(feature: Feature, name: str) -> Any:
    return (feature.get("properties") or {}).get(name)


def _envelope_in(box: BBox, target: str) -> tuple[float, float, float, float]:
    """Padded bounds in ``target`` of the box's densified outline: a superset of the box."""
    xs, ys = box_ring(*box.as_tuple(), box.crs, target)
    minx, miny, maxx, maxy = float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())
    pad_x, pad_y = (maxx - minx) * ENVELOPE_PADDING, (maxy - miny) * ENVELOPE_PADDING
    return (minx - pad_x, miny - pad_y, maxx + pad_x, maxy + pad_y)


def _box_test(box: BBox, crs: str) -> Check:
    """Whether a feature (with coordinates in ``crs``) intersects the box."""
    if crs == box.crs:
        polygon: BaseGeometry = shapely.box(*box.as_tuple())
    else:
        xs, ys = box_ring(*box.as_tuple(), box.crs, crs)
        polygon = shapely.Polygon(np.column_stack([xs, ys]))
    shapely.prepare(polygon)

    def test(feature: Feature) -> bool:
        geometry = feature.get("geometry")
        if not geometry:
            return False
        try:
            return bool(polygon.intersects(shape(geometry)))
        except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
            return False

    return test


def _swap_axes(geometry: Any) -> None:
    """Swap the first two numbers of every position of a GeoJSON geometry, in place."""
    if not isinstance(geometry, dict):
        return
    if geometry.get("type") == "GeometryCollection":
        for member in geometry.get("geometries") or ():
            _swap_axes(member)
        return
    stack: list[Any] = [geometry.get("coordinates")]
    while stack:
        node = stack.pop()
        if not isinstance(node, list) or not node:
            continue
        if isinstance(node[0], int | float):
            node[0], node[1] = node[1], node[0]
        else:
            stack.extend(node)


Coordinates = npt.NDArray[np.float64]


def _transform_geometry(geometry: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    project = transformer(source, target)

    def move(coordinates: Coordinates) -> Coordinates:
        xs, ys = project.transform(coordinates[:, 0], coordinates[:, 1])
        return np.column_stack([xs, ys])

    moved = shapely.transform(shape(geometry), move)
    return dict(mapping(moved))
