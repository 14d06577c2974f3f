"""The NL API Design Rules on every API of the hub, checked on a running hub with real sources.

The Logius linter (``adr-lint.sh``: Spectral with the ADR 2.2 ruleset) runs on each served OpenAPI
document and may report only the deviations that OGC API standards impose, each of which is
documented in ``docs/api-design-rules.md``. The rules the linter cannot see are checked on the
answers themselves: the ``API-Version`` header on every response (errors and the 500 path
included), the documents served without authentication, RFC 9457 problem details for every
error, no trailing-slash redirects, a true ``Allow`` on a 405, ``Content-Crs`` on every geo
response and a 400 for a CRS that is not offered.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hub import API_VERSION
from hub.app import create_app
from tests.fixtures.conformance import (
    APIS,
    CONTACT_EMAIL,
    HubApi,
    LintFinding,
    adr_lint,
    conformance_hub,
    fetch_document,
)
from tests.fixtures.hub import REPO, hub_settings
from tests.fixtures.oidc import bearer, steward_headers

DOCS = REPO / "docs" / "api-design-rules.md"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
BY_NAME = {api.name: api for api in APIS}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One hub for every check of this module; none of them changes it."""
    with conformance_hub(tmp_path_factory.mktemp("design-rules")) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def documents(hub: str) -> dict[str, dict[str, Any]]:
    """Each API's OpenAPI document, as served."""
    return {api.name: fetch_document(hub, api) for api in APIS}


def api_url(hub: str, api: HubApi) -> str:
    """Where the API lives: the hub's URL and the API's versioned base path."""
    return f"{hub}{api.prefix}"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem response with ``status``; return its body."""
    assert response.status_code == status, (response.request.url, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"], body
    return body


def concrete_get_paths(hub: str, api: HubApi, document: dict[str, Any]) -> list[str]:
    """Every GET path of the document, with real ids where it has parameters (paths whose
    parameters no real id is known for are left out)."""
    headers = api.headers()
    values = {op.path: op.parameters for op in api.real_ids(api_url(hub, api), document, headers)}
    paths = []
    for path, operations in document["paths"].items():
        if "get" not in operations:
            continue
        for name, value in values.get(path, {}).items():
            path = path.replace(f"{{{name}}}", value)
        if "{" not in path:
            paths.append(path)
    return paths


# -- the linter -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deviation:
    """A linter error that an OGC API standard imposes; ``marker`` names it in the docs."""

    rule: str
    marker: str
    applies: Callable[[LintFinding, str], bool]


OGC_PARAMETERS = frozenset({"bbox-crs", "filter-crs", "filter-lang"})


def _ogc_parameter(finding: LintFinding, api_url: str) -> bool:
    return finding.value in OGC_PARAMETERS


def _queryable_parameter(finding: LintFinding, api_url: str) -> bool:
    """A query parameter named after a property of the collection it filters (OGC API Features
    Part 1, /req/core/fc-filters): the name is the data's, not the API's."""
    match = re.fullmatch(r"/collections/([^/{}]+)/items", finding.path[1] if len(finding.path) > 1 else "")
    if finding.path[0] != "paths" or match is None:
        return False
    queryables = httpx.get(f"{api_url}/collections/{match.group(1)}/queryables", timeout=30)
    assert queryables.status_code == 200, queryables.text
    return finding.value in queryables.json()["properties"]


DEVIATIONS = [
    Deviation("nlgov:query-keys-camel-case", "`bbox-crs`", _ogc_parameter),
    Deviation("nlgov:query-keys-camel-case", "property names", _queryable_parameter),
]
# a warning, not an error: the test hub serves plain HTTP on loopback; deployments use https
EXPECTED_WARNINGS = frozenset({"nlgov:servers-use-https"})


def _deviation_for(finding: LintFinding, url: str) -> Deviation | None:
    return next((d for d in DEVIATIONS if d.rule == finding.code and d.applies(finding, url)), None)


@pytest.mark.timeout(600)  # the first run installs Spectral into the conformance cache
@pytest.mark.parametrize("api", APIS, ids=[api.name for api in APIS])
def test_linter_finds_only_documented_deviations(
    hub: str, documents: dict[str, dict[str, Any]], api: HubApi, tmp_path: Path
) -> None:
    findings = adr_lint(documents[api.name], tmp_path, api.name)
    errors = [f for f in findings if f.severity == 0]
    warnings = [f for f in findings if f.severity == 1]
    print(f"adr-lint on {api.name}: {len(errors)} errors, {len(warnings)} warnings")
    deviations = {id(f): _deviation_for(f, api_url(hub, api)) for f in errors}
    unexplained = [str(f) for f in errors if deviations[id(f)] is None]
    assert not unexplained, "\n".join(unexplained)
    assert {f.code for f in warnings} <= EXPECTED_WARNINGS, [str(f) for f in warnings]
    documented = DOCS.read_text(encoding="utf-8")
    for deviation in {d for d in deviations.values() if d is not None}:
        assert deviation.rule in documented and deviation.marker in documented, deviation


@pytest.mark.timeout(600)
def test_linter_reports_what_the_rules_forbid(
    hub: str, documents: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The linter run and its parsing see real violations: without the contact, the version
    header and the major version in the server URL, the errors appear."""
    broken = copy.deepcopy(documents["management"])
    del broken["info"]["contact"]
    broken["servers"] = [{"url": hub}]
    for operations in broken["paths"].values():
        for operation in operations.values():
            for response in operation["responses"].values():
                response.pop("headers", None)
    codes = {f.code for f in adr_lint(broken, tmp_path, "broken") if f.severity == 0}
    assert {"info-contact", "nlgov:missing-header", "nlgov:include-major-version-in-uri"} <= codes


# -- the documents --------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS, ids=[api.name for api in APIS])
def test_document_is_public_and_carries_the_major_version(hub: str, api: HubApi) -> None:
    # no credentials at all, even for an API that needs them for everything else
    response = httpx.get(f"{api_url(hub, api)}/openapi.json", timeout=30)
    assert response.status_code == 200 and response.headers["API-Version"] == API_VERSION
    document = response.json()
    assert re.fullmatch(r"/[a-z]+/v\d+", api.prefix)
    assert [server["url"] for server in document["servers"]] == [api_url(hub, api)]
    assert document["info"]["version"] == API_VERSION
    assert document["info"]["contact"]["email"] == CONTACT_EMAIL
    assert all(not path.startswith(api.prefix) for path in document["paths"])


# -- every response -------------------------------------------------------------------------------


ErrorRequest = tuple[str, str, dict[str, str], int]


def error_requests(api: HubApi) -> list[ErrorRequest]:
    """(method, path, headers, status) of errors every API gives, and those of its own."""
    common: list[ErrorRequest] = [
        ("GET", "/openapi.json?unknown=1", {}, 400),
        ("GET", "/openapi.json?a=1&a=2", {}, 400),
        ("GET", "/no-such-resource", {}, 404),
        ("DELETE", "/openapi.json", {}, 405),
    ]
    own: dict[str, list[ErrorRequest]] = {
        "ogc-features": [
            ("GET", "/collections/afvalbakken/items?colour=red", {}, 400),
            ("GET", "/collections/afvalbakken/items?f=shapefile", {}, 400),
            ("GET", "/collections/nothing/items", {}, 404),
            ("GET", "/collections/afvalbakken/items/no-such-feature", {}, 404),
            ("POST", "/collections", {}, 405),
        ],
        "management": [
            ("GET", "/sources", {}, 401),
            ("GET", "/sources", bearer(sub="viewer-1", roles=[]), 403),
            ("GET", "/sources?unknown=1", steward_headers(), 400),
            ("GET", "/sources/nothing", steward_headers(), 404),
            ("GET", "/catalog", {"Accept": "image/png"}, 406),
            ("PATCH", "/sources", steward_headers(), 405),
        ],
        "ogc-records": [
            ("GET", "/collections/catalogue/items?colour=red", {}, 400),
            ("GET", "/collections/nothing/items", {}, 404),
        ],
    }
    return common + own.get(api.name, [])


@pytest.mark.parametrize("api", APIS, ids=[api.name for api in APIS])
def test_every_answer_carries_the_api_version(
    hub: str, documents: dict[str, dict[str, Any]], api: HubApi
) -> None:
    base = api_url(hub, api)
    headers = api.headers()
    for path in concrete_get_paths(hub, api, documents[api.name]):
        response = httpx.get(f"{base}{path}", headers=headers, timeout=30)
        assert response.headers.get("API-Version") == API_VERSION, (path, response.status_code)
        if response.status_code >= 400:
            problem(response, response.status_code)
    for method, path, extra, status in error_requests(api):
        response = httpx.request(method, f"{base}{path}", headers=extra, timeout=30)
        assert response.headers.get("API-Version") == API_VERSION, (method, path, response.status_code)
        problem(response, status)


@pytest.mark.parametrize("api", APIS, ids=[api.name for api in APIS])
def test_a_405_names_every_method_the_path_answers(
    documents: dict[str, dict[str, Any]], hub: str, api: HubApi
) -> None:
    base = api_url(hub, api)
    for path, operations in documents[api.name]["paths"].items():
        if "{" in path:
            continue
        documented = {method.upper() for method in operations}
        unused = next(m for m in ("PATCH", "PUT", "DELETE", "POST") if m not in documented)
        response = httpx.request(unused, f"{base}{path}", headers=api.headers(), timeout=30)
        problem(response, 405)
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed == documented, (path, allowed)


async def test_an_unexpected_error_is_a_problem_with_the_api_version(tmp_path: Path) -> None:
    """The 500 answer comes from Starlette's outermost middleware, past every other one."""
    app: FastAPI = create_app(hub_settings(tmp_path, []))

    async def failing() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/v1/failing", failing)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            response = await client.get("/api/v1/failing")
    body = problem(response, 500)
    assert response.headers["API-Version"] == API_VERSION
    assert "a bug" not in response.text and body["detail"]


async def test_cors_answers_carry_the_api_version_and_refusals_are_problems(tmp_path: Path) -> None:
    """Browser preflights are answered by the CORS middleware itself, before any route."""
    viewer = "https://viewer.example.org"
    app: FastAPI = create_app(hub_settings(tmp_path, [], cors={"allow_origins": [viewer]}))
    preflight = {"Access-Control-Request-Method": "GET"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            allowed = await client.options("/ogc/v1/collections", headers={"Origin": viewer, **preflight})
            refused = await client.options(
                "/ogc/v1/collections", headers={"Origin": "https://elsewhere.example.org", **preflight}
            )
            simple = await client.get("/ogc/v1/collections", headers={"Origin": viewer})
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == viewer
    assert problem(refused, 400)["detail"].startswith("Disallowed CORS origin")
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert simple.status_code == 200 and simple.headers["Access-Control-Allow-Origin"] == viewer
    for response in (allowed, refused, simple):
        assert response.headers.get_list("API-Version") == [API_VERSION]


@pytest.mark.parametrize("api", APIS, ids=[api.name for api in APIS])
def test_a_trailing_slash_is_a_404_never_a_redirect(
    hub: str, documents: dict[str, dict[str, Any]], api: HubApi
) -> None:
    base = api_url(hub, api)
    for path in concrete_get_paths(hub, api, documents[api.name]):
        if path == "/":
            continue
        response = httpx.get(f"{base}{path}/", headers=api.headers(), timeout=30)
        assert "location" not in response.headers, path
        problem(response, 404)
    root = httpx.get(f"{base}/", headers=api.headers(), timeout=30)
    assert "location" not in root.headers
    # the one documented exception: an OGC API's landing page, for clients that add the slash
    assert root.status_code == (200 if "/" in documents[api.name]["paths"] else 404)


# -- the geospatial module ------------------------------------------------------------------------


def geo_operations(hub: str, api: HubApi, document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Items and item operations (real ids filled in) with their parameters, references resolved."""
    parameters = document.get("components", {}).get("parameters", {})
    values = {op.path: op.parameters for op in api.real_ids(api_url(hub, api), document, api.headers())}
    for path, operations in document["paths"].items():
        if not re.search(r"/items(/\{\w+\})?$", path):
            continue
        resolved = {}
        for parameter in operations["get"].get("parameters", []):
            if "$ref" in parameter:
                parameter = parameters[parameter["$ref"].rsplit("/", 1)[-1]]
            resolved[parameter["name"]] = parameter
        concrete = path
        for name, value in values.get(path, {}).items():
            concrete = concrete.replace(f"{{{name}}}", value)
        yield concrete, resolved


@pytest.mark.parametrize("api", APIS, ids=[api.name for api in APIS])
def test_every_geo_answer_names_its_crs(hub: str, documents: dict[str, dict[str, Any]], api: HubApi) -> None:
    base = api_url(hub, api)
    checked = 0
    for path, parameters in geo_operations(hub, api, documents[api.name]):
        formats = parameters.get("f", {}).get("schema", {}).get("enum", [None])
        offered = parameters.get("crs", {}).get("schema", {}).get("enum", [])
        asked: list[tuple[str | None, str | None]] = [(f, None) for f in formats]
        asked += [("json", crs) for crs in offered]
        for f, crs in asked:
            params = {k: v for k, v in {"f": f, "crs": crs}.items() if v is not None}
            if path.endswith("/items"):
                params["limit"] = "2"
            response = httpx.get(f"{base}{path}", params=params, headers=api.headers(), timeout=30)
            assert response.status_code == 200, (path, params, response.text[:300])
            assert response.headers["Content-Crs"] == f"<{crs or CRS84}>", (path, params)
            checked += 1
    if api.name in ("ogc-features", "ogc-records"):
        assert checked > 0


def test_a_crs_that_is_not_offered_is_refused(hub: str, documents: dict[str, dict[str, Any]]) -> None:
    api = BY_NAME["ogc-features"]
    base = api_url(hub, api)
    unknown = "http://www.opengis.net/def/crs/EPSG/0/2000"
    for path, parameters in geo_operations(hub, api, documents[api.name]):
        offered = parameters["crs"]["schema"]["enum"]
        assert CRS84 in offered and unknown not in offered
        asks = [{"crs": unknown}]
        if path.endswith("/items"):
            asks += [
                {"bbox": "4.8,52.3,4.9,52.4", "bbox-crs": unknown},
                {"filter": "S_INTERSECTS(geometry, POINT(4.9 52.37))", "filter-crs": unknown},
            ]
        for params in asks:
            body = problem(httpx.get(f"{base}{path}", params=params, timeout=30), 400)
            # the refusal names what is offered
            assert CRS84 in body["detail"], body
