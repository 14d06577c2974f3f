"""Catalogue records: one per registered source and one per served collection, as GeoJSON
records of OGC API Records Part 1, built from the catalogue's dataset entries
(``hub.catalogue.datasets``) so that they say what the DCAT catalogue says.

``build_catalogue`` is a pure function (no I/O). Every record keeps, next to its document, the
values searching needs (its text, extent and period), taken from the document itself: a search
can only ever match what the record shows, so a restricted record never answers a search for
what it keeps back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from hub.catalogue.datasets import (
    DatasetEntry,
    Extent,
    dataset_entries,
    hub_contact,
    owner_name,
    publisher_name,
    strictest,
)
from hub.catalogue.dcat import (
    ACCESS_RIGHTS,
    CATALOG_PATH,
    EU_ACCESS_RIGHT,
    RESTRICTED_DESCRIPTION,
    as_iri,
    dataset_iri,
    licence_iri,
    theme_iri,
    theme_label,
)
from hub.catalogue.registration import Classification, SourceRegistration
from hub.catalogue.store import StoredSource
from hub.registry import CollectionBinding
from hub.settings import Settings

RECORDS_PREFIX = "/records/v1"
CATALOGUE_ID = "catalogue"
"""The one record collection."""
RECORD_CORE = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/record-core"

JSON = "application/json"
GEOJSON = "application/geo+json"
CITYJSON = "application/city+json"
JSON_LD = "application/ld+json"
HTML = "text/html"

OGC_API_FEATURES = "OGC:API features"
"""Protocol of a link that loads as GeoJSON, in the protocol codelist of the Dutch metadata
profiles (what Dutch catalogues and Netherlands3D use)."""

# Licences under their SPDX identifier, which Records asks for; any other is "other" with a link.
_SPDX = {
    "publications.europa.eu/resource/authority/licence/CC0": "CC0-1.0",
    "creativecommons.org/publicdomain/zero/1.0": "CC0-1.0",
    "publications.europa.eu/resource/authority/licence/CC_BY_4_0": "CC-BY-4.0",
    "creativecommons.org/licenses/by/4.0": "CC-BY-4.0",
    "publications.europa.eu/resource/authority/licence/CC_BYSA_4_0": "CC-BY-SA-4.0",
    "creativecommons.org/licenses/by-sa/4.0": "CC-BY-SA-4.0",
    "publications.europa.eu/resource/authority/licence/ODC_BL": "ODbL-1.0",
    "opendatacommons.org/licenses/odbl/1-0": "ODbL-1.0",
    "publications.europa.eu/resource/authority/licence/EUPL_1_2": "EUPL-1.2",
    "opensource.org/license/eupl-1-2": "EUPL-1.2",
}
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+$")

Period = tuple[datetime | None, datetime | None]


class RecordType(StrEnum):
    """What a record describes, as the scope codes of the Dutch metadata profiles name it."""

    DATASET = "dataset"
    """A served collection."""
    SERVICE = "service"
    """A registered source, as the hub serves it."""


@dataclass(frozen=True, slots=True)
class Record:
    """A record's GeoJSON document and the values a search tests, taken from that document."""

    id: str
    type: RecordType
    document: dict[str, Any]
    texts: tuple[str, ...]
    """Title, description and each keyword, normalised for matching."""
    extent: Extent | None
    period: Period | None
    external_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every record, in the order they are listed, and what the collection says about them."""

    records: tuple[Record, ...]
    extent: Extent | None
    period: Period | None
    updated: datetime | None
    by_id: dict[str, Record] = field(default_factory=dict)


def normalise_text(text: str) -> str:
    """Text for matching: case-folded, accents removed (``cliënt`` matches ``client``)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _instant(text: str | None, *, end: bool) -> datetime | None:
    """An extent's date or date-time as an aware instant; ``None`` for open or unreadable ends."""
    if not text or text == "..":
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def rfc3339(moment: datetime | None) -> str:
    """An instant in RFC 3339 (UTC, ``Z``), ``..`` for an open end."""
    if moment is None:
        return ".."
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time_member(
    text_period: tuple[str | None, str | None] | None,
) -> tuple[dict[str, Any] | None, Period | None]:
    """The record's ``time`` member and its period, from a collection's temporal extent."""
    if text_period is None:
        return None, None
    start_text, end_text = text_period
    start, end = _instant(start_text, end=False), _instant(end_text, end=True)
    if start is None and end is None:
        return None, None
    # dates stay dates; date-times are written in UTC, as the Records time schema asks
    interval = [
        text if text is not None and len(text) == 10 else rfc3339(moment)
        for text, moment in ((start_text, start), (end_text, end))
    ]
    return {"interval": interval}, (start, end)


def _union_period(periods: Iterable[Period]) -> Period | None:
    known = list(periods)
    if not known:
        return None
    starts = [start for start, _ in known]
    ends = [end for _, end in known]
    start = None if any(s is None for s in starts) else min(s for s in starts if s is not None)
    end = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
    return start, end


def period_member(period: Period | None) -> dict[str, Any] | None:
    """A period as a Records ``time`` member."""
    if period is None:
        return None
    return {"interval": [rfc3339(period[0]), rfc3339(period[1])]}


def union_extent(extents: Iterable[Extent]) -> Extent | None:
    """The box around all the given boxes."""
    boxes = list(extents)
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _geometry(extent: Extent | None) -> dict[str, Any] | None:
    if extent is None:
        return None
    minx, miny, maxx, maxy = (float(v) for v in extent)
    if minx == maxx and miny == maxy:
        return {"type": "Point", "coordinates": [minx, miny]}
    ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
    return {"type": "Polygon", "coordinates": [ring]}


def _spdx(licence: str) -> str | None:
    key = licence.strip().split("://", 1)[-1].rstrip("/")
    return _SPDX.get(key)


class _RecordBuilder:
    """Writes records for one request: URLs, the hub's organisation and language."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.base_url = settings.server.base_url
        self.records_url = f"{self.base_url}{RECORDS_PREFIX}"
        self.collection_url = f"{self.records_url}/collections/{CATALOGUE_ID}"
        self.catalog_url = f"{self.base_url}{CATALOG_PATH}"
        self.language = settings.catalogue.language

    def record_url(self, record_id: str) -> str:
        """Where a record is served."""
        return f"{self.collection_url}/items/{record_id}"

    def navigation(self, record_id: str) -> list[dict[str, Any]]:
        """Links every record has: itself, its collection, the API, and the DCAT catalogue."""
        return [
            {"rel": "self", "type": GEOJSON, "title": "This record", "href": self.record_url(record_id)},
            {"rel": "collection", "type": JSON, "title": "The catalogue", "href": self.collection_url},
            {"rel": "root", "type": JSON, "title": "OGC API Records", "href": self.records_url},
            {
                "rel": "describedby",
                "type": JSON_LD,
                "title": "The DCAT-AP-NL catalogue",
                "href": f"{self.catalog_url}?f=jsonld",
            },
        ]

    def themes(self, values: Sequence[str]) -> list[dict[str, Any]]:
        """Themes grouped per scheme: the vocabulary an IRI belongs to, or the hub's catalogue
        for a theme given as a label (the concept the DCAT catalogue mints for it)."""
        schemes: dict[str, list[dict[str, Any]]] = {}
        for value in dict.fromkeys(values):
            iri = theme_iri(self.catalog_url, value)
            if as_iri(value) is None:
                scheme, concept_id = self.catalog_url, iri.rpartition("#theme-")[2]
            else:
                scheme, _, concept_id = iri.rstrip("/#").rpartition("/")
            concept = {"id": concept_id, "title": theme_label(value, self.language), "url": iri}
            schemes.setdefault(scheme, []).append(concept)
        return [{"scheme": scheme, "concepts": concepts} for scheme, concepts in schemes.items()]

    def contacts(self, registration: SourceRegistration) -> list[dict[str, Any]]:
        """Whom to ask (the source's contact point, else the hub's), the owner and the publisher."""
        point = registration.contact_point or hub_contact(self.settings)
        contact: dict[str, Any] = {"name": point.name, "roles": ["pointOfContact"]}
        if point.email and _EMAIL.match(point.email.strip()):
            contact["emails"] = [{"value": point.email.strip()}]
        url = as_iri(point.url)
        if url is not None:
            contact["links"] = [{"rel": "about", "type": HTML, "href": str(url)}]
        publisher: dict[str, Any] = {"organization": publisher_name(self.settings), "roles": ["publisher"]}
        publisher_uri = as_iri(self.settings.catalogue.publisher_uri)
        if publisher_uri is not None:
            publisher["links"] = [{"rel": "about", "type": HTML, "href": str(publisher_uri)}]
        owner = {"organization": owner_name(registration, self.settings), "roles": ["owner"]}
        return [contact, owner, publisher]

    def access(self, classification: Classification) -> dict[str, Any]:
        """The access rights, as the DCAT catalogue states them (EU access-right vocabulary)."""
        code, english, dutch = ACCESS_RIGHTS[classification]
        return {
            "rights": dutch if self.language == "nl" else english,
            "accessRights": str(EU_ACCESS_RIGHT[code]),
        }

    def licence(self, licence: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The ``license`` property (SPDX id or ``other``) and a link to the licence itself."""
        href = licence_iri(self.catalog_url, licence)
        # a licence given as a label is described in the DCAT catalogue, under a minted IRI
        link_type = HTML if as_iri(licence) is not None else "text/turtle"
        link = {"rel": "license", "type": link_type, "title": "Licence", "href": href}
        return {"license": _spdx(licence) or "other"}, [link]

    def restricted_description(self) -> str:
        """The fixed description of a record whose source is restricted."""
        return RESTRICTED_DESCRIPTION.get(self.language, RESTRICTED_DESCRIPTION["en"])


def _describes(entry: DatasetEntry, max_limit: int) -> list[dict[str, Any]]:
    """Links a viewer loads as they are: the items as GeoJSON (as many as one page holds, since
    viewers such as Netherlands3D load a GeoJSON URL with one request and do not page), and
    as CityJSON where the collection offers it."""
    if entry.landing_page is None:
        return []
    items = f"{entry.landing_page}/items"
    links = [
        {
            "rel": "describes",
            "type": GEOJSON,
            "protocol": OGC_API_FEATURES,
            "title": f"{entry.title} (GeoJSON, up to {max_limit} features)",
            "href": f"{items}?f=json&limit={max_limit}",
        }
    ]
    if entry.binding.info.cityjson:
        links.append(
            {
                "rel": "describes",
                "type": CITYJSON,
                "title": f"{entry.title} (CityJSON, up to {max_limit} buildings)",
                "href": f"{items}?f=cityjson&limit={max_limit}",
            }
        )
    return links


def _data_links(entry: DatasetEntry) -> list[dict[str, Any]]:
    """The collection in the OGC API Features, for people and linked-data clients."""
    if entry.landing_page is None:
        return []
    links = [
        {"rel": "data", "type": JSON, "title": f"{entry.title} (collection)", "href": entry.landing_page},
        {
            "rel": "data",
            "type": HTML,
            "title": f"{entry.title} (collection page)",
            "href": f"{entry.landing_page}?f=html",
        },
    ]
    for distribution in entry.distributions:
        if distribution.format.media_type != GEOJSON:
            links.append(
                {
                    "rel": "data",
                    "type": distribution.format.media_type,
                    "title": f"{entry.title} ({distribution.format.title})",
                    "href": distribution.url,
                }
            )
    return links


def _formats(entry: DatasetEntry) -> list[dict[str, str]]:
    formats = [{"name": d.format.title, "mediaType": d.format.media_type} for d in entry.distributions]
    if entry.distributions and entry.binding.info.cityjson:
        formats.append({"name": "CityJSON", "mediaType": CITYJSON})
    return formats


def _searchable(document: dict[str, Any]) -> tuple[str, ...]:
    properties = document["properties"]
    texts = [properties["title"], properties.get("description", "")]
    texts += properties.get("keywords", [])
    return tuple(normalise_text(text) for text in texts if text)


def _record(
    record_id: str,
    record_type: RecordType,
    document: dict[str, Any],
    extent: Extent | None,
    period: Period | None,
) -> Record:
    external = {item["value"] for item in document["properties"].get("externalIds", [])}
    return Record(
        id=record_id,
        type=record_type,
        document=document,
        texts=_searchable(document),
        extent=extent,
        period=period,
        external_ids=frozenset(external),
    )


def _dataset_record(
    builder: _RecordBuilder, entry: DatasetEntry, stored: StoredSource, source_record_id: str
) -> Record:
    record_id = f"collection.{entry.id}"
    properties: dict[str, Any] = {
        "type": RecordType.DATASET.value,
        "title": entry.title,
        "description": entry.description if not entry.restricted else builder.restricted_description(),
        "themes": builder.themes(entry.themes),
        "contacts": builder.contacts(entry.registration),
        "language": {"code": builder.language},
        "externalIds": [{"scheme": builder.catalog_url, "value": dataset_iri(builder.catalog_url, entry.id)}],
        **builder.access(entry.access),
    }
    links = [
        *builder.navigation(record_id),
        {
            "rel": "related",
            "type": GEOJSON,
            "title": "The source this collection comes from",
            "href": builder.record_url(source_record_id),
        },
    ]
    time_member, period = None, None
    if not entry.restricted:
        licence, licence_links = builder.licence(entry.licence)
        time_member, period = _time_member(entry.temporal)
        properties.update(
            keywords=list(entry.keywords),
            formats=_formats(entry),
            created=rfc3339(stored.created_at),
            updated=rfc3339(stored.updated_at),
            **licence,
        )
        links += [
            *_describes(entry, builder.settings.server.max_limit),
            *_data_links(entry),
            *licence_links,
        ]
    document = {
        "id": record_id,
        "type": "Feature",
        "conformsTo": [RECORD_CORE],
        "time": time_member,
        "geometry": _geometry(entry.extent),
        "properties": properties,
        "links": links,
    }
    return _record(record_id, RecordType.DATASET, document, entry.extent, period)


def _source_record(
    builder: _RecordBuilder,
    stored: StoredSource,
    served: SourceRegistration | None,
    datasets: Sequence[tuple[DatasetEntry, Record]],
) -> Record:
    registration = stored.registration
    record_id = f"source.{registration.id}"
    # the stricter of the stored and the served registration, as for the datasets
    access = strictest(registration.classification, *([served.classification] if served else []))
    restricted = access is not Classification.OPEN
    properties: dict[str, Any] = {
        "type": RecordType.SERVICE.value,
        "title": registration.title,
        "description": builder.restricted_description()
        if restricted
        else registration.description or registration.title,
        "themes": builder.themes(registration.theme or builder.settings.catalogue.theme),
        "contacts": builder.contacts(registration),
        "language": {"code": builder.language},
        **builder.access(access),
    }
    links = builder.navigation(record_id)
    links += [
        {"rel": "item", "type": GEOJSON, "title": entry.title, "href": builder.record_url(record.id)}
        for entry, record in datasets
    ]
    extent, time_member, period = None, None, None
    if not restricted:
        open_datasets = [(entry, record) for entry, record in datasets if not entry.restricted]
        extent = registration.extent or union_extent(
            record.extent for _, record in open_datasets if record.extent is not None
        )
        period = _union_period(record.period for _, record in open_datasets if record.period is not None)
        time_member = period_member(period)
        licence, licence_links = builder.licence(registration.licence or builder.settings.catalogue.licence)
        properties.update(
            keywords=list(dict.fromkeys(registration.keywords)),
            created=rfc3339(stored.created_at),
            updated=rfc3339(stored.updated_at),
            **licence,
        )
        for entry, _ in open_datasets:
            links += _describes(entry, builder.settings.server.max_limit)
        links += licence_links
    document = {
        "id": record_id,
        "type": "Feature",
        "conformsTo": [RECORD_CORE],
        "time": time_member,
        "geometry": _geometry(extent),
        "properties": properties,
        "links": links,
    }
    return _record(record_id, RecordType.SERVICE, document, extent, period)


def build_catalogue(
    stored: Sequence[StoredSource],
    served: Mapping[str, SourceRegistration],
    bindings: Mapping[str, CollectionBinding],
    settings: Settings,
) -> Catalogue:
    """Records of the registered sources (``stored``) and of their served collections.

    ``served`` holds the registrations the running sources were built from, by source id: a
    source re-classified a moment ago is restricted as soon as either registration says so.
    """
    builder = _RecordBuilder(settings)
    entries = dataset_entries([s.registration for s in stored], bindings, settings)
    per_source: dict[str, list[DatasetEntry]] = {}
    for entry in entries:
        per_source.setdefault(entry.registration.id, []).append(entry)
    records: list[Record] = []
    for source in sorted(stored, key=lambda s: s.registration.id):
        source_id = source.registration.id
        datasets = [
            (entry, _dataset_record(builder, entry, source, f"source.{source_id}"))
            for entry in per_source.get(source_id, [])
        ]
        records.append(_source_record(builder, source, served.get(source_id), datasets))
        records.extend(record for _, record in datasets)
    return Catalogue(
        records=tuple(records),
        extent=union_extent(r.extent for r in records if r.extent is not None),
        period=_union_period(r.period for r in records if r.period is not None),
        updated=max((s.updated_at for s in stored), default=None),
        by_id={record.id: record for record in records},
    )
