"""The audit trail of a running hub: a record for every processing, before its response leaves.

A real hub (uvicorn, SQLite) serves a parcel file whose features name their owner (the data
subject). The tests read the audit database directly and through the stewards' read API.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.audit.middleware import AuditMiddleware
from hub.audit.processing import current_processing
from hub.audit.store import AuditStore, RecordFilter
from hub.audit.trail import AuditTrail
from hub.audit.verify import verify
from hub.settings import ProcessingActivity, Settings
from tests.fixtures.hub import hub_settings, serve_hub, wait_until_served
from tests.fixtures.loopback import serve
from tests.fixtures.oidc import bearer, steward

KEY = "audit-test-key-0123456789abcdef"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
OWNERS = ["999990019", "999990020", "999990032"]
ITEMS = "/ogc/v1/collections/percelen/items"


def pseudonym(subject: str) -> str:
    """What the hub must store for ``subject``, computed independently."""
    return hmac.new(KEY.encode(), subject.encode(), hashlib.sha256).hexdigest()


def parcels(path: Path) -> Path:
    """Six parcels of three owners; ``eigenaar`` identifies the data subject."""
    features = [
        {
            "type": "Feature",
            "id": number,
            "geometry": {"type": "Point", "coordinates": [4.89 + number / 1000, 52.37]},
            "properties": {"naam": f"perceel {number}", "eigenaar": OWNERS[number % 3]},
        }
        for number in range(1, 7)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def sources(tmp: Path) -> list[dict[str, Any]]:
    data = parcels(tmp / "percelen.geojson")
    return [
        {
            "id": "percelen",
            "title": "Percelen",
            "connector": "file",
            "classification": "open",
            "path": str(data),
            "subject_field": "eigenaar",
        },
        {
            "id": "vertrouwelijk",
            "title": "Vertrouwelijk",
            "connector": "file",
            "classification": "internal",
            "path": str(data),
        },
    ]


@dataclass(frozen=True)
class Hub:
    url: str
    database: Path

    def records(self, **where: Any) -> list[dict[str, Any]]:
        """Rows of ``audit_records`` with these column values, in chain order."""
        clause = " AND ".join(f"{column} = ?" for column in where) or "1 = 1"
        with sqlite3.connect(self.database) as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(
                f"SELECT * FROM audit_records WHERE {clause} ORDER BY id", tuple(where.values())
            )
            return [dict(row) for row in rows]

    def request_record(self, trace_id: str) -> dict[str, Any]:
        (record,) = self.records(trace_id=trace_id, kind="request")
        return record


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("audit-hub")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HUB_AUDIT_PSEUDONYM_KEY", KEY)
        settings = hub_settings(
            tmp,
            sources(tmp),
            processing_activities=[
                {
                    "id": "bezwaar",
                    "uri": "https://register.example.nl/verwerkingen/bezwaar",
                    "name": "Behandeling bezwaarschriften",
                    "roles": ["jurist"],
                    "retention_category": "12.1.8",
                }
            ],
        )
        with serve_hub(settings) as url:
            wait_until_served(url, "percelen")
            yield Hub(url, tmp / "hub.db")


def traceparent(response: httpx.Response) -> tuple[str, str]:
    """The trace and span id the hub returned."""
    version, trace_id, span_id, flags = response.headers["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    return trace_id, span_id


def test_an_items_request_is_logged_in_the_callers_trace(hub: Hub) -> None:
    response = httpx.get(
        hub.url + ITEMS, params={"limit": 4}, headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}
    )
    assert response.status_code == 200
    trace_id, span_id = traceparent(response)
    assert trace_id == TRACE and span_id != CALLER_SPAN

    record = hub.request_record(TRACE)
    assert record["span_id"] == span_id
    assert record["parent_span_id"] == record["foreign_span_id"] == CALLER_SPAN
    assert record["name"] == "GET /ogc/v1/collections/{collection_id}/items"
    assert (record["http_method"], record["http_status"], record["status_code"]) == ("GET", 200, 0)
    assert (record["collection_id"], record["result_count"], record["query"]) == ("percelen", 4, "limit=4")
    assert record["path"] == ITEMS
    assert record["activity_id"] == "unstated-purpose"
    assert record["start_time"] <= record["end_time"]
    # four parcels of three owners: the request names none, a child record names each
    assert record["data_subject_id"] is None and record["data_subject_id_type"] is None
    children = hub.records(trace_id=TRACE, kind="data-subject")
    page = response.json()["features"]
    counts = {pseudonym(owner): sum(f["properties"]["eigenaar"] == owner for f in page) for owner in OWNERS}
    assert {c["data_subject_id"]: c["result_count"] for c in children} == {
        p: n for p, n in counts.items() if n
    }
    for child in children:
        assert child["parent_span_id"] == span_id and child["span_id"] != span_id
        assert child["data_subject_id_type"] == "eigenaar" and child["query"] is None


def test_data_subject_ids_are_never_stored_in_clear(hub: Hub) -> None:
    httpx.get(hub.url + ITEMS, params={"eigenaar": OWNERS[0]}).raise_for_status()
    httpx.get(hub.url + ITEMS + "/2").raise_for_status()
    stored = b"".join(path.read_bytes() for path in hub.database.parent.glob("hub.db*"))
    for owner in OWNERS:
        assert owner.encode() not in stored
    filtered = hub.records(query=f"eigenaar=pseudonym%3A{pseudonym(OWNERS[0])}")
    assert len(filtered) == 1 and filtered[0]["data_subject_id"] == pseudonym(OWNERS[0])


def test_a_single_feature_names_its_subject_on_the_request_record(hub: Hub) -> None:
    response = httpx.get(hub.url + ITEMS + "/4")
    assert response.status_code == 200
    record = hub.request_record(traceparent(response)[0])
    assert record["name"] == "GET /ogc/v1/collections/{collection_id}/items/{feature_id}"
    assert (record["result_count"], record["data_subject_id"]) == (1, pseudonym(OWNERS[4 % 3]))
    assert record["data_subject_id_type"] == "eigenaar"
    assert hub.records(trace_id=record["trace_id"], kind="data-subject") == []


def test_subjects_are_logged_when_the_response_leaves_their_field_out(hub: Hub) -> None:
    response = httpx.get(hub.url + ITEMS, params={"properties": "naam", "limit": 2, "f": "json"})
    assert response.status_code == 200
    assert all(set(f["properties"]) == {"naam"} for f in response.json()["features"])
    children = hub.records(trace_id=traceparent(response)[0], kind="data-subject")
    assert {c["data_subject_id"] for c in children} == {pseudonym(OWNERS[1]), pseudonym(OWNERS[2])}


def test_html_goes_through_pygeoapi_and_is_logged_alike(hub: Hub) -> None:
    response = httpx.get(hub.url + ITEMS, params={"f": "html", "limit": 1})
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    record = hub.request_record(traceparent(response)[0])
    assert (record["result_count"], record["data_subject_id"]) == (1, pseudonym(OWNERS[1]))


def test_a_malformed_traceparent_starts_a_new_trace(hub: Hub) -> None:
    response = httpx.get(hub.url + ITEMS, headers={"traceparent": f"00-{TRACE.upper()}-{CALLER_SPAN}-01"})
    trace_id, _ = traceparent(response)
    assert trace_id != TRACE.upper().lower()
    record = hub.request_record(trace_id)
    assert record["parent_span_id"] is None and record["foreign_span_id"] is None


def test_metadata_requests_are_not_processings(hub: Hub) -> None:
    before = len(hub.records())
    for path in [
        "/ogc/v1",
        "/ogc/v1/conformance",
        "/ogc/v1/collections",
        "/ogc/v1/collections/percelen",
        "/ogc/v1/collections/percelen/queryables",
        "/ogc/v1/openapi.json",
        "/api/v1/openapi.json",
    ]:
        response = httpx.get(hub.url + path)
        assert response.status_code == 200, path
        assert "traceparent" not in response.headers, path
    preflight = httpx.options(
        hub.url + ITEMS, headers={"Origin": "https://viewer.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code < 500
    assert len(hub.records()) == before


@pytest.mark.parametrize(
    ("path", "params", "headers", "status", "collection"),
    [
        (ITEMS, {"limit": "many"}, {}, 400, "percelen"),
        (ITEMS, {"colour": "red"}, {}, 400, "percelen"),
        ("/ogc/v1/collections/onbekend/items", {}, {}, 404, "onbekend"),
        (ITEMS + "/999", {}, {}, 404, "percelen"),
        (ITEMS, {}, {"Authorization": "Bearer not-a-token"}, 401, "percelen"),
        ("/ogc/v1/collections/vertrouwelijk/items", {}, {}, 401, "vertrouwelijk"),
        ("/ogc/v1/collections/vertrouwelijk", {}, {}, 401, "vertrouwelijk"),
        ("/api/v1/sources", {}, {}, 401, None),
        ("/api/v1/sources", {}, "viewer", 403, None),
    ],
)
def test_refusals_are_logged(
    hub: Hub, path: str, params: dict[str, str], headers: Any, status: int, collection: str | None
) -> None:
    if headers == "viewer":
        headers = bearer(sub="viewer-7", roles=["viewer"])
    response = httpx.get(hub.url + path, params=params, headers=headers)
    assert response.status_code == status, response.text
    record = hub.request_record(traceparent(response)[0])
    assert (record["http_status"], record["status_code"], record["collection_id"]) == (status, 0, collection)
    assert record["result_count"] is None


def test_the_caller_is_logged_apart_and_the_purpose_named(hub: Hub) -> None:
    headers = bearer(sub="jurist-3", azp="bezwaar-app", roles=["jurist"])
    response = httpx.get(hub.url + ITEMS, params={"purpose": "bezwaar", "limit": 1}, headers=headers)
    assert response.status_code == 200, response.text
    record = hub.request_record(traceparent(response)[0])
    assert record["activity_id"] == "bezwaar"
    assert record["activity_uri"] == "https://register.example.nl/verwerkingen/bezwaar"
    assert "jurist-3" not in json.dumps(record)
    with sqlite3.connect(hub.database) as connection:
        subject, client, roles = connection.execute(
            "SELECT subject, client, roles FROM audit_callers WHERE id = ?", (record["caller_id"],)
        ).fetchone()
    assert (subject, client, json.loads(roles)) == ("jurist-3", "bezwaar-app", ["jurist"])


def test_the_read_api_needs_a_trace_activity_or_subject(hub: Hub) -> None:
    api = hub.url + "/api/v1/audit/records"
    for params in [{}, {"limit": "5"}, {"since": "2026-01-01T00:00:00Z"}]:
        refused = steward().get(api, params=params)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert steward().get(api, params={"traceId": TRACE, "verbose": "1"}).status_code == 400
    assert steward().get(api, params={"traceId": "not-hex"}).status_code == 400
    assert httpx.get(api, params={"traceId": TRACE}).status_code == 401
    assert httpx.get(api, params={"traceId": TRACE}, headers=bearer(roles=["viewer"])).status_code == 403


def test_the_read_api_by_trace_activity_and_subject(hub: Hub) -> None:
    traced = httpx.get(
        hub.url + ITEMS, params={"limit": 6}, headers={"traceparent": f"00-{'ab' * 16}-{CALLER_SPAN}-01"}
    )
    assert traced.status_code == 200
    api = hub.url + "/api/v1/audit/records"

    page = steward().get(api, params={"traceId": "ab" * 16})
    assert page.status_code == 200, page.text
    records = page.json()["records"]
    assert [r["attributes"]["hub.record_kind"] for r in records] == [
        "request",
        "data-subject",
        "data-subject",
        "data-subject",
    ]
    request = records[0]
    assert request["trace_id"] == "ab" * 16 and request["parent_span_id"] == CALLER_SPAN
    assert (
        request["attributes"]["dpl.core.processing_activity_id"]
        == "urn:urban-twin-hub:processing-activity:unstated-purpose"
    )
    assert request["attributes"]["dpl.core.foreign_operation.span_id"] == CALLER_SPAN
    assert request["attributes"]["hub.result_count"] == 6
    assert request["start_time"].endswith("Z") and request["status_code"] == 0
    assert {r["attributes"]["dpl.core.data_subject_id"] for r in records[1:]} == {
        pseudonym(o) for o in OWNERS
    }

    by_subject = steward().get(api, params={"dataSubjectId": OWNERS[2], "limit": 1000}).json()["records"]
    assert by_subject and all(
        r["attributes"]["dpl.core.data_subject_id"] == pseudonym(OWNERS[2]) for r in by_subject
    )
    assert "ab" * 16 in {r["trace_id"] for r in by_subject}

    # the lookup is itself a processing about that subject, logged with the pseudonym only
    lookup = steward().get(api, params={"dataSubjectId": OWNERS[1]})
    logged = hub.request_record(traceparent(lookup)[0])
    assert logged["name"] == "GET /api/v1/audit/records" and logged["http_status"] == 200
    assert logged["data_subject_id"] == pseudonym(OWNERS[1])
    assert logged["query"] == f"dataSubjectId=pseudonym%3A{pseudonym(OWNERS[1])}"
    assert logged["caller_id"] is not None

    by_activity = steward().get(api, params={"activityId": "unstated-purpose", "limit": 2})
    body = by_activity.json()
    assert len(body["records"]) == 2 and body["next"] is not None
    following = steward().get(body["next"]).json()["records"]
    assert following and following[0]["id"] > body["records"][-1]["id"]
    by_uri = steward().get(api, params={"activityId": "https://register.example.nl/verwerkingen/bezwaar"})
    assert all(r["attributes"]["hub.processing_activity"] == "bezwaar" for r in by_uri.json()["records"])

    caller = steward().get(f"{hub.url}/api/v1/audit/callers/{logged['caller_id']}")
    assert caller.status_code == 200 and caller.json()["subject"] == "steward-1"
    assert steward().get(f"{hub.url}/api/v1/audit/callers/99999").status_code == 404


def test_the_chain_of_a_running_hub_verifies(hub: Hub) -> None:
    with AuditStore.open(f"sqlite:///{hub.database}") as store:
        found = verify(store)
    assert found.intact, found.problems
    assert found.records == len(hub.records()) > 10


# --- when the log cannot be written ------------------------------------------------------------


@pytest.fixture
def fragile_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    monkeypatch.setenv("HUB_AUDIT_PSEUDONYM_KEY", KEY)
    settings = hub_settings(tmp_path, sources(tmp_path), audit={"write_timeout": 1.0})
    with serve_hub(settings) as url:
        wait_until_served(url, "percelen")
        yield Hub(url, tmp_path / "hub.db")


def refused(response: httpx.Response) -> None:
    """A 503 problem in place of the data."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["api-version"]
    problem = response.json()
    assert problem["status"] == 503 and problem["type"].endswith("/audit-unavailable")
    assert "features" not in problem and "eigenaar" not in response.text


def test_no_record_no_data(fragile_hub: Hub) -> None:
    assert httpx.get(fragile_hub.url + ITEMS).status_code == 200
    with sqlite3.connect(fragile_hub.database) as connection:
        connection.execute("DROP TABLE audit_records")
    refused(httpx.get(fragile_hub.url + ITEMS))
    refused(httpx.get(fragile_hub.url + ITEMS + "/1", params={"f": "html"}))
    # metadata is no processing and is still served
    assert httpx.get(fragile_hub.url + "/ogc/v1/collections/percelen").status_code == 200


def test_a_log_that_does_not_answer_in_time_refuses(fragile_hub: Hub) -> None:
    blocker = sqlite3.connect(fragile_hub.database, timeout=0, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        refused(httpx.get(fragile_hub.url + ITEMS, timeout=30))
        assert time.monotonic() - started < 10
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    served = httpx.get(fragile_hub.url + ITEMS)
    assert served.status_code == 200
    with AuditStore.open(f"sqlite:///{fragile_hub.database}") as store:
        assert verify(store).intact
        assert store.count(trace_id=traceparent(served)[0]) >= 1


def test_without_a_key_subject_data_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_AUDIT_PSEUDONYM_KEY", raising=False)
    with serve_hub(hub_settings(tmp_path, sources(tmp_path))) as url:
        wait_until_served(url, "percelen")
        hub = Hub(url, tmp_path / "hub.db")
        refused(httpx.get(url + ITEMS, params={"eigenaar": OWNERS[0]}))
        # the refusal is logged, without the subject it could not pseudonymise
        (record,) = hub.records(http_status=503)
        assert record["data_subject_id"] is None and record["collection_id"] == "percelen"
        assert "pseudonymisation key" in record["denied_reason"]
        assert record["query"] == "eigenaar=%5Bredacted%5D"
        # nothing in the answer concerns a data subject: served
        empty = httpx.get(url + ITEMS, params={"eigenaar": "000000000"})
        assert empty.status_code == 200 and empty.json()["features"] == []


# --- trace context onwards, and OTLP ---------------------------------------------------------


def test_the_trace_continues_at_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub A reads hub B: B's record sits in the caller's trace with A's operation as parent."""
    monkeypatch.setenv("HUB_AUDIT_PSEUDONYM_KEY", KEY)
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    with serve_hub(hub_settings(tmp_path / "b", sources(tmp_path / "b"))) as b:
        wait_until_served(b, "percelen")
        peer = {"id": "buren", "title": "Buren", "connector": "hub", "classification": "open", "url": b}
        with serve_hub(hub_settings(tmp_path / "a", [peer])) as a:
            wait_until_served(a, "buren")
            response = httpx.get(
                f"{a}/ogc/v1/collections/buren/items",
                params={"limit": 2},
                headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"},
            )
            assert response.status_code == 200, response.text
            _, span_a = traceparent(response)
    at_b = Hub(b, tmp_path / "b" / "hub.db").records(trace_id=TRACE, kind="request")
    assert at_b and all(r["foreign_span_id"] == span_a for r in at_b)
    assert any(r["path"] == ITEMS for r in at_b)


def test_records_are_exported_over_otlp(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    async def collect(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return JSONResponse({})

    with serve(Starlette(routes=[Route("/v1/traces", collect, methods=["POST"])])) as collector:
        settings = hub_settings(
            tmp_path, sources(tmp_path)[1:], audit={"otlp_endpoint": f"{collector}/v1/traces"}
        )
        with serve_hub(settings) as url:
            response = httpx.get(
                f"{url}/api/v1/health", headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}
            )
            assert response.status_code == 200
            _, span_id = traceparent(response)
            deadline = time.monotonic() + 20
            spans: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not spans:
                spans = [
                    span
                    for body in received
                    for resource in body["resourceSpans"]
                    for scope in resource["scopeSpans"]
                    for span in scope["spans"]
                    if span["spanId"] == span_id
                ]
                time.sleep(0.05)
    (span,) = spans
    assert (span["traceId"], span["parentSpanId"], span["kind"]) == (TRACE, CALLER_SPAN, 2)
    assert span["name"] == "GET /api/v1/health" and span["status"] == {"code": 0}
    attributes = {a["key"]: a["value"] for a in span["attributes"]}
    assert attributes["dpl.core.processing_activity_id"] == {
        "stringValue": "urn:urban-twin-hub:processing-activity:unstated-purpose"
    }
    assert attributes["http.response.status_code"] == {"intValue": "200"}
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 1_700_000_000 * 10**9


# --- the contract with the access-control layer, on a small application ------------------------


async def test_access_control_fills_in_the_processing(tmp_path: Path) -> None:
    activity = ProcessingActivity(
        id="handhaving", uri="https://register.example.nl/verwerkingen/handhaving", name="Handhaving"
    )

    async def denied(request: Request) -> Response:
        processing = current_processing()
        assert processing is not None
        processing.caller_subject, processing.caller_issuer = "inspecteur-4", "https://idp.example.nl"
        processing.caller_client, processing.caller_roles = "handhaving-app", ("inspecteur",)
        processing.activity = activity
        processing.denied_reason = "the purpose does not cover property bsn"
        return JSONResponse({"detail": "no"}, status_code=200)

    async def metadata(request: Request) -> Response:
        return JSONResponse({})

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    trail = AuditTrail(Settings(database_url=f"sqlite:///{tmp_path / 'small.db'}"))
    routes = [
        Route("/ogc/v1/conformance", denied),
        Route("/ogc/v1/landing", metadata),
        Route("/ogc/v1/collections/{collection_id}/items", broken),
    ]
    app = AuditMiddleware(Starlette(routes=routes), trail=trail)
    await trail.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
            marked = await client.get("/ogc/v1/conformance")
            plain = await client.get("/ogc/v1/landing")
            with pytest.raises(RuntimeError, match="a bug"):
                await client.get("/ogc/v1/collections/kapot/items")
    finally:
        await trail.stop()
    assert "traceparent" in marked.headers and "traceparent" not in plain.headers
    with AuditStore.open(f"sqlite:///{tmp_path / 'small.db'}") as store:
        (record,) = store.records(RecordFilter(activity="handhaving"))
        assert record["denied_reason"] == "the purpose does not cover property bsn"
        assert record["activity_uri"] == activity.uri
        caller = store.caller(record["caller_id"])
        assert caller is not None
        assert (caller["subject"], caller["issuer"], caller["client"], caller["roles"]) == (
            "inspecteur-4",
            "https://idp.example.nl",
            "handhaving-app",
            ["inspecteur"],
        )
        # an unhandled error is answered outside every middleware: logged as the 500 it becomes
        (failed,) = store.records(RecordFilter(activity="unstated-purpose"))
        assert (failed["http_status"], failed["status_code"], failed["collection_id"]) == (500, 2, "kapot")
        assert store.count() == 2


async def test_an_unknown_default_activity_stops_the_start(tmp_path: Path) -> None:
    from hub.errors import ConfigurationError

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", audit={"default_activity": "typo"})
    trail = AuditTrail(settings)
    with pytest.raises(ConfigurationError, match="typo"):
        await trail.start()
    assert trail.writer is None


def test_a_hub_on_postgresql_logs_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from tests.fixtures.postgis import PostgisServer

    server: PostgisServer = request.getfixturevalue("postgis_server")
    url = server.create_database("audit_hub")
    monkeypatch.setenv("HUB_AUDIT_PSEUDONYM_KEY", KEY)
    with serve_hub(hub_settings(tmp_path, sources(tmp_path), database_url=url)) as base:
        wait_until_served(base, "percelen")

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                return list(
                    await asyncio.gather(*(client.get(ITEMS, params={"limit": 3}) for _ in range(40)))
                )

        responses = asyncio.run(burst())
        assert {r.status_code for r in responses} == {200}
        trace_id = traceparent(responses[0])[0]
        read = steward().get(f"{base}/api/v1/audit/records", params={"traceId": trace_id})
        assert read.status_code == 200, read.text
        assert read.json()["records"][0]["attributes"]["hub.result_count"] == 3
    with AuditStore.open(url) as store:
        found = verify(store)
        assert found.intact, found.problems
        traces = {traceparent(r)[0] for r in responses}
        assert all(store.count(trace_id=t, kind="request") == 1 for t in traces)
