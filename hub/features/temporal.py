"""Evaluating ``datetime`` in the hub for sources that cannot select by time themselves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from connectors.base import Feature, Interval


def _as_datetime(value: object) -> datetime | None:
    """A property value as an aware datetime; ``None`` when it is not a time."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("/", "-").replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def interval_predicate(time_field: str, interval: Interval) -> Callable[[Feature], bool]:
    """A function telling whether a feature's time property falls in ``interval``."""

    def matches(feature: Feature) -> bool:
        moment = _as_datetime((feature.get("properties") or {}).get(time_field))
        if moment is None:
            return False
        if interval.start is not None and moment < interval.start:
            return False
        return interval.end is None or moment <= interval.end

    return matches
