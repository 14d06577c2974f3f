"""The benchmark harness works end to end in its smallest form; no timing is asserted."""

from __future__ import annotations

import json
import math

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
