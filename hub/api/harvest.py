"""Stewards' harvest of candidate registrations: ``/api/v1/harvest``.

Its own resource rather than ``/sources/harvest``, where the path would also name a source
called ``harvest`` (``/sources/{source_id}``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from hub.api.deps import Context
from hub.catalogue.harvest import harvest

router = APIRouter(prefix="/harvest", tags=["Sources"])


class HarvestRequest(BaseModel):
    """Where to harvest candidate registrations from."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="A DCAT catalogue (Turtle, JSON-LD, RDF/XML), an OGC API landing page, or a WFS 2.0 "
        "GetCapabilities URL",
        examples=[
            "https://service.pdok.nl/kadaster/kadastralekaart/wfs/v5_0?request=GetCapabilities&service=WFS"
        ],
    )


@router.post("", summary="Harvest candidate registrations")
async def harvest_sources(context: Context, body: HarvestRequest) -> dict[str, Any]:
    """Candidate registrations read from a catalogue, landing page or capabilities, for review.

    Nothing is registered: review the candidates, then register them with ``POST /sources``.
    The URL is fetched under the same rules as sources (``allowed_networks``, timeouts, size).
    """
    harvested = await harvest(body.url, http=context.http, language=context.settings.catalogue.language)
    return harvested.as_dict()
