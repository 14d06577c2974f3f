"""The benchmark's results: one row per query, a text table, the goals, and the JSON file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import Measurement
from bench.scenarios import Comparison, Query

LATENCY_GOAL = 1.20
"""Federation: the hub's median latency at most 20% above pygeoapi's on 100-feature pages."""
THROUGHPUT_GOAL = 10.0
"""File and PostGIS connectors: at least 10x pygeoapi's throughput on the same data."""
GOAL_QUERY = "limit=100"


@dataclass
class Row:
    """One query measured on both sides of a comparison."""

    comparison: Comparison
    query: Query
    baseline: Measurement
    candidate: Measurement

    @property
    def latency_ratio(self) -> float:
        """Candidate median latency over baseline median latency (below 1: the hub is faster)."""
        return self.candidate.p50_ms / self.baseline.p50_ms

    @property
    def throughput_ratio(self) -> float:
        """Candidate requests/s over baseline requests/s (above 1: the hub serves more)."""
        if not self.baseline.throughput_rps:
            return float("inf")
        return self.candidate.throughput_rps / self.baseline.throughput_rps

    @property
    def all_ok(self) -> bool:
        """Whether every request on both sides was answered 200."""
        return self.baseline.all_ok and self.candidate.all_ok

    def as_json(self) -> dict[str, Any]:
        """The row with both sides' figures and the ratios."""
        c = self.comparison
        return {
            "scenario": c.scenario,
            "dataset": c.dataset.key,
            "query": self.query.name,
            "baseline": {
                "label": c.baseline.label,
                "url": c.baseline.url(self.query),
                **self.baseline.summary(),
            },
            "candidate": {
                "label": c.candidate.label,
                "url": c.candidate.url(self.query),
                **self.candidate.summary(),
            },
            "ratio": {
                "latency_p50": round(self.latency_ratio, 3),
                "throughput": round(self.throughput_ratio, 3),
            },
            "all_200": self.all_ok,
        }


def goals(rows: list[Row]) -> list[dict[str, Any]]:
    """Each goal checked against the rows it concerns."""
    verdicts = []
    for row in rows:
        scenario = row.comparison.scenario
        if row.query.name != GOAL_QUERY:
            continue
        if scenario == "federation":
            verdicts.append(
                {
                    "goal": f"federation adds at most {LATENCY_GOAL - 1:.0%} median latency",
                    "scenario": scenario,
                    "dataset": row.comparison.dataset.key,
                    "query": row.query.name,
                    "ratio": round(row.latency_ratio, 3),
                    "met": row.latency_ratio <= LATENCY_GOAL,
                }
            )
        else:
            same = [r for r in rows if r.comparison is row.comparison]
            lowest = min(same, key=lambda r: r.throughput_ratio)
            verdicts.append(
                {
                    "goal": f"at least {THROUGHPUT_GOAL:g}x pygeoapi's throughput",
                    "scenario": scenario,
                    "dataset": row.comparison.dataset.key,
                    "query": row.query.name,
                    "ratio": round(row.throughput_ratio, 3),
                    "met": row.throughput_ratio >= THROUGHPUT_GOAL,
                    "queries_met": sum(r.throughput_ratio >= THROUGHPUT_GOAL for r in same),
                    "queries": len(same),
                    "lowest": {"query": lowest.query.name, "ratio": round(lowest.throughput_ratio, 3)},
                }
            )
    return verdicts


def _ms(value: float) -> str:
    return f"{value:8.1f}" if value < 1000 else f"{value:8.0f}"


def _features(row: Row) -> str:
    a, b = row.baseline.features, row.candidate.features
    return f"{a}" if a == b else f"{a}/{b}"


def _cpu(measurement: Measurement) -> str:
    value = measurement.server_cpu_ms_per_request
    return "     -" if value is None else f"{value:6.1f}"


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width text table, one block per comparison."""
    header = (
        f"{'query':<11}{'feat':>6} |{'p50 ms':>9}{'p90 ms':>9} |{'p50 ms':>9}{'p90 ms':>9} |"
        f"{'p50 x':>7} |{'req/s':>8}{'req/s':>8} |{'rps x':>7} |{'cpu ms/req':>14}"
    )
    lines: list[str] = []
    current: Comparison | None = None
    for row in rows:
        c = row.comparison
        if c is not current:
            current = c
            lines += [
                "",
                f"[{c.scenario}] {c.dataset.title}: A = {c.baseline.label}, B = {c.candidate.label}",
                f"{'':<17} |{'A':>18} |{'B':>18} |{'B/A':>7} |{'A':>8}{'B':>8} |{'B/A':>7} |{'A':>7}{'B':>7}",
                header,
                "-" * len(header),
            ]
        flag = "" if row.all_ok else "  NOT ALL 200"
        lines.append(
            f"{row.query.name:<11}{_features(row):>6} |{_ms(row.baseline.p50_ms)} {_ms(row.baseline.p90_ms)}"
            f" |{_ms(row.candidate.p50_ms)} {_ms(row.candidate.p90_ms)} |{row.latency_ratio:7.2f} |"
            f"{row.baseline.throughput_rps:8.1f}{row.candidate.throughput_rps:8.1f} |"
            f"{row.throughput_ratio:7.2f} |{_cpu(row.baseline)} {_cpu(row.candidate)}{flag}"
        )
    return "\n".join(lines)


def goal_lines(verdicts: list[dict[str, Any]]) -> str:
    """The goals and whether each was met."""
    lines = ["", "Goals"]
    for v in verdicts:
        status = "met" if v["met"] else "MISSED"
        line = (
            f"  [{v['scenario']}] {v['dataset']} {v['query']}: {v['goal']}: ratio {v['ratio']:.2f} {status}"
        )
        if "queries" in v:
            lowest = v["lowest"]
            line += (
                f"; all queries: {v['queries_met']}/{v['queries']} met "
                f"(lowest {lowest['ratio']:.2f}x on {lowest['query']})"
            )
        lines.append(line)
    return "\n".join(lines)


def write_json(report: dict[str, Any], directory: Path, stamp: str, kind: str = "bench") -> Path:
    """Write the report as ``<directory>/<kind>-<stamp>.json`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path
