"""Property values compared with query-string text (``property=value``), alike in every connector
and in the hub."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.base import Feature


def as_text(value: Any) -> str | None:
    """A property value as the text a query parameter compares it with."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def equals_all(feature: Feature, expected: Mapping[str, str]) -> bool:
    """Whether every named property has the expected text value."""
    properties = feature.get("properties") or {}
    return all(as_text(properties.get(name)) == value for name, value in expected.items())
