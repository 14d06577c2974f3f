"""Load generation: interleaved latency and throughput rounds against two targets, with httpx.

Every comparison measures a baseline and a candidate with the same query, alternating which
goes first in each round (AB, BA, AB, ...), so that a noisy neighbour on the shared machine
slows both about equally and the ratio stays fair. Rounds run until their count is reached or
the phase's time budget is spent; a started round always finishes for both targets.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CLIENT_HEADERS = {
    # httpx asks for gzip by default and pygeoapi then compresses every page: neither the hub
    # nor a typical GIS client does that on loopback, so compare uncompressed answers.
    "Accept-Encoding": "identity",
    "Accept": "application/geo+json, application/json",
}


@dataclass(frozen=True)
class Profile:
    """How much load each query gets; ``full`` fits in ~10 minutes on a 2-core machine."""

    name: str
    warmup: int
    latency_rounds: int
    latency_per_round: int
    latency_seconds: float
    throughput_rounds: int
    throughput_per_round: int
    throughput_seconds: float
    concurrency: int


# The time budgets are per phase and query pair: no new round starts once one is spent.
PROFILES = {
    "full": Profile("full", 3, 6, 5, 8.0, 4, 48, 14.0, 8),
    "quick": Profile("quick", 1, 2, 3, 1.0, 2, 16, 1.5, 8),
    "smoke": Profile("smoke", 1, 2, 1, 0.1, 2, 4, 0.2, 2),
}


@dataclass
class Measurement:
    """What one target answered for one query during a benchmark."""

    latencies_ms: list[float] = field(default_factory=list)
    throughput_requests: int = 0
    throughput_seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    features: int | None = None
    response_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    server_cpu_seconds: float | None = 0.0
    """CPU time the target's server process used during the throughput rounds."""
    client_cpu_seconds: float = 0.0
    """CPU time this load generator used during the target's throughput rounds."""

    def record(self, status: int) -> None:
        """Count one answer's status."""
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def requests(self) -> int:
        """All requests sent, warm-up included."""
        return sum(self.statuses.values()) + len(self.errors)

    @property
    def all_ok(self) -> bool:
        """Whether every request got a 200."""
        return not self.errors and set(self.statuses) <= {200}

    @property
    def p50_ms(self) -> float:
        """Median latency of the sequential requests."""
        return statistics.median(self.latencies_ms)

    @property
    def p90_ms(self) -> float:
        """90th percentile latency of the sequential requests (nearest rank)."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered)) - 1))]

    @property
    def throughput_rps(self) -> float:
        """Requests per second under concurrent load, over all throughput rounds."""
        return self.throughput_requests / self.throughput_seconds if self.throughput_seconds else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        """Server CPU per request under load: steadier than req/s on a shared machine."""
        if self.server_cpu_seconds is None or not self.throughput_requests:
            return None
        return 1000 * self.server_cpu_seconds / self.throughput_requests

    def summary(self) -> dict[str, Any]:
        """The figures as plain JSON."""
        return {
            "latency_ms": {
                "p50": round(self.p50_ms, 2),
                "p90": round(self.p90_ms, 2),
                "n": len(self.latencies_ms),
            },
            "throughput": {
                "rps": round(self.throughput_rps, 1),
                "requests": self.throughput_requests,
                "seconds": round(self.throughput_seconds, 3),
                "server_cpu_ms_per_request": _rounded(self.server_cpu_ms_per_request),
                "client_cpu_share": round(self.client_cpu_seconds / self.throughput_seconds, 3)
                if self.throughput_seconds
                else None,
            },
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors[:5],
            "features": self.features,
            "response_bytes": self.response_bytes,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU time of a process, from /proc (None where that is not available)."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name in parentheses may hold spaces: split after its closing parenthesis
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def _timed_get(client: httpx.AsyncClient, url: str, into: Measurement) -> float | None:
    """GET ``url``, record its status, return its latency in ms (None when it failed)."""
    started = time.perf_counter()
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        into.errors.append(f"{type(exc).__name__}: {exc}")
        return None
    elapsed = (time.perf_counter() - started) * 1000
    into.record(response.status_code)
    if response.status_code != 200 and len(into.errors) < 5:
        into.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
    return elapsed


async def warm_up(client: httpx.AsyncClient, url: str, count: int, into: Measurement) -> None:
    """Send ``count`` requests unmeasured; note the page's feature count and size."""
    for _ in range(count):
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            into.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        into.record(response.status_code)
        if response.status_code != 200:
            into.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            continue
        into.response_bytes = len(response.content)
        body = response.json()
        into.features = len(body["features"]) if "features" in body else 1


async def latency_round(
    client: httpx.AsyncClient, url: str, count: int, budget: float, into: Measurement
) -> None:
    """Up to ``count`` sequential requests (fewer once ``budget`` seconds are spent, at least
    one): the latency a lone client sees."""
    deadline = time.monotonic() + budget
    for number in range(count):
        if number and time.monotonic() > deadline:
            break
        elapsed = await _timed_get(client, url, into)
        if elapsed is not None:
            into.latencies_ms.append(elapsed)


async def throughput_round(
    client: httpx.AsyncClient,
    url: str,
    count: int,
    concurrency: int,
    budget: float,
    into: Measurement,
    pid: int | None = None,
) -> None:
    """Up to ``count`` requests from ``concurrency`` clients at once, none started after
    ``budget`` seconds (each client sends at least one); adds to the throughput totals."""
    remaining = count
    done = 0
    server_cpu = process_cpu_seconds(pid)
    client_cpu = time.process_time()
    deadline = time.monotonic() + budget

    async def one_client() -> None:
        nonlocal remaining, done
        first = True
        while remaining > 0 and (first or time.monotonic() < deadline):
            first = False
            remaining -= 1
            await _timed_get(client, url, into)
            done += 1

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(one_client())
    into.throughput_seconds += time.perf_counter() - started
    into.throughput_requests += done
    into.client_cpu_seconds += time.process_time() - client_cpu
    server_cpu_after = process_cpu_seconds(pid)
    if server_cpu is None or server_cpu_after is None or into.server_cpu_seconds is None:
        into.server_cpu_seconds = None
    else:
        into.server_cpu_seconds += server_cpu_after - server_cpu


def new_client(concurrency: int) -> httpx.AsyncClient:
    """A keep-alive client for one target, with as many connections as concurrent clients."""
    return httpx.AsyncClient(
        headers=CLIENT_HEADERS,
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        follow_redirects=False,
        trust_env=False,
    )


async def compare(
    baseline_url: str,
    candidate_url: str,
    profile: Profile,
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    pids: tuple[int | None, int | None] = (None, None),
) -> tuple[Measurement, Measurement]:
    """Measure one query on both targets, interleaved; returns (baseline, candidate)."""
    urls = (baseline_url, candidate_url)
    results = (Measurement(), Measurement())
    for side in (0, 1):
        await warm_up(clients[side], urls[side], profile.warmup, results[side])

    async def rounds(total: int, seconds: float, run_one: Callable[[int, float], Awaitable[None]]) -> None:
        # Each side's round gets an equal share of the phase's budget; a slow target then
        # sends fewer requests per round instead of stretching the run.
        budget = seconds / (2 * total)
        deadline = time.monotonic() + seconds
        for number in range(total):
            # at least two rounds, so that each target goes first once
            if number >= 2 and time.monotonic() > deadline:
                break
            order = (0, 1) if number % 2 == 0 else (1, 0)
            for side in order:
                await run_one(side, budget)

    await rounds(
        profile.latency_rounds,
        profile.latency_seconds,
        lambda side, budget: latency_round(
            clients[side], urls[side], profile.latency_per_round, budget, results[side]
        ),
    )
    await rounds(
        profile.throughput_rounds,
        profile.throughput_seconds,
        lambda side, budget: throughput_round(
            clients[side],
            urls[side],
            profile.throughput_per_round,
            profile.concurrency,
            budget,
            results[side],
            pids[side],
        ),
    )
    return results
