"""A plain, readable HTML page of the DCAT catalogue, written from the graph itself so that it
shows exactly what the RDF serialisations say (and nothing a restricted source keeps back)."""

from __future__ import annotations

from html import escape

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS
from rdflib.term import Node

from hub.catalogue.dcat import VCARD

# Only these schemes become links; any other IRI a registration carries is shown as text.
_LINKABLE = ("http://", "https://", "mailto:")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem;
       line-height: 1.45; color: #1b1b1b; }
section { border-top: 1px solid #ccc; padding-top: .5rem; margin-top: 1.5rem; }
dt { font-weight: 600; } dd { margin: 0 0 .4rem 1.5rem; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: .2rem .5rem; text-align: left; }
.access { display: inline-block; padding: 0 .4rem; border-radius: .3rem; background: #eee; }
"""


def _link(node: Node, label: str | None = None) -> str:
    text = escape(label if label is not None else str(node))
    if isinstance(node, URIRef) and str(node).startswith(_LINKABLE):
        return f'<a href="{escape(str(node), quote=True)}">{text}</a>'
    return text


class _Page:
    def __init__(self, graph: Graph, language: str):
        self.graph = graph
        self.language = language

    def literal(self, node: Node, predicate: URIRef) -> str:
        """The value of ``predicate`` in the page's language when there is one, escaped."""
        values = [v for v in self.graph.objects(node, predicate) if isinstance(v, Literal)]
        for value in values:
            if value.language == self.language:
                return escape(str(value))
        for value in values:
            if value.language in (None, "en"):
                return escape(str(value))
        return escape(str(values[0])) if values else ""

    def label(self, node: Node) -> str:
        """A resource's label (prefLabel, title, name, fn), escaped; its IRI when it has none."""
        for predicate in (SKOS.prefLabel, DCTERMS.title, FOAF.name, VCARD.fn, RDFS.label):
            text = self.literal(node, predicate)
            if text:
                return text
        return escape(str(node))

    def labelled_link(self, node: Node) -> str:
        """A link to a resource, labelled."""
        label = self.label(node)
        if isinstance(node, URIRef) and str(node).startswith(_LINKABLE):
            return f'<a href="{escape(str(node), quote=True)}">{label}</a>'
        return label

    def contact(self, node: Node) -> str:
        """A contact point: its name and how to reach it."""
        parts = [self.label(node)]
        for predicate in (VCARD.hasEmail, VCARD.hasURL):
            for value in self.objects(node, predicate):
                parts.append(_link(value, str(value).removeprefix("mailto:")))
        return ", ".join(parts)

    def objects(self, node: Node, predicate: URIRef) -> list[Node]:
        """The objects of ``predicate``, in a stable order."""
        return sorted(self.graph.objects(node, predicate), key=str)

    def facts(self, rows: list[tuple[str, str]]) -> str:
        """A definition list of the rows that have a value."""
        items = "".join(f"<dt>{escape(name)}</dt><dd>{value}</dd>" for name, value in rows if value)
        return f"<dl>{items}</dl>"

    def service(self, node: Node) -> str:
        """One data service."""
        rows = [
            ("Endpoint", ", ".join(_link(v) for v in self.objects(node, DCAT.endpointURL))),
            ("Description", ", ".join(_link(v) for v in self.objects(node, DCAT.endpointDescription))),
            ("Conforms to", ", ".join(self.labelled_link(v) for v in self.objects(node, DCTERMS.conformsTo))),
            ("Licence", ", ".join(self.labelled_link(v) for v in self.objects(node, DCTERMS.license))),
            ("Access", ", ".join(self.label(v) for v in self.objects(node, DCTERMS.accessRights))),
        ]
        return (
            f"<section><h3>{self.label(node)}</h3><p>{self.literal(node, DCTERMS.description)}</p>"
            f"{self.facts(rows)}</section>"
        )

    def dataset(self, node: Node) -> str:
        """One dataset with its distributions."""
        access = ", ".join(self.label(v) for v in self.objects(node, DCTERMS.accessRights))
        keywords = [escape(str(v)) for v in self.objects(node, DCAT.keyword)]
        bboxes = [
            escape(str(box))
            for location in self.objects(node, DCTERMS.spatial)
            for box in self.objects(location, DCAT.bbox)
        ]
        periods = [
            " to ".join(
                escape(str(v))
                for v in (self.graph.value(period, DCAT.startDate), self.graph.value(period, DCAT.endDate))
                if v is not None
            )
            for period in self.objects(node, DCTERMS.temporal)
        ]
        rows = [
            ("Identifier", escape(str(self.graph.value(node, DCTERMS.identifier) or ""))),
            ("Creator", ", ".join(self.label(v) for v in self.objects(node, DCTERMS.creator))),
            ("Publisher", ", ".join(self.label(v) for v in self.objects(node, DCTERMS.publisher))),
            ("Contact", "; ".join(self.contact(v) for v in self.objects(node, DCAT.contactPoint))),
            ("Theme", ", ".join(self.labelled_link(v) for v in self.objects(node, DCAT.theme))),
            ("Keywords", ", ".join(keywords)),
            ("Spatial coverage", "<br>".join(bboxes)),
            ("Temporal coverage", "<br>".join(periods)),
            ("Landing page", ", ".join(_link(v) for v in self.objects(node, DCAT.landingPage))),
        ]
        return (
            f'<section><h3>{self.label(node)} <span class="access">{access}</span></h3>'
            f"<p>{self.literal(node, DCTERMS.description)}</p>{self.facts(rows)}"
            f"{self.distributions(node)}</section>"
        )

    def distributions(self, node: Node) -> str:
        """A table of a dataset's distributions; nothing when it has none."""
        distributions = self.objects(node, DCAT.distribution)
        if not distributions:
            return ""
        lines = []
        for distribution in distributions:
            urls = ", ".join(_link(u) for u in self.objects(distribution, DCAT.accessURL))
            media_types = ", ".join(
                escape(str(m).rsplit("media-types/", 1)[-1])
                for m in self.objects(distribution, DCAT.mediaType)
            )
            licences = ", ".join(self.labelled_link(v) for v in self.objects(distribution, DCTERMS.license))
            lines.append(
                f"<tr><td>{self.label(distribution)}</td><td>{urls}</td>"
                f"<td>{media_types}</td><td>{licences}</td></tr>"
            )
        return (
            "<table><tr><th>Distribution</th><th>Access URL</th><th>Media type</th><th>Licence</th></tr>"
            f"{''.join(lines)}</table>"
        )


def catalog_html(graph: Graph, language: str) -> str:
    """The catalogue as one HTML page; every value from the graph is escaped."""
    page = _Page(graph, language)
    catalogs = sorted(graph.subjects(RDF.type, DCAT.Catalog), key=str)
    parts = []
    for catalog in catalogs:
        rows = [
            ("Publisher", ", ".join(page.label(v) for v in page.objects(catalog, DCTERMS.publisher))),
            ("Contact", "; ".join(page.contact(v) for v in page.objects(catalog, DCAT.contactPoint))),
            ("Homepage", ", ".join(_link(v) for v in page.objects(catalog, FOAF.homepage))),
        ]
        services = "".join(page.service(s) for s in page.objects(catalog, DCAT.service))
        datasets = page.objects(catalog, DCAT.dataset)
        parts.append(
            f"<h1>{page.label(catalog)}</h1><p>{page.literal(catalog, DCTERMS.description)}</p>"
            f"{page.facts(rows)}<h2>Services</h2>{services}"
            f"<h2>Datasets ({len(datasets)})</h2>{''.join(page.dataset(d) for d in datasets)}"
        )
    title = page.label(catalogs[0]) if catalogs else "Catalogue"
    alternates = "".join(
        f'<a href="?f={key}">{name}</a> '
        for key, name in (("ttl", "Turtle"), ("jsonld", "JSON-LD"), ("rdfxml", "RDF/XML"))
    )
    return (
        f'<!DOCTYPE html><html lang="{escape(language, quote=True)}"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(parts)}<footer><p>Also as {alternates}</p></footer></body></html>"
    )
