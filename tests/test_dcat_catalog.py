"""The DCAT-AP-NL catalogue at /api/v1/catalog: its content, its serialisations, the official
SHACL shapes, what restricted sources keep back, and content negotiation."""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SKOS, XSD

from hub.api.negotiation import negotiate
from hub.catalogue.dcat import EU_ACCESS_RIGHT, VCARD, build_catalog
from hub.catalogue.dcat_html import catalog_html
from hub.catalogue.registration import SourceRegistration
from hub.errors import ConfigurationError
from hub.registry import SourceRegistry
from hub.settings import Settings
from tests.fixtures.hub import SHARED, hub_settings, serve_hub, wait_until_served
from tests.fixtures.oidc import steward

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config" / "demo-data" / "laadpalen.geojson"
SHACL = SHARED / "conformance" / "dcat-shacl.sh"
TOOI_DELFT = "https://identifier.overheid.nl/tooi/id/gemeente/gm0503"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CC0 = "http://publications.europa.eu/resource/authority/licence/CC0"
REGI = "http://publications.europa.eu/resource/authority/data-theme/REGI"
TRAN = "http://publications.europa.eu/resource/authority/data-theme/TRAN"
HOSTILE_TITLE = "Bomen <script>alert('x')</script> & struiken"

# What the restricted sources declare and the catalogue must never show.
SECRET_DESCRIPTION = "Dossiers van cliënten met een Wmo-indicatie per adres"
SECRET_KEYWORD = "wmo-clientdossier"
SECRET_EXTENT = [4.111111, 51.222222, 4.333333, 51.444444]

CATALOGUE = {
    "publisher": "Gemeente Delft",
    "publisher_uri": TOOI_DELFT,
    "contact_name": "Servicedesk geo-informatie",
    "contact_email": "geo@delft.example",
}


def _source(source_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": source_id, "title": source_id.title(), "connector": "file", "path": str(DEMO), **extra}


SOURCES = [
    _source(
        "laadpalen",
        title="Laadpalen",
        description="Openbare laadpalen in Delft",
        classification="open",
        time_field="in_gebruik_sinds",
        owner="Stedin",
        licence=CC_BY,
        contact_point={"name": "Team mobiliteit", "email": "mobiliteit@delft.example"},
        keywords=["mobiliteit", "laadpalen"],
        theme=[TRAN, "Energie"],
    ),
    # silent about everything the catalogue needs: the hub's defaults fill in
    _source("bomen", title=HOSTILE_TITLE, classification="open"),
    _source(
        "zorgdossiers",
        title="Zorgdossiers",
        description=SECRET_DESCRIPTION,
        classification="personal",
        time_field="in_gebruik_sinds",
        owner="Gemeente Delft",
        keywords=[SECRET_KEYWORD],
        extent=SECRET_EXTENT,
        contact_point={"name": "Privacyloket", "email": "privacy@delft.example"},
        theme=["http://publications.europa.eu/resource/authority/data-theme/HEAL"],
    ),
    _source("riolering", title="Riolering", description=SECRET_DESCRIPTION, classification="internal"),
]
RESTRICTED = {"zorgdossiers": "NON_PUBLIC", "riolering": "RESTRICTED"}


def parse(body: bytes | str, fmt: str) -> Graph:
    """Parse a serialisation; rdflib's JSON-LD parser warns about its own internals."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        return Graph().parse(data=body, format=fmt)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub with two open and two restricted sources, all probed."""
    settings = hub_settings(tmp_path_factory.mktemp("dcat"), SOURCES, catalogue=CATALOGUE)
    with serve_hub(settings) as base_url:
        for source in SOURCES:
            wait_until_served(base_url, source["id"])
        yield base_url


@pytest.fixture(scope="module")
def served(hub: str) -> dict[str, httpx.Response]:
    """The catalogue in every representation."""
    return {
        f: httpx.get(f"{hub}/api/v1/catalog", params={"f": f}, timeout=30)
        for f in ("ttl", "jsonld", "rdfxml", "html")
    }


@pytest.fixture(scope="module")
def graph(served: dict[str, httpx.Response]) -> Graph:
    """The catalogue as served in Turtle."""
    return parse(served["ttl"].content, "turtle")


def dataset(hub: str, collection_id: str) -> URIRef:
    """The URI of a collection's dataset."""
    return URIRef(f"{hub}/api/v1/catalog#dataset-{collection_id}")


def test_every_serialisation_parses_to_the_same_graph(
    served: dict[str, httpx.Response], graph: Graph
) -> None:
    assert served["ttl"].headers["content-type"] == "text/turtle; charset=utf-8"
    assert served["jsonld"].headers["content-type"] == "application/ld+json"
    assert served["rdfxml"].headers["content-type"] == "application/rdf+xml"
    assert len(graph) > 100
    assert isomorphic(graph, parse(served["jsonld"].content, "json-ld"))
    assert isomorphic(graph, parse(served["rdfxml"].content, "xml"))


@pytest.mark.parametrize("profile", ["dcat-ap-nl", "dcat-ap-3"])
def test_served_turtle_passes_the_official_shapes(
    served: dict[str, httpx.Response], tmp_path: Path, profile: str
) -> None:
    if not SHACL.is_file():
        pytest.skip(f"needs the conformance kit at {SHACL}, which is absent")
    data = tmp_path / "catalog.ttl"
    data.write_bytes(served["ttl"].content)
    # the kit builds its own venv on first use, which can take minutes
    result = subprocess.run(
        ["bash", str(SHACL), str(data), profile],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "PYTHON": "python3"},
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Conforms: True" in result.stdout


def test_catalog_and_service(hub: str, graph: Graph) -> None:
    catalog = URIRef(f"{hub}/api/v1/catalog")
    assert (catalog, RDF.type, DCAT.Catalog) in graph
    publisher = URIRef(TOOI_DELFT)
    assert graph.value(catalog, DCTERMS.publisher) == publisher
    assert {graph.value(publisher, FOAF.name)} == {Literal("Gemeente Delft")}
    assert {FOAF.Agent, FOAF.Organization} <= set(graph.objects(publisher, RDF.type))
    contact = graph.value(catalog, DCAT.contactPoint)
    assert (contact, RDF.type, VCARD.Kind) in graph
    assert graph.value(contact, VCARD.fn) == Literal("Servicedesk geo-informatie")
    assert graph.value(contact, VCARD.hasEmail) == URIRef("mailto:geo@delft.example")
    assert set(graph.objects(catalog, DCAT.dataset)) == {
        dataset(hub, cid) for cid in ("laadpalen", "bomen", "zorgdossiers", "riolering")
    }

    (service,) = graph.objects(catalog, DCAT.service)
    assert (service, RDF.type, DCAT.DataService) in graph
    assert graph.value(service, DCAT.endpointURL) == URIRef(f"{hub}/ogc/v1")
    assert graph.value(service, DCAT.endpointDescription) == URIRef(f"{hub}/ogc/v1/openapi.json")
    assert graph.value(service, DCTERMS.license) == URIRef(CC0)
    assert graph.value(service, DCTERMS.accessRights) == EU_ACCESS_RIGHT.PUBLIC
    assert set(graph.objects(service, DCAT.servesDataset)) == {
        dataset(hub, "laadpalen"),
        dataset(hub, "bomen"),
    }
    # the endpoint and its description are what they say they are
    assert httpx.get(f"{hub}/ogc/v1").status_code == 200
    assert httpx.get(f"{hub}/ogc/v1/openapi.json").json()["openapi"].startswith("3.")


def test_open_dataset_has_its_details_and_working_distributions(hub: str, graph: Graph) -> None:
    node = dataset(hub, "laadpalen")
    assert graph.value(node, DCTERMS.title) == Literal("Laadpalen", lang="nl")
    assert graph.value(node, DCTERMS.description) == Literal("Openbare laadpalen in Delft", lang="nl")
    assert graph.value(node, DCTERMS.identifier) == Literal(str(node))
    assert graph.value(node, DCTERMS.publisher) == URIRef(TOOI_DELFT)
    creator = graph.value(node, DCTERMS.creator)
    assert graph.value(creator, FOAF.name) == Literal("Stedin")
    contact = graph.value(node, DCAT.contactPoint)
    assert graph.value(contact, VCARD.hasEmail) == URIRef("mailto:mobiliteit@delft.example")
    assert set(graph.objects(node, DCAT.keyword)) == {
        Literal("mobiliteit", lang="nl"),
        Literal("laadpalen", lang="nl"),
    }
    themes = set(graph.objects(node, DCAT.theme))
    assert URIRef(TRAN) in themes and len(themes) == 2
    for theme in themes:
        assert (theme, RDF.type, SKOS.Concept) in graph and graph.value(theme, SKOS.prefLabel) is not None
    assert graph.value(node, DCTERMS.accessRights) == EU_ACCESS_RIGHT.PUBLIC
    assert (EU_ACCESS_RIGHT.PUBLIC, RDF.type, DCTERMS.RightsStatement) in graph

    location = graph.value(node, DCTERMS.spatial)
    assert (location, RDF.type, DCTERMS.Location) in graph
    wkt = str(graph.value(location, DCAT.bbox))
    assert wkt.startswith("POLYGON((4.345937 52.005597, ")
    period = graph.value(node, DCTERMS.temporal)
    start = graph.value(period, DCAT.startDate)
    assert isinstance(start, Literal) and start.datatype == XSD.dateTime
    assert str(start).startswith("2015-10-04")

    distributions = set(graph.objects(node, DCAT.distribution))
    assert len(distributions) == 3
    media_types = {}
    for distribution in distributions:
        assert graph.value(distribution, DCTERMS.license) == URIRef(CC_BY)
        assert (URIRef(CC_BY), RDF.type, DCTERMS.LicenseDocument) in graph
        media_type = str(graph.value(distribution, DCAT.mediaType)).rsplit("media-types/", 1)[1]
        url = str(graph.value(distribution, DCAT.accessURL))
        media_types[media_type] = url
        answer = httpx.get(url, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(media_type)
    assert set(media_types) == {"application/geo+json", "text/html", "application/ld+json"}
    assert all(url.startswith(f"{hub}/ogc/v1/collections/laadpalen/items?f=") for url in media_types.values())


def test_a_silent_registration_gets_the_hub_defaults(hub: str, graph: Graph) -> None:
    node = dataset(hub, "bomen")
    assert graph.value(node, DCTERMS.title) == Literal(HOSTILE_TITLE, lang="nl")
    assert graph.value(node, DCTERMS.creator) == URIRef(TOOI_DELFT)
    assert graph.value(node, DCAT.contactPoint) == URIRef(f"{hub}/api/v1/catalog#contact")
    assert set(graph.objects(node, DCAT.theme)) == {URIRef(REGI)}
    assert graph.value(URIRef(REGI), SKOS.prefLabel, any=True) is not None
    for distribution in graph.objects(node, DCAT.distribution):
        assert graph.value(distribution, DCTERMS.license) == URIRef(CC0)


@pytest.mark.parametrize("collection_id", sorted(RESTRICTED))
def test_restricted_sources_show_access_rights_but_no_details(
    hub: str, graph: Graph, collection_id: str
) -> None:
    node = dataset(hub, collection_id)
    assert (node, RDF.type, DCAT.Dataset) in graph
    assert graph.value(node, DCTERMS.title) == Literal(collection_id.title(), lang="nl")
    assert graph.value(node, DCTERMS.accessRights) == EU_ACCESS_RIGHT[RESTRICTED[collection_id]]
    for required in (DCTERMS.identifier, DCTERMS.publisher, DCTERMS.creator, DCAT.contactPoint, DCAT.theme):
        assert graph.value(node, required) is not None, required
    descriptions = {str(d) for d in graph.objects(node, DCTERMS.description)}
    assert descriptions and all("restricted" in d or "beperkt" in d for d in descriptions)
    for withheld in (DCAT.distribution, DCAT.keyword, DCTERMS.spatial, DCTERMS.temporal, DCAT.landingPage):
        assert graph.value(node, withheld) is None, withheld
    assert (None, DCAT.servesDataset, node) not in graph


def test_restricted_details_are_absent_from_every_representation(
    hub: str, served: dict[str, httpx.Response]
) -> None:
    extent_numbers = [repr(v) for v in SECRET_EXTENT]
    for f, response in served.items():
        body = response.text
        assert SECRET_DESCRIPTION not in body, f
        assert SECRET_KEYWORD not in body, f
        assert not [n for n in extent_numbers if n in body], f
        for collection_id in RESTRICTED:
            assert f"/collections/{collection_id}" not in body, f
        # connection settings are never part of the catalogue, for any source
        assert str(DEMO) not in body and "in_gebruik_sinds" not in body, f


def test_html_page_is_readable_and_escaped(served: dict[str, httpx.Response]) -> None:
    page = served["html"]
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    body = page.text
    assert body.startswith("<!DOCTYPE html>")
    assert "<script>" not in body
    assert "Bomen &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; struiken" in body
    assert "Laadpalen" in body and "Zorgdossiers" in body and "niet-openbaar" in body
    assert "/ogc/v1/collections/laadpalen/items?f=json" in body


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "text/turtle"),
        ("*/*", "text/turtle"),
        ("text/turtle", "text/turtle"),
        ("application/ld+json", "application/ld+json"),
        ("application/rdf+xml", "application/rdf+xml"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
        ("application/rdf+xml;q=0.5, text/turtle;q=0.1", "application/rdf+xml"),
        ("text/turtle;q=0, */*", "application/ld+json"),
        ("application/*", "application/ld+json"),
    ],
)
def test_content_negotiation_by_accept(hub: str, accept: str | None, content_type: str) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    response = httpx.get(f"{hub}/api/v1/catalog", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == content_type
    assert "Accept" in response.headers["vary"]
    assert response.headers["API-Version"]


@pytest.mark.parametrize(
    ("f", "content_type"),
    [
        ("ttl", "text/turtle"),
        ("turtle", "text/turtle"),
        ("jsonld", "application/ld+json"),
        ("html", "text/html"),
    ],
)
def test_f_overrides_accept(hub: str, f: str, content_type: str) -> None:
    response = httpx.get(f"{hub}/api/v1/catalog", params={"f": f}, headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == content_type


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(
    "accept", ["application/json", "image/png", "text/turtle;q=0", "text/csv, application/xml"]
)
def test_unsupported_accept_is_406(hub: str, accept: str) -> None:
    body = _problem(httpx.get(f"{hub}/api/v1/catalog", headers={"Accept": accept}), 406)
    assert "text/turtle" in body["detail"] and body["instance"] == "/api/v1/catalog"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"f": "xml"}, "f"), ({"f": "ttl", "lang": "nl"}, "lang"), ({"q": "bomen"}, "q")],
)
def test_unknown_format_or_parameter_is_400(hub: str, params: dict[str, str], fragment: str) -> None:
    assert fragment in _problem(httpx.get(f"{hub}/api/v1/catalog", params=params), 400)["detail"]


def test_trailing_slash_is_404(hub: str) -> None:
    _problem(httpx.get(f"{hub}/api/v1/catalog/"), 404)


def test_catalogue_follows_registrations_and_classification(tmp_path: Path) -> None:
    with serve_hub(hub_settings(tmp_path, [], catalogue=CATALOGUE)) as base_url:
        registration = _source("fietsen", classification="open", keywords=["fiets"])
        assert steward().post(f"{base_url}/api/v1/sources", json=registration).status_code == 201
        graph = parse(httpx.get(f"{base_url}/api/v1/catalog").content, "turtle")
        node = dataset(base_url, "fietsen")
        assert graph.value(node, DCTERMS.accessRights) == EU_ACCESS_RIGHT.PUBLIC
        assert graph.value(node, DCAT.keyword) == Literal("fiets", lang="nl")

        replaced = steward().put(
            f"{base_url}/api/v1/sources/fietsen", json={**registration, "classification": "confidential"}
        )
        assert replaced.status_code == 200, replaced.text
        graph = parse(httpx.get(f"{base_url}/api/v1/catalog").content, "turtle")
        assert graph.value(node, DCTERMS.accessRights) == EU_ACCESS_RIGHT.NON_PUBLIC
        assert graph.value(node, DCAT.keyword) is None and graph.value(node, DCAT.distribution) is None

        assert steward().delete(f"{base_url}/api/v1/sources/fietsen").status_code == 204
        graph = parse(httpx.get(f"{base_url}/api/v1/catalog").content, "turtle")
        assert (node, None, None) not in graph


async def test_stored_registration_decides_what_is_listed_and_how_openly() -> None:
    async with httpx.AsyncClient() as http:
        registry = SourceRegistry(http)
        live = SourceRegistration.model_validate(_source("laadpalen", classification="open", keywords=["x"]))
        gone = SourceRegistration.model_validate(_source("weg", classification="open"))
        await registry.activate(live)
        await registry.activate(gone)
        try:
            stored = live.model_copy(update={"classification": "internal"})
            graph = build_catalog([stored], registry.collections(), Settings())
        finally:
            await registry.close()
    node = URIRef("http://localhost:8000/api/v1/catalog#dataset-laadpalen")
    # re-classified in the catalogue but still served under the old registration: restricted
    assert graph.value(node, DCTERMS.accessRights) == EU_ACCESS_RIGHT.RESTRICTED
    assert graph.value(node, DCAT.keyword) is None
    # withdrawn from the catalogue while still served for a moment: not listed
    assert (URIRef("http://localhost:8000/api/v1/catalog#dataset-weg"), None, None) not in graph
    # without a contact e-mail the hub's contact point is reachable through its URL
    contact = URIRef("http://localhost:8000/api/v1/catalog#contact")
    assert graph.value(contact, VCARD.hasURL) == URIRef("http://localhost:8000")


@pytest.mark.parametrize(
    "catalogue",
    [{"publisher_uri": "gemeente delft"}, {"licence": "CC0"}, {"contact_email": "geen adres"}, {"theme": []}],
)
def test_invalid_catalogue_settings_are_refused(catalogue: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.load(catalogue=catalogue)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/turtle"),
        ("", "text/turtle"),
        ("text/*", "text/turtle"),
        ("text/*;q=0.5, text/html", "text/html"),
        ("TEXT/HTML", "text/html"),
        ("text/html;q=0, text/*", "text/turtle"),
        ("application/ld+json;q=0.9, text/turtle;q=0.9", "text/turtle"),
        ("application/ld+json;q=abc", None),
        ("garbage", None),
        ("image/*", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    offered = ["text/turtle", "application/ld+json", "text/html"]
    assert negotiate(accept, offered) == expected


async def test_html_links_only_web_and_mail_addresses() -> None:
    async with httpx.AsyncClient() as http:
        registry = SourceRegistry(http)
        registration = SourceRegistration.model_validate(
            _source("laadpalen", classification="open", licence="javascript:alert(1)")
        )
        await registry.activate(registration)
        try:
            graph = build_catalog([registration], registry.collections(), Settings())
        finally:
            await registry.close()
    page = catalog_html(graph, "nl")
    assert "<td>javascript:alert(1)</td>" in page and 'href="javascript' not in page
    assert '<a href="http://localhost:8000/ogc/v1/collections/laadpalen/items?f=json">' in page
