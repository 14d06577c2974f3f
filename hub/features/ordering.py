"""Sorting and matching features in the hub: the feature service and composite collections alike."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.base import Feature, SortKey


def sort_features(features: list[Feature], keys: tuple[SortKey, ...]) -> None:
    """Stable multi-key sort in place; missing values last whatever the direction."""
    for key in reversed(keys):
        present = [f for f in features if (f.get("properties") or {}).get(key.property) is not None]
        absent = [f for f in features if (f.get("properties") or {}).get(key.property) is None]
        try:
            present.sort(key=lambda f: f["properties"][key.property], reverse=not key.ascending)
        except TypeError:
            present.sort(key=lambda f: str(f["properties"][key.property]), reverse=not key.ascending)
        features[:] = present + absent


def as_text(value: Any) -> str | None:
    """A property value as the text a query parameter compares it with (as connectors do)."""
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
