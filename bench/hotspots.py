"""Where the hub spends its CPU: py-spy samples of the hub under load, grouped by layer.

``python -m bench.hotspots --scenario postgis --query limit=100`` starts the benchmark's
servers, loads one hub URL at a time with 8 concurrent clients while py-spy samples the hub
process, and prints per layer its share of the busy samples and what that is in CPU ms per
request (the share times the hub's CPU time per request read from /proc). The raw stacks are
kept under bench/results/ in the collapsed format that speedscope and flamegraph.pl read.

``--access auth+audit`` (or ``auth``, ``audit``) profiles the two hubs of ``bench.access``
instead, the open one and the one with tokens and the audit log, one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from bench import access, servers
from bench.load import LoadGenerator, Measurement, load_generator, process_cpu_seconds
from bench.run import RESULTS_DIR, serve
from bench.scenarios import SCENARIOS, Comparison, Query

RATE = 250
"""Samples per second."""

# A sample whose innermost frame is one of these waits rather than works. The event loop's
# own C code (uvloop's epoll and socket calls) shows as asyncio's Runner.run and counts as
# waiting too: it is little next to the Python work.
IDLE_FRAMES = (
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "Queue.get (queue.py",
    "_worker (concurrent/futures/thread.py",
    "WorkerThread.run (anyio/",
    "Runner.run (asyncio/runners.py",
    "select (selectors.py",
)

# The hand-over of records to the audit writer process (encoding, the pipe, its answers) is the
# audit log's whatever it calls; the process itself is not sampled (it has its own CPU time).
AUDIT_WRITER: tuple[str, tuple[str, ...]] = (
    "audit log: hand-over to the writer process",
    ("(hub/audit/writer.py", "(hub/audit/writer_process.py"),
)

# A sample belongs to the layer of its innermost frame that any layer claims; among layers
# claiming the same frame, the first listed wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("auth: token validation", ("(hub/auth/tokens.py", "joserfc/", "cryptography/")),
    ("audit log: records, hashes, middleware", ("(hub/audit/",)),
    ("hub: CRS transform of the output", ("(hub/features/crs.py",)),
    ("pygeoapi: JSON encoding of the response", ("to_json (pygeoapi/util.py",)),
    ("pygeoapi: CRS objects built per request", ("(pygeoapi/crs.py",)),
    (
        "connector: rows/features to feature dicts",
        (
            "._feature (connectors/",
            "_json_value (connectors/",
            "copy_feature (connectors/",
            "_copy_geometry (connectors/",
        ),
    ),
    ("connector: JSON decoding of the upstream page", ("Response.json (httpx/",)),
    ("connector: database driver (SQLAlchemy, psycopg)", ("sqlalchemy/", "psycopg/", "greenlet")),
    ("connector: HTTP client (httpx, httpcore)", ("httpx/", "httpcore/", "h11/")),
    ("connector: other", ("(connectors/",)),
    (
        "threadpool hop (run_in_threadpool, run_coroutine_threadsafe)",
        (
            "to_thread.py",
            "run_sync_in_worker_thread",
            "WorkerThread.",
            "CapacityLimiter.",
            "concurrent/futures/",
            "Queue.put (queue.py",
            "Runtime.run (hub/ogc/provider.py",
            "run_coroutine_threadsafe",
        ),
    ),
    ("hub: routes, feature service, parameters", ("(hub/",)),
    ("pygeoapi: rest of the handler", ("(pygeoapi/",)),
    ("uvicorn: sending the response (headers, socket write)", ("RequestResponseCycle.send (uvicorn/",)),
    # anyio frames are left to the frame that called them: the threadpool or the middleware
    ("ASGI stack (uvicorn, Starlette, FastAPI, middleware)", ("uvicorn/", "starlette/", "fastapi/")),
)

_LINE_NUMBER = re.compile(r":\d+\)")


def layer_of(stack: str) -> str | None:
    """The layer a collapsed py-spy stack belongs to; None when the thread was waiting."""
    frames = stack.split(";")
    if frames[-1].startswith(IDLE_FRAMES):
        return None
    name, markers = AUDIT_WRITER
    if any(marker in frame for frame in frames for marker in markers):
        return name
    for frame in reversed(frames):
        for name, markers in LAYERS:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def layers(raw: Path) -> Counter[str]:
    """Busy samples per layer in a py-spy ``--format raw`` file."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack:
            continue
        layer = layer_of(_LINE_NUMBER.sub(")", stack))
        if layer is not None:
            counts[layer] += int(number)
    return counts


def _py_spy() -> str:
    """The py-spy executable, beside this interpreter or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise servers.ComponentError("py-spy", "not installed (pip install -e '.[bench]')")
    return found


async def _load(generator: LoadGenerator, url: str, seconds: float, concurrency: int) -> Measurement:
    """Keep ``concurrency`` clients busy on ``url`` for about ``seconds``."""
    into = Measurement()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        count = concurrency * 8
        into.throughput_seconds += await generator.concurrent(url, count, concurrency, into)
        into.throughput_requests += count
    await generator.aclose()
    return into


def profile_query(
    comparison: Comparison, query: Query, seconds: float, concurrency: int, load: str, out: Path
) -> str:
    """Sample the hub while it answers ``query``; return the report as text."""
    hub = comparison.candidate
    name = f"{comparison.scenario}-{comparison.dataset.key}-{query.name}".replace("=", "")
    title = f"[{comparison.scenario}] {comparison.dataset.key} {query.name}"
    assert hub.pid is not None
    return profile_url(title, name, hub.pid, hub.url(query), {}, seconds, concurrency, load, out)


def profile_url(
    title: str,
    name: str,
    pid: int,
    url: str,
    headers: dict[str, str],
    seconds: float,
    concurrency: int,
    load: str,
    out: Path,
) -> str:
    """Sample the hub process ``pid`` while it answers ``url`` (sent with ``headers``); the
    report as text, the raw stacks in ``out/<name>.txt``."""
    raw = out / f"{name}.txt"
    spy = subprocess.Popen(
        [_py_spy(), "record", "--pid", str(pid), "--rate", str(RATE), "--duration", str(int(seconds)),
         "--nonblocking", "--gil", "--format", "raw", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    cpu_before = process_cpu_seconds(pid)
    generator = load_generator(load, concurrency, {urlsplit(url).netloc: headers})
    measured = asyncio.run(_load(generator, url, seconds, concurrency))
    cpu_after = process_cpu_seconds(pid)
    _, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not raw.exists():
        raise servers.ComponentError("py-spy", err.decode(errors="replace")[-500:])
    requests = measured.throughput_requests
    cpu_ms = 1000 * (cpu_after - cpu_before) / requests if cpu_before is not None and cpu_after else None
    counts = layers(raw)
    busy = sum(counts.values()) or 1
    lines = [
        f"{title}: {url}",
        f"  {requests} requests, {measured.throughput_rps:.0f}/s, all 200: {measured.all_ok}; "
        + (f"hub CPU {cpu_ms:.2f} ms/request" if cpu_ms is not None else "hub CPU unknown"),
        f"  {'share':>6} {'ms/req':>7}  layer",
    ]
    for layer, samples in counts.most_common():
        share = samples / busy
        per_request = f"{share * cpu_ms:7.2f}" if cpu_ms is not None else "      -"
        lines.append(f"  {share:6.1%} {per_request}  {layer}")
    lines.append(f"  stacks: {raw}")
    lines += [f"  not 200: {error}" for error in measured.errors]
    return "\n".join(lines)


def _profile_access(
    candidate: access.Candidate, wanted: set[str], args: argparse.Namespace, out: Path
) -> None:
    """Profile both hubs of the access benchmark on each wanted query, the open one first."""
    with access.serve_hubs(
        progress=lambda m: print(m, file=sys.stderr),
        candidate=candidate,
        source=access.SOURCES[args.access_source],
    ) as hubs:
        for query in access.queries(hubs.item_id, candidate):
            if query.name not in wanted:
                continue
            sides = zip(
                ("open", candidate.name),
                (hubs.baseline, hubs.candidate),
                hubs.urls(query),
                ({}, hubs.authorization),
                strict=True,
            )
            for side, hub, url, headers in sides:
                name = f"access-{side}-{query.name}".replace("=", "").replace(" ", "-").replace("+", "-")
                title = f"[access] {'open hub' if side == 'open' else f'hub with {side}'} {query.name}"
                report = profile_url(
                    title, name, hub.process.pid, url, headers, args.seconds, args.concurrency, args.load, out
                )
                print(report)
                print(flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    parser.add_argument(
        "--query",
        action="append",
        choices=["limit=10", "limit=100", "limit=1000", "bbox", "item", "limit=100 purpose"],
        help="repeatable; default: limit=100 ('limit=100 purpose' with --access only)",
    )
    parser.add_argument(
        "--access",
        choices=sorted(access.CANDIDATES),
        help="profile the open hub and this candidate of bench.access instead of the scenarios",
    )
    parser.add_argument("--audit-fsync", choices=["on", "off"], default="on", help="with --access")
    parser.add_argument(
        "--access-source", choices=sorted(access.SOURCES), default="file", help="with --access: the source"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="sampling time per query")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--load", choices=["auto", "hey", "httpx"], default="auto")
    args = parser.parse_args(argv)
    wanted = set(args.query or ["limit=100"])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"hotspots-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    try:
        _py_spy()
        if args.access:
            candidate = replace(access.CANDIDATES[args.access], fsync=args.audit_fsync == "on")
            _profile_access(candidate, wanted, args, out)
            return 0
        with serve(tuple(args.scenario or SCENARIOS)) as plan:
            for comparison in plan:
                for query in comparison.queries:
                    if query.name in wanted:
                        print(
                            profile_query(comparison, query, args.seconds, args.concurrency, args.load, out)
                        )
                        print(flush=True)
    except servers.ComponentError as exc:
        print(f"not profiled: {exc.component}: {exc.reason}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
