"""The benchmark harness works end to end in its smallest form; no timing is asserted."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from bench.access import ACCESS_PROFILES, CANDIDATES, Candidate, run_access_benchmark, summary_lines
from bench.access import table as access_table
from bench.join import JOINED, MEMBERS, run_join
from bench.join import table as join_table
from bench.load import PROFILES
from bench.report import goal_lines, table
from bench.run import run_benchmark
from bench.scenarios import SCENARIOS
from tests.fixtures.postgis import PostgisServer
from tests.fixtures.upstream import shared_data_or_skip

QUERIES = {"limit=10", "limit=100", "limit=1000", "bbox", "item"}
DATASETS = {
    "federation": {"afvalbakken", "verblijfsobjecten"},
    "file": {"verblijfsobjecten"},
    "postgis": {"verblijfsobjecten"},
}


def test_every_scenario_has_ratios_and_every_answer_is_200(postgis_server: PostgisServer) -> None:
    shared_data_or_skip()
    result = run_benchmark(PROFILES["smoke"], SCENARIOS, postgis=postgis_server, progress=lambda _: None)

    measured = {(r["scenario"], r["dataset"], r["query"]) for r in result.report["rows"]}
    expected = {(s, d, q) for s, datasets in DATASETS.items() for d in datasets for q in QUERIES}
    assert measured == expected

    for row in result.report["rows"]:
        where = f"{row['scenario']} {row['dataset']} {row['query']}"
        for side in ("baseline", "candidate"):
            figures = row[side]
            assert figures["statuses"] == {"200": figures["statuses"].get("200")}, where
            assert not figures["errors"], where
            assert figures["latency_ms"]["n"] >= 2 and figures["throughput"]["requests"] >= 2, where
            assert figures["features"], where
        for ratio in row["ratio"].values():
            assert math.isfinite(ratio) and ratio > 0, where
        assert row["all_200"], where

    assert {g["scenario"] for g in result.report["goals"]} == set(SCENARIOS)
    json.dumps(result.report)
    printed = table(result.rows) + goal_lines(result.report["goals"])
    for scenario in SCENARIOS:
        assert f"[{scenario}]" in printed


ACCESS_CANDIDATES = [*CANDIDATES.values(), replace(CANDIDATES["auth+audit"], fsync=False)]


@pytest.mark.parametrize(
    "does", ACCESS_CANDIDATES, ids=lambda c: c.name + ("" if c.fsync else " without fsync")
)
def test_the_access_benchmark_measures_enforced_access_and_a_complete_audit_log(does: Candidate) -> None:
    shared_data_or_skip()
    candidate = does.name
    result = run_access_benchmark(ACCESS_PROFILES["smoke"], candidate=does, progress=lambda _: None)
    report = result.report

    expected = {"limit=100", "limit=10", "item"} | ({"limit=100 purpose"} if does.auth else set())
    assert {row["query"] for row in report["rows"]} == expected
    for row in report["rows"]:
        where = f"{candidate} {row['query']}"
        for side in ("baseline", "candidate"):
            figures = row[side]
            assert figures["statuses"] == {"200": figures["statuses"].get("200")}, where
            assert not figures["errors"], where
            assert figures["latency_ms"]["n"] >= 2 and figures["throughput"]["requests"] >= 2, where
            assert len(figures["round_rps"]) >= 2 and figures["median_round_rps"] > 0, where
        assert row["baseline"]["features"] == row["candidate"]["features"] > 0, where
        assert math.isfinite(row["loss"]) and row["ratio"]["throughput_median_of_rounds"] > 0, where
        assert row["all_200"], where
        # the protected property is left out of the candidate's pages unless a purpose is named
        hidden = does.auth and not row["purpose"]
        assert (row["candidate"]["response_bytes"] < row["baseline"]["response_bytes"]) == hidden, where

    audit = report["audit"]
    assert audit["enabled"] == does.audit
    assert report["hubs"]["candidate"]["audit"]["fsync"] == does.fsync
    if does.audit:
        assert audit["complete"] and audit["records_added"] == audit["requests_sent"] > 0
    assert result.ok
    json.dumps(report)
    printed = access_table(result.rows, does) + summary_lines(report)
    assert all(query in printed for query in expected)


def test_the_join_scenario_measures_the_linked_collections_and_each_member() -> None:
    shared_data_or_skip()
    report, rows = run_join(PROFILES["smoke"], latency_ms=5, progress=lambda _: None)

    assert [row["query"] for row in report["rows"]] == ["limit=10", "limit=100"]
    for row in report["rows"]:
        assert set(row["targets"]) == {*JOINED, *MEMBERS}, row["query"]
        for name, figures in row["targets"].items():
            assert figures["statuses"] == {"200": figures["statuses"].get("200")}, (row["query"], name)
            assert figures["latency_ms"]["n"] >= 2 and figures["features"], (row["query"], name)
        assert row["all_200"] and row["slowest_member"] in MEMBERS
        for ratio in row["ratio"].values():
            assert math.isfinite(ratio) and ratio > 0
    assert {g["collection"] for g in report["goals"]} == set(JOINED)
    json.dumps(report)
    printed = join_table(rows, report["latency_ms"])
    assert all(name in printed for name in (*JOINED, *MEMBERS))
