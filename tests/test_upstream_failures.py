"""A failing source gets a 502/504 for its own collections only, within its timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fixtures.hub import hub_settings, serve_hub, wait_until_served
from tests.fixtures.loopback import refusing_port, serve
from tests.fixtures.oidc import steward

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo-data" / "laadpalen.geojson"
TIMEOUT = 1.0


def misbehaving_ogcapi(mode: str) -> Starlette:
    """An OGC API Features server whose discovery documents are fine but whose items are not:
    ``slow`` never answers in time, ``garbage`` answers with HTML, ``broken`` with a 500."""

    async def landing(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"links": [{"rel": "data", "href": f"{base}/collections"}]})

    async def conformance(request: Request) -> Response:
        return JSONResponse({"conformsTo": ["http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"]})

    collection = {
        "id": "punten",
        "title": "Punten",
        "links": [],
        "extent": {"spatial": {"bbox": [[4.3, 52.0, 4.4, 52.1]]}},
    }

    async def collections(request: Request) -> Response:
        return JSONResponse({"collections": [collection], "links": []})

    async def one_collection(request: Request) -> Response:
        return JSONResponse(collection)

    async def queryables(request: Request) -> Response:
        return JSONResponse({"type": "object", "properties": {"naam": {"type": "string"}}})

    async def items(request: Request) -> Response:
        if mode == "slow":
            await asyncio.sleep(TIMEOUT * 10)
        if mode == "garbage":
            return PlainTextResponse("<html>maintenance</html>", media_type="text/html")
        return PlainTextResponse("upstream exploded", status_code=500)

    return Starlette(
        routes=[
            Route("/", landing),
            Route("/conformance", conformance),
            Route("/collections", collections),
            Route("/collections/punten", one_collection),
            Route("/collections/punten/queryables", queryables),
            Route("/collections/punten/items", items),
            Route("/collections/punten/items/{fid}", items),
        ]
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub with one healthy file source and four failing OGC API sources."""
    tmp = tmp_path_factory.mktemp("failures")
    with (
        serve(misbehaving_ogcapi("slow")) as slow,
        serve(misbehaving_ogcapi("garbage")) as garbage,
        serve(misbehaving_ogcapi("broken")) as broken,
        refusing_port() as port,
    ):
        upstreams = {"traag": slow, "rommel": garbage, "kapot": broken, "weg": f"http://127.0.0.1:{port}"}
        sources: list[dict[str, Any]] = [
            {
                "id": "laadpalen",
                "title": "Laadpalen",
                "connector": "file",
                "classification": "open",
                "path": str(DEMO),
            }
        ]
        sources += [
            {
                "id": name,
                "title": name,
                "connector": "ogcapi-features",
                "classification": "open",
                "url": url,
                "collections": ["punten"],
                "timeout": TIMEOUT,
                "extent": [4.3, 52.0, 4.4, 52.1],
            }
            for name, url in upstreams.items()
        ]
        with serve_hub(hub_settings(tmp, sources)) as base_url:
            wait_until_served(base_url, "laadpalen")
            wait_until_served(base_url, "traag")
            yield base_url


@pytest.mark.parametrize(
    ("collection", "status"), [("traag", 504), ("rommel", 502), ("kapot", 502), ("weg", 502)]
)
def test_failing_source_answers_with_problem_for_its_collection(
    hub: str, collection: str, status: int
) -> None:
    started = time.monotonic()
    response = httpx.get(f"{hub}/ogc/v1/collections/{collection}/items", timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["source"] == collection
    assert elapsed < TIMEOUT + 2.0, "the hub must give up within the source's timeout"


def test_other_collections_keep_working_while_a_source_hangs(hub: str) -> None:
    results: dict[str, int] = {}

    def hang() -> None:
        results["traag"] = httpx.get(f"{hub}/ogc/v1/collections/traag/items", timeout=30).status_code

    thread = threading.Thread(target=hang)
    thread.start()
    time.sleep(0.1)
    healthy = httpx.get(f"{hub}/ogc/v1/collections/laadpalen/items", timeout=30)
    assert healthy.status_code == 200 and "traag" not in results, (
        "the healthy source waited for the hanging one"
    )
    thread.join()
    assert results["traag"] == 504
    assert httpx.get(f"{hub}/ogc/v1/collections").status_code == 200


def test_health_shows_each_source_state_and_latency(hub: str) -> None:
    for collection in ("traag", "rommel", "kapot", "weg"):
        httpx.get(f"{hub}/ogc/v1/collections/{collection}/items", timeout=30)
    health = steward().get(f"{hub}/api/v1/health").json()
    states = {s["id"]: s for s in health["sources"]}
    assert health["status"] == "degraded"
    assert states["laadpalen"]["state"] == "healthy"
    for name in ("traag", "rommel", "kapot", "weg"):
        assert states[name]["state"] == "unhealthy" and states[name]["error"], name
        assert states[name]["latency_ms"] is not None


def test_a_bbox_outside_a_sources_extent_does_not_reach_the_source(hub: str) -> None:
    far_away = {"bbox": "5.5,53.0,5.6,53.1"}
    for collection in ("traag", "weg"):
        response = httpx.get(f"{hub}/ogc/v1/collections/{collection}/items", params=far_away, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["features"] == [] and response.json()["numberMatched"] == 0
    inside = httpx.get(f"{hub}/ogc/v1/collections/weg/items", params={"bbox": "4.35,52.05,4.36,52.06"})
    assert inside.status_code == 502
