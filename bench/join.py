"""A linked collection against its slowest member: ``python -m bench --scenario join``.

The hub serves a linked collection of four members joined on the BAG pand id, twice, and each
member on its own:

- ``bag-pand`` (primary): Delft's BAG panden in a GeoPackage (``file`` connector), the local
  copy a municipality keeps;
- ``bag3d`` and ``bag3d-2024``: the 3D BAG API, current release and v2024.04.20, through the
  ``3dbag`` connector; the test suite's emulator of the API (``bench/join_upstream.py``) answers
  every request ``--join-latency-ms`` later, as a source on the internet would;
- ``monumenten``: monuments on real pand ids in a GeoJSON file (``file`` connector).

The two linked collections differ in how the 3D BAG members are asked for a page's buildings:
``gebouwen`` key by key (``lookup: keys``, the default: one item request per building, all at
once), ``gebouwen-bbox`` for what lies in the page's bounding box (``lookup: bbox``: one query
per member, but for more buildings than the page holds).

Per query (a page of 10 features, the default, and one of 100) every target, the joined
collections and each member alone, gets sequential requests in rounds that rotate the order of
the targets, so that a noisy neighbour hits them all alike. The figure is the joined
collection's median latency over the slowest member's: the join asks its primary first and
then the other members concurrently (the 3D BAG key by key, as its API cannot filter), so it
should take about one member round trip more than the primary alone, not one per member.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import servers
from bench.load import (
    PROFILES,
    REQUEST_TIMEOUT,
    LoadGenerator,
    Measurement,
    Profile,
    load_generator,
    new_client,
    warm_up,
)
from bench.report import write_json
from bench.run import EXIT_COMPONENT, EXIT_NOT_200, EXIT_OK, JOIN_SCENARIO, RESULTS_DIR, _machine
from hub.ogc.engine import OGC_PREFIX
from tests.fixtures.panden import delft_panden, read_delft, write_monuments, write_panden

SCENARIO = JOIN_SCENARIO
JOIN_GOAL = 1.30
"""The joined collection's median latency at most 1.3 times its slowest member's."""
GOAL_QUERY = "limit=10"
DEFAULT_LATENCY_MS = 50.0
JOINED = {"gebouwen": "keys", "gebouwen-bbox": "bbox"}
"""The linked collections measured, and how each asks the 3D BAG members for a page."""
MEMBERS = ("bag-pand", "bag3d", "bag3d-2024", "monumenten")
QUERIES = (("limit=10", "/items?f=json&limit=10"), ("limit=100", "/items?f=json&limit=100"))


def hub_sources(workdir: Path, upstream: str) -> list[dict[str, Any]]:
    """The members and the linked collection, their files written to ``workdir``."""
    delft = read_delft()
    panden = write_panden(workdir / "bag-pand.gpkg", delft_panden(delft))
    monuments = write_monuments(workdir / "monumenten.geojson", delft)
    common = {"classification": "open", "owner": "benchmark", "timeout": REQUEST_TIMEOUT}
    return [
        {**common, "id": "bag-pand", "title": "BAG panden", "connector": "file", "path": str(panden)},
        {**common, "id": "bag3d", "title": "3D BAG", "connector": "3dbag", "url": f"{upstream}/current"},
        {**common, "id": "bag3d-2024", "title": "3D BAG v2024.04.20", "connector": "3dbag",
         "url": f"{upstream}/v20240420"},
        {**common, "id": "monumenten", "title": "Monumenten", "connector": "file", "path": str(monuments)},
        *(
            {**common, "id": joined, "title": f"Gebouwen ({lookup})", "connector": "linked",
             "on_member_error": "error",
             "members": [{"collection": "bag-pand", "name": "bag", "key": "identificatie"},
                         {"collection": "bag3d", "key": "id", "lookup": lookup},
                         {"collection": "bag3d-2024", "key": "id", "lookup": lookup},
                         {"collection": "monumenten", "name": "monument", "key": "pand_id"}]}
            for joined, lookup in JOINED.items()
        ),
    ]  # fmt: skip


@dataclass
class Row:
    """One query measured on every target."""

    query: str
    measured: dict[str, Measurement]

    @property
    def slowest_member(self) -> str:
        """The member with the highest median latency."""
        return max(MEMBERS, key=lambda name: self.measured[name].p50_ms)

    def ratio(self, joined: str) -> float:
        """A joined collection's median latency over the slowest member's."""
        return self.measured[joined].p50_ms / self.measured[self.slowest_member].p50_ms

    @property
    def all_ok(self) -> bool:
        """Whether every request of every target was answered 200."""
        return all(m.all_ok for m in self.measured.values())

    def as_json(self) -> dict[str, Any]:
        """The row as plain JSON."""
        return {
            "query": self.query,
            "targets": {name: m.summary() for name, m in self.measured.items()},
            "slowest_member": self.slowest_member,
            "ratio": {joined: round(self.ratio(joined), 3) for joined in JOINED},
            "all_200": self.all_ok,
        }


@contextlib.contextmanager
def serve(latency_ms: float, progress: Callable[[str], None]) -> Iterator[tuple[str, int | None]]:
    """The emulated 3D BAG API and the hub; yields the hub's OGC API root and its process id."""
    if not servers.DATA_DIR.is_dir():
        raise servers.ComponentError("data", f"the shared data folder {servers.DATA_DIR} is absent")
    workdir = Path(tempfile.mkdtemp(prefix="bench-join-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        progress(f"starting the 3D BAG API emulator ({latency_ms:g} ms latency) ...")
        upstream = servers.start_module_server(
            "join-upstream",
            "bench.join_upstream",
            ["--latency-ms", str(latency_ms)],
            workdir,
            ready_path="/current/collections/pand/items?limit=1",
        )
        stack.callback(upstream.stop)
        progress("starting the hub ...")
        hub = servers.start_hub(
            workdir,
            hub_sources(workdir, upstream.base_url),
            [*MEMBERS, *JOINED],
            name="join-hub",
            # the audit trail costs every request alike; it is measured by bench.access
            settings={"audit": {"enabled": False}},
        )
        stack.callback(hub.stop)
        yield f"{hub.base_url}{OGC_PREFIX}", hub.process.pid


def check(root: str) -> None:
    """Refuse to measure a join that does not join: every building has its 3D BAG heights."""
    for joined in JOINED:
        page = httpx.get(f"{root}/collections/{joined}/items?f=json&limit=10", timeout=REQUEST_TIMEOUT)
        body = page.json()
        if page.status_code != 200 or "warnings" in body:
            raise servers.ComponentError("hub", f"{joined} answered {page.status_code}: {page.text[:300]}")
        heights = [f["properties"].get("bag3d:h_dak_max") for f in body["features"]]
        if len(heights) != 10 or None in heights:
            raise servers.ComponentError("hub", f"{joined} lacks the 3D BAG's heights: {heights}")


async def measure(
    root: str, profile: Profile, generator: LoadGenerator, progress: Callable[[str], None]
) -> list[Row]:
    """Every query on every target, in rounds that rotate the targets' order."""
    targets = [*JOINED, *MEMBERS]
    rows = []
    async with new_client(1) as client:
        try:
            for name, path in QUERIES:
                measured = {target: Measurement() for target in targets}
                urls = {target: f"{root}/collections/{target}{path}" for target in targets}
                for target in targets:
                    await warm_up(client, urls[target], profile.warmup, measured[target])
                rounds = max(2, profile.latency_rounds)
                for number in range(rounds):
                    shift = number % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        await generator.sequential(urls[target], profile.latency_per_round, measured[target])
                row = Row(name, measured)
                rows.append(row)
                slowest = row.slowest_member
                ratios = ", ".join(f"{joined} {row.ratio(joined):.2f}" for joined in JOINED)
                progress(
                    f"  [join] {name}: slowest member {slowest} p50 {measured[slowest].p50_ms:.1f} ms; "
                    f"joined / slowest: {ratios}"
                )
        finally:
            await generator.aclose()
    return rows


def table(rows: list[Row], latency_ms: float) -> str:
    """The figures as text."""
    lines = [
        "",
        f"[join] {' + '.join(MEMBERS)} (primary first) joined on the pand id; 3D BAG API latency "
        f"{latency_ms:g} ms; the 3D BAG members asked "
        + ", ".join(f"{lookup} in {joined}" for joined, lookup in JOINED.items()),
        f"{'query':<11}{'target':<22}{'feat':>6}{'p50 ms':>10}{'p90 ms':>10}{'/ slowest':>11}",
        "-" * 70,
    ]
    for row in rows:
        for target, m in row.measured.items():
            ratio = f"{row.ratio(target):11.2f}" if target in JOINED else ""
            flag = "" if m.all_ok else "  NOT ALL 200"
            figures = f"{m.features or 0:>6}{m.p50_ms:>10.1f}{m.p90_ms:>10.1f}"
            lines.append(f"{row.query:<11}{target:<22}{figures}{ratio}{flag}")
    return "\n".join(lines)


def goals(rows: list[Row]) -> list[dict[str, Any]]:
    """The goal, for each linked collection on the default page."""
    row = next(r for r in rows if r.query == GOAL_QUERY)
    return [
        {
            "goal": f"the joined collection's median latency at most {JOIN_GOAL:g}x its slowest member's",
            "scenario": SCENARIO,
            "collection": joined,
            "lookup": lookup,
            "query": GOAL_QUERY,
            "slowest_member": row.slowest_member,
            "ratio": round(row.ratio(joined), 3),
            "met": row.ratio(joined) <= JOIN_GOAL,
            "all_queries": {r.query: round(r.ratio(joined), 3) for r in rows},
        }
        for joined, lookup in JOINED.items()
    ]


def run_join(
    profile: Profile,
    *,
    latency_ms: float = DEFAULT_LATENCY_MS,
    load: str = "auto",
    progress: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> tuple[dict[str, Any], list[Row]]:
    """Start the servers, measure, stop them; the JSON-ready report and its rows.

    Raises ``servers.ComponentError`` when a server cannot start or the join is not right.
    """
    try:
        generator = load_generator(load, 1)
    except FileNotFoundError as exc:
        raise servers.ComponentError("load generator", str(exc)) from exc
    started_at = datetime.now(UTC)
    with serve(latency_ms, progress) as (root, _pid):
        check(root)
        progress(f"measuring the join ({profile.name} profile, load from {generator.name}) ...")
        before = time.monotonic()
        rows = asyncio.run(measure(root, profile, generator, progress))
        machine = _machine()
    report = {
        "started": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - before, 1),
        "scenario": SCENARIO,
        "profile": vars(profile),
        "load_generator": generator.name,
        "latency_ms": latency_ms,
        "machine": machine,
        "rows": [row.as_json() for row in rows],
        "goals": goals(rows),
    }
    return report, rows


def report_and_exit_code(report: dict[str, Any], rows: list[Row], results: Path) -> int:
    """Print the figures, write the JSON, and say whether every request got a 200."""
    print(table(rows, report["latency_ms"]))
    print("\nGoals")
    for verdict in report["goals"]:
        print(
            f"  [join] {verdict['collection']} ({verdict['lookup']}) {verdict['query']}: {verdict['goal']}: "
            f"ratio {verdict['ratio']:.2f} {'met' if verdict['met'] else 'MISSED'}"
        )
    stamp = report["started"].replace(":", "").replace("-", "")
    path = write_json(report, results, f"join-{stamp}")
    print(f"JSON: {path}")
    failed = [row for row in rows if not row.all_ok]
    for row in failed:
        statuses = {name: m.statuses for name, m in row.measured.items() if not m.all_ok}
        print(f"NOT ALL 200: [join] {row.query}: {statuses}", file=sys.stderr)
    return EXIT_NOT_200 if failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.join [--quick] [--latency-ms L]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.join", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, to see that everything starts")
    parser.add_argument("--latency-ms", type=float, default=DEFAULT_LATENCY_MS, help="3D BAG API latency")
    parser.add_argument("--load", choices=["auto", "hey", "httpx"], default="auto")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    profile = PROFILES["quick" if args.quick else "full"]
    try:
        report, rows = run_join(profile, latency_ms=args.latency_ms, load=args.load)
    except servers.ComponentError as exc:
        print(f"benchmark not run: {exc.component} could not start: {exc.reason}", file=sys.stderr)
        return EXIT_COMPONENT
    return report_and_exit_code(report, rows, args.results)


if __name__ == "__main__":
    sys.exit(main())
