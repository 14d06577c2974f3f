"""The hub's catalogue as DCAT-AP-NL 3.0: an rdflib graph built from the registrations and the
served collections.

``build_catalog`` is a pure function (no I/O), so the API runs it in a worker thread, since rdflib
is slow enough to stall the event loop, and tests call it without a server.

The SHACL range shapes check the ``rdf:type`` of every referenced resource without inference,
so each one (agents, contact points, themes, licences, rights statements, media types, formats,
standards) is typed here, also when it belongs to a published vocabulary.

Restricted sources (any classification but ``open``) are listed so that people can find them
and know whom to ask, with only what that takes: title, identifier, access rights, theme,
creator, publisher and contact point. Their own description, keywords, spatial and temporal
coverage, landing page, distributions (and so every URL that reaches their data) are left out,
and no data service claims to serve them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import unquote

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, GEO, RDF, RDFS, SKOS, XSD

from hub.catalogue.datasets import DatasetEntry, dataset_entries, hub_contact, publisher_name
from hub.catalogue.registration import Classification, ContactPoint, SourceRegistration
from hub.ogc.engine import OGC_PREFIX
from hub.registry import CollectionBinding
from hub.settings import Settings

CATALOG_PATH = "/api/v1/catalog"

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU_ACCESS_RIGHT = Namespace("http://publications.europa.eu/resource/authority/access-right/")
EU_FILE_TYPE = Namespace("http://publications.europa.eu/resource/authority/file-type/")
EU_DATA_THEME = Namespace("http://publications.europa.eu/resource/authority/data-theme/")
EU_LANGUAGE = Namespace("http://publications.europa.eu/resource/authority/language/")
IANA_MEDIA_TYPE = Namespace("https://www.iana.org/assignments/media-types/")

PREFIXES: dict[str, Namespace] = {
    "dcat": Namespace(str(DCAT)),
    "dct": Namespace(str(DCTERMS)),
    "foaf": Namespace(str(FOAF)),
    "geo": Namespace(str(GEO)),
    "rdfs": Namespace(str(RDFS)),
    "skos": Namespace(str(SKOS)),
    "vcard": VCARD,
    "xsd": Namespace(str(XSD)),
}


# Code in the EU access-right vocabulary and its English and Dutch labels. Internal data is
# available to entitled staff (restricted); confidential and personal data only to those with a
# stated purpose, which is what the vocabulary calls non-public.
ACCESS_RIGHTS: dict[Classification, tuple[str, str, str]] = {
    Classification.OPEN: ("PUBLIC", "public", "openbaar"),
    Classification.INTERNAL: ("RESTRICTED", "restricted", "beperkt"),
    Classification.CONFIDENTIAL: ("NON_PUBLIC", "non-public", "niet-openbaar"),
    Classification.PERSONAL: ("NON_PUBLIC", "non-public", "niet-openbaar"),
}

# Labels of the EU data-theme vocabulary, so its concepts carry the skos:prefLabel the shapes ask for.
EU_THEME_LABELS: dict[str, tuple[str, str]] = {
    "AGRI": ("Agriculture, fisheries, forestry and food", "Landbouw, visserij, bosbouw en voeding"),
    "ECON": ("Economy and finance", "Economie en financiën"),
    "EDUC": ("Education, culture and sport", "Onderwijs, cultuur en sport"),
    "ENER": ("Energy", "Energie"),
    "ENVI": ("Environment", "Milieu"),
    "GOVE": ("Government and public sector", "Overheid en publieke sector"),
    "HEAL": ("Health", "Gezondheid"),
    "INTR": ("International issues", "Internationale vraagstukken"),
    "JUST": ("Justice, legal system and public safety", "Justitie, rechtsstelsel en openbare veiligheid"),
    "REGI": ("Regions and cities", "Regio's en steden"),
    "SOCI": ("Population and society", "Bevolking en samenleving"),
    "TECH": ("Science and technology", "Wetenschap en technologie"),
    "TRAN": ("Transport", "Vervoer"),
}

_LANGUAGES = {"nl": "NLD", "en": "ENG", "de": "DEU", "fr": "FRA", "fy": "FRY"}

RESTRICTED_DESCRIPTION = {
    "nl": "De toegang tot deze dataset is beperkt; vraag het contactpunt om toegang.",
    "en": "Access to this dataset is restricted; ask the contact point for access.",
}

OGC_FEATURES_STANDARDS = {
    "http://www.opengis.net/spec/ogcapi-features-1/1.0": "OGC API - Features - Part 1: Core",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0": "OGC API - Features - Part 2: Coordinate Reference "
    "Systems by Reference",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0": "OGC API - Features - Part 3: Filtering",
}

_IRI = re.compile(r"^[a-z][a-z0-9+.-]*:[^\s<>\"{}|\\^`]+$", re.I)
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+$")


def as_iri(text: str | None) -> URIRef | None:
    """``text`` as an IRI when it is an absolute one, else ``None`` (it is a label, say)."""
    if text is None or not _IRI.match(text.strip()):
        return None
    return URIRef(text.strip())


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
    slug = "-".join(filter(None, cleaned.split("-")))
    # a name of only non-ASCII letters still needs a stable, distinct fragment
    return slug or hashlib.sha256(text.encode()).hexdigest()[:12]


def _label_from_iri(iri: str) -> str:
    tail = re.split(r"[/#]", iri.rstrip("/#"))[-1]
    return unquote(tail).replace("_", " ").strip() or iri


def _temporal_literal(text: str | None) -> Literal | None:
    if not text or text == "..":
        return None
    try:
        if len(text) == 10:
            return Literal(date.fromisoformat(text), datatype=XSD.date)
        return Literal(datetime.fromisoformat(text.replace("Z", "+00:00")), datatype=XSD.dateTime)
    except ValueError:
        return None


def _wkt_box(extent: tuple[float, float, float, float]) -> Literal:
    minx, miny, maxx, maxy = (repr(float(v)) for v in extent)
    ring = f"{minx} {miny}, {maxx} {miny}, {maxx} {maxy}, {minx} {maxy}, {minx} {miny}"
    # a wktLiteral without a CRS IRI is in CRS84, which is what the extent is in
    return Literal(f"POLYGON(({ring}))", datatype=GEO.wktLiteral)


def theme_iri(catalog_url: str, value: str) -> str:
    """A theme's IRI: the value when it is an IRI, else a concept minted under the catalogue."""
    return str(as_iri(value) or f"{catalog_url}#theme-{_slug(value)}")


def licence_iri(catalog_url: str, value: str) -> str:
    """A licence's IRI: the value when it is an IRI, else a document minted under the catalogue."""
    return str(as_iri(value) or f"{catalog_url}#licence-{_slug(value)}")


def theme_label(value: str, language: str) -> str:
    """A theme's label: a label as it is, an EU data theme's in ``language`` (Dutch or
    English), else the tail of the IRI."""
    iri = as_iri(value)
    if iri is None:
        return value
    code = str(iri).removeprefix(str(EU_DATA_THEME))
    if code in EU_THEME_LABELS:
        english, dutch = EU_THEME_LABELS[code]
        return dutch if language == "nl" else english
    return _label_from_iri(value)


class _CatalogBuilder:
    """Adds the catalogue's resources to one graph; referenced resources are typed once each."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.base_url = settings.server.base_url
        self.catalog = URIRef(f"{self.base_url}{CATALOG_PATH}")
        self.language = settings.catalogue.language
        self.graph = Graph()
        for prefix, namespace in PREFIXES.items():
            self.graph.bind(prefix, namespace)
        self._typed: set[URIRef] = set()
        self.publisher_name = publisher_name(settings)
        self.publisher = self._agent(self.publisher_name, settings.catalogue.publisher_uri)
        self.contact = self._contact(f"{self.catalog}#contact", hub_contact(settings))

    def text(self, value: str) -> Literal:
        """A literal in the language of the hub's texts."""
        return Literal(value, lang=self.language)

    def _once(self, node: URIRef) -> bool:
        if node in self._typed:
            return False
        self._typed.add(node)
        return True

    def _agent(self, name: str, uri: str | None = None) -> URIRef:
        node = as_iri(uri) or URIRef(f"{self.catalog}#agent-{_slug(name)}")
        if self._once(node):
            self.graph.add((node, RDF.type, FOAF.Agent))
            self.graph.add((node, RDF.type, FOAF.Organization))
            self.graph.add((node, FOAF.name, Literal(name)))
        return node

    def owner(self, registration: SourceRegistration) -> URIRef:
        """The agent that owns a source's data; the hub's organisation when none is named."""
        if not registration.owner or registration.owner == self.publisher_name:
            return self.publisher
        return self._agent(registration.owner)

    def _contact(self, uri: str, contact: ContactPoint) -> URIRef:
        node = URIRef(uri)
        if self._once(node):
            graph = self.graph
            graph.add((node, RDF.type, VCARD.Kind))
            graph.add((node, RDF.type, VCARD.Organization))
            graph.add((node, VCARD.fn, Literal(contact.name)))
            if contact.email and _EMAIL.match(contact.email.strip()):
                graph.add((node, VCARD.hasEmail, URIRef(f"mailto:{contact.email.strip()}")))
            url = as_iri(contact.url)
            if url is not None:
                graph.add((node, VCARD.hasURL, url))
        return node

    def contact_point(self, registration: SourceRegistration) -> URIRef:
        """Whom to ask about a source: its own contact point, else the hub's."""
        if registration.contact_point is None:
            return self.contact
        return self._contact(f"{self.catalog}#contact-{registration.id}", registration.contact_point)

    def theme(self, value: str) -> URIRef:
        """A theme as a labelled ``skos:Concept``: an IRI as it is, a label as a minted concept."""
        iri = as_iri(value)
        node = URIRef(theme_iri(str(self.catalog), value))
        if self._once(node):
            self.graph.add((node, RDF.type, SKOS.Concept))
            code = str(node).removeprefix(str(EU_DATA_THEME))
            if iri is None:
                self.graph.add((node, SKOS.prefLabel, self.text(value)))
            elif code in EU_THEME_LABELS:
                english, dutch = EU_THEME_LABELS[code]
                self.graph.add((node, SKOS.prefLabel, Literal(english, lang="en")))
                self.graph.add((node, SKOS.prefLabel, Literal(dutch, lang="nl")))
            else:
                self.graph.add((node, SKOS.prefLabel, Literal(_label_from_iri(value))))
        return node

    def themes(self, values: Sequence[str]) -> list[URIRef]:
        """The themes of a source, or the hub's default themes when it names none."""
        return [self.theme(value) for value in (values or self.settings.catalogue.theme)]

    def licence(self, value: str | None) -> URIRef:
        """A licence as a ``dct:LicenseDocument``; the hub's default when none is named."""
        value = value or self.settings.catalogue.licence
        iri = as_iri(value)
        node = URIRef(licence_iri(str(self.catalog), value))
        if self._once(node):
            self.graph.add((node, RDF.type, DCTERMS.LicenseDocument))
            if iri is None:
                self.graph.add((node, RDFS.label, Literal(value)))
        return node

    def access_rights(self, classification: Classification) -> URIRef:
        """The EU access-right concept for a classification, as a ``dct:RightsStatement``."""
        code, english, dutch = ACCESS_RIGHTS[classification]
        node = EU_ACCESS_RIGHT[code]
        if self._once(node):
            self.graph.add((node, RDF.type, DCTERMS.RightsStatement))
            self.graph.add((node, RDF.type, SKOS.Concept))
            self.graph.add((node, SKOS.prefLabel, Literal(english, lang="en")))
            self.graph.add((node, SKOS.prefLabel, Literal(dutch, lang="nl")))
        return node

    def typed(self, node: URIRef, rdf_type: URIRef, label: str | None = None) -> URIRef:
        """A referenced resource with its type (and label), added once."""
        if self._once(node):
            self.graph.add((node, RDF.type, rdf_type))
            if label is not None:
                self.graph.add((node, DCTERMS.title, Literal(label)))
        return node


def dataset_iri(catalog_url: str, collection_id: str) -> str:
    """The IRI (and ``dct:identifier``) of a collection's dataset in the catalogue."""
    return f"{catalog_url}#dataset-{collection_id}"


def _dataset(builder: _CatalogBuilder, entry: DatasetEntry, *, service: URIRef) -> URIRef:
    graph = builder.graph
    registration = entry.registration
    node = URIRef(dataset_iri(str(builder.catalog), entry.id))
    graph.add((node, RDF.type, DCAT.Dataset))
    graph.add((node, DCTERMS.title, builder.text(entry.title)))
    graph.add((node, DCTERMS.identifier, Literal(str(node))))
    graph.add((node, DCTERMS.publisher, builder.publisher))
    graph.add((node, DCTERMS.creator, builder.owner(registration)))
    graph.add((node, DCAT.contactPoint, builder.contact_point(registration)))
    for theme in builder.themes(entry.themes):
        graph.add((node, DCAT.theme, theme))
    graph.add((node, DCTERMS.accessRights, builder.access_rights(entry.access)))
    if entry.restricted:
        for language, description in RESTRICTED_DESCRIPTION.items():
            graph.add((node, DCTERMS.description, Literal(description, lang=language)))
        return node

    graph.add((node, DCTERMS.description, builder.text(entry.description or entry.title)))
    for keyword in entry.keywords:
        graph.add((node, DCAT.keyword, builder.text(keyword)))
    if entry.landing_page is not None:
        graph.add((node, DCAT.landingPage, builder.typed(URIRef(entry.landing_page), FOAF.Document)))
    if entry.extent is not None:
        location = BNode()
        graph.add((node, DCTERMS.spatial, location))
        graph.add((location, RDF.type, DCTERMS.Location))
        graph.add((location, DCAT.bbox, _wkt_box(entry.extent)))
    start, end = (_temporal_literal(v) for v in (entry.temporal or (None, None)))
    if start is not None or end is not None:
        period = BNode()
        graph.add((node, DCTERMS.temporal, period))
        graph.add((period, RDF.type, DCTERMS.PeriodOfTime))
        if start is not None:
            graph.add((period, DCAT.startDate, start))
        if end is not None:
            graph.add((period, DCAT.endDate, end))
    licence = builder.licence(entry.licence)
    for offered in entry.distributions:
        fmt = offered.format
        distribution = URIRef(f"{builder.catalog}#distribution-{entry.id}-{fmt.key}")
        graph.add((node, DCAT.distribution, distribution))
        graph.add((distribution, RDF.type, DCAT.Distribution))
        graph.add((distribution, DCTERMS.title, Literal(fmt.title)))
        # the items endpoint pages through the data, so it is an access URL, not a download URL
        graph.add((distribution, DCAT.accessURL, URIRef(offered.url)))
        graph.add((distribution, DCAT.accessService, service))
        graph.add(
            (distribution, DCAT.mediaType, builder.typed(IANA_MEDIA_TYPE[fmt.media_type], DCTERMS.MediaType))
        )
        graph.add(
            (
                distribution,
                DCTERMS.format,
                builder.typed(EU_FILE_TYPE[fmt.file_type], DCTERMS.MediaTypeOrExtent),
            )
        )
        graph.add((distribution, DCTERMS.license, licence))
    return node


def _features_service(builder: _CatalogBuilder) -> URIRef:
    graph = builder.graph
    settings = builder.settings
    node = URIRef(f"{builder.catalog}#service-ogc-features")
    endpoint = f"{builder.base_url}{OGC_PREFIX}"
    graph.add((node, RDF.type, DCAT.DataService))
    graph.add((node, DCTERMS.title, Literal("OGC API Features", lang="en")))
    graph.add(
        (
            node,
            DCTERMS.description,
            Literal(f"OGC API - Features endpoint of {settings.server.title}", lang="en"),
        )
    )
    graph.add((node, DCTERMS.identifier, Literal(str(node))))
    graph.add((node, DCTERMS.publisher, builder.publisher))
    graph.add((node, DCTERMS.creator, builder.publisher))
    graph.add((node, DCAT.contactPoint, builder.contact))
    for theme in builder.themes(settings.catalogue.theme):
        graph.add((node, DCAT.theme, theme))
    graph.add((node, DCTERMS.license, builder.licence(None)))
    # the endpoint answers anyone; what it serves of restricted sources is decided per request
    graph.add((node, DCTERMS.accessRights, builder.access_rights(Classification.OPEN)))
    graph.add((node, DCAT.endpointURL, URIRef(endpoint)))
    graph.add((node, DCAT.endpointDescription, URIRef(f"{endpoint}/openapi.json")))
    graph.add((node, DCAT.landingPage, builder.typed(URIRef(endpoint), FOAF.Document)))
    for uri, title in OGC_FEATURES_STANDARDS.items():
        graph.add((node, DCTERMS.conformsTo, builder.typed(URIRef(uri), DCTERMS.Standard, title)))
    return node


def build_catalog(
    registrations: Sequence[SourceRegistration],
    bindings: Mapping[str, CollectionBinding],
    settings: Settings,
) -> Graph:
    """The DCAT-AP-NL catalogue of the served collections of the registered sources."""
    builder = _CatalogBuilder(settings)
    graph = builder.graph
    catalog = builder.catalog
    graph.add((catalog, RDF.type, DCAT.Catalog))
    graph.add((catalog, DCTERMS.title, builder.text(settings.server.title)))
    graph.add((catalog, DCTERMS.description, builder.text(settings.server.description)))
    graph.add((catalog, DCTERMS.publisher, builder.publisher))
    graph.add((catalog, DCAT.contactPoint, builder.contact))
    graph.add((catalog, FOAF.homepage, builder.typed(URIRef(builder.base_url), FOAF.Document)))
    language = _LANGUAGES.get(settings.catalogue.language)
    if language is not None:
        graph.add((catalog, DCTERMS.language, builder.typed(EU_LANGUAGE[language], DCTERMS.LinguisticSystem)))

    service = _features_service(builder)
    graph.add((catalog, DCAT.service, service))
    for entry in dataset_entries(registrations, bindings, settings):
        dataset = _dataset(builder, entry, service=service)
        graph.add((catalog, DCAT.dataset, dataset))
        if not entry.restricted:
            graph.add((service, DCAT.servesDataset, dataset))
    return graph


@dataclass(frozen=True, slots=True)
class RdfFormat:
    """An RDF serialisation the catalogue is offered in."""

    rdflib_format: str
    media_type: str


RDF_FORMATS = {
    "turtle": RdfFormat("turtle", "text/turtle"),
    "jsonld": RdfFormat("json-ld", "application/ld+json"),
    "rdfxml": RdfFormat("pretty-xml", "application/rdf+xml"),
}


def serialise(graph: Graph, fmt: RdfFormat) -> bytes:
    """The graph in one RDF serialisation, UTF-8 encoded."""
    if fmt.rdflib_format == "json-ld":
        # a context with the prefixes keeps the JSON-LD readable; it parses to the same graph
        context = {prefix: str(namespace) for prefix, namespace in PREFIXES.items()}
        return graph.serialize(format="json-ld", context=context, indent=2, encoding="utf-8")
    return graph.serialize(format=fmt.rdflib_format, encoding="utf-8")
