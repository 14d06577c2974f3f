"""The thin pygeoapi provider that hands queries to the hub's async feature service.

pygeoapi instantiates a provider on every request, so this class keeps no state of its own:
everything lives in the ``CollectionBinding`` and ``FeatureService`` that travel in its
provider definition. Its methods run in a worker thread (pygeoapi handlers are blocking) and
schedule the async work on the application's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from pygeoapi.provider.base import BaseProvider

from hub.features.params import ItemsRequest
from hub.features.service import FeatureService
from hub.registry import CollectionBinding

T = TypeVar("T")

ITEMS_REQUEST: ContextVar[ItemsRequest] = ContextVar("ITEMS_REQUEST")
"""The validated items query of the current request, set by the route before pygeoapi runs."""
ITEM_CRS: ContextVar[str] = ContextVar("ITEM_CRS")
"""The validated output CRS of the current single-item request."""

_JSON_SCHEMA = {
    "date": {"type": "string", "format": "date"},
    "date-time": {"type": "string", "format": "date-time"},
}


@dataclass(frozen=True, slots=True)
class Runtime:
    """What every provider instance needs: the service and the loop it runs on."""

    service: FeatureService
    loop: asyncio.AbstractEventLoop

    def __deepcopy__(self, memo: dict[int, Any]) -> Runtime:
        return self

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the application's loop from a worker thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()


class HubFeatureProvider(BaseProvider):  # type: ignore[misc]
    """pygeoapi feature provider backed by a hub collection."""

    def __init__(self, provider_def: dict[str, Any]):
        # BaseProvider.__init__ parses the storage CRS with pyproj on every request: skip it
        self.name = provider_def["name"]
        self.type = "feature"
        self.data = provider_def["data"]
        self.binding: CollectionBinding = provider_def["hub_binding"]
        self.runtime: Runtime = provider_def["hub_runtime"]
        info = self.binding.info
        self.editable = False
        self.count = True
        self.options = None
        self.id_field = info.id_field or "id"
        self.uri_field = None
        self.x_field = self.y_field = self.z_field = None
        self.time_field = info.time_field
        self.title_field = None
        self.properties: list[str] = []
        self.file_types: list[str] = []
        self.include_extra_query_parameters = False
        self.filename = None
        self._fields = {f.name: dict(_JSON_SCHEMA.get(f.type, {"type": f.type})) for f in info.fields}

    def get_fields(self) -> dict[str, Any]:
        """Field names and JSON Schema types, as harvested from the source."""
        return self._fields

    def query(self, **_pygeoapi_args: Any) -> dict[str, Any]:
        """Answer the current request's validated query (pygeoapi's own parsing is not used)."""
        request = ITEMS_REQUEST.get()
        result = self.runtime.run(self.runtime.service.items(self.binding, request))
        content: dict[str, Any] = {
            "type": "FeatureCollection",
            "features": result.features,
            "numberReturned": len(result.features),
        }
        if result.number_matched is not None:
            content["numberMatched"] = result.number_matched
        return content

    def get(self, identifier: str, **_pygeoapi_args: Any) -> dict[str, Any]:
        """One feature by id, in the current request's CRS."""
        crs = ITEM_CRS.get()
        return self.runtime.run(self.runtime.service.item(self.binding, identifier, crs))
