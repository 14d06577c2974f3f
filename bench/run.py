"""Run the benchmark: ``python -m bench [--quick] [--scenario NAME ...]``; see bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import servers
from bench.load import PROFILES, LoadGenerator, Profile, compare, load_generator, new_client
from bench.report import Row, goal_lines, goals, table, write_json
from bench.scenarios import SCENARIOS, Comparison, Target, comparisons, hub_sources
from tests.fixtures.postgis import PostgisServer

RESULTS_DIR = Path(__file__).resolve().parent / "results"

JOIN_SCENARIO = "join"
"""A linked collection against its slowest member (``bench/join.py``)."""

EXIT_OK = 0
EXIT_NOT_200 = 1
EXIT_COMPONENT = 2


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _git_commit() -> str | None:
    done = subprocess.run(
        ["git", "-C", str(servers.REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


def _machine() -> dict[str, Any]:
    """What the figures depend on: cores, load, versions."""
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "pygeoapi": version("pygeoapi"),
        "hub": version("urban-twin-hub"),
        "commit": _git_commit(),
    }


async def _measure(
    plan: list[Comparison], profile: Profile, generator: LoadGenerator, progress: Callable[[str], None]
) -> list[Row]:
    """Run every query of every comparison, one after the other."""
    rows: list[Row] = []
    async with new_client(1) as warm_client:
        try:
            for comparison in plan:
                for query in comparison.queries:
                    started = time.monotonic()
                    baseline, candidate = await compare(
                        (comparison.baseline.url(query), comparison.candidate.url(query)),
                        profile,
                        generator,
                        warm_client,
                        (comparison.baseline.pid, comparison.candidate.pid),
                    )
                    row = Row(comparison, query, baseline, candidate)
                    rows.append(row)
                    progress(
                        f"  [{comparison.scenario}] {comparison.dataset.key} {query.name}: "
                        f"p50 {baseline.p50_ms:.1f} / {candidate.p50_ms:.1f} ms, "
                        f"{baseline.throughput_rps:.1f} / {candidate.throughput_rps:.1f} req/s "
                        f"({time.monotonic() - started:.0f} s)"
                    )
        finally:
            await generator.aclose()
    return rows


@contextlib.contextmanager
def serve(
    scenarios: Sequence[str],
    *,
    postgis: PostgisServer | None = None,
    progress: Callable[[str], None] = _progress,
) -> Iterator[list[Comparison]]:
    """Run the servers the scenarios need; yield what to compare; stop them afterwards."""
    chosen = tuple(s for s in SCENARIOS if s in scenarios)
    if not servers.DATA_DIR.is_dir():
        raise servers.ComponentError("data", f"the shared data folder {servers.DATA_DIR} is absent")
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        table_info = None
        if "postgis" in chosen:
            progress("starting PostGIS and loading verblijfsobjecten ...")
            server = postgis if postgis is not None else stack.enter_context(servers.postgis_cluster())
            table_info = servers.load_verblijfsobjecten(server)
        progress("starting pygeoapi ...")
        pygeoapi = servers.start_pygeoapi(workdir, table_info)
        stack.callback(pygeoapi.stop)
        progress("starting the hub ...")
        sources = hub_sources(chosen, pygeoapi.base_url, table_info)
        served = [c["id"] for s in sources for c in s["collections"]]
        hub = servers.start_hub(workdir, sources, served)
        stack.callback(hub.stop)
        yield comparisons(
            chosen,
            Target("pygeoapi", pygeoapi.base_url, "", pygeoapi.process.pid),
            Target("hub", f"{hub.base_url}/ogc/v1", "", hub.process.pid),
        )


@dataclass
class Result:
    """The JSON-ready report and the measured rows it was made from."""

    report: dict[str, Any]
    rows: list[Row]


def run_benchmark(
    profile: Profile,
    scenarios: Sequence[str] = SCENARIOS,
    *,
    postgis: PostgisServer | None = None,
    load: str = "auto",
    progress: Callable[[str], None] = _progress,
) -> Result:
    """Start the servers, measure every scenario, stop the servers; return the report.

    ``postgis`` reuses a running cluster (the test fixture's) instead of starting one; ``load``
    is the load generator (``auto``: hey when installed, else httpx). Raises
    ``servers.ComponentError`` when anything the chosen scenarios need cannot start.
    """
    chosen = tuple(s for s in SCENARIOS if s in scenarios)
    try:
        generator = load_generator(load, profile.concurrency)
    except FileNotFoundError as exc:
        raise servers.ComponentError("load generator", str(exc)) from exc
    if load == "auto" and generator.name != "hey":
        progress(
            "note: hey is not installed (apt-get install hey); the load comes from httpx in this "
            "process, whose CPU use caps the throughput of the fastest servers"
        )
    started_at = datetime.now(UTC)
    with serve(chosen, postgis=postgis, progress=progress) as plan:
        progress(f"measuring ({profile.name} profile, load from {generator.name}) ...")
        before = os.getloadavg()
        rows = asyncio.run(_measure(plan, profile, generator, progress))
        machine = _machine()
        machine["load_average_before"] = [round(v, 2) for v in before]
    finished_at = datetime.now(UTC)
    report = {
        "started": started_at.isoformat(timespec="seconds"),
        "seconds": round((finished_at - started_at).total_seconds(), 1),
        "profile": vars(profile),
        "load_generator": generator.name,
        "scenarios": list(chosen),
        "machine": machine,
        "rows": [row.as_json() for row in rows],
        "goals": goals(rows),
    }
    return Result(report, rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Hub vs pygeoapi: federation overhead and connector throughput.",
    )
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    speed.add_argument("--profile", choices=sorted(PROFILES), default="full", help=argparse.SUPPRESS)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, JOIN_SCENARIO],
        help="run only this scenario (repeatable); default: all",
    )
    parser.add_argument(
        "--join-latency-ms",
        type=float,
        default=50.0,
        help="join scenario: latency of the emulated 3D BAG API (default 50)",
    )
    parser.add_argument(
        "--load",
        choices=["auto", "hey", "httpx"],
        default="auto",
        help="load generator (auto: hey when installed, else httpx)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    profile = PROFILES["quick" if args.quick else args.profile]
    scenarios = tuple(args.scenario or (*SCENARIOS, JOIN_SCENARIO))
    command = " ".join([Path(sys.executable).name, "-m", "bench", *(argv or sys.argv[1:])])
    # the join scenario compares the hub with itself (a linked collection and its members), not
    # with pygeoapi: it has its own servers, table and JSON
    joined = EXIT_OK
    if JOIN_SCENARIO in scenarios:
        from bench import join  # imports this module: loaded only when needed

        try:
            report, join_rows = join.run_join(profile, latency_ms=args.join_latency_ms, load=args.load)
        except servers.ComponentError as exc:
            print(f"benchmark not run: {exc.component} could not start: {exc.reason}", file=sys.stderr)
            return EXIT_COMPONENT
        report["command"] = command
        joined = join.report_and_exit_code(report, join_rows, args.results)
        scenarios = tuple(s for s in scenarios if s != JOIN_SCENARIO)
        if not scenarios:
            return joined
    try:
        result = run_benchmark(profile, scenarios, load=args.load)
    except servers.ComponentError as exc:
        print(f"benchmark not run: {exc.component} could not start: {exc.reason}", file=sys.stderr)
        return EXIT_COMPONENT
    report, rows = result.report, result.rows
    report["command"] = command
    print(table(rows))
    print(goal_lines(report["goals"]))
    stamp = report["started"].replace(":", "").replace("-", "")
    path = write_json(report, args.results, stamp)
    print(
        f"\n{len(rows)} queries in {report['seconds']:.0f} s ({profile.name} profile, load from "
        f"{report['load_generator']}); JSON: {path}"
    )
    failed = [row for row in rows if not row.all_ok]
    for row in failed:
        errors = row.baseline.errors + row.candidate.errors
        print(
            f"NOT ALL 200: [{row.comparison.scenario}] {row.comparison.dataset.key} {row.query.name}: "
            f"{row.baseline.statuses} / {row.candidate.statuses} {errors[:2]}",
            file=sys.stderr,
        )
    return EXIT_NOT_200 if failed else joined


if __name__ == "__main__":
    sys.exit(main())
