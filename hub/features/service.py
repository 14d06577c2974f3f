"""Answering feature queries from live sources: push down what a source can do, do the rest.

Results are always right: a filter a source claims to apply is checked on every feature that
comes back, and a source caught ignoring it is from then on filtered in the hub.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from connectors._cql import attributes
from connectors.base import CITYJSON, BBox, Feature, FeaturePage, FeatureQuery
from connectors.errors import ConnectorError, UpstreamTimeout
from hub.audit import processing as audit
from hub.errors import BadRequest, HubError, NotFound, from_connector_error
from hub.features.cql import compile_predicate, transform_literals
from hub.features.crs import crs84_envelope, transform_features
from hub.features.ordering import sort_features
from hub.features.params import ItemsRequest
from hub.features.temporal import interval_predicate
from hub.registry import CollectionBinding

LOG = logging.getLogger(__name__)
T = TypeVar("T")

SCAN_PAGE = 1000
"""Page size used when the hub reads a source through to filter or sort itself."""


@dataclass(slots=True)
class ItemsResult:
    """A page of features in the requested CRS, ready for an OGC API response."""

    features: list[Feature]
    number_matched: int | None
    has_more: bool | None = None


class FeatureService:
    """Runs items and item queries against a collection's source."""

    def __init__(self, *, max_scan_features: int):
        self._max_scan = max_scan_features

    @property
    def max_scan_features(self) -> int:
        """Most features read from a source to answer one query in the hub."""
        return self._max_scan

    async def items(self, binding: CollectionBinding, request: ItemsRequest) -> ItemsResult:
        """One page of features answering ``request``."""
        timeout = binding.source.connector.settings.timeout
        audit.note_collection(binding.id, binding.source.registration.subject_field)
        result = await self._call(binding, self._items(binding, request), timeout)
        audit.note_result_count(len(result.features))
        if binding.hidden:
            for feature in result.features:
                _remove_properties(feature, binding.hidden)
        return result

    async def item(
        self, binding: CollectionBinding, feature_id: str, crs: str, *, models: bool = False
    ) -> Feature:
        """One feature by id, in ``crs``; with ``models``, with its 3D model for CityJSON."""
        audit.note_collection(binding.id, binding.source.registration.subject_field)
        connector = binding.source.connector
        wanted = crs if crs in binding.info.capabilities.crs else binding.info.storage_crs
        feature = await self._call(
            binding,
            connector.get_feature(binding.upstream_id, feature_id, crs=wanted),
            connector.settings.timeout,
        )
        if feature is None:
            raise NotFound(f"collection {binding.id!r} has no feature {feature_id!r}")
        audit.note_features([feature])
        audit.note_result_count(1)
        if not models:
            feature = _without_cityjson(feature)
        transform_features([feature], wanted, crs)
        if binding.hidden:
            _remove_properties(feature, binding.hidden)
        return feature

    async def _call(self, binding: CollectionBinding, work: Awaitable[T], seconds: float) -> T:
        """Run ``work`` within the source's timeout; record health; translate its errors."""
        health = binding.source.health
        started = time.perf_counter()
        try:
            async with asyncio.timeout(seconds):
                result = await work
        except TimeoutError:
            message = f"source {binding.source.registration.id!r} did not answer within {seconds:g} s"
            health.record(latency_ms=(time.perf_counter() - started) * 1000, error=message)
            source_id = binding.source.registration.id
            raise from_connector_error(UpstreamTimeout(message, source_id=source_id)) from None
        except ConnectorError as exc:
            exc.source_id = exc.source_id or binding.source.registration.id
            health.record(latency_ms=(time.perf_counter() - started) * 1000, error=exc.message)
            raise from_connector_error(exc) from exc
        health.record(latency_ms=(time.perf_counter() - started) * 1000)
        return result

    async def _items(self, binding: CollectionBinding, request: ItemsRequest) -> ItemsResult:
        if request.bbox is not None and _outside_extent(binding, request.bbox):
            return ItemsResult([], 0, False)  # the source cannot hold anything there: not asked
        caps = binding.info.capabilities
        connector = binding.source.connector
        time_field = binding.info.time_field
        push_filter = (
            request.filter is not None
            and caps.filter
            and not binding.trust.filter_untrusted
            and connector.supports_filter(binding.upstream_id, request.filter)
        )
        push_sort = not request.sortby or caps.sort
        # a datetime the source applies can only be checked (and done here) with a time field
        push_datetime = request.datetime is None or (caps.datetime and not binding.trust.datetime_untrusted)
        if request.datetime is not None and not push_datetime and not time_field:
            raise BadRequest("datetime cannot be applied: the source has no temporal property")
        source_crs = request.crs if request.crs in caps.crs else binding.info.storage_crs

        if (request.filter is None or push_filter) and push_sort and push_datetime:
            page = await connector.query(
                binding.upstream_id,
                FeatureQuery(
                    limit=request.limit,
                    offset=request.offset,
                    bbox=request.bbox,
                    datetime=request.datetime,
                    property_equals=request.property_equals,
                    filter=request.filter,
                    filter_crs=request.filter_crs,
                    sortby=request.sortby,
                    crs=source_crs,
                    # the filter is checked on what comes back: a spatial one needs the geometry
                    skip_geometry=request.skip_geometry
                    and (request.filter is None or set(attributes(request.filter)) <= binding.field_names),
                    expected=request.expected,
                ),
            )
            if self._source_kept_its_word(binding, request, page):
                return self._finish(page.features, page.crs, request, page.number_matched, page.has_more)
            push_datetime = not binding.trust.datetime_untrusted
        return await self._scan(binding, request, source_crs, push_datetime)

    def _source_kept_its_word(
        self, binding: CollectionBinding, request: ItemsRequest, page: FeaturePage
    ) -> bool:
        """Check the features a source returned against the filter and datetime it applied."""
        if request.filter is not None:
            literals = transform_literals(request.filter, request.filter_crs, page.crs)
            matches = compile_predicate(literals, binding.field_types)
            if not all(matches(feature) for feature in page.features):
                self._distrust(binding, "filter")
                binding.trust.filter_untrusted = True
                return False
        time_field = binding.info.time_field
        if request.datetime is not None and time_field:
            in_interval = interval_predicate(time_field, request.datetime)
            if not all(in_interval(feature) for feature in page.features):
                self._distrust(binding, "datetime")
                binding.trust.datetime_untrusted = True
                return False
        return True

    @staticmethod
    def _distrust(binding: CollectionBinding, what: str) -> None:
        LOG.warning(
            "source %s returned features that fail the %s it claims to apply; "
            "applying it in the hub for collection %s from now on",
            binding.source.registration.id,
            what,
            binding.id,
        )

    async def _scan(
        self,
        binding: CollectionBinding,
        request: ItemsRequest,
        source_crs: str,
        push_datetime: bool,
    ) -> ItemsResult:
        """Read the source through (bounded), filter and sort here, then cut the page."""
        connector = binding.source.connector
        predicate = None
        matched: list[Feature] = []
        page_crs = source_crs
        offset = 0
        needs_all = bool(request.sortby)
        while True:
            page = await connector.query(
                binding.upstream_id,
                FeatureQuery(
                    limit=SCAN_PAGE,
                    offset=offset,
                    bbox=request.bbox,
                    datetime=request.datetime if push_datetime else None,
                    property_equals=request.property_equals,
                    crs=source_crs,
                    count=False,
                ),
            )
            if predicate is None or page.crs != page_crs:
                page_crs = page.crs
                predicate = self._local_predicate(binding, request, page_crs, push_datetime)
            matched.extend(f for f in page.features if predicate(f))
            offset += len(page.features)
            exhausted = (
                not page.features
                or page.has_more is False
                or (page.has_more is None and len(page.features) < SCAN_PAGE)
            )
            if exhausted:
                break
            if not needs_all and len(matched) > request.offset + request.limit:
                return self._finish(
                    matched[request.offset : request.offset + request.limit],
                    page_crs,
                    request,
                    None,
                    True,
                )
            if offset >= self._max_scan:
                raise BadRequest(
                    f"this query must be evaluated by the hub, which reads at most "
                    f"{self._max_scan} features of a source; narrow it with bbox or a property"
                )
        if request.sortby:
            sort_features(matched, request.sortby)
        total = len(matched)
        window = matched[request.offset : request.offset + request.limit]
        return self._finish(window, page_crs, request, total, request.offset + len(window) < total)

    def _local_predicate(
        self, binding: CollectionBinding, request: ItemsRequest, crs: str, datetime_done: bool
    ) -> Callable[[Feature], bool]:
        checks: list[Callable[[Feature], bool]] = []
        if request.filter is not None:
            literals = transform_literals(request.filter, request.filter_crs, crs)
            checks.append(compile_predicate(literals, binding.field_types))
        if request.datetime is not None and not datetime_done and binding.info.time_field:
            checks.append(interval_predicate(binding.info.time_field, request.datetime))
        return lambda feature: all(check(feature) for check in checks)

    def _finish(
        self,
        features: list[Feature],
        crs: str,
        request: ItemsRequest,
        number_matched: int | None,
        has_more: bool | None,
    ) -> ItemsResult:
        """Transform to the requested CRS and project properties and geometry."""
        # the audit record names the page's data subjects, also when the projection drops them
        audit.note_features(features)
        if not request.models:
            features = [_without_cityjson(feature) for feature in features]
        if request.skip_geometry:
            for feature in features:
                feature["geometry"] = None  # before transforming: nothing left to transform
        transform_features(features, crs, request.crs)
        if request.properties is not None:
            keep = set(request.properties)
            for feature in features:
                properties = feature.get("properties") or {}
                feature["properties"] = {k: v for k, v in properties.items() if k in keep}
        return ItemsResult(features, number_matched, has_more)


def _without_cityjson(feature: Feature) -> Feature:
    """The feature without the 3D model a connector handed over (GeoJSON carries the footprint)."""
    if CITYJSON not in feature:
        return feature
    return {key: value for key, value in feature.items() if key != CITYJSON}


def _remove_properties(feature: Feature, hidden: frozenset[str]) -> None:
    """Drop properties the caller may not see (the feature is the hub's own copy)."""
    properties = feature.get("properties")
    if properties and not hidden.isdisjoint(properties):
        # a copy, as the properties may be the connector's own; a few pops beat filtering all
        kept = dict(properties)
        for name in hidden:
            kept.pop(name, None)
        feature["properties"] = kept


def _outside_extent(binding: CollectionBinding, bbox: BBox) -> bool:
    """Whether the box lies wholly outside the collection's known extent."""
    extent = binding.info.extent_crs84 or binding.source.registration.extent
    if extent is None:
        return False
    minx, miny, maxx, maxy = crs84_envelope(bbox)
    return maxx < extent[0] or minx > extent[2] or maxy < extent[1] or miny > extent[3]


__all__ = ["FeatureService", "HubError", "ItemsResult"]
