"""What access control costs: ``python -m bench.access [--quick]``; see bench/README.md.

Two hub processes serve the same file through the ``file`` connector, one after the other under
the same requests (interleaved rounds, :func:`bench.load.compare`):

- the baseline serves it as an ``open`` collection, without ``auth`` and with the audit trail
  off, and is asked anonymously;
- the candidate validates bearer tokens against an issuer (discovery document and JWKS over
  HTTP), serves the file as an ``internal`` collection readable with one role and with one
  protected property, keeps the audit trail (Logboek Dataverwerkingen) in a database of its
  own, and is asked with a bearer token on every request.

Before measuring, the run checks that the candidate really enforces its policy (anonymous
callers get 401, the protected property shows only under the processing activity); afterwards,
that its audit database holds a record of every request it was sent. Either failing makes the
run fail: a measurement of a hub that skipped the work would say nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyogrio.raw
import sqlalchemy as sa

from bench import scenarios, servers
from bench.load import (
    CLIENT_HEADERS,
    PROFILES,
    REQUEST_TIMEOUT,
    LoadGenerator,
    Measurement,
    Profile,
    compare,
    load_generator,
    new_client,
)
from bench.report import write_json
from bench.run import EXIT_COMPONENT, EXIT_NOT_200, EXIT_OK, RESULTS_DIR, _machine
from hub.audit.models import KIND_REQUEST, records
from hub.catalogue.database import create_engine
from hub.ogc.engine import OGC_PREFIX
from tests.fixtures.oidc import LoopbackIssuer
from tests.fixtures.postgis import PostgisServer

LOSS_GOAL = 0.10
"""Authentication and audit cost at most 10% of the open collection's throughput."""

READER_ROLE = "medewerker"
"""The role the candidate's collection asks for."""
MANAGER_ROLE = "beheerder"
"""The role that may see the protected property, under the processing activity."""
ACTIVITY = {
    "id": "beheer-openbare-ruimte",
    "uri": "https://example.org/verwerkingsregister/beheer-openbare-ruimte",
    "name": "Beheer openbare ruimte",
    "roles": [MANAGER_ROLE],
    "retention_category": "12.1.8",
}

# The goal is a difference of 10%, not a factor of ten as in the main benchmark: the profiles
# run more and longer throughput rounds, so that the per-round ratios have a steady median.
ACCESS_PROFILES = {
    "full": Profile("full", 3, 6, 20, 8.0, 8, 2000, 32.0, 8),
    "quick": Profile("quick", 1, 2, 5, 1.0, 2, 400, 3.0, 4),
    "smoke": PROFILES["smoke"],
}


@dataclass(frozen=True)
class Candidate:
    """What the candidate hub does on top of the baseline: both by default; one alone tells
    how much of the loss is whose."""

    auth: bool = True
    """Tokens validated, the collection internal with a protected property."""
    audit: bool = True
    """Every request logged before its response leaves."""
    fsync: bool = True
    """The audit log's ``fsync``: a response waits until its record is on disk (else until the
    database has it)."""

    @property
    def name(self) -> str:
        """``auth+audit``, ``auth`` or ``audit``."""
        return "+".join(part for part, on in (("auth", self.auth), ("audit", self.audit)) if on)

    @property
    def label(self) -> str:
        """What the candidate is, in the printed table."""
        does = {
            "auth+audit": "bearer token, internal collection, audit log",
            "auth": "bearer token, internal collection, no audit",
            "audit": "anonymous, open collection, audit log",
        }
        flushed = "" if self.fsync or not self.audit else " without fsync"
        return f"hub with {self.name} ({does[self.name]}{flushed})"


CANDIDATES = {c.name: c for c in (Candidate(), Candidate(audit=False), Candidate(auth=False))}


@dataclass(frozen=True)
class AccessQuery:
    """One request, relative to the collection's URL, sent to both hubs."""

    name: str
    path: str
    purpose: bool = False
    """The candidate's request names the processing activity (and so sees the protected
    property, as the baseline's open collection shows it to everyone)."""


def queries(item_id: str, candidate: Candidate) -> tuple[AccessQuery, ...]:
    """Pages of 100 and 10 features and one feature by id; with tokens, the 100-feature page
    again under the processing activity, whose answer has the same content on both sides."""
    plain = (
        AccessQuery("limit=100", "/items?f=json&limit=100"),
        AccessQuery("limit=10", "/items?f=json&limit=10"),
        AccessQuery("item", f"/items/{item_id}?f=json"),
    )
    if not candidate.auth:  # anonymous callers cannot name a purpose
        return plain
    return (*plain, AccessQuery("limit=100 purpose", "/items?f=json&limit=100", purpose=True))


@dataclass
class AccessRow:
    """One query measured on both hubs."""

    query: AccessQuery
    baseline_url: str
    candidate_url: str
    baseline: Measurement
    candidate: Measurement

    @property
    def round_ratios(self) -> list[float]:
        """Candidate over baseline requests/s per pair of throughput rounds (run back to back)."""
        pairs = zip(self.baseline.round_rps, self.candidate.round_rps, strict=False)
        return [c / b for b, c in pairs if b > 0 and not math.isnan(c) and not math.isnan(b)]

    @property
    def throughput_ratio(self) -> float:
        """The median of the paired round ratios: a burst of load from elsewhere on the machine
        spoils one pair, not the figure."""
        ratios = self.round_ratios
        return statistics.median(ratios) if ratios else float("nan")

    @property
    def loss(self) -> float:
        """The share of the baseline's throughput lost: 1 - candidate/baseline."""
        return 1 - self.throughput_ratio

    @property
    def all_ok(self) -> bool:
        """Whether every request on both sides was answered 200."""
        return self.baseline.all_ok and self.candidate.all_ok

    def as_json(self) -> dict[str, Any]:
        """Both sides' figures, the medians and the loss."""
        sides = {}
        for side, url, measurement in (
            ("baseline", self.baseline_url, self.baseline),
            ("candidate", self.candidate_url, self.candidate),
        ):
            sides[side] = {
                "url": url,
                "median_round_rps": _round(_median(measurement.round_rps)),
                "round_rps": [_round(v) for v in measurement.round_rps],
                **measurement.summary(),
            }
        return {
            "query": self.query.name,
            "purpose": self.query.purpose,
            **sides,
            "ratio": {
                "throughput_median_of_rounds": _round(self.throughput_ratio, 3),
                "throughput_overall": _round(
                    self.candidate.throughput_rps / self.baseline.throughput_rps
                    if self.baseline.throughput_rps
                    else float("nan"),
                    3,
                ),
                "latency_p50": _round(self.candidate.p50_ms / self.baseline.p50_ms, 3),
            },
            "loss": _round(self.loss, 3),
            "goal_met": self.loss <= LOSS_GOAL,
            "all_200": self.all_ok,
        }


def _median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


def _round(value: float, digits: int = 1) -> float | None:
    return None if math.isnan(value) else round(value, digits)


# --- the two hubs --------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessSource:
    """Where both hubs read the features, and which property the candidate protects."""

    name: str
    label: str
    collection: str
    protected_field: str


SOURCES = {
    source.name: source
    for source in (
        # a free-text remark: where personal details end up in practice
        AccessSource(
            "file",
            "the afvalbakken GeoJSON file, file connector (read once, served from memory)",
            "afvalbakken",
            "OPMERKING",
        ),
        AccessSource(
            "federation",
            "pygeoapi serving the afvalbakken file, ogcapi-features connector (asked per request)",
            "afvalbakken",
            "OPMERKING",
        ),
        # an address is personal data once it is linked to a person
        AccessSource(
            "postgis",
            "the BAG verblijfsobjecten in PostGIS, postgis connector (queried per request)",
            "verblijfsobjecten",
            "huisnummer",
        ),
    )
}


def _registration(source: AccessSource, location: dict[str, Any], *, protected: bool) -> dict[str, Any]:
    """The same data on both hubs; the candidate's is internal, with a protected property."""
    registration: dict[str, Any] = {
        "id": source.collection,
        "title": source.collection,
        "owner": "benchmark",
        "classification": "open",
        "timeout": REQUEST_TIMEOUT,
        **location,
    }
    if protected:
        registration |= {
            "classification": "internal",
            "access": {"roles": [READER_ROLE]},
            "protected_fields": {
                source.protected_field: {"classification": "confidential", "roles": [MANAGER_ROLE]}
            },
        }
    return registration


@contextlib.contextmanager
def _source_location(
    source: AccessSource, workdir: Path, progress: Callable[[str], None]
) -> Iterator[tuple[dict[str, Any], str]]:
    """Start what serves the source; its connector settings and the id of a feature near the
    middle of the data."""
    if source.name == "file":
        # the id the file connector gives a feature is its position
        _, fids, _, _ = pyogrio.raw.read(servers.AFVALBAKKEN, return_fids=True, read_geometry=False)
        yield {"connector": "file", "path": str(servers.AFVALBAKKEN)}, str(fids[len(fids) // 2])
    elif source.name == "federation":
        progress("starting pygeoapi as the source ...")
        pygeoapi = servers.start_pygeoapi(workdir, None)
        try:
            location = {
                "connector": "ogcapi-features",
                "url": pygeoapi.base_url,
                "collections": [{"upstream": "afvalbakken", "id": source.collection}],
            }
            yield location, scenarios.afvalbakken().item_id
        finally:
            pygeoapi.stop()
    else:
        progress("starting PostGIS as the source ...")
        with servers.postgis_cluster() as cluster:
            table = servers.load_verblijfsobjecten(cluster)
            location = {
                "connector": "postgis",
                "dsn": table.libpq_url,
                "table": table.table,
                "collections": [{"upstream": table.table, "id": source.collection}],
            }
            yield location, scenarios.verblijfsobjecten().item_id


def audit_database_url(workdir: Path, postgres: PostgisServer | None) -> str:
    """The candidate's own audit database: a SQLite file next to it, or a PostgreSQL database."""
    if postgres is None:
        return f"sqlite:///{workdir / 'protected-audit.db'}"
    postgres.create_database("audit")
    with postgres.connect("audit") as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')"
        ).fetchall()
    settings = {str(name): str(value) for name, value in rows}
    if settings != {"fsync": "on", "synchronous_commit": "on"}:
        raise servers.ComponentError("postgresql", f"commits are not flushed to disk: {settings}")
    return str(postgres.url("audit"))


@dataclass
class Hubs:
    """The two running hubs and what the run needs to know about them."""

    baseline: servers.ServerProcess
    candidate: servers.ServerProcess
    does: Candidate
    source: AccessSource
    token: str
    audit_database: str
    item_id: str
    settings: dict[str, Any] = field(default_factory=dict)

    def collection_url(self, hub: servers.ServerProcess) -> str:
        """The collection's URL on ``hub``."""
        return f"{hub.base_url}{OGC_PREFIX}/collections/{self.source.collection}"

    def urls(self, query: AccessQuery) -> tuple[str, str]:
        """The query's URL on the open hub and on the candidate."""
        baseline = self.collection_url(self.baseline) + query.path
        candidate = self.collection_url(self.candidate) + query.path
        if query.purpose:
            candidate += f"&purpose={ACTIVITY['id']}"
        return baseline, candidate

    @property
    def authorization(self) -> dict[str, str]:
        """The candidate's request header (none when it validates no tokens)."""
        return {"Authorization": f"Bearer {self.token}"} if self.does.auth else {}


@contextlib.contextmanager
def serve_hubs(
    audit_database: str = "sqlite",
    progress: Callable[[str], None] = print,
    candidate: Candidate = CANDIDATES["auth+audit"],
    source: AccessSource = SOURCES["file"],
) -> Iterator[Hubs]:
    """Start the source's server, the issuer and both hubs; stop them (and remove their files)
    afterwards."""
    if not servers.AFVALBAKKEN.is_file():
        raise servers.ComponentError("data", f"{servers.AFVALBAKKEN} is absent")
    workdir = Path(tempfile.mkdtemp(prefix="bench-access-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        postgres = None
        if audit_database == "postgresql":
            progress("starting PostgreSQL for the audit log ...")
            # durable, as the audit log's own database would be: its commits are what it waits for
            postgres = stack.enter_context(servers.postgis_cluster(durable=True))
        audit_url = audit_database_url(workdir, postgres)
        location, item_id = stack.enter_context(_source_location(source, workdir, progress))
        issuer = LoopbackIssuer().start()
        stack.callback(issuer.stop)
        # One caller for the whole run, as a viewer would hold one token per session.
        token = issuer.mint(sub="benchmark-user", azp="benchmark", roles=[READER_ROLE, MANAGER_ROLE])
        candidate_settings: dict[str, Any] = {
            "processing_activities": [ACTIVITY],
            "audit": {"enabled": candidate.audit, "database_url": audit_url, "fsync": candidate.fsync},
        }
        if candidate.auth:
            candidate_settings["auth"] = issuer.auth_settings()
        headers = {"Authorization": f"Bearer {token}"} if candidate.auth else None
        progress("starting the open hub (no auth, no audit) ...")
        baseline = servers.start_hub(
            workdir,
            [_registration(source, location, protected=False)],
            [source.collection],
            name="open",
            settings={"audit": {"enabled": False}},
        )
        stack.callback(baseline.stop)
        progress(f"starting the {candidate.label} ...")
        server = servers.start_hub(
            workdir,
            [_registration(source, location, protected=candidate.auth)],
            [source.collection],
            name="candidate",
            settings=candidate_settings,
            headers=headers,
        )
        stack.callback(server.stop)
        yield Hubs(
            baseline,
            server,
            candidate,
            source,
            token,
            audit_url,
            item_id,
            {
                "source": source.label,
                "baseline": {"audit": {"enabled": False}},
                "candidate": _describe(candidate, audit_database, source),
            },
        )


def _describe(candidate: Candidate, audit_database: str, source: AccessSource) -> dict[str, Any]:
    """The candidate's settings for the report, without loopback URLs that mean nothing later."""
    described: dict[str, Any] = {
        "does": candidate.name,
        "audit": {
            "enabled": candidate.audit,
            "database": audit_database if candidate.audit else None,
            "fsync": candidate.fsync,
        },
    }
    if candidate.auth:
        described |= {
            "auth": "bearer JWT (RS256) validated against the issuer's JWKS",
            "classification": "internal",
            "access": {"roles": [READER_ROLE]},
            "protected_fields": [source.protected_field],
        }
    return described


# --- honesty checks ------------------------------------------------------------------------


def check_enforced(hubs: Hubs) -> None:
    """A candidate with tokens refuses anonymous callers and hides the protected property unless
    the request names the processing activity; the baseline shows it. ComponentError otherwise."""
    page = "/items?f=json&limit=10"
    base, protected = hubs.collection_url(hubs.baseline), hubs.collection_url(hubs.candidate)
    expectations: list[tuple[str, str, dict[str, str], bool]] = [("open hub", base + page, {}, True)]
    with httpx.Client(headers=CLIENT_HEADERS, timeout=30, trust_env=False) as client:
        if hubs.does.auth:
            anonymous = client.get(protected + page)
            if anonymous.status_code != 401:
                raise servers.ComponentError(
                    "candidate hub", f"answers an anonymous caller with {anonymous.status_code}, not 401"
                )
            expectations += [
                ("candidate hub", protected + page, hubs.authorization, False),
                ("candidate hub", f"{protected}{page}&purpose={ACTIVITY['id']}", hubs.authorization, True),
            ]
        else:
            expectations.append(("candidate hub", protected + page, {}, True))
        for name, url, headers, shown in expectations:
            response = client.get(url, headers=headers)
            if response.status_code != 200:
                raise servers.ComponentError(
                    name, f"{url} answered {response.status_code}: {response.text[:300]}"
                )
            field = hubs.source.protected_field
            seen = any(field in f["properties"] for f in response.json()["features"])
            if seen != shown:
                state = "shows" if seen else "hides"
                raise servers.ComponentError(name, f"{state} {field} on {url}")


def logged_feature_requests(database_url: str) -> int | None:
    """Audit records of requests for features (the only ones the benchmark sends after its
    checks); None when the database holds no audit table at all."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(records.name):
                return None
            query = (
                sa.select(sa.func.count())
                .select_from(records)
                .where(records.c.kind == KIND_REQUEST, records.c.path.like(f"{OGC_PREFIX}/collections/%"))
            )
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def audit_verdict(before: int | None, after: int | None, sent: int) -> dict[str, Any]:
    """Whether the audit log gained exactly one record per request sent to the candidate."""
    logged = None if after is None else after - (before or 0)
    return {"requests_sent": sent, "records_added": logged, "complete": logged == sent}


# --- the run -------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _measure(
    hubs: Hubs, profile: Profile, generator: LoadGenerator, progress: Callable[[str], None]
) -> list[AccessRow]:
    rows = []
    async with new_client(1) as warm_client:
        try:
            for query in queries(hubs.item_id, hubs.does):
                started = time.monotonic()
                baseline_url, candidate_url = hubs.urls(query)
                baseline, candidate = await compare(
                    (baseline_url, candidate_url),
                    profile,
                    generator,
                    warm_client,
                    (hubs.baseline.process.pid, hubs.candidate.process.pid),
                )
                row = AccessRow(query, baseline_url, candidate_url, baseline, candidate)
                rows.append(row)
                progress(
                    f"  {query.name}: p50 {baseline.p50_ms:.1f} / {candidate.p50_ms:.1f} ms, "
                    f"{_median(baseline.round_rps):.0f} / {_median(candidate.round_rps):.0f} req/s, "
                    f"loss {row.loss:.1%} ({time.monotonic() - started:.0f} s)"
                )
        finally:
            await generator.aclose()
    return rows


@dataclass
class AccessResult:
    """The JSON-ready report and the measured rows it was made from."""

    report: dict[str, Any]
    rows: list[AccessRow]

    @property
    def ok(self) -> bool:
        """Every answer 200 and every request in the audit log."""
        audit = self.report["audit"]
        return all(row.all_ok for row in self.rows) and (not audit["enabled"] or audit["complete"])


def run_access_benchmark(
    profile: Profile,
    *,
    load: str = "auto",
    audit_database: str = "sqlite",
    candidate: Candidate = CANDIDATES["auth+audit"],
    source: AccessSource = SOURCES["file"],
    progress: Callable[[str], None] = _progress,
) -> AccessResult:
    """Start the issuer and both hubs, measure every query, check the audit log; the report.

    Raises ``servers.ComponentError`` when a server cannot start or the candidate does not
    enforce its policy.
    """
    started_at = datetime.now(UTC)
    with serve_hubs(audit_database, progress, candidate, source) as hubs:
        try:
            generator = load_generator(
                load, profile.concurrency, {origin(hubs.candidate): hubs.authorization}
            )
        except FileNotFoundError as exc:
            raise servers.ComponentError("load generator", str(exc)) from exc
        if load == "auto" and generator.name != "hey":
            progress("note: hey is not installed (apt-get install hey); the load comes from httpx")
        check_enforced(hubs)
        logged_before = logged_feature_requests(hubs.audit_database)
        progress(f"measuring ({profile.name} profile, load from {generator.name}) ...")
        load_before = os.getloadavg()
        rows = asyncio.run(_measure(hubs, profile, generator, progress))
        machine = _machine()
        machine["load_average_before"] = [round(v, 2) for v in load_before]
        audit: dict[str, Any] = {"enabled": candidate.audit}
        if candidate.audit:
            sent = sum(sum(row.candidate.statuses.values()) + row.candidate.failed for row in rows)
            audit |= audit_verdict(logged_before, logged_feature_requests(hubs.audit_database), sent)
            audit["database"] = audit_database
            audit["fsync"] = candidate.fsync
        settings = hubs.settings
    finished_at = datetime.now(UTC)
    worst = max(rows, key=lambda r: r.loss if not math.isnan(r.loss) else math.inf)
    report = {
        "started": started_at.isoformat(timespec="seconds"),
        "seconds": round((finished_at - started_at).total_seconds(), 1),
        "profile": vars(profile),
        "load_generator": generator.name,
        "machine": machine,
        "hubs": settings,
        "rows": [row.as_json() for row in rows],
        "candidate": candidate.name,
        "source": source.name,
        "goal": {
            "goal": f"{candidate.name} loses at most {LOSS_GOAL:.0%} of the open hub's throughput",
            "met": all(row.loss <= LOSS_GOAL for row in rows),
            "worst": {"query": worst.query.name, "loss": _round(worst.loss, 3)},
        },
        "audit": audit,
    }
    return AccessResult(report, rows)


def origin(server: servers.ServerProcess) -> str:
    """``host:port`` of a server, as the load generators key their extra headers."""
    return urlsplit(server.base_url).netloc


def table(
    rows: Sequence[AccessRow],
    candidate: Candidate = CANDIDATES["auth+audit"],
    source: AccessSource = SOURCES["file"],
) -> str:
    """The rows as a fixed-width text table: A = the open hub, B = the candidate."""
    header = (
        f"{'query':<18}{'feat':>5}{'bytes A/B':>14} |{'p50 ms A':>9}{'B':>7} |"
        f"{'req/s A':>9}{'B':>7} |{'loss':>7} |{'cpu ms/req A':>13}{'B':>6}"
    )
    lines = [
        "",
        f"Source: {source.label}",
        f"A = open hub (anonymous, no audit), B = {candidate.label}",
        "req/s: median of the throughput rounds; loss: 1 - the median of B/A over round pairs",
        header,
        "-" * len(header),
    ]
    for row in rows:
        a, b = row.baseline, row.candidate
        features = f"{a.features}" if a.features == b.features else f"{a.features}/{b.features}"
        flag = "" if row.all_ok else "  NOT ALL 200"
        lines.append(
            f"{row.query.name:<18}{features:>5}{f'{a.response_bytes}/{b.response_bytes}':>14} |"
            f"{a.p50_ms:9.2f}{b.p50_ms:7.2f} |{_median(a.round_rps):9.0f}{_median(b.round_rps):7.0f} |"
            f"{row.loss:7.1%} |{_cpu(a):>13}{_cpu(b):>6}{flag}"
        )
    return "\n".join(lines)


def _cpu(measurement: Measurement) -> str:
    value = measurement.server_cpu_ms_per_request
    return "-" if value is None else f"{value:.2f}"


def summary_lines(report: dict[str, Any]) -> str:
    """The goal and the audit check."""
    goal, audit = report["goal"], report["audit"]
    worst = goal["worst"]
    lines = [
        "",
        f"Goal: {goal['goal']}: {'met' if goal['met'] else 'MISSED'} "
        f"(worst: {worst['loss']:.1%} on {worst['query']})"
        if worst["loss"] is not None
        else f"Goal: {goal['goal']}: not measured",
    ]
    if audit["enabled"]:
        lines.append(
            f"Audit log ({audit['database']}, fsync {'on' if audit['fsync'] else 'off'}): "
            f"{audit['records_added']} records for "
            f"{audit['requests_sent']} requests: {'complete' if audit['complete'] else 'INCOMPLETE'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.access",
        description="Throughput of a protected collection (token + audit log) against an open one.",
    )
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="a short run, to see that everything starts")
    speed.add_argument("--profile", choices=sorted(ACCESS_PROFILES), default="full", help=argparse.SUPPRESS)
    parser.add_argument(
        "--load",
        choices=["auto", "hey", "httpx"],
        default="auto",
        help="load generator (auto: hey when installed, else httpx)",
    )
    parser.add_argument(
        "--audit-database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="where the protected hub keeps its audit log (postgresql: a throwaway cluster)",
    )
    parser.add_argument(
        "--candidate",
        choices=sorted(CANDIDATES),
        default="auth+audit",
        help="what the compared hub adds: both (the default), or one alone to see whose cost it is",
    )
    parser.add_argument(
        "--audit-fsync",
        choices=["on", "off"],
        default="on",
        help="the candidate's audit.fsync: on (the default) waits for the disk, off for the database",
    )
    parser.add_argument(
        "--source",
        choices=sorted(SOURCES),
        default="file",
        help="where both hubs read the features (see bench/README.md)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        help="concurrent clients in the throughput rounds (default: the profile's)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    candidate = replace(CANDIDATES[args.candidate], fsync=args.audit_fsync == "on")
    profile = ACCESS_PROFILES["quick" if args.quick else args.profile]
    if args.clients is not None:
        if args.clients < 1:
            parser.error("--clients must be at least 1")
        profile = replace(profile, concurrency=args.clients)
    command = " ".join([Path(sys.executable).name, "-m", "bench.access", *(argv or sys.argv[1:])])
    try:
        result = run_access_benchmark(
            profile,
            load=args.load,
            audit_database=args.audit_database,
            candidate=candidate,
            source=SOURCES[args.source],
        )
    except servers.ComponentError as exc:
        print(f"benchmark not run: {exc.component}: {exc.reason}", file=sys.stderr)
        return EXIT_COMPONENT
    report = result.report
    report["command"] = command
    print(table(result.rows, candidate, SOURCES[args.source]))
    print(summary_lines(report))
    stamp = report["started"].replace(":", "").replace("-", "")
    path = write_json(report, args.results, stamp, kind="access")
    print(
        f"\n{len(result.rows)} queries in {report['seconds']:.0f} s ({profile.name} profile, load from "
        f"{report['load_generator']}); JSON: {path}"
    )
    for row in result.rows:
        if not row.all_ok:
            errors = row.baseline.errors + row.candidate.errors
            print(
                f"NOT ALL 200: {row.query.name}: {row.baseline.statuses} / {row.candidate.statuses} "
                f"{errors[:2]}",
                file=sys.stderr,
            )
    return EXIT_OK if result.ok else EXIT_NOT_200


if __name__ == "__main__":
    sys.exit(main())
