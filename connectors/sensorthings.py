"""Connector for the OGC SensorThings API 1.1 (and 1.0): a source's Things as one collection.

Each Thing is a feature:

- ``id`` is the Thing's ``@iot.id``;
- the geometry is the GeoJSON ``location`` of its Location (``encodingType``
  ``application/geo+json`` or ``application/vnd.geo+json``; other encodings such as a
  ``text/plain`` address are skipped). The standard makes a Thing's Locations its *current*
  ones (earlier ones are HistoricalLocations), so when it has several GeoJSON Locations they
  are all current and come as one GeometryCollection; without one the geometry is null;
- the properties are the Thing's own ``properties`` (flattened), ``name`` and
  ``description``, and per Datastream the latest Observation: ``<key>`` (its ``result``),
  ``<key>_time`` (its ``phenomenonTime``, the end of it when it is an interval) and
  ``<key>_unit`` (the Datastream's ``unitOfMeasurement.symbol``). ``<key>`` is the
  Datastream's ``name``, or with ``property_names: observed-property`` the name of its
  ObservedProperty, for servers that name Datastreams per Thing ("Thing 12 PM10") so that the
  same quantity would be a different property on every feature. Two Datastreams with one key:
  the later reading wins. ``phenomenonTime`` is the latest of the Thing's readings, the
  collection's temporal property. On a name clash the later of these wins.

Everything comes in one request per page, with the latest Observation per Datastream selected
by the server: ``$expand=Locations,Datastreams($expand=Observations($orderby=phenomenonTime
desc;$top=1))``.

``datetime`` selects Observations: each Datastream shows its latest Observation within the
interval (``$filter`` on ``phenomenonTime`` inside the expand), and Things without any
Observation in the interval are **left out**, as OGC API Features prescribes for features whose
temporal property lies outside ``datetime``. The server narrows the Things with
``Datastreams/Observations/phenomenonTime`` conditions; those hold for *some* Observation each,
not necessarily the same one, so the connector re-checks every Thing itself.

``bbox`` is pushed down as ``st_intersects(Locations/location, geography'POLYGON(...)')``. A
CRS84 box is sent as it is and the server's paging and ``@iot.count`` are used directly; every
returned feature is still checked against the box, and a server caught returning features
outside it (answering from a coarse index, or on the sphere) gets a padded box from then on.
A box in another CRS is sent as the padded envelope of its densified outline. Either way the
exact test is done here, in the box's own CRS.

Paging: ``$top``/``$skip`` with ``$orderby=id``, following ``@iot.nextLink`` (servers cap
``$top``); ``numberMatched`` is ``@iot.count`` from ``$count=true``. Where the connector
checks features itself (``datetime``, a padded box, a property other than ``name`` or
``description``) the server's offsets and counts no longer apply: pages are read from the
start, an offset is reached by counting, where a page ended is remembered so that the next
page of the same query resumes there, and ``numberMatched`` is known once the end is reached.

Not supported: CQL2 ``filter`` and ``sortby`` (the hub evaluates them), Datastreams beyond the
server's per-Thing expand limit (``Datastreams@iot.nextLink`` is not followed).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx
import numpy as np
import numpy.typing as npt
import orjson
import shapely
from pydantic import Field, field_validator
from shapely.geometry import mapping, shape

from connectors._crs import box_ring, transformer
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

GEOJSON_ENCODINGS = frozenset({"application/geo+json", "application/vnd.geo+json"})
_OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
RESULT_TYPES: dict[str, FieldType] = {
    _OM + "OM_Measurement": "number",
    _OM + "OM_CountObservation": "integer",
    _OM + "OM_TruthObservation": "boolean",
    _OM + "OM_CategoryObservation": "string",
}
"""Field type of ``result`` per ``observationType``; any other type is served as it comes."""
TIME_PROPERTY = "phenomenonTime"
LOCAL_PROPERTIES = frozenset({"name", "description"})
"""Feature properties that are plain string properties of the Thing and so can be filtered on
by the server exactly."""

MAX_PAGES_PER_QUERY = 2_000
"""A server whose next links never end is cut off here rather than read forever."""
BOX_PADDING = 1e-4
"""Relative padding of a box sent to the server when it is not the exact box (the exact test
follows here): edges between densified points and spherical edges must lose nothing."""
BOOKMARK_QUERIES = 64
BOOKMARKS_PER_QUERY = 256
BOOKMARK_SECONDS = 120.0
"""How long a remembered page start is reused: Things come and go on a live server."""


class SensorThingsSettings(ConnectorSettings):
    """Connection settings of a SensorThings API source."""

    url: str = Field(description="Service root, e.g. https://example.org/FROST-Server/v1.1")
    collection: str = Field(
        "things", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="Id of the collection of Things"
    )
    title: str | None = Field(None, description="Title of the collection")
    filter: str | None = Field(
        None,
        description="SensorThings $filter selecting the Things served, e.g. "
        "\"properties/type eq 'afvalbak'\"",
    )
    property_names: Literal["datastream", "observed-property"] = Field(
        "datastream", description="Name readings after their Datastream or their ObservedProperty"
    )
    page_size: int = Field(100, ge=1, le=1000, description="Things asked for per request")
    describe_limit: int = Field(
        10_000,
        ge=1,
        description="Things the probe reads to learn the properties; the spatial and temporal "
        "extent are only given when it reads them all",
    )

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("url must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("url must be the service root, without query or fragment")
        return value.strip().rstrip("/")

    @field_validator("filter")
    @classmethod
    def _some_filter(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("filter must not be empty; leave it out to serve every Thing")
        return value.strip() if value else None


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one query is asked of the server and what is checked here afterwards."""

    params: dict[str, str]
    checks: tuple[Callable[[Feature], bool], ...]
    interval: Interval | None
    walk: bool
    """Whether the checks may drop features, so that the server's offsets and counts do not apply."""
    key: tuple[Any, ...]


@dataclass(slots=True)
class _Page:
    """One entity-set response, validated."""

    things: list[dict[str, Any]]
    count: int | None
    next_url: str | None


class SensorThingsConnector(Connector):
    """Serves the Things of a SensorThings API service as features, at request time."""

    kind: ClassVar[str] = "sensorthings"
    settings_model: ClassVar[type[ConnectorSettings]] = SensorThingsSettings
    settings: SensorThingsSettings

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient) -> None:
        super().__init__(settings, source_id=source_id, http=http)
        self._origin = origin(self.settings.url)
        self._things_url = f"{self.settings.url}/Things"
        self._numeric_ids: bool | None = None
        self._box_untrusted = False
        self._bookmarks: OrderedDict[tuple[Any, ...], tuple[float, dict[int, int]]] = OrderedDict()

    # -- the connector contract --------------------------------------------------------------

    async def describe(self) -> list[CollectionInfo]:
        """Read the service root and the Things to learn properties, extents and id type."""
        root = await self._document(self.settings.url, None, "service root", pushed=False)
        sets = root.get("value") if isinstance(root, dict) else None
        if not isinstance(sets, list):
            raise self._invalid("the service root has no list of entity sets")
        things_url = next(
            (s.get("url") for s in sets if isinstance(s, dict) and s.get("name") == "Things"), None
        )
        if not isinstance(things_url, str):
            raise self._invalid("the service root offers no Things")
        if origin(things_url) == self._origin:
            self._things_url = things_url.rstrip("/")

        expand = (
            "Locations,Datastreams($expand=ObservedProperty)"
            if self._by_property
            else "Locations,Datastreams"
        )
        params = {"$expand": expand, "$orderby": "id asc", "$top": str(self.settings.page_size)}
        if self.settings.filter:
            params["$filter"] = self.settings.filter
        harvest = _Harvest(self)
        request: tuple[str, dict[str, str] | None] = (self._things_url, params)
        complete = False
        for _ in range(MAX_PAGES_PER_QUERY):
            try:
                page = await self._page(*request)
            except UnsupportedQuery as exc:
                if self.settings.filter:
                    raise ConnectorConfigError(
                        f"the source refused the configured filter: {exc.message}", source_id=self.source_id
                    ) from exc
                raise self._invalid(exc.message) from exc
            for thing in page.things:
                harvest.add(thing)
            if page.next_url is None:
                complete = True
                break
            if harvest.things >= self.settings.describe_limit:
                break
            request = (self._next(page.next_url, request[0]), None)
        self._numeric_ids = harvest.numeric_ids
        return [
            CollectionInfo(
                id=self.settings.collection,
                title=self.settings.title or "Things",
                description="Things of a SensorThings API service with their latest observations",
                fields=harvest.fields(),
                extent_crs84=harvest.extent() if complete else None,
                temporal_extent=harvest.temporal_extent() if complete else None,
                time_field=TIME_PROPERTY,
                geometry_type=harvest.geometry_type(),
                capabilities=Capabilities(filter=False, sort=False, datetime=True, crs=(CRS84,)),
            )
        ]

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of the Things answering ``query``, in CRS84."""
        self._check_collection(collection)
        if query.filter is not None:
            raise UnsupportedQuery("this source takes no CQL2 filter", source_id=self.source_id)
        if query.sortby:
            raise UnsupportedQuery("this source cannot sort", source_id=self.source_id)
        plan = self._plan(query)
        if not plan.walk:
            page = await self._direct(plan, query)
            if page is not None:
                return page
            # The server returned Things outside a box it was asked to apply: from now on it
            # gets a padded box and the connector does the exact test itself.
            self._box_untrusted = True
            plan = self._plan(query)
        return await self._walk(plan, query)

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One Thing by ``@iot.id`` (``None`` when absent or outside the configured filter)."""
        if collection != self.settings.collection:
            return None
        literal = self._id_literal(feature_id)
        if literal is None:
            return None
        condition = f"id eq {literal}"
        if self.settings.filter:
            # the steward's filter decides which Things are served, by id as well
            condition = f"{condition} and ({self.settings.filter})"
        params = {"$filter": condition, "$expand": self._expand(None), "$top": "1"}
        page = await self._page(self._things_url, params)
        if not page.things:
            return None
        feature = _feature(page.things[0], None, by_property=self._by_property)
        if feature is None:
            return None
        if crs != CRS84 and feature["geometry"] is not None:
            feature["geometry"] = _transform_geometry(feature["geometry"], CRS84, crs)
        return feature

    # -- planning ----------------------------------------------------------------------------

    @property
    def _by_property(self) -> bool:
        return self.settings.property_names == "observed-property"

    def _check_collection(self, collection: str) -> None:
        if collection != self.settings.collection:
            raise UnsupportedQuery(f"this source has no collection {collection!r}", source_id=self.source_id)

    def _plan(self, query: FeatureQuery) -> _Plan:
        conditions: list[str] = [f"({self.settings.filter})"] if self.settings.filter else []
        checks: list[Callable[[Feature], bool]] = []
        walk = False
        for name, expected in sorted(query.property_equals.items()):
            if name in LOCAL_PROPERTIES:
                conditions.append(f"{name} eq {_string_literal(expected)}")
            else:
                checks.append(_equals(name, expected))
                walk = True
        if query.bbox is not None:
            exact = query.bbox.crs == CRS84 and not self._box_untrusted
            polygon = _box_polygon(query.bbox) if exact else _padded_envelope(query.bbox)
            wkt = shapely.to_wkt(polygon, rounding_precision=-1)
            conditions.append(f"st_intersects(Locations/location, geography'{wkt}')")
            checks.append(_in_box(query.bbox))
            walk = walk or not exact
        if query.datetime is not None:
            during = _during("Datastreams/Observations/phenomenonTime", query.datetime)
            if during:
                conditions.append(during)
            walk = True
        params = {"$expand": self._expand(query.datetime), "$orderby": "id asc"}
        if conditions:
            params["$filter"] = " and ".join(conditions)
        key = (
            tuple(sorted(params.items())),
            query.bbox,
            tuple(sorted(query.property_equals.items())),
            query.datetime,
        )
        return _Plan(params, tuple(checks), query.datetime, walk, key)

    def _expand(self, interval: Interval | None) -> str:
        """The ``$expand`` that brings Locations and the latest Observation per Datastream."""
        options = ["$orderby=phenomenonTime desc", "$top=1"]
        during = _during("phenomenonTime", interval) if interval is not None else ""
        if during:
            options.insert(0, f"$filter={during}")
        observations = f"Observations({';'.join(options)})"
        nested = f"ObservedProperty,{observations}" if self._by_property else observations
        return f"Locations,Datastreams($expand={nested})"

    def _id_literal(self, feature_id: str) -> str | None:
        """``feature_id`` as a $filter literal of the server's id type; ``None`` if it cannot be one."""
        # only the id as the server writes it: "007" is not Thing 7
        canonical = feature_id.isascii() and feature_id.isdigit() and str(int(feature_id)) == feature_id
        if self._numeric_ids is True or (self._numeric_ids is None and canonical):
            return feature_id if canonical else None
        return _string_literal(feature_id)

    # -- paging ------------------------------------------------------------------------------

    async def _direct(self, plan: _Plan, query: FeatureQuery) -> FeaturePage | None:
        """A page by the server's own ``$skip`` and ``$count``; ``None`` if a check failed."""
        take = query.limit
        params = {**plan.params, "$top": str(min(take, self.settings.page_size))}
        if query.offset:
            params["$skip"] = str(query.offset)
        if query.count:
            params["$count"] = "true"
        request: tuple[str, dict[str, str] | None] = (self._things_url, params)
        features: list[Feature] = []
        number_matched: int | None = None
        more = False
        for number in range(MAX_PAGES_PER_QUERY):
            page = await self._page(*request)
            if number == 0:
                number_matched = page.count if query.count else None
            for thing in page.things:
                feature = _feature(thing, None, by_property=self._by_property)
                if feature is None or not all(check(feature) for check in plan.checks):
                    return None
                if len(features) < take:
                    features.append(feature)
                else:
                    more = True
            if more or page.next_url is None:
                break
            if len(features) >= take:
                more = True
                break
            request = (self._next(page.next_url, request[0]), None)
        else:
            raise self._invalid(f"more than {MAX_PAGES_PER_QUERY} pages for one query")
        if number_matched is not None:
            more = query.offset + len(features) < number_matched
        return FeaturePage(features=features, crs=CRS84, number_matched=number_matched, has_more=more)

    async def _walk(self, plan: _Plan, query: FeatureQuery) -> FeaturePage:
        """Read from the start (or a remembered page start), checking every Thing here."""
        matched, raw = self._bookmark(plan.key, query.offset)
        to_skip = query.offset - matched
        params = {**plan.params, "$top": str(self.settings.page_size)}
        if raw:
            params["$skip"] = str(raw)
        request: tuple[str, dict[str, str] | None] = (self._things_url, params)
        out: list[Feature] = []
        one_more = exhausted = False
        for _ in range(MAX_PAGES_PER_QUERY):
            if raw:
                # where this page starts: a later page of the same query resumes here
                self._remember(plan.key, matched, raw)
            page = await self._page(*request)
            for thing in page.things:
                feature = _feature(thing, plan.interval, by_property=self._by_property)
                if feature is None or not all(check(feature) for check in plan.checks):
                    continue
                if to_skip:
                    to_skip -= 1
                elif len(out) < query.limit:
                    out.append(feature)
                else:
                    one_more = True
                    break
                matched += 1
            if one_more:
                break
            raw += len(page.things)
            if page.next_url is None:
                exhausted = True
                break
            request = (self._next(page.next_url, request[0]), None)
        else:
            raise self._invalid(f"more than {MAX_PAGES_PER_QUERY} pages for one query")
        # Every match up to the end was counted, those before a bookmark included.
        number_matched = matched if exhausted else None
        return FeaturePage(features=out, crs=CRS84, number_matched=number_matched, has_more=one_more)

    def _bookmark(self, key: tuple[Any, ...], offset: int) -> tuple[int, int]:
        """The furthest remembered (matches before, raw position) at or before ``offset``."""
        entry = self._bookmarks.get(key)
        if entry is None:
            return 0, 0
        stamp, marks = entry
        if time.monotonic() - stamp > BOOKMARK_SECONDS:
            del self._bookmarks[key]
            return 0, 0
        self._bookmarks.move_to_end(key)
        usable = [m for m in marks if m <= offset]
        if not usable:
            return 0, 0
        best = max(usable)
        return best, marks[best]

    def _remember(self, key: tuple[Any, ...], matched: int, raw: int) -> None:
        stamp, marks = self._bookmarks.get(key, (time.monotonic(), {}))
        marks[matched] = raw
        if len(marks) > BOOKMARKS_PER_QUERY:
            del marks[min(marks)]
        self._bookmarks[key] = (stamp, marks)
        self._bookmarks.move_to_end(key)
        while len(self._bookmarks) > BOOKMARK_QUERIES:
            self._bookmarks.popitem(last=False)

    # -- HTTP --------------------------------------------------------------------------------

    async def _page(self, url: str, params: Mapping[str, str] | None) -> _Page:
        body = await self._document(url, params, "Things", pushed=True)
        things = body.get("value") if isinstance(body, dict) else None
        if not isinstance(things, list) or not all(
            isinstance(t, dict) and isinstance(t.get("@iot.id"), int | str) for t in things
        ):
            raise self._invalid("the Things response is not a list of entities with @iot.id")
        count = body.get("@iot.count")
        next_url = body.get("@iot.nextLink")
        if next_url is not None and not isinstance(next_url, str):
            raise self._invalid("@iot.nextLink is not a URL")
        return _Page(
            things=things,
            count=count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None,
            next_url=next_url or None,
        )

    def _next(self, href: str, current: str) -> str:
        """The next page's URL, on the source's own host."""
        try:
            target = httpx.URL(current).join(href)
        except httpx.InvalidURL as exc:
            raise self._invalid("the source gave an unreadable @iot.nextLink") from exc
        if origin(str(target)) == self._origin:
            return str(target)
        # A server behind a proxy may name another host in its links; its paging options are
        # asked of the address the steward registered instead, so no request leaves it.
        options = dict(parse_qsl(target.query.decode(), keep_blank_values=True))
        return str(httpx.URL(self._things_url, params=options))

    async def _document(self, url: str, params: Mapping[str, str] | None, what: str, *, pushed: bool) -> Any:
        response = await self._get(url, params)
        status = response.status_code
        if not 200 <= status < 300:
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
            raise self._invalid(f"the source answered HTTP {status} for its {what}: {message}")
        if "html" in response.headers.get("content-type", ""):
            raise self._invalid(f"the source answered HTML, not JSON, for its {what}")
        try:
            return orjson.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._invalid(f"the source's {what} is not JSON") from exc

    async def _get(self, url: str, params: Mapping[str, str] | None) -> httpx.Response:
        """GET with the source's timeout, following redirects on the source's own host only."""
        headers = {"Accept": "application/json"}
        return await send(
            self.http,
            "GET",
            url,
            source_id=self.source_id,
            seconds=self.settings.timeout,
            params=params,
            headers=headers,
        )

    def _invalid(self, message: str) -> ConnectorError:
        return UpstreamInvalidResponse(message, source_id=self.source_id)


# -- Things as features ------------------------------------------------------------------------


def _feature(thing: dict[str, Any], interval: Interval | None, *, by_property: bool) -> Feature | None:
    """A Thing as a feature; ``None`` when ``interval`` is given and no reading falls in it."""
    properties: dict[str, Any] = {}
    if isinstance(thing.get("properties"), dict):
        properties.update(thing["properties"])
    properties["name"] = thing.get("name")
    properties["description"] = thing.get("description")
    latest: datetime | None = None
    shown: dict[str, datetime | None] = {}
    for datastream in _entities(thing.get("Datastreams")):
        key = _datastream_key(datastream, by_property=by_property)
        if key is None:
            continue
        reading = _latest_reading(datastream, interval)
        moment = reading[1] if reading is not None else None
        if key in shown:
            earlier = shown[key]
            if moment is None or (earlier is not None and earlier >= moment):
                continue  # another Datastream under the same key has the later reading
        shown[key] = moment
        unit = datastream.get("unitOfMeasurement")
        properties[key] = reading[0] if reading is not None else None
        properties[f"{key}_time"] = _rfc3339(moment) if moment is not None else None
        properties[f"{key}_unit"] = unit.get("symbol") if isinstance(unit, dict) else None
        if moment is not None and (latest is None or moment > latest):
            latest = moment
    if interval is not None and latest is None:
        return None
    properties[TIME_PROPERTY] = _rfc3339(latest) if latest is not None else None
    return {
        "type": "Feature",
        "id": thing["@iot.id"],
        "geometry": _geometry(thing.get("Locations")),
        "properties": properties,
    }


def _entities(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _datastream_key(datastream: dict[str, Any], *, by_property: bool) -> str | None:
    if by_property:
        observed = datastream.get("ObservedProperty")
        if isinstance(observed, dict) and isinstance(observed.get("name"), str) and observed["name"]:
            return str(observed["name"])
    name = datastream.get("name")
    return name if isinstance(name, str) and name else None


def _latest_reading(datastream: dict[str, Any], interval: Interval | None) -> tuple[Any, datetime] | None:
    """The result and time of the latest listed Observation (within ``interval``)."""
    best: tuple[Any, datetime] | None = None
    for observation in _entities(datastream.get("Observations")):
        moment = _moment(observation.get("phenomenonTime"))
        if moment is None or (interval is not None and not _inside(moment, interval)):
            continue
        if best is None or moment > best[1]:
            best = (observation.get("result"), moment)
    return best


def _geometry(locations: Any) -> dict[str, Any] | None:
    """The GeoJSON geometry of a Thing's current Locations (several: a GeometryCollection)."""
    geometries = []
    for location in _entities(locations):
        encoding = str(location.get("encodingType", "")).split(";")[0].strip().lower()
        value = location.get("location")
        if encoding not in GEOJSON_ENCODINGS or not isinstance(value, dict):
            continue
        if value.get("type") == "Feature":  # some servers store a whole Feature
            value = value.get("geometry")
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            geometries.append(value)
    if not geometries:
        return None
    if len(geometries) == 1:
        return geometries[0]
    return {"type": "GeometryCollection", "geometries": geometries}


def _moment(value: Any) -> datetime | None:
    """A ``phenomenonTime`` as an aware instant; an interval counts as its end."""
    if not isinstance(value, str) or not value:
        return None
    text = value.rsplit("/", 1)[-1].strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _inside(moment: datetime, interval: Interval) -> bool:
    return (interval.start is None or moment >= interval.start) and (
        interval.end is None or moment <= interval.end
    )


# -- $filter pieces ----------------------------------------------------------------------------


def _string_literal(text: str) -> str:
    """A SensorThings (OData) string literal: quotes doubled inside single quotes."""
    return "'" + text.replace("'", "''") + "'"


def _time_literal(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return _rfc3339(aware)


def _during(path: str, interval: Interval) -> str:
    """``$filter`` conditions putting ``path`` inside ``interval`` (empty when unbounded)."""
    parts = []
    if interval.start is not None:
        parts.append(f"{path} ge {_time_literal(interval.start)}")
    if interval.end is not None:
        parts.append(f"{path} le {_time_literal(interval.end)}")
    return " and ".join(parts)


def _box_polygon(box: BBox) -> shapely.Polygon:
    return shapely.box(*box.as_tuple())


def _padded_envelope(box: BBox) -> shapely.Polygon:
    """A CRS84 rectangle surely holding ``box`` (given in any CRS)."""
    xs, ys = box_ring(*box.as_tuple(), box.crs, CRS84)
    minx, maxx, miny, maxy = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    if not all(math.isfinite(n) for n in (minx, miny, maxx, maxy)):
        raise UnsupportedQuery("the bbox cannot be expressed in CRS84")
    pad = max(maxx - minx, maxy - miny, 1e-9) * BOX_PADDING
    return shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)


Coordinates = npt.NDArray[np.float64]


def _transform_geometry(geometry: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    project = transformer(source, target)

    def move(coordinates: Coordinates) -> Coordinates:
        xs, ys = project.transform(coordinates[:, 0], coordinates[:, 1])
        return np.column_stack([xs, ys])

    return dict(mapping(shapely.transform(shape(geometry), move)))


def _in_box(box: BBox) -> Callable[[Feature], bool]:
    """The exact bbox test, in the box's own CRS."""
    polygon = _box_polygon(box)
    shapely.prepare(polygon)
    project = None if box.crs == CRS84 else transformer(CRS84, box.crs)

    def move(coordinates: Coordinates) -> Coordinates:
        assert project is not None
        xs, ys = project.transform(coordinates[:, 0], coordinates[:, 1])
        return np.column_stack([xs, ys])

    def inside(feature: Feature) -> bool:
        geometry = feature.get("geometry")
        if not geometry:
            return False
        try:
            candidate = shape(geometry)
        except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
            return False
        if project is not None:
            candidate = shapely.transform(candidate, move)
        return bool(polygon.intersects(candidate))

    return inside


def _equals(name: str, expected: str) -> Callable[[Feature], bool]:
    """Equality of a property with query-string text, as the other connectors compare."""

    def matches(feature: Feature) -> bool:
        return _as_text((feature.get("properties") or {}).get(name)) == expected

    return matches


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


# -- what the probe learns ---------------------------------------------------------------------


class _Harvest:
    """Fields, extents and the id type, gathered over the Things the probe reads."""

    def __init__(self, connector: SensorThingsConnector):
        self._by_property = connector.settings.property_names == "observed-property"
        self.things = 0
        self.numeric_ids: bool | None = None
        self._thing_fields: dict[str, FieldType] = {}
        self._readings: dict[str, tuple[FieldType, str | None]] = {}
        self._bounds: list[tuple[float, float, float, float]] = []
        self._types: set[str] = set()
        self._times: list[tuple[datetime, datetime]] = []

    def add(self, thing: dict[str, Any]) -> None:
        """Take one Thing (with its Locations and Datastreams) into account."""
        self.things += 1
        numeric = isinstance(thing["@iot.id"], int)
        self.numeric_ids = numeric if self.numeric_ids is None else (self.numeric_ids and numeric)
        if isinstance(thing.get("properties"), dict):
            for key, value in thing["properties"].items():
                if value is not None or key not in self._thing_fields:
                    self._thing_fields[key] = _json_type(value)
        geometry = _geometry(thing.get("Locations"))
        if geometry is not None:
            self._types.add(str(geometry.get("type")))
            try:
                bounds = shapely.bounds(shape(geometry))
            except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
                bounds = None
            if bounds is not None and np.all(np.isfinite(bounds)):
                minx, miny, maxx, maxy = (float(b) for b in bounds)
                self._bounds.append((minx, miny, maxx, maxy))
        for datastream in _entities(thing.get("Datastreams")):
            key = _datastream_key(datastream, by_property=self._by_property)
            if key is None:
                continue
            kind = RESULT_TYPES.get(str(datastream.get("observationType")), "string")
            unit = datastream.get("unitOfMeasurement")
            symbol = unit.get("symbol") if isinstance(unit, dict) else None
            self._readings.setdefault(key, (kind, symbol if isinstance(symbol, str) else None))
            span = datastream.get("phenomenonTime")
            if isinstance(span, str) and "/" in span:
                start, end = _moment(span.split("/", 1)[0]), _moment(span)
                if start is not None and end is not None:
                    self._times.append((start, end))

    def fields(self) -> list[FieldInfo]:
        """The properties every feature has, in the order a feature is assembled."""
        found: dict[str, FieldInfo] = {
            name: FieldInfo(name, kind) for name, kind in self._thing_fields.items()
        }
        found["name"] = FieldInfo("name", "string")
        found["description"] = FieldInfo("description", "string")
        for key, (kind, symbol) in self._readings.items():
            found[key] = FieldInfo(key, kind, title=f"{key} ({symbol})" if symbol else None)
            found[f"{key}_time"] = FieldInfo(f"{key}_time", "date-time", title=f"Time of {key}")
            found[f"{key}_unit"] = FieldInfo(f"{key}_unit", "string", title=f"Unit of {key}")
        found[TIME_PROPERTY] = FieldInfo(TIME_PROPERTY, "date-time", title="Time of the latest reading")
        return list(found.values())

    def extent(self) -> tuple[float, float, float, float] | None:
        """The CRS84 bounds of every Location read."""
        if not self._bounds:
            return None
        boxes = np.array(self._bounds)
        return (
            float(boxes[:, 0].min()),
            float(boxes[:, 1].min()),
            float(boxes[:, 2].max()),
            float(boxes[:, 3].max()),
        )

    def temporal_extent(self) -> tuple[str | None, str | None] | None:
        """The span of every Datastream's ``phenomenonTime``."""
        if not self._times:
            return None
        return (_rfc3339(min(t[0] for t in self._times)), _rfc3339(max(t[1] for t in self._times)))

    def geometry_type(self) -> str | None:
        """``Point`` when every Location read is a point."""
        return self._types.pop() if len(self._types) == 1 else None


def _json_type(value: Any) -> FieldType:
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


# -- helpers -----------------------------------------------------------------------------------


def _upstream_message(response: httpx.Response) -> str:
    """The server's own explanation of an error (FROST-Server: ``message``), on one line."""
    text = ""
    try:
        body = orjson.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        for key in ("message", "detail", "description", "error", "title"):
            if isinstance(body.get(key), str) and body[key].strip():
                text = body[key]
                break
    if not text:
        text = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return " ".join(text.split())[:300]
