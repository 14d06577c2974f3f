"""The query parameters of the record items: parsed strictly (anything else is refused), then
tested against each record's own document, so that a search only ever matches what a record
shows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.base import CRS84, Interval
from hub.catalogue.datasets import Extent
from hub.errors import BadRequest
from hub.features.crs import parse_bbox
from hub.features.params import int_param, parse_datetime, refuse_unknown
from hub.records.records import Record, normalise_text

FORMAT_PARAMETER = frozenset({"f"})
ITEMS_PARAMETERS = FORMAT_PARAMETER | {
    "q",
    "bbox",
    "datetime",
    "type",
    "ids",
    "externalIds",
    "limit",
    "offset",
}


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """A validated search: every criterion given must hold (``None`` means not asked)."""

    limit: int
    offset: int = 0
    phrases: tuple[re.Pattern[str], ...] | None = None
    """``q``: a record matches when one of its texts contains any of the phrases."""
    bbox: Extent | None = None
    interval: Interval | None = None
    types: frozenset[str] | None = None
    ids: frozenset[str] | None = None
    external_ids: frozenset[str] | None = None

    def matches(self, record: Record) -> bool:
        """Whether the record meets every criterion."""
        if self.ids is not None and record.id not in self.ids:
            return False
        if self.types is not None and record.type.value not in self.types:
            return False
        if self.external_ids is not None and not (record.external_ids & self.external_ids):
            return False
        if self.phrases is not None and not any(
            phrase.search(text) for phrase in self.phrases for text in record.texts
        ):
            return False
        if self.bbox is not None and not _boxes_meet(record.extent, self.bbox):
            return False
        return self.interval is None or _periods_meet(record, self.interval)


def _boxes_meet(extent: Extent | None, box: Extent) -> bool:
    if extent is None:
        return False
    return extent[0] <= box[2] and box[0] <= extent[2] and extent[1] <= box[3] and box[1] <= extent[3]


def _periods_meet(record: Record, interval: Interval) -> bool:
    # a record that states no time is not known to meet any
    if record.period is None:
        return False
    start, end = record.period
    if interval.end is not None and start is not None and start > interval.end:
        return False
    return not (interval.start is not None and end is not None and end < interval.start)


def _list(params: Mapping[str, str], name: str) -> frozenset[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    values = frozenset(value.strip() for value in raw.split(",") if value.strip())
    if not values:
        raise BadRequest(f"{name} must list at least one value")
    return values


def _phrases(raw: str) -> tuple[re.Pattern[str], ...]:
    """``q``: comma-separated alternatives; the words of one alternative must appear in that
    order, separated by white space, in one text of the record."""
    phrases = []
    for term in raw.split(","):
        words = normalise_text(term).split()
        if words:
            phrases.append(re.compile(r"\s+".join(re.escape(word) for word in words)))
    if not phrases:
        raise BadRequest("q must hold at least one search term")
    return tuple(phrases)


def check_format(params: Mapping[str, str]) -> None:
    """Only JSON is offered; ``f`` may ask for it and for nothing else."""
    fmt = params.get("f")
    if fmt is not None and fmt != "json":
        raise BadRequest(f"f={fmt!r} is not offered here; the only format is json")


def refuse_all_but_format(params: Mapping[str, str]) -> None:
    """For resources that take no parameter but ``f``."""
    refuse_unknown(params, FORMAT_PARAMETER)
    check_format(params)


def parse_record_query(params: Mapping[str, str], *, default_limit: int, max_limit: int) -> RecordQuery:
    """Validate every parameter of a record search; refuse what cannot be honoured."""
    refuse_unknown(params, ITEMS_PARAMETERS)
    check_format(params)
    bbox = None
    if "bbox" in params:
        bbox = parse_bbox(params["bbox"], CRS84).as_tuple()
    return RecordQuery(
        # a larger limit is served as the largest page, as the features API does
        limit=min(int_param(params, "limit", default_limit, 1), max_limit),
        offset=int_param(params, "offset", 0, 0),
        phrases=_phrases(params["q"]) if "q" in params else None,
        bbox=bbox,
        interval=parse_datetime(params["datetime"]) if "datetime" in params else None,
        types=_list(params, "type"),
        ids=_list(params, "ids"),
        external_ids=_list(params, "externalIds"),
    )
