"""Parsing and validating OGC API Features query parameters: honour them or refuse them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pygeofilter import ast

from connectors.base import CRS84, RD_NAP, BBox, Interval, SortKey
from hub.errors import BadRequest
from hub.features.cql import check_attributes, parse_filter
from hub.features.crs import normalise_crs_uri, parse_bbox

COMMON_PARAMETERS = frozenset({"f", "lang", "purpose"})
ITEMS_PARAMETERS = COMMON_PARAMETERS | {
    "bbox",
    "bbox-crs",
    "crs",
    "datetime",
    "filter",
    "filter-crs",
    "filter-lang",
    "limit",
    "offset",
    "properties",
    "skipGeometry",
    "sortby",
}
ITEM_PARAMETERS = COMMON_PARAMETERS | {"crs"}


@dataclass(frozen=True, slots=True)
class ItemsRequest:
    """A validated items query, as the caller asked for it (CRSs as canonical URIs)."""

    limit: int
    offset: int = 0
    bbox: BBox | None = None
    datetime: Interval | None = None
    property_equals: dict[str, str] = field(default_factory=dict)
    filter: ast.Node | None = None
    filter_crs: str = CRS84
    sortby: tuple[SortKey, ...] = ()
    properties: tuple[str, ...] | None = None
    skip_geometry: bool = False
    crs: str = CRS84
    models: bool = False
    """Keep each feature's 3D model (the ``cityjson`` member) for CityJSON output; ``crs`` is
    then the CRS of the footprints only, the models being in EPSG:7415."""
    expected: int = 0
    """How many features the hub expects to match (0: no idea), passed on to the source as
    ``FeatureQuery.expected``; set by linked collections, never by a caller's parameter."""


@dataclass(frozen=True, slots=True)
class CollectionTerms:
    """What a collection accepts: its fields, whether it has time, and the CRSs it offers."""

    fields: frozenset[str]
    offered_crs: tuple[str, ...]
    temporal: bool
    default_limit: int
    max_limit: int
    three_d: bool = False
    """Whether the features carry 3D models, served as CityJSON in EPSG:7415."""


def refuse_unknown(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    """A parameter the hub would otherwise silently ignore is refused."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}")


def _crs_param(params: Mapping[str, str], name: str, offered: tuple[str, ...]) -> str:
    raw = params.get(name)
    if raw is None:
        return CRS84
    uri = normalise_crs_uri(raw)
    if uri not in offered:
        raise BadRequest(f"{name} {raw!r} is not offered here; use one of: {', '.join(offered)}")
    return uri


def _output_crs(params: Mapping[str, str], terms: CollectionTerms, model_output: bool) -> str:
    """The ``crs`` of a response: any offered CRS for footprints, EPSG:7415 alone for 3D models.

    A CityJSON document in a 2D CRS would not be meaningful (its heights are NAP heights over
    RD), so 3D output refuses every other CRS; its footprints are then kept in CRS84.
    """
    raw = params.get("crs")
    if model_output:
        if raw is not None and normalise_crs_uri(raw) != RD_NAP:
            raise BadRequest(
                f"crs {raw!r} cannot be used for CityJSON: 3D models are served in {RD_NAP} "
                "(RD New + NAP height) only; leave crs out, or ask for GeoJSON footprints in a 2D CRS"
            )
        return CRS84
    if terms.three_d and raw is not None and normalise_crs_uri(raw) == RD_NAP:
        raise BadRequest(
            f"crs {raw!r} is 3D: this collection's 3D models are served in it as f=cityjson or "
            f"f=cityjsonseq; GeoJSON footprints are served in: {', '.join(terms.offered_crs)}"
        )
    return _crs_param(params, "crs", terms.offered_crs)


def int_param(params: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """An integer query parameter, ``default`` when absent; 400 when not an integer or too small."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    return value


def _instant(text: str, *, end: bool) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        if "T" not in text and len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment.replace(hour=23, minute=59, second=59, microsecond=999999) if end else moment
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"datetime {text!r} is not RFC 3339") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_datetime(value: str) -> Interval:
    """An RFC 3339 instant or interval (``start/end``, either side ``..`` or empty)."""
    if "/" in value:
        start_text, _, end_text = value.partition("/")
        start, end = _instant(start_text, end=False), _instant(end_text, end=True)
        if start and end and start > end:
            raise BadRequest("datetime interval ends before it starts")
        return Interval(start, end)
    if value in ("", ".."):
        raise BadRequest("datetime must be an instant or an interval")
    return Interval(_instant(value, end=False), _instant(value, end=True))


def _sortby(value: str, fields: frozenset[str]) -> tuple[SortKey, ...]:
    keys = []
    for term in filter(None, (part.strip() for part in value.split(","))):
        ascending = not term.startswith("-")
        name = term.lstrip("+-")
        if name not in fields:
            raise BadRequest(f"sortby names unknown property {name!r}")
        keys.append(SortKey(name, ascending))
    if not keys:
        raise BadRequest("sortby is empty")
    return tuple(keys)


def _boolean(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false")


def parse_items_request(
    params: Mapping[str, str], terms: CollectionTerms, *, model_output: bool = False
) -> ItemsRequest:
    """Validate every parameter of an items request; refuse what cannot be honoured.

    ``model_output``: the response is CityJSON, written from the features' 3D models.
    """
    property_equals = {k: v for k, v in params.items() if k in terms.fields}
    refuse_unknown({k: v for k, v in params.items() if k not in property_equals}, ITEMS_PARAMETERS)
    limit = min(int_param(params, "limit", terms.default_limit, 1), terms.max_limit)
    offset = int_param(params, "offset", 0, 0)

    bbox = None
    if "bbox" in params:
        bbox = parse_bbox(params["bbox"], _crs_param(params, "bbox-crs", terms.offered_crs))
    elif "bbox-crs" in params:
        raise BadRequest("bbox-crs given without bbox")

    interval = None
    if "datetime" in params:
        if not terms.temporal:
            raise BadRequest("datetime is not supported: this collection has no temporal property")
        interval = parse_datetime(params["datetime"])

    expression = None
    if "filter" in params:
        expression = parse_filter(params["filter"], params.get("filter-lang"))
        check_attributes(expression, terms.fields)
    elif "filter-lang" in params or "filter-crs" in params:
        raise BadRequest("filter-lang and filter-crs need a filter")

    properties = None
    if "properties" in params:
        properties = tuple(p.strip() for p in params["properties"].split(",") if p.strip())
        unknown = sorted(set(properties) - terms.fields)
        if unknown:
            raise BadRequest(f"properties names unknown propert(ies): {', '.join(unknown)}")

    return ItemsRequest(
        limit=limit,
        offset=offset,
        bbox=bbox,
        datetime=interval,
        property_equals=property_equals,
        filter=expression,
        filter_crs=_crs_param(params, "filter-crs", terms.offered_crs),
        sortby=_sortby(params["sortby"], terms.fields) if "sortby" in params else (),
        properties=properties,
        skip_geometry=_boolean(params, "skipGeometry"),
        crs=_output_crs(params, terms, model_output),
        models=model_output,
    )


def parse_item_crs(params: Mapping[str, str], terms: CollectionTerms, *, model_output: bool = False) -> str:
    """Validate a single-item request's parameters and return the CRS of its footprint."""
    refuse_unknown(params, ITEM_PARAMETERS)
    return _output_crs(params, terms, model_output)
