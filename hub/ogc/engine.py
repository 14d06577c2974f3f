"""pygeoapi as the hub's OGC engine: its configuration is built from the live collections.

The ``API`` object and OpenAPI document are rebuilt off the event loop whenever the served
collections change, and swapped in one assignment, so a request sees either the old or the
new catalogue, never half of one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from pygeoapi import l10n as pygeoapi_l10n
from pygeoapi.api import API
from pygeoapi.openapi import get_oas

from connectors.base import CRS84
from hub.auth.policy import Access, hidden_properties, may_read
from hub.design_rules import contact
from hub.features.crs import OFFERED_CRS
from hub.features.params import CollectionTerms
from hub.features.service import FeatureService
from hub.ogc.cityjson import collection_links
from hub.ogc.openapi import self_contained
from hub.ogc.provider import HubFeatureProvider, Runtime
from hub.registry import CollectionBinding, SourceRegistry
from hub.settings import Settings

LOG = logging.getLogger(__name__)
PROVIDER_NAME = f"{HubFeatureProvider.__module__}.{HubFeatureProvider.__qualname__}"
OGC_PREFIX = "/ogc/v1"

# pygeoapi's API constructor mutates module globals; never let two run at once.
_BUILD_LOCK = threading.Lock()


class _NoTranslatedConfigCache(dict[Any, Any]):
    """Stands in for pygeoapi's cache of the translated configuration (``l10n._cfg_cache``).

    That cache keeps one configuration per locale, the first one that rendered HTML, while the hub
    has many (a generation per catalogue change, a view per caller's access): pages would be
    rendered from another configuration, and a collection registered later answered 500.
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


@dataclass(frozen=True, slots=True)
class EngineState:
    """One consistent generation: pygeoapi's API, its OpenAPI document and the bindings."""

    api: API
    openapi: dict[str, Any]
    bindings: dict[str, CollectionBinding]
    terms: dict[str, CollectionTerms]
    generation: int = 0


ViewKey = tuple[int, tuple[tuple[str, tuple[str, ...]], ...]]
_VIEW_CACHE_SIZE = 32
_ENTITLEMENTS_REMEMBERED = 1024


def _resource(binding: CollectionBinding, runtime: Runtime, collection_url: str) -> dict[str, Any]:
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
                "hub_models": info.cityjson,
            }
        ],
    }
    if info.cityjson:
        resource["links"] += collection_links(collection_url, binding.title)
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
            "contact": {**contact(settings), "role": "pointOfContact"},
        },
        "resources": {
            cid: _resource(binding, runtime, f"{server.base_url}{OGC_PREFIX}/collections/{cid}")
            for cid, binding in bindings.items()
        },
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
        self._views: OrderedDict[ViewKey, EngineState] = OrderedDict()
        self._view_of: dict[tuple[object, ...], EngineState] = {}
        self._view_builds: dict[ViewKey, asyncio.Future[EngineState]] = {}

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
            built = await asyncio.to_thread(self._build, bindings, self._runtime())
            self._state = replace(built, generation=target)
            self._built = target
            self._views.clear()
            self._view_of.clear()

    async def view(self, access: Access) -> EngineState:
        """The generation as ``access`` may see it: only collections the caller may read,
        without the properties it may not see (in items, queryables, schema and OpenAPI alike).

        Views are built like generations (off the loop) and cached per distinct visibility;
        which view a caller gets is remembered per entitlement, so a request does not walk every
        collection's policy again.
        """
        caller = access.caller
        activity = access.activity.id if access.activity else None
        entitled = (self.state.generation, caller.anonymous, caller.roles, caller.scopes, activity)
        known = self._view_of.get(entitled)
        if known is not None:
            return known
        state = await self._visible_view(access)
        if state.generation == self.state.generation:
            if len(self._view_of) >= _ENTITLEMENTS_REMEMBERED:
                self._view_of.clear()
            self._view_of[entitled] = state
        return state

    async def _visible_view(self, access: Access) -> EngineState:
        base = self.state
        visible = {
            cid: hidden_properties(access, binding.source.registration)
            for cid, binding in base.bindings.items()
            if may_read(access.caller, binding.source.registration)
        }
        if len(visible) == len(base.bindings) and not any(visible.values()):
            return base
        key: ViewKey = (base.generation, tuple(sorted((cid, tuple(sorted(h))) for cid, h in visible.items())))
        cached = self._views.get(key)
        if cached is not None:
            self._views.move_to_end(key)
            return cached
        pending = self._view_builds.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._view_builds[key] = pending
            try:
                bindings = {cid: base.bindings[cid].masked(hidden) for cid, hidden in visible.items()}
                state = await asyncio.to_thread(self._build, bindings, self._runtime())
                state = replace(state, generation=base.generation)
                if base.generation == self.state.generation:
                    self._views[key] = state
                    while len(self._views) > _VIEW_CACHE_SIZE:
                        self._views.popitem(last=False)
                pending.set_result(state)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: the waiters (if any) re-raise it themselves
                raise
            finally:
                del self._view_builds[key]
        return await asyncio.shield(pending)

    def _runtime(self) -> Runtime:
        return Runtime(self._service, asyncio.get_running_loop())

    def _build(self, bindings: dict[str, CollectionBinding], runtime: Runtime) -> EngineState:
        config = pygeoapi_config(self._settings, bindings, runtime)
        server = self._settings.server
        terms = {
            cid: CollectionTerms(
                fields=binding.field_names,
                offered_crs=OFFERED_CRS,
                temporal=bool(
                    binding.info.time_field
                    or (
                        binding.info.capabilities.datetime
                        and not binding.source.registration.protected_fields
                    )
                ),
                default_limit=server.default_limit,
                max_limit=server.max_limit,
                three_d=binding.info.cityjson,
            )
            for cid, binding in bindings.items()
        }
        with _BUILD_LOCK:
            if not isinstance(pygeoapi_l10n._cfg_cache, _NoTranslatedConfigCache):
                pygeoapi_l10n._cfg_cache = _NoTranslatedConfigCache()
            openapi = self_contained(get_oas(config, fail_on_invalid_collection=False), config, OGC_PREFIX)
            api = API(config, openapi)
        LOG.info("OGC engine rebuilt with %d collection(s)", len(bindings))
        return EngineState(api, openapi, bindings, terms)
