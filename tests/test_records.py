"""OGC API Records at /records/v1 against a running hub with real sources: files from the shared
municipal data, the pygeoapi upstream, a 3D CityJSON file and a restricted source.

Expected answers are computed here from the records' own documents and the sources' data, not
from the hub's search code: what ``q``, ``bbox`` and ``datetime`` should select is worked out
with plain substring tests, shapely and datetime comparisons.
"""

from __future__ import annotations

import json
import os
import subprocess
import unicodedata
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from hub.ogc.openapi import remote_refs
from tests.fixtures.hub import SHARED, hub_settings, require_shared, serve_hub, wait_until_served
from tests.fixtures.oidc import steward
from tests.fixtures.upstream import PygeoapiUpstream

REPO = Path(__file__).resolve().parents[1]
CLIENT_CHECKS = SHARED / "conformance" / "ogcapi-clients.sh"
MUNICIPAL = SHARED / "data" / "municipal"
AFVALBAKKEN = MUNICIPAL / "amsterdam_afvalbakken_2013.geojson"
BEKENDMAKINGEN = MUNICIPAL / "amsterdam_bekendmakingen_2013.geojson"
DELFT_3D = SHARED / "data" / "3dbag" / "delft_3dbag.city.jsonl"

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
ENVI = "http://publications.europa.eu/resource/authority/data-theme/ENVI"
OWN_LICENCE = "Voorwaarden hergebruik gemeente Amsterdam"
MAX_LIMIT = 500
PROBLEM = "application/problem+json"

# What the restricted source declares and the records must never show.
SECRET_DESCRIPTION = "Dossiers van cliënten met een Wmo-indicatie per adres"
SECRET_KEYWORD = "wmo-clientdossier"
SECRET_EXTENT = [4.111111, 51.222222, 4.333333, 51.444444]


def _sources(upstream_url: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "afvalbakken",
            "title": "Afvalbakken Amsterdam",
            "description": "Afvalbakken in de openbare ruimte van Amsterdam",
            "connector": "file",
            "classification": "open",
            "path": str(AFVALBAKKEN),
            "keywords": ["afval", "openbare ruimte"],
            "licence": CC_BY,
            "owner": "Gemeente Amsterdam",
            "contact_point": {"name": "Team afval", "email": "afval@amsterdam.example"},
            "theme": [ENVI],
        },
        {
            "id": "bekendmakingen",
            "title": "Bekendmakingen 2013",
            "description": "Officiële bekendmakingen van Amsterdam in 2013",
            "connector": "file",
            "classification": "open",
            "path": str(BEKENDMAKINGEN),
            "time_field": "datum",
            "licence": OWN_LICENCE,
            "theme": ["Bestuur en beleid"],
        },
        {
            "id": "upstream",
            "title": "Amsterdam via pygeoapi",
            "connector": "ogcapi-features",
            "classification": "open",
            "url": upstream_url,
            "collections": ["afvalbakken", "bekendmakingen"],
        },
        {
            "id": "delft-3d",
            "title": "3D BAG Delft",
            "connector": "cityjson",
            "classification": "open",
            "path": str(DELFT_3D),
        },
        {
            "id": "zorgdossiers",
            "title": "Zorgdossiers",
            "description": SECRET_DESCRIPTION,
            "connector": "file",
            "classification": "personal",
            "path": str(BEKENDMAKINGEN),
            "time_field": "datum",
            "keywords": [SECRET_KEYWORD],
            "extent": SECRET_EXTENT,
            "contact_point": {"name": "Privacyloket", "email": "privacy@amsterdam.example"},
        },
    ]


SERVED = ("afvalbakken", "bekendmakingen", "upstream-afvalbakken", "upstream-bekendmakingen", "zorgdossiers")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, upstream_pygeoapi: PygeoapiUpstream) -> Iterator[str]:
    """A hub with open file, upstream and 3D sources and one restricted source, all served."""
    require_shared()
    settings = hub_settings(
        tmp_path_factory.mktemp("records"),
        _sources(upstream_pygeoapi.base_url),
        server={"max_limit": MAX_LIMIT},
        catalogue={"publisher": "Gemeente Amsterdam", "contact_email": "geo@amsterdam.example"},
    )
    with serve_hub(settings) as base_url:
        for collection_id in SERVED:
            wait_until_served(base_url, collection_id)
        wait_until_served(base_url, "delft-3d", timeout=60)
        yield base_url


def get(url: str, **params: Any) -> httpx.Response:
    """An anonymous GET; a URL's own query is kept when no parameters are given."""
    return httpx.get(url, params=params or None, timeout=60)


def items_url(hub: str) -> str:
    """The records of the catalogue."""
    return f"{hub}/records/v1/collections/catalogue/items"


@pytest.fixture(scope="module")
def records(hub: str) -> dict[str, dict[str, Any]]:
    """Every record, by id, from one page."""
    page = get(items_url(hub), limit=MAX_LIMIT).json()
    assert page["numberMatched"] == page["numberReturned"] == len(page["features"])
    return {record["id"]: record for record in page["features"]}


def link(record: dict[str, Any], rel: str, media_type: str | None = None) -> list[dict[str, Any]]:
    """The record's links of one relation (and media type)."""
    return [
        item
        for item in record["links"]
        if item["rel"] == rel and (media_type is None or item.get("type") == media_type)
    ]


def media_type(response: httpx.Response) -> str:
    """The response's media type without parameters."""
    return response.headers["content-type"].split(";")[0].strip()


def plain(text: str) -> str:
    """Lower case without accents, to compute expected text matches independently."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def ids(response: httpx.Response) -> set[str]:
    """The ids of the records on a page."""
    assert response.status_code == 200, response.text
    return {record["id"] for record in response.json()["features"]}


# -- the API and its collection ----------------------------------------------------------------


def test_landing_page_conformance_and_openapi(hub: str) -> None:
    landing = get(f"{hub}/records/v1")
    assert landing.status_code == 200 and landing.headers["API-Version"]
    links = {item["rel"]: item for item in landing.json()["links"]}
    assert links["self"]["href"] == f"{hub}/records/v1"
    assert links["conformance"]["href"] == f"{hub}/records/v1/conformance"
    assert links["data"]["href"] == f"{hub}/records/v1/collections"
    service_desc = links["service-desc"]
    assert service_desc["href"] == f"{hub}/records/v1/openapi.json"
    document = get(service_desc["href"])
    assert document.headers["content-type"] == service_desc["type"]
    assert service_desc["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert document.json()["openapi"].startswith("3.")

    conforms = set(get(links["conformance"]["href"]).json()["conformsTo"])
    records_classes = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/"
    assert {
        f"{records_classes}core",
        f"{records_classes}record-core",
        f"{records_classes}record-collection",
        f"{records_classes}record-api",
        f"{records_classes}record-core-query-parameters",
        f"{records_classes}json",
        "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    } <= conforms
    # a catalogue, not a features API: a viewer must not read its collections as layers
    assert not any("ogcapi-features" in c for c in conforms)


def test_one_record_collection_and_no_feature_collection(hub: str) -> None:
    listed = get(f"{hub}/records/v1/collections").json()["collections"]
    assert [(c["id"], c["itemType"], c["type"]) for c in listed] == [("catalogue", "record", "Catalog")]
    features = get(f"{hub}/ogc/v1/collections", f="json").json()["collections"]
    assert {c["id"] for c in features} >= {"afvalbakken", "upstream-bekendmakingen"}
    assert not {c["id"] for c in features} & {c["id"] for c in listed}
    assert all(c.get("itemType", "feature") == "feature" for c in features)
    # a feature collection is no record collection
    assert get(f"{hub}/records/v1/collections/afvalbakken").status_code == 404
    assert get(f"{hub}/records/v1/collections/afvalbakken/items").status_code == 404

    catalogue = get(f"{hub}/records/v1/collections/catalogue").json()
    assert catalogue == listed[0]
    items = next(item for item in catalogue["links"] if item["rel"] == "items")
    assert items["href"] == items_url(hub)
    # the extent is that of the open records, without the restricted source's secret box
    page = get(items_url(hub), limit=MAX_LIMIT).json()["features"]
    shapes = [shapely.geometry.shape(r["geometry"]) for r in page if r["geometry"]]
    assert catalogue["extent"]["spatial"]["bbox"][0] == pytest.approx(shapely.total_bounds(shapes).tolist())
    assert catalogue["extent"]["spatial"]["bbox"][0][1] > SECRET_EXTENT[3]


def test_a_record_per_source_and_per_collection(hub: str, records: dict[str, dict[str, Any]]) -> None:
    health = steward().get(f"{hub}/api/v1/health").json()["sources"]
    expected = {f"source.{s['id']}" for s in health} | {
        f"collection.{cid}" for s in health for cid in s["collections"]
    }
    assert set(records) == expected
    assert len(expected) == 5 + 6
    for record_id, record in records.items():
        assert record["type"] == "Feature" and record["id"] == record_id
        kind = "service" if record_id.startswith("source.") else "dataset"
        assert record["properties"]["type"] == kind
        assert record["properties"]["title"]
        assert {"time", "geometry", "links"} <= set(record)
        self_link = link(record, "self")[0]["href"]
        assert get(self_link).json() == record

    # a dataset record says what the OGC API says about its collection
    for collection_id in ("afvalbakken", "bekendmakingen", "upstream-bekendmakingen", "delft-3d"):
        record = records[f"collection.{collection_id}"]
        collection = get(f"{hub}/ogc/v1/collections/{collection_id}", f="json").json()
        assert record["properties"]["title"] == collection["title"]
        bbox = collection["extent"]["spatial"]["bbox"][0]
        assert shapely.geometry.shape(record["geometry"]).bounds == pytest.approx(tuple(bbox))
        temporal = collection["extent"].get("temporal", {}).get("interval")
        if temporal:
            got = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in record["time"]["interval"]]
            want = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in temporal[0]]
            assert [g.astimezone(UTC) for g in got] == [w.replace(tzinfo=w.tzinfo or UTC) for w in want]
        else:
            assert record["time"] is None

    # a source record lists its collections' records
    upstream = records["source.upstream"]
    assert {item["href"].rsplit("/", 1)[1] for item in link(upstream, "item")} == {
        "collection.upstream-afvalbakken",
        "collection.upstream-bekendmakingen",
    }


def test_open_records_carry_their_registration(hub: str, records: dict[str, dict[str, Any]]) -> None:
    record = records["collection.afvalbakken"]
    properties = record["properties"]
    assert properties["description"] == "Afvalbakken in de openbare ruimte van Amsterdam"
    assert properties["keywords"] == ["afval", "openbare ruimte"]
    assert properties["license"] == "CC-BY-4.0"
    assert [item["href"] for item in link(record, "license")] == [CC_BY]
    assert properties["accessRights"].endswith("/access-right/PUBLIC")
    assert properties["themes"] == [
        {
            "scheme": "http://publications.europa.eu/resource/authority/data-theme",
            "concepts": [{"id": "ENVI", "title": "Milieu", "url": ENVI}],
        }
    ]
    contacts = {role: c for c in properties["contacts"] for role in c["roles"]}
    assert contacts["pointOfContact"]["name"] == "Team afval"
    assert contacts["pointOfContact"]["emails"] == [{"value": "afval@amsterdam.example"}]
    assert contacts["owner"]["organization"] == "Gemeente Amsterdam"
    assert contacts["publisher"]["organization"] == "Gemeente Amsterdam"
    created = datetime.fromisoformat(properties["created"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - created).total_seconds()) < 600

    # a licence and a theme given as labels: "other", linked to where the DCAT catalogue names them
    bekendmakingen = records["collection.bekendmakingen"]
    assert bekendmakingen["properties"]["license"] == "other"
    (licence,) = link(bekendmakingen, "license")
    assert licence["href"].startswith(f"{hub}/api/v1/catalog#licence-")
    assert bekendmakingen["properties"]["themes"][0]["concepts"][0]["title"] == "Bestuur en beleid"
    # the hub's default theme where a source names none
    assert records["source.upstream"]["properties"]["themes"][0]["concepts"][0]["id"] == "REGI"


def test_records_and_the_dcat_catalogue_agree(hub: str, records: dict[str, dict[str, Any]]) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        graph = Graph().parse(data=get(f"{hub}/api/v1/catalog", f="jsonld").content, format="json-ld")
    datasets = [r for r in records.values() if r["properties"]["type"] == "dataset"]
    assert len(datasets) == len(set(graph.subjects(RDF.type, DCAT.Dataset))) == 6
    for record in datasets:
        (external,) = record["properties"]["externalIds"]
        node = URIRef(external["value"])
        assert (node, RDF.type, DCAT.Dataset) in graph
        assert graph.value(node, DCTERMS.identifier) == Literal(external["value"])
        assert str(graph.value(node, DCTERMS.title)) == record["properties"]["title"]
        assert record["properties"]["description"] in {
            str(d) for d in graph.objects(node, DCTERMS.description)
        }
        assert {str(k) for k in graph.objects(node, DCAT.keyword)} == set(
            record["properties"].get("keywords", [])
        )
        assert str(graph.value(node, DCTERMS.accessRights)) == record["properties"]["accessRights"]


# -- links a viewer loads ------------------------------------------------------------------------


def test_every_link_loads_with_its_media_type(hub: str, records: dict[str, dict[str, Any]]) -> None:
    targets = {
        (item["href"], item["type"])
        for record in records.values()
        for item in record["links"]
        if item["href"].startswith(hub)
    }
    assert len(targets) > 30
    for href, advertised in sorted(targets):
        response = httpx.get(href, timeout=120)
        assert response.status_code == 200, (href, response.text[:500])
        assert media_type(response) == advertised, href
        assert response.headers["API-Version"]


def test_viewer_links_load_the_data_in_one_request(hub: str, records: dict[str, dict[str, Any]]) -> None:
    source_count = len(json.loads(AFVALBAKKEN.read_text(encoding="utf-8"))["features"])
    for record in records.values():
        viewer_links = [item for item in record["links"] if item["rel"] == "describes" or "protocol" in item]
        if record["properties"]["accessRights"].endswith("/PUBLIC"):
            assert viewer_links, record["id"]
        for item in viewer_links:
            # served by the hub, never the source's own address (which may be internal)
            assert item["href"].startswith(f"{hub}/ogc/v1/collections/"), item
    (geojson,) = link(records["collection.afvalbakken"], "describes", "application/geo+json")
    assert geojson["protocol"] == "OGC:API features"
    page = get(geojson["href"]).json()
    assert page["type"] == "FeatureCollection"
    # as much as one request can carry: a viewer does not page
    assert len(page["features"]) == page["numberReturned"] == min(source_count, MAX_LIMIT)

    # CityJSON where the collection offers it, as one whole document
    (cityjson,) = link(records["collection.delft-3d"], "describes", "application/city+json")
    document = get(cityjson["href"]).json()
    assert document["type"] == "CityJSON" and document["CityObjects"]
    assert not link(records["collection.afvalbakken"], "describes", "application/city+json")


def test_landing_page_never_points_a_viewer_at_the_features_api(hub: str) -> None:
    """A viewer reads any OGC API landing page as a catalogue: records link to collections and
    their items, never to the features API's landing page."""
    page = get(items_url(hub), limit=MAX_LIMIT).text
    assert f'"{hub}/ogc/v1"' not in page
    assert f'"{hub}/ogc/v1/"' not in page


# -- restricted sources --------------------------------------------------------------------------


def test_restricted_records_show_only_that_they_exist_and_whom_to_ask(
    hub: str, records: dict[str, dict[str, Any]]
) -> None:
    for record_id in ("source.zorgdossiers", "collection.zorgdossiers"):
        record = records[record_id]
        properties = record["properties"]
        assert properties["title"] == "Zorgdossiers"
        assert properties["accessRights"].endswith("/access-right/NON_PUBLIC")
        assert "beperkt" in properties["description"]
        contacts = {role: c for c in properties["contacts"] for role in c["roles"]}
        assert contacts["pointOfContact"]["name"] == "Privacyloket"
        assert record["geometry"] is None and record["time"] is None
        assert "keywords" not in properties and "license" not in properties and "formats" not in properties
        assert {item["rel"] for item in record["links"]} <= {
            "self",
            "collection",
            "root",
            "describedby",
            "related",
            "item",
        }
        text = json.dumps(record, ensure_ascii=False)
        for secret in (
            SECRET_DESCRIPTION,
            SECRET_KEYWORD,
            str(SECRET_EXTENT[0]),
            str(BEKENDMAKINGEN),
            "2013",
        ):
            assert secret not in text, secret
        assert "/ogc/v1/" not in text


def test_a_search_never_finds_what_a_restricted_record_keeps_back(hub: str) -> None:
    assert ids(get(items_url(hub), q=SECRET_KEYWORD)) == set()
    assert ids(get(items_url(hub), q="Wmo-indicatie")) == set()
    assert "collection.zorgdossiers" not in ids(get(items_url(hub), bbox=",".join(map(str, SECRET_EXTENT))))
    assert "collection.zorgdossiers" not in ids(get(items_url(hub), datetime="2013-05-20T00:00:00Z"))
    # what it does show can be found
    assert ids(get(items_url(hub), q="zorgdossiers")) == {"source.zorgdossiers", "collection.zorgdossiers"}


# -- searching -----------------------------------------------------------------------------------


def _text_match(record: dict[str, Any], words: list[str]) -> bool:
    properties = record["properties"]
    texts = [properties["title"], properties.get("description", ""), *properties.get("keywords", [])]
    phrase = " ".join(plain(word) for word in words)
    return any(phrase in " ".join(plain(text).split()) for text in texts)


@pytest.mark.parametrize(
    ("q", "alternatives"),
    [
        ("afval", [["afval"]]),
        ("AFVAL,bekendmakingen", [["afval"], ["bekendmakingen"]]),
        ("openbare ruimte", [["openbare", "ruimte"]]),
        ("ruimte openbare", [["ruimte", "openbare"]]),
        ("officiele", [["officiele"]]),
        ("Officiële", [["officiele"]]),
        ("delft, pygeoapi", [["delft"], ["pygeoapi"]]),
        ("geen-enkel-record", [["geen-enkel-record"]]),
    ],
)
def test_q_matches_title_description_and_keywords(
    hub: str, records: dict[str, dict[str, Any]], q: str, alternatives: list[list[str]]
) -> None:
    expected = {rid for rid, r in records.items() if any(_text_match(r, words) for words in alternatives)}
    assert ids(get(items_url(hub), q=q, limit=MAX_LIMIT)) == expected
    if q.startswith(("afval", "AFVAL", "openbare ruimte", "officiele")):
        assert expected


@pytest.mark.parametrize(
    "bbox",
    [
        (4.88, 52.36, 4.90, 52.38),  # Amsterdam centre
        (4.35, 51.99, 4.38, 52.02),  # Delft
        (5.6, 50.8, 5.8, 50.9),  # Maastricht: nothing here
        (-180, -90, 180, 90),
    ],
)
def test_bbox_selects_records_whose_extent_meets_the_box(
    hub: str, records: dict[str, dict[str, Any]], bbox: tuple[float, ...]
) -> None:
    box = shapely.box(*bbox)
    expected = {
        rid
        for rid, r in records.items()
        if r["geometry"] and shapely.geometry.shape(r["geometry"]).intersects(box)
    }
    assert ids(get(items_url(hub), bbox=",".join(map(str, bbox)), limit=MAX_LIMIT)) == expected
    if bbox[0] in (4.88, 4.35):
        assert expected


def _interval(record: dict[str, Any]) -> tuple[datetime, datetime] | None:
    if record["time"] is None:
        return None
    start, end = (
        datetime.fromisoformat(v.replace("Z", "+00:00")) if v != ".." else None
        for v in record["time"]["interval"]
    )
    return (start or datetime.min.replace(tzinfo=UTC), end or datetime.max.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        (
            "2013-05-20T12:00:00Z",
            datetime(2013, 5, 20, 12, tzinfo=UTC),
            datetime(2013, 5, 20, 12, tzinfo=UTC),
        ),
        ("2013-06-01", datetime(2013, 6, 1, tzinfo=UTC), datetime(2013, 6, 1, 23, 59, 59, tzinfo=UTC)),
        ("2020-01-01T00:00:00Z/..", datetime(2020, 1, 1, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)),
        ("../2013-05-01T00:00:00Z", datetime.min.replace(tzinfo=UTC), datetime(2013, 5, 1, tzinfo=UTC)),
        (
            "2013-06-20T00:00:00Z/2014-01-01T00:00:00Z",
            datetime(2013, 6, 20, tzinfo=UTC),
            datetime(2014, 1, 1, tzinfo=UTC),
        ),
    ],
)
def test_datetime_selects_records_whose_time_meets_it(
    hub: str, records: dict[str, dict[str, Any]], value: str, start: datetime, end: datetime
) -> None:
    expected = set()
    for rid, record in records.items():
        interval = _interval(record)
        if interval is not None and interval[0] <= end and start <= interval[1]:
            expected.add(rid)
    assert ids(get(items_url(hub), datetime=value, limit=MAX_LIMIT)) == expected
    if value.startswith("2013-05-20"):
        assert {"collection.bekendmakingen", "source.bekendmakingen"} <= expected


def test_type_ids_and_external_ids(hub: str, records: dict[str, dict[str, Any]]) -> None:
    services = {rid for rid, r in records.items() if r["properties"]["type"] == "service"}
    assert ids(get(items_url(hub), type="service", limit=MAX_LIMIT)) == services
    assert ids(get(items_url(hub), type="dataset,service", limit=MAX_LIMIT)) == set(records)
    assert ids(get(items_url(hub), type="series")) == set()
    assert ids(get(items_url(hub), ids="source.upstream,collection.delft-3d,nothing")) == {
        "source.upstream",
        "collection.delft-3d",
    }
    dcat_id = f"{hub}/api/v1/catalog#dataset-bekendmakingen"
    assert ids(get(items_url(hub), externalIds=dcat_id)) == {"collection.bekendmakingen"}
    # criteria combine
    box = "4.88,52.36,4.90,52.38"
    each = [
        ids(get(items_url(hub), q="afval", limit=MAX_LIMIT)),
        ids(get(items_url(hub), type="dataset", limit=MAX_LIMIT)),
        ids(get(items_url(hub), bbox=box, limit=MAX_LIMIT)),
    ]
    combined = ids(get(items_url(hub), q="afval", type="dataset", bbox=box, limit=MAX_LIMIT))
    assert combined == set.intersection(*each)
    assert "collection.afvalbakken" in combined and "source.afvalbakken" not in combined


def test_paging_walks_every_record_once(hub: str, records: dict[str, dict[str, Any]]) -> None:
    seen: list[str] = []
    url: str | None = f"{items_url(hub)}?limit=3"
    pages = 0
    while url is not None:
        page = httpx.get(url, timeout=60).json()
        pages += 1
        assert page["numberMatched"] == len(records)
        assert page["numberReturned"] == len(page["features"]) <= 3
        seen += [record["id"] for record in page["features"]]
        if pages > 1:
            assert link(page, "prev")
        nexts = link(page, "next")
        url = nexts[0]["href"] if nexts else None
    assert seen == list(records)
    assert pages == -(-len(records) // 3)
    # the search criteria travel with the paging links
    first = get(items_url(hub), type="dataset", limit=2).json()
    assert "type=dataset" in link(first, "next")[0]["href"]
    # a larger limit is served as the largest page
    assert get(items_url(hub), limit=MAX_LIMIT * 10).json()["numberReturned"] == len(records)
    assert get(items_url(hub), offset=len(records)).json()["features"] == []


# -- bad input and the rules every response follows ---------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"foo": "1"},
        {"limit": "0"},
        {"limit": "ten"},
        {"offset": "-1"},
        {"bbox": "1,2,3"},
        {"bbox": "5,52,4,53"},
        {"bbox": "0,0,200,10"},
        {"bbox": "a,b,c,d"},
        {"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/28992", "bbox": "1,2,3,4"},
        {"datetime": "yesterday"},
        {"datetime": "2014-01-01/2013-01-01"},
        {"q": ""},
        {"q": " , "},
        {"type": ""},
        {"ids": ","},
        {"f": "html"},
        {"filter": "title='x'"},
        {"sortby": "title"},
    ],
)
def test_bad_parameters_are_refused_as_problems(hub: str, params: dict[str, str]) -> None:
    response = get(items_url(hub), **params)
    assert response.status_code == 400, response.text
    assert media_type(response) == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] and problem["detail"]
    assert response.headers["API-Version"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/records/v1/collections/features", 404),
        ("/records/v1/collections/catalogue/items/source.nothing", 404),
        ("/records/v1/collections/catalogue/items/afvalbakken", 404),
        ("/records/v1/collections/", 404),
        ("/records/v1/conformance/", 404),
        ("/records/v1/collections/catalogue/items/", 404),
        ("/records/v1/conformance?f=xml", 400),
        ("/records/v1/collections?limit=1", 400),
        ("/records/v1/openapi.json?f=json", 400),
        ("/records/v1/", 200),
    ],
)
def test_paths_answer_problems_never_redirects(hub: str, path: str, status: int) -> None:
    response = httpx.get(f"{hub}{path}", timeout=30, follow_redirects=False)
    assert response.status_code == status, response.text
    assert response.headers["API-Version"]
    if status >= 400:
        assert media_type(response) == "application/problem+json"
        assert response.json()["status"] == status


def test_openapi_document_is_self_contained_and_true(hub: str) -> None:
    document = get(f"{hub}/records/v1/openapi.json").json()
    assert remote_refs(document) == set()
    # paths are relative to the server URL, which carries the major version
    (server,) = document["servers"]
    assert server["url"] == f"{hub}/records/v1"
    assert document["components"]["parameters"]["collectionId"]["schema"]["enum"] == ["catalogue"]
    paths = document["paths"]
    items = paths["/collections/{collectionId}/items"]["get"]
    names = {p["$ref"].rsplit("/", 1)[1] for p in items["parameters"]}
    assert names == {
        "collectionId",
        "q",
        "bbox",
        "datetime",
        "type",
        "ids",
        "externalIds",
        "limit",
        "offset",
        "f",
    }
    for path, operations in paths.items():
        assert set(operations) == {"get"}, path
        concrete = path.replace("{collectionId}", "catalogue").replace("{recordId}", "source.afvalbakken")
        response = get(f"{server['url']}{concrete.rstrip('/')}")
        assert response.status_code == 200, (path, response.text)
        responses = operations["get"]["responses"]
        assert response.headers["content-type"] in responses["200"]["content"], path
        assert all("API-Version" in answer["headers"] for answer in responses.values()), path
        assert all(PROBLEM in responses[status]["content"] for status in responses if status != "200"), path
    # a bad request is answered as the document says
    bad = get(f"{server['url']}/collections/catalogue/items", limit="0")
    assert bad.status_code == 400 and media_type(bad) == PROBLEM


# -- the catalogue follows the registrations ----------------------------------------------------


def test_a_registered_source_shows_at_once_and_a_withdrawn_one_goes(hub: str) -> None:
    source = {
        "id": "laadpalen",
        "title": "Laadpalen Delft",
        "connector": "file",
        "classification": "open",
        "path": str(REPO / "config" / "demo-data" / "laadpalen.geojson"),
        "time_field": "in_gebruik_sinds",
    }
    created = steward().post(f"{hub}/api/v1/sources", json=source)
    assert created.status_code == 201, created.text
    try:
        assert ids(get(items_url(hub), q="laadpalen")) == {"source.laadpalen", "collection.laadpalen"}
    finally:
        assert steward().delete(f"{hub}/api/v1/sources/laadpalen").status_code == 204
    assert ids(get(items_url(hub), q="laadpalen")) == set()


# -- a real client -------------------------------------------------------------------------------


def test_conformance_kit_records_client_checks_pass(hub: str) -> None:
    if not CLIENT_CHECKS.is_file():
        pytest.skip(f"needs the conformance kit at {CLIENT_CHECKS}, which is absent")
    result = subprocess.run(
        ["bash", str(CLIENT_CHECKS), "records", f"{hub}/records/v1"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHON": "python3"},
        cwd=REPO,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-4000:]
    assert "FAIL" not in result.stdout and " 0 failed" in result.stdout, result.stdout[-4000:]
    assert "PASS catalogue: items" in result.stdout and "PASS catalogue: q=" in result.stdout
