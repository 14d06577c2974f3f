"""Load generation: interleaved latency and throughput rounds against two targets.

Every comparison measures a baseline and a candidate with the same query, alternating which
goes first in each round (AB, BA, AB, ...), so that a noisy neighbour on the shared machine
slows both about equally and the ratio stays fair. Each round sends a fixed number of
requests, sized from the side's speed so far to fit the phase's time budget; no new round
starts once that budget is spent, and a started round always finishes for both sides.

Requests go out through ``hey`` (Debian's Go load generator) when it is installed: on two
cores a Python client costs the server under test CPU it would otherwise have (httpx spends
about 1.5 ms of CPU per 60 kB page, half a core at 350 requests/s). Without it, httpx is used
and the report says so.
"""

from __future__ import annotations

import abc
import asyncio
import os
import resource
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ACCEPT = "application/geo+json, application/json"
CLIENT_HEADERS = {
    # httpx asks for gzip by default and pygeoapi then compresses every page: neither the hub
    # nor a typical GIS client does that on loopback, so compare uncompressed answers.
    "Accept-Encoding": "identity",
    "Accept": ACCEPT,
}
REQUEST_TIMEOUT = 60.0

OriginHeaders = Mapping[str, Mapping[str, str]]
"""Extra request headers per origin (``host:port``): what one target needs and the other must
not get, such as the Authorization header of a hub that requires a token."""


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
    throughput_min_rounds: int = 2
    """Rounds run even past the budget; two let each side go first once, the latency phase
    always has at least two."""


# The time budgets are per phase and query pair, shared by both sides. The quick profile
# gives up the second throughput round and half the clients to stay near a minute.
PROFILES = {
    "full": Profile("full", 3, 6, 8, 8.0, 4, 96, 14.0, 8),
    "quick": Profile("quick", 1, 2, 3, 1.0, 2, 16, 1.5, 4, throughput_min_rounds=1),
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
    failed: int = 0
    """Requests that got no HTTP answer at all."""
    server_cpu_seconds: float | None = 0.0
    """CPU time the target's server process used during the throughput rounds."""
    client_cpu_seconds: float = 0.0
    """CPU time the load generator used during the target's throughput rounds."""
    round_rps: list[float] = field(default_factory=list)
    """Requests per second of each throughput round, in order: rounds of the two sides with the
    same index ran back to back, so their ratios can be paired."""

    def record(self, status: int, detail: str = "") -> None:
        """Count one answer's status (keeping the first few non-200 answers)."""
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status != 200 and len(self.errors) < 5:
            self.errors.append(f"HTTP {status} {detail}".strip())

    def fail(self, reason: str, count: int = 1) -> None:
        """Count requests that got no answer."""
        self.failed += count
        if len(self.errors) < 5:
            self.errors.append(reason)

    @property
    def all_ok(self) -> bool:
        """Whether every request got a 200."""
        return not self.failed and set(self.statuses) <= {200}

    @property
    def p50_ms(self) -> float:
        """Median latency of the sequential requests."""
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p90_ms(self) -> float:
        """90th percentile latency of the sequential requests (nearest rank)."""
        if not self.latencies_ms:
            return float("nan")
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
                "client_cpu_share": (
                    round(self.client_cpu_seconds / self.throughput_seconds, 3)
                    if self.throughput_seconds
                    else None
                ),
            },
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failed": self.failed,
            "errors": self.errors,
            "features": self.features,
            "response_bytes": self.response_bytes,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


_TICKS = os.sysconf("SC_CLK_TCK")


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


def client_cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (hey)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class LoadGenerator(abc.ABC):
    """Sends a fixed number of GET requests to a URL, one at a time or concurrently."""

    name: str

    def __init__(self, origin_headers: OriginHeaders | None = None):
        self._origin_headers = {origin: dict(headers) for origin, headers in (origin_headers or {}).items()}

    def headers_for(self, url: str) -> dict[str, str]:
        """The extra headers every request to ``url`` carries (none for most targets)."""
        return self._origin_headers.get(urlsplit(url).netloc, {})

    @abc.abstractmethod
    async def sequential(self, url: str, count: int, into: Measurement) -> None:
        """``count`` requests one after the other; add each latency and status to ``into``."""

    @abc.abstractmethod
    async def concurrent(self, url: str, count: int, concurrency: int, into: Measurement) -> float:
        """``count`` requests from ``concurrency`` clients; record statuses, return the seconds."""

    async def aclose(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections."""


class HttpxGenerator(LoadGenerator):
    """Requests from this process, one keep-alive client per server."""

    name = "httpx"

    def __init__(self, concurrency: int, origin_headers: OriginHeaders | None = None):
        super().__init__(origin_headers)
        self._concurrency = concurrency
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, url: str) -> httpx.AsyncClient:
        origin = urlsplit(url).netloc
        if origin not in self._clients:
            self._clients[origin] = new_client(self._concurrency, self.headers_for(url))
        return self._clients[origin]

    async def _get(self, client: httpx.AsyncClient, url: str, into: Measurement) -> float | None:
        started = time.perf_counter()
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            into.fail(f"{type(exc).__name__}: {exc}")
            return None
        into.record(response.status_code, response.text[:200] if response.status_code != 200 else "")
        return (time.perf_counter() - started) * 1000

    async def sequential(self, url: str, count: int, into: Measurement) -> None:
        """``count`` requests one after the other."""
        client = self._client(url)
        for _ in range(count):
            elapsed = await self._get(client, url, into)
            if elapsed is not None:
                into.latencies_ms.append(elapsed)

    async def concurrent(self, url: str, count: int, concurrency: int, into: Measurement) -> float:
        """``count`` requests shared by ``concurrency`` tasks."""
        client = self._client(url)
        remaining = count

        async def one_client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await self._get(client, url, into)

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(one_client())
        return time.perf_counter() - started

    async def aclose(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.aclose()


class HeyGenerator(LoadGenerator):
    """Requests from ``hey`` processes; their CSV output gives each request's time and status."""

    name = "hey"

    def __init__(self, executable: str, origin_headers: OriginHeaders | None = None):
        super().__init__(origin_headers)
        self._hey = executable

    async def _run(
        self, url: str, count: int, concurrency: int, into: Measurement
    ) -> list[tuple[float, float]]:
        """Run hey; record statuses; return (start offset, seconds) of every answered request."""
        command = [
            self._hey, "-n", str(count), "-c", str(concurrency), "-t", str(int(REQUEST_TIMEOUT)),
            "-disable-compression", "-disable-redirects", "-H", "Accept-Encoding: identity",
            "-A", ACCEPT, "-o", "csv",
        ]  # fmt: skip
        # A bearer token on hey's command line is visible to local users for the round's
        # duration: acceptable for the benchmark's own short-lived tokens from a loopback issuer.
        for name, value in self.headers_for(url).items():
            command += ["-H", f"{name}: {value}"]
        command.append(url)
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            into.fail(f"hey exited with {process.returncode}: {err.decode(errors='replace')[-300:]}", count)
            return []
        timings = []
        # response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
        for line in out.decode().splitlines()[1:]:
            fields = line.split(",")
            if len(fields) != 8:
                continue
            into.record(int(fields[6]))
            timings.append((float(fields[7]), float(fields[0])))
        if len(timings) < count:
            # hey lists answered requests only; connection errors and time-outs are missing
            into.fail(f"{count - len(timings)} of {count} requests got no answer", count - len(timings))
        return timings

    async def sequential(self, url: str, count: int, into: Measurement) -> None:
        """``count`` requests from one hey worker."""
        for _, seconds in await self._run(url, count, 1, into):
            into.latencies_ms.append(seconds * 1000)

    async def concurrent(self, url: str, count: int, concurrency: int, into: Measurement) -> float:
        """``count`` requests from ``concurrency`` hey workers; the span from first to last."""
        timings = await self._run(url, count, concurrency, into)
        if not timings:
            return 0.0
        # measured inside hey, so the process start-up does not count
        return max(offset + seconds for offset, seconds in timings) - min(o for o, _ in timings)


def load_generator(kind: str, concurrency: int, origin_headers: OriginHeaders | None = None) -> LoadGenerator:
    """``hey`` or ``httpx``; ``auto`` takes hey when it is on PATH. ``origin_headers`` are sent
    with every request to their origin, warm-up requests included (see :func:`compare`)."""
    hey = shutil.which("hey")
    if kind == "hey" and hey is None:
        raise FileNotFoundError("hey is not installed (apt-get install hey)")
    if kind in {"auto", "hey"} and hey is not None:
        return HeyGenerator(hey, origin_headers)
    return HttpxGenerator(concurrency, origin_headers)


def new_client(concurrency: int, headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    """A keep-alive client for one server, with as many connections as concurrent clients;
    ``headers`` are sent on top of the benchmark's own."""
    return httpx.AsyncClient(
        headers={**CLIENT_HEADERS, **(headers or {})},
        timeout=httpx.Timeout(REQUEST_TIMEOUT),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        follow_redirects=False,
        trust_env=False,
    )


async def warm_up(
    client: httpx.AsyncClient,
    url: str,
    count: int,
    into: Measurement,
    headers: Mapping[str, str] | None = None,
) -> float:
    """Send ``count`` requests unmeasured (with ``headers`` added); note the page's feature
    count and size; return the last one's latency in ms, the first estimate of this side's speed."""
    elapsed = 1000.0
    for _ in range(count):
        started = time.perf_counter()
        try:
            response = await client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            into.fail(f"{type(exc).__name__}: {exc}")
            continue
        elapsed = (time.perf_counter() - started) * 1000
        into.record(response.status_code, response.text[:200] if response.status_code != 200 else "")
        if response.status_code == 200:
            into.response_bytes = len(response.content)
            body = response.json()
            into.features = len(body["features"]) if "features" in body else 1
    return elapsed


def _round_size(expected: float, low: int, high: int, multiple: int = 1) -> int:
    """Requests for a round: what fits the budget, within [low, high], a multiple of ``multiple``
    (hey gives each worker ``n // c`` requests and drops the rest)."""
    count = max(low, min(high, int(expected)))
    return max(multiple, count - count % multiple)


async def compare(
    urls: tuple[str, str],
    profile: Profile,
    generator: LoadGenerator,
    warm_client: httpx.AsyncClient,
    pids: tuple[int | None, int | None] = (None, None),
) -> tuple[Measurement, Measurement]:
    """Measure one query on a baseline and a candidate, interleaved; (baseline, candidate)."""
    results = (Measurement(), Measurement())
    latency_ms = [
        await warm_up(
            warm_client, urls[side], profile.warmup, results[side], generator.headers_for(urls[side])
        )
        for side in (0, 1)
    ]

    async def rounds(
        total: int, minimum: int, seconds: float, run_one: Callable[[int, float], Awaitable[None]]
    ) -> None:
        # Each side's round gets an equal share of the phase's budget.
        budget = seconds / (2 * total)
        deadline = time.monotonic() + seconds
        for number in range(total):
            if number >= minimum and time.monotonic() > deadline:
                break
            order = (0, 1) if number % 2 == 0 else (1, 0)
            for side in order:
                await run_one(side, budget)

    async def latency_round(side: int, budget: float) -> None:
        into = results[side]
        count = _round_size(1000 * budget / max(latency_ms[side], 0.1), 1, profile.latency_per_round)
        await generator.sequential(urls[side], count, into)
        if into.latencies_ms:
            latency_ms[side] = statistics.median(into.latencies_ms)

    # Before the first throughput round, a side is expected to serve at least its sequential rate.
    rates: list[float] = []

    async def throughput_round(side: int, budget: float) -> None:
        into = results[side]
        c = profile.concurrency
        count = _round_size(budget * rates[side], c, profile.throughput_per_round, c)
        server_cpu = process_cpu_seconds(pids[side])
        client_cpu = client_cpu_seconds()
        seconds = await generator.concurrent(urls[side], count, c, into)
        into.throughput_seconds += seconds
        into.throughput_requests += count
        into.round_rps.append(count / seconds if seconds else float("nan"))  # nan: no answers
        into.client_cpu_seconds += client_cpu_seconds() - client_cpu
        server_cpu_after = process_cpu_seconds(pids[side])
        if server_cpu is None or server_cpu_after is None or into.server_cpu_seconds is None:
            into.server_cpu_seconds = None
        else:
            into.server_cpu_seconds += server_cpu_after - server_cpu
        if into.throughput_rps:
            rates[side] = into.throughput_rps

    await rounds(profile.latency_rounds, 2, profile.latency_seconds, latency_round)
    rates.extend(1000 / max(ms, 0.1) for ms in latency_ms)
    await rounds(
        profile.throughput_rounds, profile.throughput_min_rounds, profile.throughput_seconds, throughput_round
    )
    return results
