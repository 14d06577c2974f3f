"""Connector for another instance of this hub: municipality A serves municipality B's collections.

A peer hub is an OGC API Features server, so this is the ``ogcapi-features`` connector with what
is known about the peer beyond its documents:

- it declares CQL2 and CRS support honestly and applies ``bbox`` exactly in any CRS it offers,
  so filters and boxes are pushed down as they are; a filter it refuses is refused for that
  query only (a plain OGC API server that refuses a declared filter is not asked again);
- it sorts every collection (itself or through its own source), though it does not declare the
  sorting conformance class;
- ``/api/v1/health`` tells whether the URL is a hub at all, and which of its sources are down;
- with ``forward_token`` the bearer token of the caller on whose behalf the hub runs
  (:data:`connectors.base.CALLER_CREDENTIALS`) goes with every request, so that the peer decides
  what that caller may see. Only to the peer's own origin: redirects and next links to other
  hosts are not followed (the ``ogcapi-features`` connector's rule). Probes run without a caller
  and so without a token; a peer that shows nothing to anonymous callers needs a service
  credential through ``headers_env`` for them.

The peer's collection ids are kept as upstream ids; the registering hub names them as it names
any source's collections.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from connectors._cql2_encode import BASIC_SPATIAL_PLUS, SPATIAL
from connectors.base import (
    CALLER_CREDENTIALS,
    CRS84,
    BBox,
    CollectionInfo,
    ConnectorSettings,
    Feature,
)
from connectors.ogcapi_features import OgcApiFeaturesConnector, OgcApiFeaturesSettings, _Collection

LOG = logging.getLogger(__name__)

OGC_PATH = "/ogc/v1"
HEALTH_PATH = "/api/v1/health"


class HubSettings(OgcApiFeaturesSettings):
    """Connection settings of a peer hub."""

    url: str = Field(description="Base URL of the peer hub, or its OGC API landing page (.../ogc/v1)")
    forward_token: bool = Field(
        False, description="Send the caller's bearer token to the peer, which then decides access"
    )

    @field_validator("url")
    @classmethod
    def _ogc_landing_page(cls, value: str) -> str:
        # runs after the parent's check of the URL, on its normalised value
        return value if value.endswith(OGC_PATH) else value + OGC_PATH

    @model_validator(mode="after")
    def _one_authorization(self) -> HubSettings:
        configured = {name.lower() for name in self.headers_env}
        if self.api_key_env:
            configured.add(self.api_key_header.lower())
        if self.forward_token and "authorization" in configured:
            raise ValueError(
                "forward_token sends the caller's Authorization header; "
                "a configured Authorization header would contradict it"
            )
        return self

    @property
    def root(self) -> str:
        """The peer's base URL."""
        return self.url.removesuffix(OGC_PATH)


class HubConnector(OgcApiFeaturesConnector):
    """Queries a peer hub's collections at request time, pushing everything down."""

    kind: ClassVar[str] = "hub"
    settings_model: ClassVar[type[ConnectorSettings]] = HubSettings
    settings: HubSettings

    async def describe(self) -> list[CollectionInfo]:
        """Check that the peer is a hub, then harvest its collections."""
        await self._peer_health()
        return await super().describe()

    async def _peer_health(self) -> None:
        url = self.settings.root + HEALTH_PATH
        response = await self._get(url, {})
        if response.status_code == 404:
            raise self._invalid(f"{self.settings.root} is not a hub: it has no {HEALTH_PATH}")
        self._raise_for_status(response, pushed=False)
        report = self._json(response)
        sources = report.get("sources") if isinstance(report, dict) else None
        if not isinstance(sources, list):
            raise self._invalid(f"{self.settings.root} is not a hub: {HEALTH_PATH} lists no sources")
        down = sorted(
            str(s.get("id")) for s in sources if isinstance(s, dict) and s.get("state") == "unhealthy"
        )
        if down:
            # Their collections are still served: the peer may recover, and answers for itself.
            LOG.warning("peer hub %s reports unhealthy sources: %s", self.settings.root, ", ".join(down))

    def _auth_headers(self) -> dict[str, str]:
        headers = super()._auth_headers()
        token = CALLER_CREDENTIALS.get() if self.settings.forward_token else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _remember_collection(self, entry: dict[str, Any], shared_crs: tuple[str, ...]) -> _Collection:
        meta = super()._remember_collection(entry, shared_crs)
        cql2 = meta.cql2
        if SPATIAL in cql2:
            # CQL2 makes "spatial-functions" require "basic-spatial-functions-plus" (any
            # geometry literal); the peer declares only the former but evaluates both
            cql2 = cql2 | {BASIC_SPATIAL_PLUS}
        # the peer sorts any collection (its source, or itself), declared or not
        meta = dataclasses.replace(meta, sort=True, cql2=cql2)
        self._collections[meta.id] = meta
        return meta

    def _plan_bbox(
        self, meta: _Collection, box: BBox, params: dict[str, str]
    ) -> Callable[[list[Feature], str], list[Feature]] | None:
        if box.crs not in meta.crs:
            return super()._plan_bbox(meta, box, params)
        # the peer tests the box exactly in whichever CRS it is given: nothing to re-check
        params["bbox"] = ",".join(repr(float(n)) for n in box.as_tuple())
        if box.crs != CRS84:
            params["bbox-crs"] = box.crs
        return None

    async def _answers_without_filter(self, collection: str, params: dict[str, str]) -> bool:
        # A peer that declares CQL2 means it: a refused filter is wrong for this query only.
        return False
