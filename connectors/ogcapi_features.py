"""Connector for any OGC API Features server: PDOK/GoKoala, pygeoapi, or a peer hub.

What the source can do is read from its conformance declaration and collection documents
(Part 1 core, Part 2 CRS, Part 3 filtering with CQL2); the rest is left to the hub. Paging
follows the source's own ``next`` links, so offset-based servers (pygeoapi) and cursor-based
ones (GoKoala, the server behind api.pdok.nl) both work; an offset on a cursor server is
reached by walking ``next`` links, and the place reached is remembered so a following page
does not walk from the start again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import numpy as np
import numpy.typing as npt
import orjson
import shapely
from pydantic import Field, field_validator
from pygeofilter import ast
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from connectors._cql2_encode import (
    BASIC,
    Encoded,
    Encoding,
    Unencodable,
    cql2_classes,
    encode,
    map_spatial_literals,
)
from connectors._crs import transformer
from connectors._http import origin, send
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
    Interval,
)
from connectors.errors import (
    ConnectorConfigError,
    ConnectorError,
    UnsupportedQuery,
    UpstreamInvalidResponse,
    UpstreamUnavailable,
)

LOG = logging.getLogger(__name__)

ACCEPT = "application/geo+json, application/json;q=0.9, application/schema+json;q=0.8"
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
FEATURES_FILTER_CLASSES = frozenset(
    {
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    }
)
RESERVED_PARAMETERS = frozenset(
    {
        "f", "limit", "offset", "cursor", "bbox", "bbox-crs", "crs", "datetime", "filter",
        "filter-lang", "filter-crs", "sortby", "properties", "skipGeometry", "resulttype", "q",
        "lang", "profile",
    }
)  # fmt: skip
_JSON_TYPES: dict[str, FieldType] = {
    "string": "string", "number": "number", "integer": "integer", "boolean": "boolean",
    "object": "object", "array": "array",
}  # fmt: skip
_GEOMETRY_TYPES = {
    name.lower(): name
    for name in (
        "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
        "GeometryCollection",
    )
}  # fmt: skip
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MAX_PAGES_PER_QUERY = 2_000
"""A source whose ``next`` links never end is cut off here rather than read forever."""
DESCRIBE_CONCURRENCY = 4
BOOKMARK_QUERIES = 64
BOOKMARKS_PER_QUERY = 256
BOOKMARK_SECONDS = 600.0
"""How long a remembered ``next`` link is reused; cursors of live sources may expire."""
ENVELOPE_PADDING = 1e-4
"""Relative padding of a transformed bbox envelope: an edge's extreme may fall between the
densified points, and features there must not be lost (the exact test follows anyway)."""

PagingStyle = Literal["offset", "cursor"]


class OgcApiFeaturesSettings(ConnectorSettings):
    """Connection settings of an OGC API Features source."""

    url: str = Field(description="Landing page of the OGC API (http or https)")
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP header name -> name of the environment variable holding its value",
    )
    api_key_env: str | None = Field(None, description="Name of the environment variable holding an API key")
    api_key_header: str = Field("X-Api-Key", description="Header that carries the API key")
    page_size: int = Field(
        1000, ge=1, le=10_000, description="Upstream page size when the source must be read through"
    )
    verify_tls: bool = Field(True, description="Verify the source's TLS certificate")

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("url must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("url must be the landing page, without query or fragment")
        return value.strip().rstrip("/")

    @field_validator("headers_env")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for header, variable in value.items():
            if not _HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            if not _ENV_NAME.match(variable):
                raise ValueError(f"{variable!r} is not an environment variable name")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @field_validator("api_key_header")
    @classmethod
    def _api_key_header_name(cls, value: str) -> str:
        if not _HEADER_NAME.match(value):
            raise ValueError(f"{value!r} is not an HTTP header name")
        return value


@dataclass(frozen=True, slots=True)
class _Collection:
    """What query planning needs to know about one upstream collection."""

    id: str
    crs: tuple[str, ...]
    storage_crs: str
    filter_encoding: Encoding | None
    cql2: frozenset[str]
    sort: bool


@dataclass(slots=True)
class _Page:
    """One upstream items response, validated."""

    features: list[Feature]
    crs: str
    next_url: str | None
    number_matched: int | None


class OgcApiFeaturesConnector(Connector):
    """Queries a remote OGC API Features server at request time."""

    kind: ClassVar[str] = "ogcapi-features"
    settings_model: ClassVar[type[ConnectorSettings]] = OgcApiFeaturesSettings
    settings: OgcApiFeaturesSettings

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient) -> None:
        super().__init__(settings, source_id=source_id, http=http)
        self._origin = origin(self.settings.url)
        self._own_client: httpx.AsyncClient | None = None
        self._conformance: frozenset[str] | None = None
        self._collections: dict[str, _Collection] = {}
        self._filter_rejected: set[str] = set()
        self._paging: dict[str, PagingStyle] = {}
        self._bookmarks: OrderedDict[tuple[Any, ...], tuple[float, dict[int, str]]] = OrderedDict()
        self._meta_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Check that the secrets are present, and make a client when TLS is not verified."""
        self._auth_headers()
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
        """Harvest the source's feature collections with fields, extents, CRSs and capabilities."""
        landing = await self._document(self.settings.url, "landing page")
        if not isinstance(landing, dict) or not isinstance(landing.get("links", []), list):
            raise self._invalid("the landing page is not an OGC API landing page")
        links = landing.get("links", [])
        conformance_url = self._link(links, ("conformance", OGC_REL + "conformance"))
        collections_url = self._link(links, ("data", OGC_REL + "data"))
        self._conformance = await self._load_conformance(conformance_url)
        document = await self._document(collections_url or f"{self.settings.url}/collections", "collections")
        if not isinstance(document, dict) or not isinstance(document.get("collections"), list):
            raise self._invalid("/collections has no list of collections")
        shared_crs = _crs_list(document.get("crs"), ())
        entries = [
            entry
            for entry in document["collections"]
            if isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and entry.get("itemType", "feature") == "feature"
        ]
        limiter = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

        async def one(entry: dict[str, Any]) -> CollectionInfo:
            async with limiter:
                return await self._describe_collection(entry, shared_crs)

        return list(await asyncio.gather(*(one(entry) for entry in entries)))

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of ``collection`` answering ``query``, pushed down as far as it goes."""
        meta = await self._meta(collection)
        params = self._query_parameters(meta, query)
        output = query.crs if query.crs in meta.crs else CRS84
        check = None
        if query.bbox is not None:
            check = self._plan_bbox(meta, query.bbox, params)
            if check is not None and _storage_usable(meta):
                # Test the box on the coordinates as stored: output in another CRS may be
                # rounded (GoKoala writes CRS84 with 5 decimals), which moves edge cases.
                output = meta.storage_crs
        if output != CRS84:
            params["crs"] = output
        try:
            return await self._collect(collection, params, query, check)
        except UnsupportedQuery:
            if "filter" in params and await self._answers_without_filter(collection, params):
                # The source declares CQL2 yet refuses our filter (GoKoala does): it is not
                # asked again, and the hub evaluates filters for it from now on.
                self._filter_rejected.add(collection)
            raise

    async def _answers_without_filter(self, collection: str, params: dict[str, str]) -> bool:
        """Whether the query the source refused succeeds once the filter is left out."""
        probe = {k: v for k, v in params.items() if k not in {"filter", "filter-lang", "filter-crs"}}
        try:
            response = await self._get(self._items_url(collection), {**probe, "limit": "1"})
        except ConnectorError:
            return False
        return response.is_success

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One feature by id in ``crs`` (``None`` when the source answers 404)."""
        meta = await self._meta(collection)
        params = {"crs": crs} if crs in meta.crs and crs != CRS84 else {}
        url = f"{self._items_url(collection)}/{quote(feature_id, safe='')}"
        response = await self._get(url, params)
        if response.status_code == 404:
            return None
        self._raise_for_status(response, pushed=True)
        body = self._json(response)
        if not _is_feature(body):
            raise self._invalid(f"{collection}/items/{feature_id} is not a GeoJSON Feature")
        feature: Feature = body
        feature.pop("links", None)
        got = _content_crs(response)
        if got != crs and feature.get("geometry"):
            # The caller gets exactly the CRS it asked for; the source could not produce it.
            try:
                feature["geometry"] = _transform_geometry(feature["geometry"], got, crs)
            except (UnsupportedQuery, ValueError, TypeError, AttributeError) as exc:
                raise self._invalid(f"the feature cannot be read in {got}: {exc}") from exc
        return feature

    def supports_filter(self, collection: str, expression: ast.Node) -> bool:
        """Whether the source declares CQL2 and this expression can be written for it."""
        meta = self._collections.get(collection)
        if meta is None or meta.filter_encoding is None or collection in self._filter_rejected:
            return False
        try:
            encoded = encode(expression, meta.filter_encoding)
        except Unencodable:
            return False
        return encoded.requires <= meta.cql2

    # -- describe ----------------------------------------------------------------------------

    async def _load_conformance(self, url: str | None) -> frozenset[str]:
        document = await self._document(url or f"{self.settings.url}/conformance", "conformance")
        classes = document.get("conformsTo") if isinstance(document, dict) else None
        if not isinstance(classes, list):
            raise self._invalid("/conformance has no conformsTo list")
        return frozenset(str(c).replace("https://", "http://", 1) for c in classes)

    async def _describe_collection(
        self, entry: dict[str, Any], shared_crs: tuple[str, ...]
    ) -> CollectionInfo:
        meta = self._remember_collection(entry, shared_crs)
        schema = await self._schema(meta.id, entry.get("links") or [])
        fields, roles = _fields_from_schema(schema)
        extent: dict[str, Any] = entry["extent"] if isinstance(entry.get("extent"), dict) else {}
        temporal = _temporal_extent(extent)
        geometry_type = roles.get("geometry_type") or _GEOMETRY_TYPES.get(
            str(entry.get("geometryType", "")).lower()
        )
        return CollectionInfo(
            id=meta.id,
            title=str(entry.get("title") or meta.id),
            description=str(entry.get("description") or ""),
            fields=fields,
            storage_crs=meta.storage_crs,
            crs=list(meta.crs),
            extent_crs84=_spatial_extent(extent),
            temporal_extent=temporal,
            time_field=roles.get("time_field"),
            id_field=roles.get("id_field"),
            geometry_type=geometry_type,
            capabilities=Capabilities(
                filter=meta.filter_encoding is not None,
                bbox=True,
                sort=meta.sort,
                datetime=temporal is not None,
                crs=meta.crs,
            ),
        )

    def _remember_collection(self, entry: dict[str, Any], shared_crs: tuple[str, ...]) -> _Collection:
        """Keep what query planning needs from a collection document."""
        conformance = self._conformance or frozenset()
        cql2 = cql2_classes(conformance)
        encoding: Encoding | None = None
        if "cql2-text" in cql2:
            encoding = "cql2-text"
        elif "cql2-json" in cql2:
            encoding = "cql2-json"
        # Part 3 says a server declares `filter`; pygeoapi 0.24 accepts `filter` but declares
        # only the CQL2 classes. Either way the hub checks what comes back.
        if encoding is not None and not (FEATURES_FILTER_CLASSES & conformance or BASIC in cql2):
            encoding = None
        sort = any(
            uri.endswith("/conf/sorting") and ("/ogcapi-records-" in uri or "/ogcapi-features-" in uri)
            for uri in conformance
        )
        storage = _normalise_crs(str(entry.get("storageCrs") or CRS84))
        crs = _crs_list(entry.get("crs"), shared_crs) or (CRS84,)
        meta = _Collection(str(entry["id"]), crs, storage, encoding, cql2, sort)
        self._collections[meta.id] = meta
        return meta

    async def _schema(self, collection: str, links: list[Any]) -> dict[str, Any]:
        """The collection's queryables, else its schema, else the properties of a first item."""
        base = f"{self.settings.url}/collections/{quote(collection, safe='')}"
        candidates = [
            self._link(links, (OGC_REL + "queryables", "queryables")) or f"{base}/queryables",
            self._link(links, (OGC_REL + "schema", "describedby")) or f"{base}/schema",
        ]
        for url in candidates:
            response = await self._get(url, {})
            if response.status_code != 200:
                continue
            try:
                schema = response.json()
            except ValueError:
                continue
            if (
                isinstance(schema, dict)
                and isinstance(schema.get("properties"), dict)
                and any(not _is_geometry_schema(v) for v in schema["properties"].values())
            ):
                return schema
        response = await self._get(self._items_url(collection), {"limit": "1"})
        if response.status_code != 200:
            return {}
        try:
            body = response.json()
        except ValueError:
            return {}
        features = body.get("features") if isinstance(body, dict) else None
        if not features or not isinstance(features[0], dict):
            return {}
        properties = features[0].get("properties") or {}
        return {"properties": {k: {"type": _json_type_of(v)} for k, v in properties.items()}}

    async def _meta(self, collection: str) -> _Collection:
        """Planning facts for ``collection``, fetched once when ``describe`` has not run."""
        found = self._collections.get(collection)
        if found is not None:
            return found
        async with self._meta_lock:
            found = self._collections.get(collection)
            if found is not None:
                return found
            if self._conformance is None:
                self._conformance = await self._load_conformance(None)
            url = f"{self.settings.url}/collections/{quote(collection, safe='')}"
            response = await self._get(url, {})
            if response.status_code == 404:
                raise self._invalid(f"the source has no collection {collection!r}")
            self._raise_for_status(response, pushed=False)
            entry = self._json(response)
            if not isinstance(entry, dict):
                raise self._invalid(f"/collections/{collection} is not a collection document")
            entry.setdefault("id", collection)
            return self._remember_collection(entry, ())

    # -- query planning ----------------------------------------------------------------------

    def _query_parameters(self, meta: _Collection, query: FeatureQuery) -> dict[str, str]:
        params: dict[str, str] = {}
        for name, value in query.property_equals.items():
            if name in RESERVED_PARAMETERS:
                raise UnsupportedQuery(
                    f"property {name!r} has the name of a query parameter and cannot be "
                    "filtered on at this source",
                    source_id=self.source_id,
                )
            params[name] = value
        if query.datetime is not None:
            params["datetime"] = _interval_text(query.datetime)
        if query.filter is not None:
            params.update(self._filter_parameters(meta, query))
        if query.sortby:
            if not meta.sort:
                raise UnsupportedQuery("this source cannot sort", source_id=self.source_id)
            params["sortby"] = ",".join(
                key.property if key.ascending else f"-{key.property}" for key in query.sortby
            )
        return params

    def _filter_parameters(self, meta: _Collection, query: FeatureQuery) -> dict[str, str]:
        assert query.filter is not None
        if meta.filter_encoding is None or meta.id in self._filter_rejected:
            raise UnsupportedQuery("this source does not filter", source_id=self.source_id)
        expression = query.filter
        filter_crs = query.filter_crs
        encoded = self._encode(meta, expression)
        if encoded.spatial_literals and filter_crs != CRS84 and filter_crs not in meta.crs:
            # The source cannot read literals in this CRS: give them in CRS84 instead, with
            # their edges densified first so that they keep their shape.
            expression = map_spatial_literals(
                expression, lambda geometry: _reproject_literal(geometry, filter_crs, CRS84)
            )
            filter_crs = CRS84
            encoded = self._encode(meta, expression)
        params = {"filter": encoded.as_parameter()}
        if meta.filter_encoding != "cql2-text":
            # cql2-text is the default; GoKoala refuses `filter-lang` as an unknown parameter.
            params["filter-lang"] = meta.filter_encoding
        if encoded.spatial_literals and filter_crs != CRS84:
            params["filter-crs"] = filter_crs
        return params

    def _encode(self, meta: _Collection, expression: Any) -> Encoded:
        assert meta.filter_encoding is not None
        try:
            encoded = encode(expression, meta.filter_encoding)
        except Unencodable as exc:
            raise UnsupportedQuery(
                f"filter cannot be passed to the source: {exc}", source_id=self.source_id
            ) from exc
        missing = encoded.requires - meta.cql2
        if missing:
            raise UnsupportedQuery(
                f"the source does not declare CQL2 {', '.join(sorted(missing))}",
                source_id=self.source_id,
            )
        return encoded

    def _plan_bbox(
        self, meta: _Collection, box: BBox, params: dict[str, str]
    ) -> Callable[[list[Feature], str], list[Feature]] | None:
        """Push ``box`` down; return the exact check to run on what comes back, if needed."""
        storage_usable = _storage_usable(meta)
        if box.crs == meta.storage_crs and storage_usable:
            # The source tests the box in its own CRS, untransformed: the answer is exact.
            params["bbox"] = _number_list(box.as_tuple())
            if box.crs != CRS84:
                params["bbox-crs"] = box.crs
            return None
        # Servers transform a box by its corners (pygeoapi does), which loses features near
        # curved edges. Instead ask for the densified envelope in the storage CRS (or CRS84),
        # a superset, and test each returned feature against the real box here.
        target = meta.storage_crs if storage_usable else CRS84
        envelope = _densified_envelope(box, target)
        params["bbox"] = _number_list(envelope)
        if target != CRS84:
            params["bbox-crs"] = target
        polygon = shapely.box(*box.as_tuple())
        shapely.prepare(polygon)

        def inside(features: list[Feature], crs: str) -> list[Feature]:
            try:
                return [f for f in features if _intersects(f.get("geometry"), crs, box.crs, polygon)]
            except UnsupportedQuery as exc:
                raise self._invalid(f"the source answered in an unknown CRS {crs!r}") from exc

        return inside

    # -- paging ------------------------------------------------------------------------------

    async def _collect(
        self,
        collection: str,
        params: dict[str, str],
        query: FeatureQuery,
        check: Callable[[list[Feature], str], list[Feature]] | None,
    ) -> FeaturePage:
        """Read upstream pages until the requested window (and one feature more) is known."""
        skip, take = query.offset, max(query.limit, 1)
        style = self._paging.get(collection)
        items_url = self._items_url(collection)
        direct = check is None and (skip == 0 or style == "offset")
        key = (collection, tuple(sorted(params.items())), check is not None)

        matched = 0  # matching features before the current page (skipped or taken)
        resumed = False
        if direct:
            first_limit = min(take, self.settings.page_size)
            request: tuple[str, dict[str, str] | None] = (
                items_url,
                {**params, "limit": str(first_limit), **({"offset": str(skip)} if skip else {})},
            )
            to_skip = 0
            matched = skip
        else:
            wanted = skip + take + 1
            if check is not None:
                # Some features of the envelope fall outside the box: ask for more than needed.
                wanted = max(2 * wanted, 100)
            first_limit = min(self.settings.page_size, wanted)
            request = (items_url, {**params, "limit": str(first_limit)})
            to_skip = skip
            bookmark = self._bookmark(key, skip)
            if bookmark is not None:
                matched, url = bookmark
                request, to_skip, resumed = (url, None), skip - matched, True

        origin = matched
        out: list[Feature] = []
        crs: str | None = None
        number_matched: int | None = None
        one_more = exhausted = False
        raw_seen = matched if check is None else 0
        visited: set[str] = set()
        for page_number in range(MAX_PAGES_PER_QUERY):
            page = await self._items_page(collection, *request)
            if crs is None:
                crs = page.crs
            elif page.crs != crs:
                raise self._invalid("the CRS of the features changed between pages")
            if page_number == 0:
                if not resumed:
                    self._learn_paging(collection, page.next_url)
                if check is None:
                    number_matched = page.number_matched
            candidates = page.features if check is None else check(page.features, page.crs)
            for feature in candidates:
                if to_skip:
                    to_skip -= 1
                elif len(out) < take:
                    out.append(feature)
                else:
                    one_more = True
                    break
            if one_more:
                break
            matched += len(candidates)
            raw_seen += len(page.features)
            if page.next_url is None:
                exhausted = True
                break
            if check is not None or self._paging.get(collection) != "offset":
                # Where this page ends, the next one starts: a later query for the same
                # features at this offset resumes here instead of walking from the start.
                self._remember(key, matched, page.next_url)
            if check is None and len(out) >= take:
                break
            if page.next_url in visited:
                raise self._invalid("the source's next links go round in a circle")
            visited.add(page.next_url)
            request = (page.next_url, None)
            if check is None and to_skip and self._paging.get(collection) == "offset":
                # An offset server lets us jump over the rest of what we would skip.
                jump = {"limit": str(min(take, self.settings.page_size)),
                        "offset": str(raw_seen + to_skip)}  # fmt: skip
                request = (items_url, {**params, **jump})
                matched += to_skip
                raw_seen += to_skip
                to_skip = 0
        else:
            raise self._invalid(f"more than {MAX_PAGES_PER_QUERY} pages for one query")

        has_more: bool | None
        if one_more:
            has_more = True
        elif exhausted:
            has_more = False
            # Every match up to the end has been counted (a resumed walk starts at a bookmark
            # that knows how many came before it), so the total is known exactly, unless the
            # first page asked for already lay beyond the end.
            if (check is not None or number_matched is None) and (origin == 0 or matched > origin):
                number_matched = matched
        else:
            has_more = True
        if number_matched is not None and check is None:
            # A next link can be there at the very end (pygeoapi adds one to any full page).
            has_more = skip + len(out) < number_matched
        for feature in out:
            feature.pop("links", None)
        return FeaturePage(features=out, crs=crs or CRS84, number_matched=number_matched, has_more=has_more)

    async def _items_page(self, collection: str, url: str, params: dict[str, str] | None) -> _Page:
        response = await self._get(url, params)
        if response.status_code == 404:
            raise self._invalid(f"the source has no collection {collection!r}")
        self._raise_for_status(response, pushed=True)
        body = self._json(response)
        if not (
            isinstance(body, dict)
            and body.get("type") == "FeatureCollection"
            and isinstance(body.get("features"), list)
            and all(_is_feature(f) for f in body["features"])
        ):
            raise self._invalid(f"{collection}/items did not return a GeoJSON FeatureCollection")
        matched = body.get("numberMatched")
        next_url = self._next_url(body.get("links"), str(response.url), collection, params)
        return _Page(
            features=body["features"],
            crs=_content_crs(response),
            next_url=next_url,
            number_matched=matched if isinstance(matched, int) and matched >= 0 else None,
        )

    def _next_url(
        self, links: Any, page_url: str, collection: str, params: dict[str, str] | None
    ) -> str | None:
        """The absolute URL of the next page, on the source's own host, or ``None``."""
        href = None
        for link in links if isinstance(links, list) else []:
            if (
                isinstance(link, dict)
                and link.get("rel") == "next"
                and isinstance(link.get("href"), str)
                and "html" not in str(link.get("type", ""))
            ):
                href = link["href"]
                break
        if href is None:
            return None
        try:
            target = httpx.URL(page_url).join(href)
        except httpx.InvalidURL as exc:
            raise self._invalid("the source gave an unreadable next link") from exc
        if origin(str(target)) == self._origin:
            return str(target)
        # Credentials must not travel to another host. A peer behind a proxy may still name
        # its public address in links: for offset paging the next page can be asked here.
        query = dict(parse_qsl(target.query.decode()))
        if "offset" in query:
            next_params = {**(params or {}), **query}
            try:
                return str(httpx.URL(self._items_url(collection), params=next_params))
            except httpx.InvalidURL as exc:
                raise self._invalid("the source gave an unreadable next link") from exc
        raise self._invalid("the source's next link points to another host")

    def _learn_paging(self, collection: str, next_url: str | None) -> None:
        if next_url is None or collection in self._paging:
            return
        query = dict(parse_qsl(urlsplit(next_url).query))
        self._paging[collection] = "offset" if "offset" in query else "cursor"

    def _bookmark(self, key: tuple[Any, ...], skip: int) -> tuple[int, str] | None:
        """The furthest remembered page start at or before match ``skip``, if still fresh."""
        entry = self._bookmarks.get(key)
        if entry is None:
            return None
        stamp, marks = entry
        if time.monotonic() - stamp > BOOKMARK_SECONDS:
            del self._bookmarks[key]
            return None
        self._bookmarks.move_to_end(key)
        usable = [position for position in marks if position <= skip]
        if not usable:
            return None
        best = max(usable)
        return best, marks[best]

    def _remember(self, key: tuple[Any, ...], position: int, url: str) -> None:
        stamp, marks = self._bookmarks.get(key, (time.monotonic(), {}))
        if not marks:
            stamp = time.monotonic()
        marks[position] = url
        if len(marks) > BOOKMARKS_PER_QUERY:
            del marks[min(marks)]
        self._bookmarks[key] = (stamp, marks)
        self._bookmarks.move_to_end(key)
        while len(self._bookmarks) > BOOKMARK_QUERIES:
            self._bookmarks.popitem(last=False)

    # -- HTTP --------------------------------------------------------------------------------

    def _items_url(self, collection: str) -> str:
        return f"{self.settings.url}/collections/{quote(collection, safe='')}/items"

    def _link(self, links: Iterable[Any], rels: tuple[str, ...]) -> str | None:
        """The href of the first JSON link with one of ``rels`` on the source's own host."""
        for link in links:
            if not isinstance(link, dict) or link.get("rel") not in rels:
                continue
            href = link.get("href")
            kind = str(link.get("type", "application/json"))
            if isinstance(href, str) and "json" in kind:
                try:
                    target = str(httpx.URL(self.settings.url + "/").join(href))
                except httpx.InvalidURL:
                    continue
                if origin(target) == self._origin:
                    return target
        return None

    def _auth_headers(self) -> dict[str, str]:
        """The configured secret headers, read from the environment at call time."""
        headers: dict[str, str] = {}
        wanted = dict(self.settings.headers_env)
        if self.settings.api_key_env:
            wanted[self.settings.api_key_header] = self.settings.api_key_env
        for header, variable in wanted.items():
            value = os.environ.get(variable)
            if not value:
                raise ConnectorConfigError(
                    f"environment variable {variable} (for header {header}) is not set",
                    source_id=self.source_id,
                )
            headers[header] = value
        return headers

    async def _get(self, url: str, params: Mapping[str, str] | None) -> httpx.Response:
        """GET with the source's timeout, following redirects on the source's own host only."""
        client = self._own_client or self.http
        if not self.settings.verify_tls and self._own_client is None:
            await self.open()
            client = self._own_client or self.http
        headers = {"Accept": ACCEPT, **self._auth_headers()}
        return await send(
            client,
            "GET",
            url,
            source_id=self.source_id,
            seconds=self.settings.timeout,
            params=params,
            headers=headers,
        )

    def _raise_for_status(self, response: httpx.Response, *, pushed: bool) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        message = _upstream_message(response)
        if status == 400 and pushed:
            raise UnsupportedQuery(f"the source rejected the query: {message}", source_id=self.source_id)
        if status in {401, 403}:
            raise UpstreamUnavailable(
                f"the source refused access (HTTP {status}); check its credentials",
                source_id=self.source_id,
            )
        if status == 429 or status >= 500:
            raise UpstreamUnavailable(
                f"the source answered HTTP {status}: {message}", source_id=self.source_id
            )
        raise self._invalid(f"the source answered HTTP {status}: {message}")

    async def _document(self, url: str, what: str) -> Any:
        response = await self._get(url, {})
        if response.status_code == 404:
            raise self._invalid(f"the source has no {what} at {response.url.path}")
        self._raise_for_status(response, pushed=False)
        return self._json(response)

    def _json(self, response: httpx.Response) -> Any:
        if "html" in response.headers.get("content-type", ""):
            raise self._invalid("the source answered HTML, not JSON")
        try:
            return orjson.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._invalid("the source's answer is not JSON") from exc

    def _invalid(self, message: str) -> ConnectorError:
        return UpstreamInvalidResponse(message, source_id=self.source_id)


# -- helpers ---------------------------------------------------------------------------------


def _storage_usable(meta: _Collection) -> bool:
    """Whether the source accepts its storage CRS as ``crs`` / ``bbox-crs``."""
    return meta.storage_crs == CRS84 or meta.storage_crs in meta.crs


def _is_feature(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "Feature"


def _upstream_message(response: httpx.Response) -> str:
    """The source's own explanation of an error, short and on one line."""
    text = ""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        for key in ("detail", "description", "title", "message", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                text = body[key]
                break
    if not text:
        text = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return " ".join(text.split())[:300]


def _content_crs(response: httpx.Response) -> str:
    """The CRS the source says its coordinates are in (Part 2 ``Content-Crs``), else CRS84."""
    value = response.headers.get("content-crs", "").strip().strip("<>").strip()
    return _normalise_crs(value) if value else CRS84


def _normalise_crs(uri: str) -> str:
    uri = uri.strip()
    if uri.startswith("https://www.opengis.net/"):
        uri = "http://" + uri.removeprefix("https://")
    return uri


def _crs_list(value: Any, shared: tuple[str, ...]) -> tuple[str, ...]:
    """A collection's ``crs`` list, with Part 2's ``#/crs`` expanded to the server-wide list."""
    result: list[str] = []
    for item in value if isinstance(value, list) else []:
        if item == "#/crs":
            result.extend(shared)
        elif isinstance(item, str) and item:
            result.append(_normalise_crs(item))
    return tuple(dict.fromkeys(result))


def _interval_text(interval: Interval) -> str:
    """The ``datetime`` parameter: an instant, or ``start/end`` with ``..`` for open ends."""

    def moment(value: datetime | None) -> str:
        if value is None:
            return ".."
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")

    if interval.start is not None and interval.start == interval.end:
        return moment(interval.start)
    return f"{moment(interval.start)}/{moment(interval.end)}"


def _number_list(numbers: Iterable[float]) -> str:
    return ",".join(repr(float(n)) for n in numbers)


Coordinates = npt.NDArray[np.float64]


def _transform_coordinates(source: str, target: str) -> Callable[[Coordinates], Coordinates]:
    """A function for ``shapely.transform`` from ``source`` to ``target`` coordinates."""
    project = transformer(source, target)

    def apply(coordinates: Coordinates) -> Coordinates:
        xs, ys = project.transform(coordinates[:, 0], coordinates[:, 1])
        return np.column_stack([xs, ys])

    return apply


def _densified_envelope(box: BBox, target: str) -> tuple[float, float, float, float]:
    """The padded bounds in ``target`` of the box's densified outline."""
    ring = shapely.segmentize(shapely.box(*box.as_tuple()), _step(box.as_tuple()))
    moved = shapely.transform(ring, _transform_coordinates(box.crs, target))
    minx, miny, maxx, maxy = (float(n) for n in moved.bounds)
    if not all(math.isfinite(n) for n in (minx, miny, maxx, maxy)):
        raise UnsupportedQuery(f"the bbox cannot be expressed in {target}")
    pad_x, pad_y = (maxx - minx) * ENVELOPE_PADDING, (maxy - miny) * ENVELOPE_PADDING
    return (minx - pad_x, miny - pad_y, maxx + pad_x, maxy + pad_y)


def _step(bounds: tuple[float, float, float, float]) -> float:
    """A segment length that cuts the longer side of ``bounds`` into 64 pieces."""
    minx, miny, maxx, maxy = bounds
    return max(maxx - minx, maxy - miny, 1e-12) / 64


def _reproject_literal(geometry: BaseGeometry, source: str, target: str) -> BaseGeometry:
    """A filter literal in another CRS, densified first so that its edges keep their course."""
    minx, miny, maxx, maxy = (float(n) for n in geometry.bounds)
    dense = shapely.segmentize(geometry, _step((minx, miny, maxx, maxy)))
    return shapely.transform(dense, _transform_coordinates(source, target))


def _transform_geometry(geometry: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    moved = shapely.transform(shape(geometry), _transform_coordinates(source, target))
    return dict(mapping(moved))


def _intersects(geometry: dict[str, Any] | None, crs: str, box_crs: str, box: BaseGeometry) -> bool:
    """Whether a GeoJSON geometry in ``crs`` intersects ``box`` (in ``box_crs``)."""
    if not geometry:
        return False
    try:
        candidate = shape(geometry)
    except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
        return False
    if crs != box_crs:
        candidate = shapely.transform(candidate, _transform_coordinates(crs, box_crs))
    return bool(box.intersects(candidate))


# -- schema harvesting -----------------------------------------------------------------------


def _is_geometry_schema(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    return (
        schema.get("x-ogc-role") == "primary-geometry"
        or str(schema.get("format", "")).startswith("geometry-")
        or "geojson" in str(schema.get("$ref", "")).lower()
    )


def _fields_from_schema(schema: dict[str, Any]) -> tuple[list[FieldInfo], dict[str, str]]:
    """Fields and the property roles (id, time, geometry type) of a JSON Schema."""
    fields: list[FieldInfo] = []
    roles: dict[str, str] = {}
    properties = schema.get("properties")
    for name, spec in (properties if isinstance(properties, dict) else {}).items():
        if not isinstance(spec, dict):
            continue
        if _is_geometry_schema(spec):
            kind = str(spec.get("format", "")).removeprefix("geometry-")
            if kind in _GEOMETRY_TYPES:
                roles["geometry_type"] = _GEOMETRY_TYPES[kind]
            continue
        role = spec.get("x-ogc-role")
        if role == "id":
            roles["id_field"] = name
        elif role in {"primary-instant", "primary-interval-start"}:
            roles.setdefault("time_field", name)
        title = spec.get("title")
        fields.append(
            FieldInfo(
                name=name,
                type=_field_type(spec),
                title=title if isinstance(title, str) and title != name else None,
            )
        )
    return fields, roles


def _field_type(spec: dict[str, Any]) -> FieldType:
    """The field type of a property schema; nullable types (``["string", "null"]``) unwrapped."""
    declared = spec.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), "string")
    if declared == "string" and spec.get("format") in {"date", "date-time"}:
        return "date" if spec["format"] == "date" else "date-time"
    return _JSON_TYPES.get(str(declared), "string")


def _json_type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string"


def _spatial_extent(extent: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """The first spatial extent as CRS84 numbers, whatever CRS the source declares it in."""
    spatial = extent.get("spatial")
    if not isinstance(spatial, dict):
        return None
    boxes = spatial.get("bbox")
    if not (isinstance(boxes, list) and boxes and isinstance(boxes[0], list)):
        return None
    numbers = boxes[0]
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(isinstance(n, int | float) for n in numbers):
        return None
    declared = _normalise_crs(str(spatial.get("crs") or CRS84))
    if declared in {CRS84, "http://www.opengis.net/def/crs/OGC/0/CRS84h"}:
        return (float(numbers[0]), float(numbers[1]), float(numbers[2]), float(numbers[3]))
    # Some servers (GoKoala) declare EPSG:4326 here and give lat/lon: honour what they say.
    try:
        box = BBox(float(numbers[0]), float(numbers[1]), float(numbers[2]), float(numbers[3]), declared)
        envelope = _densified_envelope(box, CRS84)
    except UnsupportedQuery:
        return None
    return envelope


def _temporal_extent(extent: dict[str, Any]) -> tuple[str | None, str | None] | None:
    temporal = extent.get("temporal")
    if not isinstance(temporal, dict):
        return None
    intervals = temporal.get("interval")
    if not (isinstance(intervals, list) and intervals and isinstance(intervals[0], list)):
        return None
    first = intervals[0]
    if len(first) != 2:
        return None
    start, end = (str(v) if v is not None else None for v in first)
    if start is None and end is None:
        return None
    return (start, end)
