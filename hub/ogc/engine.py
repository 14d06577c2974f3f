"""pygeoapi as the hub's OGC engine: its configuration is built from the live collections.

The ``API`` object and OpenAPI document are rebuilt off the event loop whenever the served
collections change, and swapped in one assignment, so a request sees either the old or the
new catalogue, never half of one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from pygeoapi.api import API
from pygeoapi.openapi import get_oas

from connectors.base import CRS84
from hub.features.crs import OFFERED_CRS
from hub.features.params import CollectionTerms
from hub.features.service import FeatureService
from hub.ogc.openapi import self_contained
from hub.ogc.provider import HubFeatureProvider, Runtime
from hub.registry import CollectionBinding, SourceRegistry
from hub.settings import Settings

LOG = logging.getLogger(__name__)
PROVIDER_NAME = f"{HubFeatureProvider.__module__}.{HubFeatureProvider.__qualname__}"
OGC_PREFIX = "/ogc/v1"

# pygeoapi's API constructor mutates module globals; never let two run at once.
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class EngineState:
    """One consistent generation: pygeoapi's API, its OpenAPI document and the bindings."""

    api: API
    openapi: dict[str, Any]
    bindings: dict[str, CollectionBinding]
    terms: dict[str, CollectionTerms]


def _resource(binding: CollectionBinding, runtime: Runtime) -> dict[str, Any]:
    info = binding.info
    registration = binding.source.registration
    extent = info.extent_crs84 or registration.extent or (-180.0, -90.0, 180.0, 90.0)
    resource: dict[str, Any] = {
        "type": "collection",
        "title": binding.title,
        "description": binding.description or binding.title,
        "keywords": list(registration.keywords) or [registration.id],
        "links": [],
        "extents": {"spatial": {"bbox": list(extent), "crs": CRS84}},
        "providers": [
            {
                "type": "feature",
                "name": PROVIDER_NAME,
                "data": binding.id,
                "id_field": info.id_field or "id",
                "time_field": info.time_field,
                "storage_crs": info.storage_crs,
                "crs": list(OFFERED_CRS),
                "hub_binding": binding,
                "hub_runtime": runtime,
            }
        ],
    }
    if registration.licence:
        resource["links"].append(
            {
                "type": "text/html",
                "rel": "license",
                "title": "Licence",
                "href": registration.licence,
            }
        )
    if info.temporal_extent:
        begin, end = info.temporal_extent
        resource["extents"]["temporal"] = {"begin": begin, "end": end}
    return resource


def pygeoapi_config(
    settings: Settings, bindings: dict[str, CollectionBinding], runtime: Runtime
) -> dict[str, Any]:
    """The pygeoapi configuration dict for the given collections."""
    server = settings.server
    return {
        "server": {
            "bind": {"host": "0.0.0.0", "port": 0},
            "url": f"{server.base_url}{OGC_PREFIX}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US", "nl-NL"],
            "limits": {"default_items": server.default_limit, "max_items": server.max_limit},
            "pretty_print": False,
            "map": {
                "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                "attribution": "&copy; OpenStreetMap contributors",
            },
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": server.title,
                "description": server.description,
                "keywords": ["digital twin", "OGC API", "Common Ground"],
                "keywords_type": "theme",
                "terms_of_service": "https://opensource.org/license/eupl-1-2",
                "url": server.base_url,
            },
            "license": {"name": "EUPL-1.2", "url": "https://opensource.org/license/eupl-1-2"},
            "provider": {"name": server.title, "url": server.base_url},
            "contact": {"name": server.title, "url": server.base_url, "role": "pointOfContact"},
        },
        "resources": {cid: _resource(binding, runtime) for cid, binding in bindings.items()},
    }


class OgcEngine:
    """Holds the current ``EngineState`` and rebuilds it when the registry changes."""

    def __init__(self, settings: Settings, registry: SourceRegistry, service: FeatureService):
        self._settings = settings
        self._registry = registry
        self._service = service
        self._state: EngineState | None = None
        self._build_lock = asyncio.Lock()
        self._requested = 0  # generations asked for
        self._built = 0  # the newest generation served

    @property
    def service(self) -> FeatureService:
        """The feature service every collection is queried through."""
        return self._service

    @property
    def base_url(self) -> str:
        """Public URL of the OGC API (its landing page)."""
        return f"{self._settings.server.base_url}{OGC_PREFIX}"

    @property
    def native_geojson(self) -> bool:
        """Whether GeoJSON items are written by the hub rather than by pygeoapi."""
        return self._settings.server.native_geojson

    @property
    def state(self) -> EngineState:
        """The current generation (built at start-up, before the first request)."""
        if self._state is None:
            raise RuntimeError("the OGC engine has not been built yet")
        return self._state

    async def rebuild(self) -> None:
        """Build a new generation from the registry's collections, off the event loop.

        Returns once a generation that includes every change made before the call is served,
        so an API call that changed the catalogue answers only when its change shows. Builds
        run one at a time; a caller whose change a later build already covered returns at once.
        """
        self._requested += 1
        wanted = self._requested
        async with self._build_lock:
            if self._built >= wanted:
                return
            # no await between reading the counter and the snapshot: the build covers both
            target, bindings = self._requested, self._registry.collections()
            self._state = await asyncio.to_thread(self._build, bindings, self._runtime())
            self._built = target

    def _runtime(self) -> Runtime:
        return Runtime(self._service, asyncio.get_running_loop())

    def _build(self, bindings: dict[str, CollectionBinding], runtime: Runtime) -> EngineState:
        config = pygeoapi_config(self._settings, bindings, runtime)
        server = self._settings.server
        terms = {
            cid: CollectionTerms(
                fields=binding.field_names,
                offered_crs=OFFERED_CRS,
                temporal=bool(binding.info.time_field or binding.info.capabilities.datetime),
                default_limit=server.default_limit,
                max_limit=server.max_limit,
            )
            for cid, binding in bindings.items()
        }
        with _BUILD_LOCK:
            openapi = self_contained(get_oas(config, fail_on_invalid_collection=False), config, OGC_PREFIX)
            api = API(config, openapi)
        LOG.info("OGC engine rebuilt with %d collection(s)", len(bindings))
        return EngineState(api, openapi, bindings, terms)
