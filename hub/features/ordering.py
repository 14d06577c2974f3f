"""Sorting features in the hub: the feature service and composite collections alike."""

from __future__ import annotations

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
