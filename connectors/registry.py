"""Maps connector kinds (short names or dotted paths) to their classes."""

from __future__ import annotations

import importlib

from connectors.base import Connector
from connectors.errors import ConnectorConfigError

BUILTIN_CONNECTORS: dict[str, str] = {
    "3dbag": "connectors.threedbag.ThreeDBagConnector",
    "cityjson": "connectors.cityjson.CityJsonConnector",
    "file": "connectors.file.FileConnector",
    "ogcapi-features": "connectors.ogcapi_features.OgcApiFeaturesConnector",
    "sensorthings": "connectors.sensorthings.SensorThingsConnector",
    "hub": "connectors.hub.HubConnector",
    # virtual collections made of other hub collections; they need the hub, so they live there
    "linked": "hub.composite.linked.LinkedConnector",
    "union": "hub.composite.union.UnionConnector",
    "postgis": "connectors.postgis.PostgisConnector",
    "wfs": "connectors.wfs.WfsConnector",
}


def connector_class(kind: str) -> type[Connector]:
    """Resolve a connector kind, a built-in short name or ``package.module.Class``."""
    dotted = BUILTIN_CONNECTORS.get(kind, kind)
    if "." not in dotted:
        known = ", ".join(sorted(BUILTIN_CONNECTORS))
        raise ConnectorConfigError(f"unknown connector kind {kind!r}; known kinds: {known}")
    module_name, _, class_name = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConnectorConfigError(f"connector {kind!r} cannot be loaded: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConnectorConfigError(f"{dotted} is not a Connector subclass")
    return cls
