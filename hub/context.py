"""The application's long-lived parts, created in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from hub.auth.tokens import TokenValidator
from hub.catalogue.store import CatalogueStore
from hub.features.service import FeatureService
from hub.ogc.engine import OgcEngine
from hub.registry import SourceRegistry
from hub.settings import Settings


@dataclass(slots=True)
class HubContext:
    """Everything a request handler may need, typed."""

    settings: Settings
    http: httpx.AsyncClient
    store: CatalogueStore
    registry: SourceRegistry
    service: FeatureService
    engine: OgcEngine
    tokens: TokenValidator | None
    """Validates bearer tokens; ``None`` when no issuer is configured (everyone is anonymous)."""
