"""The contract every connector implements: typed, async, and unaware of pygeoapi.

A connector answers feature queries against one registered source at request time. The hub
decides what to push down (``Capabilities``) and does the rest itself: projection of
``properties``, ``skipGeometry``, CRS transformation of the output, and any filter or sort the
source cannot do. A connector therefore only has to be *right* about what it claims to do.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from pygeofilter import ast

from connectors._network import NetworkPolicy
from connectors.errors import ConnectorConfigError

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"
RD_NEW = "http://www.opengis.net/def/crs/EPSG/0/28992"
ETRS89 = "http://www.opengis.net/def/crs/EPSG/0/4258"
RD_NAP = "http://www.opengis.net/def/crs/EPSG/0/7415"

CITYJSON = "cityjson"
"""The reserved feature member through which a connector hands CityJSON to the hub (see ``Feature``)."""

Feature = dict[str, Any]
"""A GeoJSON Feature as a plain dict: ``{"type", "id", "geometry", "properties"}``.

Connectors of 3D sources (``3dbag``, ``cityjson``) add the reserved member ``"cityjson"``
(:data:`CITYJSON`) to hand the hub the feature's 3D model, next to its 2D footprint::

    {"transform": {"scale": [sx, sy, sz], "translate": [tx, ty, tz]},
     "crs": "http://www.opengis.net/def/crs/EPSG/0/7415",
     "feature": {"type": "CityJSONFeature", "id": ..., "CityObjects": {...}, "vertices": [...]},
     "geometry-templates": {...}}

``feature`` is a CityJSON 2.0 CityJSONFeature whose ``id`` is the hub feature's id and whose
``CityObjects`` are the top-level object with all its children; its ``vertices`` are integers,
real coordinate = integer x scale + translate, in ``crs`` (the OGC URI of the vertices' 3D
CRS). ``geometry-templates`` is present only when the feature uses GeometryInstances. With
``transform`` (and templates) as the CityJSONSeq header, ``feature`` is a valid CityJSONSeq
line. The member is shared and read-only (file connectors hand out the same object to every
request): copy before changing it. The hub writes CityJSON and CityJSONSeq from it and strips
it from every other output format.
"""

CALLER_CREDENTIALS: ContextVar[str | None] = ContextVar("CALLER_CREDENTIALS", default=None)
"""The bearer token (without ``Bearer``) of the caller on whose behalf connectors run now.

A context variable rather than a parameter, so that no connector signature changes: only a
connector whose registration allows it (``hub`` with ``forward_token``) reads it. The hub sets
it with :func:`caller_credentials` around the connector calls of one request; probes run
outside such a block and so never carry a caller's token. Tasks and worker threads started
inside the block (``asyncio.gather``, ``run_in_threadpool``, ``run_coroutine_threadsafe``)
see it; ``run_in_executor`` does not.
"""


@contextmanager
def caller_credentials(token: str | None) -> Iterator[None]:
    """Run the block on behalf of the caller holding bearer ``token`` (``None``: anonymous)."""
    reset = CALLER_CREDENTIALS.set(token or None)
    try:
        yield
    finally:
        CALLER_CREDENTIALS.reset(reset)


class ConnectorSettings(BaseModel):
    """Connection settings shared by every connector kind; each kind extends this model."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(10.0, gt=0, le=300, description="Seconds before an upstream call fails")


@dataclass(frozen=True, slots=True)
class BBox:
    """A bounding box and the CRS (URI) its numbers are in, in that CRS's own axis order
    (CRS84 and RD are x/y; EPSG:4258 and EPSG:4326 are latitude first)."""

    minx: float
    miny: float
    maxx: float
    maxy: float
    crs: str = CRS84

    def as_tuple(self) -> tuple[float, float, float, float]:
        """The four numbers as ``(minx, miny, maxx, maxy)``."""
        return (self.minx, self.miny, self.maxx, self.maxy)


@dataclass(frozen=True, slots=True)
class Interval:
    """A closed time interval; ``None`` on either side means open-ended."""

    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``sortby`` term."""

    property: str
    ascending: bool = True


@dataclass(frozen=True, slots=True)
class FeatureQuery:
    """What the hub asks a connector for. Only parameters the connector claimed are set.

    ``bbox`` must be applied exactly (features whose geometry intersects it), in whichever CRS
    the connector prefers; ``filter`` is a pygeofilter AST whose spatial literals are already in
    ``filter_crs``; ``crs`` is the CRS the caller wants, which the connector may honour or not:
    it says in ``FeaturePage.crs`` what it returned.
    """

    limit: int
    offset: int = 0
    bbox: BBox | None = None
    datetime: Interval | None = None
    property_equals: dict[str, str] = field(default_factory=dict)
    filter: ast.Node | None = None
    filter_crs: str = CRS84
    sortby: tuple[SortKey, ...] = ()
    crs: str = CRS84
    count: bool = True
    skip_geometry: bool = False
    """The caller does not use the geometries: a connector may answer ``None`` for them and
    save decoding them (``bbox`` must still be applied exactly)."""
    expected: int = 0
    """How many features the caller expects to match (0: no idea). A source that pages may
    then ask for the pages those would fill at once instead of one after another; a guess,
    so a wrong one may cost a request, never a feature."""


@dataclass(slots=True)
class FeaturePage:
    """One page of features and the CRS their coordinates are in."""

    features: list[Feature]
    crs: str
    number_matched: int | None = None
    has_more: bool | None = None
    """Whether the source holds features beyond this page; ``None`` when unknown."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a collection of a source can do itself; the hub does what is missing."""

    filter: bool = False
    """CQL2 pushdown (the hub still checks the features that come back)."""
    bbox: bool = False
    """The source selects by ``bbox`` itself; without it the hub reads the collection through to
    select by box (the hub still checks the features that come back)."""
    sort: bool = False
    datetime: bool = False
    crs: tuple[str, ...] = ()
    """Output CRSs the source can produce itself."""


FieldType = Literal["string", "number", "integer", "boolean", "date", "date-time", "object", "array"]
"""JSON Schema types (and formats) a property can have."""


@dataclass(slots=True)
class FieldInfo:
    """One attribute of a collection's features, as JSON Schema type."""

    name: str
    type: FieldType
    title: str | None = None


@dataclass(slots=True)
class CollectionInfo:
    """What a source says about one of its collections, harvested by the probe."""

    id: str
    title: str
    description: str = ""
    fields: list[FieldInfo] = field(default_factory=list)
    storage_crs: str = CRS84
    crs: list[str] = field(default_factory=lambda: [CRS84])
    extent_crs84: tuple[float, float, float, float] | None = None
    temporal_extent: tuple[str | None, str | None] | None = None
    time_field: str | None = None
    id_field: str | None = None
    geometry_type: str | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    cityjson: bool = False
    """Whether every feature hands over its 3D model under :data:`CITYJSON`, in EPSG:7415
    (:data:`RD_NAP`): the hub then also serves the collection as CityJSON and CityJSONSeq."""


class Connector(abc.ABC):
    """Base class of every connector kind.

    Lifecycle: ``open()`` once when the source is registered or the hub starts, ``describe()``
    to harvest collections (the probe), then concurrent ``query``/``get_feature`` calls, then
    ``close()``. Implementations raise the errors of ``connectors.errors``, never raw
    ``httpx``/driver exceptions.
    """

    kind: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient):
        if not isinstance(settings, self.settings_model):
            raise ConnectorConfigError(
                f"the {self.kind} connector needs {self.settings_model.__name__}", source_id=source_id
            )
        # subclasses narrow the annotation of ``settings`` to their own model
        self.settings = settings
        self.source_id = source_id
        self.http = http

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire what the connector keeps between requests (indexes, pools)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``open`` acquired."""

    @abc.abstractmethod
    async def describe(self) -> list[CollectionInfo]:
        """Harvest the collections this source exposes, with schema and capabilities."""

    @abc.abstractmethod
    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """Return one page of features of ``collection`` matching ``query``."""

    @abc.abstractmethod
    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """Return one feature by id (``None`` when the source has no such feature)."""

    def supports_filter(self, collection: str, expression: ast.Node) -> bool:
        """Whether this CQL2 expression can be pushed down to the source as it is."""
        return False

    async def check_network(self, policy: NetworkPolicy) -> None:
        """Refuse settings that point at an address ``policy`` does not allow (AddressNotAllowed).

        Called when a registration is validated, before anything is fetched. The default checks
        a ``url`` setting; a connector that connects elsewhere overrides it. Every connection
        is checked again when it is made, so this is the early, clear refusal, not the guard.
        """
        url = getattr(self.settings, "url", None)
        if isinstance(url, str):
            await policy.check_url(url)
