"""What the catalogue says about each served collection, derived once from the registrations
and the live collection descriptions.

The DCAT-AP-NL graph (``hub.catalogue.dcat``) and the OGC API Records (``hub.records``) both
present these entries, so the two catalogues agree on what a dataset is, what it offers, and
what a restricted source keeps back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from hub.catalogue.registration import Classification, ContactPoint, SourceRegistration
from hub.ogc.engine import OGC_PREFIX
from hub.registry import CollectionBinding
from hub.settings import Settings

Extent = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class DistributionFormat:
    """One format the OGC API serves a collection's items in, as a DCAT distribution."""

    key: str
    """The items endpoint's ``f`` value."""
    title: str
    media_type: str
    file_type: str
    """Code in the EU file-type vocabulary."""


DISTRIBUTION_FORMATS = (
    DistributionFormat("json", "GeoJSON", "application/geo+json", "GEOJSON"),
    DistributionFormat("html", "HTML", "text/html", "HTML"),
    DistributionFormat("jsonld", "JSON-LD", "application/ld+json", "JSON_LD"),
)


@dataclass(frozen=True, slots=True)
class Distribution:
    """A format of a collection's items endpoint and its URL."""

    format: DistributionFormat
    url: str


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """A served collection as the catalogue describes it.

    For a restricted source every field that would describe or reach the data is empty:
    ``description``, ``keywords``, ``extent``, ``temporal``, ``landing_page`` and
    ``distributions``.
    """

    id: str
    """The hub's collection id."""
    registration: SourceRegistration
    """The stored registration: the steward's latest word."""
    binding: CollectionBinding
    title: str
    access: Classification
    """The stricter of the stored and the served registration's classification."""
    themes: tuple[str, ...]
    """Theme IRIs or labels: the registration's, else the hub's defaults."""
    licence: str
    """Licence IRI or label: the registration's, else the hub's default."""
    description: str | None = None
    keywords: tuple[str, ...] = ()
    extent: Extent | None = None
    """In CRS84: what the source reports, else the registration's ``extent``."""
    temporal: tuple[str | None, str | None] | None = None
    landing_page: str | None = None
    """The collection's page in the OGC API Features."""
    distributions: tuple[Distribution, ...] = ()

    @property
    def restricted(self) -> bool:
        """Whether only the existence of the dataset and whom to ask may be shown."""
        return self.access is not Classification.OPEN


def is_open(registration: SourceRegistration) -> bool:
    """Whether the catalogue may show the source's details and access routes."""
    return registration.classification is Classification.OPEN


def publisher_name(settings: Settings) -> str:
    """The organisation that runs the hub and publishes the catalogue."""
    return settings.catalogue.publisher or settings.server.title


def hub_contact(settings: Settings) -> ContactPoint:
    """The hub's contact point, which also answers for sources that name none."""
    catalogue = settings.catalogue
    return ContactPoint(
        name=catalogue.contact_name or publisher_name(settings),
        email=catalogue.contact_email,
        # a contact point that can be reached somehow: the hub itself when nothing is set
        url=catalogue.contact_url or (None if catalogue.contact_email else settings.server.base_url),
    )


def owner_name(registration: SourceRegistration, settings: Settings) -> str:
    """The organisation that owns a source's data: its registered owner, else the publisher."""
    return registration.owner or publisher_name(settings)


def strictest(*classifications: Classification) -> Classification:
    """The most restrictive of the given classifications."""
    order = list(Classification)  # the enum lists classifications from open to personal
    return max(classifications, key=order.index)


def collection_url(settings: Settings, collection_id: str) -> str:
    """The public URL of a collection in the OGC API Features."""
    return f"{settings.server.base_url}{OGC_PREFIX}/collections/{collection_id}"


def dataset_entry(
    binding: CollectionBinding, registration: SourceRegistration, settings: Settings
) -> DatasetEntry:
    """The catalogue's entry for one served collection of a stored registration."""
    # a source re-classified a moment ago may still be served under its old registration:
    # it is restricted as soon as either says so
    access = strictest(registration.classification, binding.source.registration.classification)
    entry = DatasetEntry(
        id=binding.id,
        registration=registration,
        binding=binding,
        title=binding.title,
        access=access,
        themes=tuple(registration.theme or settings.catalogue.theme),
        licence=registration.licence or settings.catalogue.licence,
    )
    if entry.restricted:
        return entry
    page = collection_url(settings, binding.id)
    return replace(
        entry,
        description=binding.description or registration.description or binding.title,
        keywords=tuple(dict.fromkeys(registration.keywords)),
        extent=binding.info.extent_crs84 or registration.extent,
        temporal=binding.info.temporal_extent,
        landing_page=page,
        distributions=tuple(Distribution(fmt, f"{page}/items?f={fmt.key}") for fmt in DISTRIBUTION_FORMATS),
    )


def dataset_entries(
    registrations: Sequence[SourceRegistration],
    bindings: Mapping[str, CollectionBinding],
    settings: Settings,
) -> list[DatasetEntry]:
    """An entry per served collection whose source is still registered, by collection id."""
    stored = {registration.id: registration for registration in registrations}
    entries = []
    for collection_id in sorted(bindings):
        binding = bindings[collection_id]
        # a collection whose source was withdrawn but is still served for a moment is not listed
        registration = stored.get(binding.source.registration.id)
        if registration is not None:
            entries.append(dataset_entry(binding, registration, settings))
    return entries
