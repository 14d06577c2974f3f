"""The 3D BAG API (api.3dbag.nl) as a source: BAG buildings with their 3D models, queried live.

The API's contract: ``/collections/pand/items`` takes ``bbox`` (RD numbers) with ``bbox-crs``,
``crs`` (only EPSG:7415), ``limit`` 1-100 and a **1-based** ``offset``, and answers 400 to any
other parameter. A page is ``{type,
numberMatched, numberReturned, metadata, features, links}`` where ``metadata`` is the
CityJSONSeq header (its ``transform`` decodes the vertices) and ``features`` are
CityJSONFeatures; ``/collections/pand/items/NL.IMBAG.Pand.<16 digits>`` answers ``{id,
metadata, feature, links}``.

What the hub gets: one collection, ``pand``, whose features are the buildings' footprints in
RD (EPSG:28992) with their attributes under release-independent names (``_cityjson``), and
each building's CityJSONFeature under the ``cityjson`` member for 3D output. Storage CRS is
RD rather than EPSG:7415 because what the hub serves as GeoJSON is the 2D footprint: its
coordinates are RD, the heights are attributes, and only the handed-over CityJSON is 3D
(in EPSG:7415, the only CRS the API speaks).

How queries map onto the API:

- ``offset``: the hub counts from 0, the API from 1.
- ``limit``: pages of at most ``page_size`` features; a larger hub page is several requests,
  at most ``WAVE`` at a time.
- ``bbox``: the API is sent the RD envelope of the (densified) box, with ``bbox-crs`` EPSG:7415
  (its horizontal axes are RD, and it is the one value the API accepts), and returns
  candidates; the connector keeps exactly those whose footprint intersects the box. ``property_equals`` is
  tested here too (the API cannot filter). Since that may drop candidates, such a page is
  found by walking the candidates from the first, and where each page ended is remembered for
  a few minutes so that the next page resumes there instead of walking again.
- ``identificatie=<id>``: one request to the item endpoint.
- no CQL2, sorting or ``datetime``: the API has none, the hub does them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import numpy as np
import orjson
import shapely
from pydantic import Field, field_validator
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

from connectors._cityjson import (
    BAG3D_FIELDS,
    BAG_PAND_ID,
    Transform,
    reference_system_uri,
    to_geojson,
)
from connectors._crs import box_ring
from connectors._http import send
from connectors._text import equals_all
from connectors.base import (
    CRS84,
    RD_NAP,
    RD_NEW,
    BBox,
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
    ConnectorError,
    UnsupportedQuery,
    UpstreamInvalidResponse,
    UpstreamUnavailable,
)
from connectors.file import _infer_type

COLLECTION = "pand"
ITEMS_PATH = "/collections/pand/items"
MAX_LIMIT = 100
"""The API's largest page."""
WAVE = 4
"""Requests one query keeps in flight at most: enough to hide latency, few enough to be polite."""
MAX_WALK = 10_000
"""Candidates one query may examine to find its page (a bbox or property equality walk)."""
MARK_SECONDS = 300.0
MARK_QUERIES = 128
MARKS_PER_QUERY = 64

NETHERLANDS_RD = (10_000.0, 306_250.0, 287_760.0, 623_690.0)
"""The area of the 3D BAG's tile grid in RD: every building lies inside it."""

Kept = Callable[[Feature, BaseGeometry | None], bool]


class ThreeDBagSettings(ConnectorSettings):
    """The 3D BAG API: where it is and how many features to ask for per request."""

    url: str = Field("https://api.3dbag.nl", description="Base URL of the 3D BAG API")
    page_size: int = Field(MAX_LIMIT, ge=1, le=MAX_LIMIT, description="Features per API request")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """An http(s) URL without the trailing slash."""
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        return value


@dataclass(frozen=True, slots=True)
class _Reading:
    """What a query needs decoded of each building: its footprint for an exact ``bbox`` test
    (``shape``) and as the feature's GeoJSON geometry (``geometry``); neither costs nothing."""

    shape: bool = True
    geometry: bool = True
    expected: int = 0
    """How many buildings the caller expects to match (``FeatureQuery.expected``)."""


FULL = _Reading()


@dataclass(slots=True)
class _Page:
    """One API page, decoded: (feature, footprint) pairs and the API's numberMatched."""

    features: list[tuple[Feature, BaseGeometry | None]]
    matched: int | None


@dataclass(slots=True)
class _Walk:
    """Where a walk over the API's candidates stands."""

    total: int | None = None
    """The API's numberMatched, once a page has said it."""
    position: int = 0
    """0-based index of the first candidate not fetched yet."""
    exhausted: bool = False
    """Whether the last candidate has been fetched."""


@dataclass(slots=True)
class _Marks:
    stamp: float
    positions: dict[int, int] = field(default_factory=dict)
    """Match count -> candidate index at which that many matches lie before it."""


class ThreeDBagConnector(Connector):
    """The 3D BAG API's ``pand`` collection: footprints in RD, CityJSON handed over for 3D."""

    kind: ClassVar[str] = "3dbag"
    settings_model: ClassVar[type[ConnectorSettings]] = ThreeDBagSettings

    settings: ThreeDBagSettings

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient):
        super().__init__(settings, source_id=source_id, http=http)
        self._marks: OrderedDict[tuple[Any, ...], _Marks] = OrderedDict()

    # -- the connector contract ------------------------------------------------------------

    async def describe(self) -> list[CollectionInfo]:
        """The ``pand`` collection; one small request proves the API keeps its contract."""
        page = await self._fetch({"crs": RD_NAP}, 0, 1)
        fields = [FieldInfo(name=name, type=kind) for name, kind in BAG3D_FIELDS.items()]
        known = set(BAG3D_FIELDS)
        for feature, _ in page.features:
            for name, value in feature["properties"].items():
                if name not in known:  # an attribute of a newer release
                    known.add(name)
                    fields.append(FieldInfo(name=name, type=_infer_type([value])))
        xs, ys = box_ring(*NETHERLANDS_RD, RD_NEW, CRS84)
        return [
            CollectionInfo(
                id=COLLECTION,
                title="3D BAG panden",
                description=(
                    "Buildings of the BAG with their 3D models from the 3D BAG: footprints in RD "
                    "with heights as attributes; CityJSON (EPSG:7415) for 3D output. "
                    "© 3D BAG by tudelft3d and 3DGI (CC BY 4.0)."
                ),
                fields=fields,
                storage_crs=RD_NEW,
                crs=[CRS84, RD_NEW],
                extent_crs84=(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())),
                id_field="identificatie",
                geometry_type="Polygon",
                capabilities=Capabilities(filter=False, bbox=True, sort=False, datetime=False, crs=(RD_NEW,)),
                cityjson=True,
            )
        ]

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of buildings, footprints in RD."""
        self._check_collection(collection)
        if query.filter is not None or query.sortby or query.datetime is not None:
            raise UnsupportedQuery(
                "the 3D BAG API cannot filter, sort or select by time", source_id=self.source_id
            )
        if query.limit <= 0:
            return FeaturePage(features=[], crs=RD_NEW)
        area = self._area(query.bbox) if query.bbox is not None else None
        params: dict[str, str] = {"crs": RD_NAP}
        if area is not None:
            params["bbox"] = area[0]
            params["bbox-crs"] = RD_NAP
        keep = _predicate(area[1] if area is not None else None, query.property_equals)
        reading = _Reading(shape=area is not None, geometry=not query.skip_geometry, expected=query.expected)
        wanted = query.property_equals.get("identificatie")
        if wanted is not None:
            return await self._one(wanted, keep, query, reading)
        if keep is None:
            return await self._direct(params, query.offset, query.limit, reading)
        key = (query.bbox, tuple(sorted(query.property_equals.items())))
        return await self._refined(params, keep, query.offset, query.limit, key, reading)

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One building by its ``NL.IMBAG.Pand.<16 digits>`` id, footprint in RD."""
        self._check_collection(collection)
        found = await self._item(feature_id)
        return None if found is None else found[0]

    # -- query plans ------------------------------------------------------------------------

    async def _direct(
        self, params: dict[str, str], offset: int, limit: int, reading: _Reading
    ) -> FeaturePage:
        """Every candidate is a match: the page is the API's page, shifted to 1-based."""
        walk = _Walk(position=offset)
        features: list[Feature] = []
        candidates = self._candidates(params, walk, lambda: limit - len(features), 0, reading)
        async with aclosing(candidates):
            async for _, feature, _ in candidates:
                features.append(feature)
        if walk.total is not None:
            has_more: bool | None = offset + len(features) < walk.total
        else:
            has_more = False if walk.exhausted else None
        return FeaturePage(features=features, crs=RD_NEW, number_matched=walk.total, has_more=has_more)

    async def _refined(
        self,
        params: dict[str, str],
        keep: Kept,
        offset: int,
        limit: int,
        key: tuple[Any, ...],
        reading: _Reading,
    ) -> FeaturePage:
        """Walk the candidates, keeping matches, from the last remembered position before ``offset``."""
        end = offset + limit
        seen, start = self._resume(key, offset)
        walk = _Walk(position=start)
        features: list[Feature] = []
        more: bool | None = None

        def needed() -> int:
            return max(end - seen, 0)

        # One candidate beyond the page, when it costs no extra request, tells whether more follow.
        candidates = self._candidates(params, walk, needed, 1, reading)
        async with aclosing(candidates):
            async for index, feature, shape in candidates:
                if index - start >= MAX_WALK:
                    raise UnsupportedQuery(
                        f"this page lies beyond the first {MAX_WALK} buildings the 3D BAG API "
                        "returns for the box; narrow the bbox",
                        source_id=self.source_id,
                    )
                if not keep(feature, shape):
                    continue
                if seen == end:
                    more = True
                    self._remember(key, end, index)
                    break
                if seen >= offset:
                    features.append(feature)
                seen += 1
        if more is None:
            if walk.exhausted:
                more = False
            elif seen == end:
                self._remember(key, end, walk.position)
        number_matched = seen if walk.exhausted and not more else None
        return FeaturePage(features=features, crs=RD_NEW, number_matched=number_matched, has_more=more)

    async def _one(
        self, wanted: str, keep: Kept | None, query: FeatureQuery, reading: _Reading
    ) -> FeaturePage:
        """``identificatie=<id>``: the item endpoint answers it with one request."""
        found = await self._item(wanted, reading) if BAG_PAND_ID.match(wanted) else None
        matches = found is not None and (keep is None or keep(*found))
        features = [found[0]] if found is not None and matches and query.offset == 0 else []
        return FeaturePage(features=features, crs=RD_NEW, number_matched=1 if matches else 0, has_more=False)

    async def _candidates(
        self,
        params: dict[str, str],
        walk: _Walk,
        needed: Callable[[], int],
        lookahead: int,
        reading: _Reading,
    ) -> AsyncGenerator[tuple[int, Feature, BaseGeometry | None]]:
        """The API's features from ``walk.position`` on, fetched in concurrent waves.

        Before each wave ``needed()`` says how many more candidates the caller needs at least.
        Until the API has said how many candidates there are, more requests would risk asking
        past the end: the first wave is a single request, unless the caller expects more
        matches than one page holds (see :func:`_first_wave`).
        """
        size = self.settings.page_size
        first_wave = _first_wave(reading.expected, size)
        while not walk.exhausted:
            want = needed()
            if want <= 0:
                return
            if lookahead and want % size:
                want += lookahead
            if walk.total is not None:
                want = min(want, walk.total - walk.position)
                if want <= 0:
                    walk.exhausted = True
                    return
            chunks: list[tuple[int, int]] = []
            start = walk.position
            while start < walk.position + want and len(chunks) < (first_wave if walk.total is None else WAVE):
                count = min(size, walk.position + want - start)
                chunks.append((start, count))
                start += count
            pages = await self._wave(params, chunks, reading)
            for (first, count), page in zip(chunks, pages, strict=True):
                if page.matched is not None:
                    walk.total = page.matched
                walk.position = first + len(page.features)
                if len(page.features) < count or (walk.total is not None and walk.position >= walk.total):
                    walk.exhausted = True
                for i, (feature, shape) in enumerate(page.features):
                    yield first + i, feature, shape
                if walk.exhausted:
                    return

    async def _wave(
        self, params: dict[str, str], chunks: list[tuple[int, int]], reading: _Reading
    ) -> list[_Page]:
        """Fetch several pages at once; when one fails the others are cancelled, not orphaned."""
        tasks = [asyncio.ensure_future(self._fetch(params, first, count, reading)) for first, count in chunks]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # -- remembered positions -----------------------------------------------------------------

    def _resume(self, key: tuple[Any, ...], offset: int) -> tuple[int, int]:
        """(matches before, candidate index) of the furthest fresh mark at or before ``offset``."""
        marks = self._marks.get(key)
        if marks is None:
            return 0, 0
        if time.monotonic() - marks.stamp > MARK_SECONDS:
            del self._marks[key]
            return 0, 0
        self._marks.move_to_end(key)
        usable = [count for count in marks.positions if count <= offset]
        if not usable:
            return 0, 0
        best = max(usable)
        return best, marks.positions[best]

    def _remember(self, key: tuple[Any, ...], count: int, position: int) -> None:
        marks = self._marks.get(key)
        if marks is None or time.monotonic() - marks.stamp > MARK_SECONDS:
            marks = _Marks(stamp=time.monotonic())
        marks.positions[count] = position
        if len(marks.positions) > MARKS_PER_QUERY:
            del marks.positions[min(marks.positions)]
        self._marks[key] = marks
        self._marks.move_to_end(key)
        while len(self._marks) > MARK_QUERIES:
            self._marks.popitem(last=False)

    # -- requests -----------------------------------------------------------------------------

    def _check_collection(self, collection: str) -> None:
        if collection != COLLECTION:
            raise UnsupportedQuery(f"no collection {collection!r}", source_id=self.source_id)

    def _area(self, bbox: BBox) -> tuple[str, shapely.Polygon]:
        """The API's ``bbox`` value (RD, rounded outward to the millimetre) and the exact area."""
        try:
            xs, ys = box_ring(*bbox.as_tuple(), bbox.crs, RD_NEW)
        except UnsupportedQuery as exc:
            exc.source_id = self.source_id
            raise
        polygon = shapely.Polygon(np.column_stack([xs, ys]))
        shapely.prepare(polygon)
        bounds = (
            math.floor(float(xs.min()) * 1000) / 1000,
            math.floor(float(ys.min()) * 1000) / 1000,
            math.ceil(float(xs.max()) * 1000) / 1000,
            math.ceil(float(ys.max()) * 1000) / 1000,
        )
        return ",".join(f"{v:.3f}" for v in bounds), polygon

    async def _fetch(
        self, params: Mapping[str, str], first: int, count: int, reading: _Reading = FULL
    ) -> _Page:
        """Candidates ``first`` (0-based) to ``first + count`` of the API's answer to ``params``."""
        query = {**params, "offset": str(first + 1), "limit": str(count)}
        body = await self._get(ITEMS_PATH, query)
        if body is None:
            raise self._invalid("the API has no pand collection (404)")
        if not isinstance(body, dict) or body.get("type") != "FeatureCollection":
            raise self._invalid("the API's items page is not a FeatureCollection")
        members = body.get("features")
        if not isinstance(members, list):
            raise self._invalid("the API's items page has no features array")
        transform, crs, templates = self._header(body.get("metadata"))
        features = [self._decode(member, transform, crs, templates, reading) for member in members]
        matched = body.get("numberMatched")
        if not (isinstance(matched, int) and not isinstance(matched, bool) and matched >= 0):
            matched = None
        return _Page(features=features, matched=matched)

    async def _item(
        self, feature_id: str, reading: _Reading = FULL
    ) -> tuple[Feature, BaseGeometry | None] | None:
        """One building from the item endpoint (None when the id is not a building's or unknown)."""
        if not BAG_PAND_ID.match(feature_id):
            return None
        body = await self._get(f"{ITEMS_PATH}/{feature_id}", {"crs": RD_NAP})
        if body is None:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("feature"), dict):
            raise self._invalid("the API's item document has no feature")
        transform, crs, templates = self._header(body.get("metadata"))
        feature, shape = self._decode(body["feature"], transform, crs, templates, reading)
        if feature["id"] != feature_id:
            raise self._invalid(f"asked for {feature_id}, the API answered {feature['id']}")
        return feature, shape

    def _header(self, metadata: Any) -> tuple[Transform, str, Mapping[str, Any] | None]:
        """The transform, CRS and templates of the CityJSONSeq header an answer carries."""
        if not isinstance(metadata, dict):
            raise self._invalid("the API's answer has no metadata (CityJSONSeq header)")
        try:
            transform = Transform.parse(metadata.get("transform"))
        except ValueError as exc:
            raise self._invalid(f"the API's metadata has no usable transform: {exc}") from exc
        crs = RD_NAP
        inner = metadata.get("metadata")
        declared = inner.get("referenceSystem") if isinstance(inner, dict) else None
        if isinstance(declared, str):
            try:
                crs = reference_system_uri(declared)
            except ValueError as exc:
                raise self._invalid(f"the API's metadata names an unknown CRS {declared!r}") from exc
            if crs != RD_NAP:
                raise self._invalid(f"the API answered coordinates in {crs}, not EPSG:7415")
        templates = metadata.get("geometry-templates")
        return transform, crs, templates if isinstance(templates, dict) else None

    def _decode(
        self,
        member: Any,
        transform: Transform,
        crs: str,
        templates: Mapping[str, Any] | None,
        reading: _Reading,
    ) -> tuple[Feature, BaseGeometry | None]:
        if not isinstance(member, dict):
            raise self._invalid("the API returned a feature that is not an object")
        try:
            return to_geojson(
                member,
                transform,
                crs=crs,
                templates=templates,
                shape=reading.shape,
                geometry=reading.geometry,
            )
        except (ValueError, IndexError, TypeError, KeyError, AttributeError, GEOSException) as exc:
            raise self._invalid(f"the API returned an unreadable CityJSONFeature: {exc}") from exc

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        """GET a JSON document; None on 404; errors translated into the connector's own."""
        url = f"{self.settings.url}{path}"
        response = await send(
            self.http,
            "GET",
            url,
            source_id=self.source_id,
            seconds=self.settings.timeout,
            params=params,
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        if status == 404:
            return None
        if status != 200:
            raise self._status_error(response)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise self._invalid("the 3D BAG API's answer is not JSON") from exc

    def _status_error(self, response: httpx.Response) -> ConnectorError:
        status = response.status_code
        message = _message(response)
        if status in {401, 403, 429} or status >= 500:
            return UpstreamUnavailable(
                f"the 3D BAG API answered HTTP {status}: {message}", source_id=self.source_id
            )
        # Every parameter sent is one the contract allows, so a 400 means the contract changed.
        return self._invalid(f"the 3D BAG API answered HTTP {status}: {message}")

    def _invalid(self, message: str) -> UpstreamInvalidResponse:
        return UpstreamInvalidResponse(message, source_id=self.source_id)


def _first_wave(expected: int, size: int) -> int:
    """Requests to send at once before the API has said how many candidates there are.

    Each expected match is a candidate, so the pages ``expected`` candidates fill are needed
    anyway. Half as many again are counted, for the candidates that are no match: the box
    round a page's buildings also holds the buildings that straddle its edge (25 candidates
    for a page of 10 Delft buildings, about 150 for a page of 100).
    """
    if expected <= 0:
        return 1
    return max(1, min(WAVE, math.ceil(expected * 3 / 2 / size)))


def _predicate(area: shapely.Polygon | None, equals: Mapping[str, str]) -> Kept | None:
    """The test of what the API cannot select exactly; None when every candidate matches."""
    if area is None and not equals:
        return None
    expected = dict(equals)

    def keep(feature: Feature, shape: BaseGeometry | None) -> bool:
        if area is not None and (shape is None or not area.intersects(shape)):
            return False
        return equals_all(feature, expected)

    return keep


def _message(response: httpx.Response) -> str:
    """The API's own explanation of an error, short and on one line."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    text = ""
    if isinstance(body, dict):
        for key in ("description", "detail", "title", "message", "name"):
            if isinstance(body.get(key), str) and body[key].strip():
                text = body[key]
                break
    if not text:
        text = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return " ".join(text.split())[:300]


__all__ = ["ThreeDBagConnector", "ThreeDBagSettings"]
