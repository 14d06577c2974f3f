"""The audit trail's storage: the hash chain, tamper detection, retention, destruction and legal
holds, on SQLite and on a real PostgreSQL server; ``hub audit`` run as the command it is."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from hub.audit import chain as hashes
from hub.audit.holds import HoldCriteria, add_hold, list_holds, release_hold
from hub.audit.models import KIND_REQUEST, KIND_SUBJECT, AuditBase
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.purge import declarations, purge, runs
from hub.audit.retention import Period, policy_for
from hub.audit.store import AuditStore, CallerIdentity, RecordDraft, RecordFilter
from hub.audit.tracecontext import new_span_id, new_trace_id, parse_traceparent
from hub.audit.verify import verify
from hub.catalogue import database
from hub.cli import app as cli_app
from hub.errors import BadRequest, ConfigurationError, NotFound
from hub.settings import Settings
from tests.fixtures.postgis import PostgisServer

REPO = Path(__file__).resolve().parents[1]
KEY = "test-pseudonymisation-key-0123456789"
NOW = datetime.now(UTC)
_database_names = itertools.count()

ACTIVITIES = [
    {
        "id": "toegang",
        "uri": "https://register.example.nl/verwerkingen/toegang",
        "name": "Access to personal data",
        "retention_category": "12.1.8",
    },
    {
        "id": "interne-controle",
        "uri": "https://register.example.nl/verwerkingen/interne-controle",
        "name": "Internal audit",
        "retention_category": "4.1",
    },
    {
        "id": "kort",
        "uri": "https://register.example.nl/verwerkingen/kort",
        "name": "Adopted short retention",
        "retention_category": "99.9",
        "retention_days": 30,
    },
]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    server: PostgisServer = request.getfixturevalue("postgis_server")
    return server.create_database(f"audit_{next(_database_names)}")


@pytest.fixture
def store(url: str) -> Iterator[AuditStore]:
    """An open audit store on a fresh database."""
    with AuditStore.open(url) as opened:
        yield opened


@pytest.fixture
def config(url: str, tmp_path: Path) -> Path:
    """A configuration file for ``hub audit`` on the test's database."""
    path = tmp_path / "hub.yml"
    path.write_text(
        yaml.safe_dump({"database_url": url, "processing_activities": ACTIVITIES}), encoding="utf-8"
    )
    return path


def settings_for(config: Path) -> Settings:
    return Settings.load(config)


def draft(
    *,
    activity: str = "toegang",
    ended: datetime = NOW,
    trace_id: str | None = None,
    subject: str | None = None,
    caller: CallerIdentity | None = None,
    kind: str = KIND_REQUEST,
    path: str = "/ogc/v1/collections/percelen/items",
) -> RecordDraft:
    """A record as the middleware would make it; ``subject`` is a pseudonym."""
    return RecordDraft(
        kind=kind,
        trace_id=trace_id or new_trace_id(),
        span_id=new_span_id(),
        parent_span_id=None,
        foreign_span_id=None,
        name="GET /ogc/v1/collections/{collection_id}/items",
        start_time=ended - timedelta(milliseconds=12),
        end_time=ended,
        status_code=0,
        http_method="GET",
        http_status=200,
        path=path,
        query="limit=10",
        collection_id="percelen",
        result_count=10,
        activity_id=activity,
        activity_uri=f"https://register.example.nl/verwerkingen/{activity}",
        data_subject_id=subject,
        data_subject_id_type="bsn" if subject else None,
        denied_reason=None,
        caller=caller,
    )


def run_hub(*args: str, config: Path, check: bool = False, process: bool = False) -> Ran:
    """``hub ...`` with the pseudonymisation key set: in this process, or (``process``) as its own
    process, exactly as an operator runs it."""
    env = {"HUB_AUDIT_PSEUDONYM_KEY": KEY}
    argv = [*args, "--config", str(config)]
    if process:
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", *argv],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=120,
            cwd=REPO,
            check=False,
        )
        ran = Ran(done.returncode, done.stdout, done.stderr)
    else:
        result = CliRunner().invoke(cli_app, argv, env=env)
        ran = Ran(result.exit_code, result.stdout, result.stderr)
    if check:
        assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran


@dataclass(frozen=True)
class Ran:
    """What a ``hub`` command did."""

    returncode: int
    stdout: str
    stderr: str


def tamper(store: AuditStore, *statements: str) -> None:
    """Run SQL as someone with direct write access to the database, triggers out of the way."""
    with store.engine.begin() as connection:
        if store.postgresql:
            # a superuser can switch triggers off for the session
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            for name in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
                connection.exec_driver_sql(f"DROP TRIGGER {name[0]}")
        for statement in statements:
            connection.exec_driver_sql(statement)


# --- trace context ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        # a later version may add fields; its first four are read
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
    ],
)
def test_valid_traceparent_is_read(header: str) -> None:
    parent = parse_traceparent([header])
    assert parent is not None
    assert (parent.trace_id, parent.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


@pytest.mark.parametrize(
    "headers",
    [
        ["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"],  # upper case
        ["00-00000000000000000000000000000000-00f067aa0ba902b7-01"],  # all-zero trace id
        ["00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"],  # all-zero span id
        ["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],  # forbidden version
        ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"],  # v00 has four fields
        ["00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"],  # short trace id
        ["garbage"],
        [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ],
    ],
)
def test_malformed_traceparent_is_ignored(headers: list[str]) -> None:
    assert parse_traceparent(headers) is None


def test_minted_ids_are_hex_and_never_repeat() -> None:
    traces = [new_trace_id() for _ in range(20_000)]
    spans = [new_span_id() for _ in range(20_000)]
    assert len(set(traces)) == len(traces) and len(set(spans)) == len(spans)
    assert all(len(t) == 32 and int(t, 16) for t in traces)
    assert all(len(s) == 16 and int(s, 16) for s in spans)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_mints_other_ids_than_its_parent() -> None:
    # in a fresh interpreter: forking this one, which runs threads, would be unsafe
    script = """
import os
from hub.audit.tracecontext import new_trace_id
new_trace_id()  # the pool now holds bytes a child would inherit
reading, writing = os.pipe()
child = os.fork()
if child == 0:
    os.write(writing, new_trace_id().encode())
    os._exit(0)
os.close(writing)
os.waitpid(child, 0)
print(os.read(reading, 64).decode(), new_trace_id())
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    childs, parents = ran.stdout.split()
    assert len(childs) == len(parents) == 32 and childs != parents


# --- retention -------------------------------------------------------------------------------


def test_periods_count_calendar_months() -> None:
    assert Period(months=6).before(datetime(2026, 8, 31, 12, tzinfo=UTC)) == datetime(
        2026, 2, 28, 12, tzinfo=UTC
    )
    assert Period(months=120).before(datetime(2026, 3, 1, tzinfo=UTC)) == datetime(2016, 3, 1, tzinfo=UTC)
    assert Period(months=12).before(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2023, 2, 28, tzinfo=UTC)
    assert Period(days=30).before(datetime(2026, 3, 1, tzinfo=UTC)) == datetime(2026, 1, 30, tzinfo=UTC)
    assert [str(p) for p in (Period(months=6), Period(months=120), Period(months=18), Period(days=1))] == [
        "6 months",
        "10 years",
        "1 year 6 months",
        "1 day",
    ]


def test_retention_comes_from_the_category_or_the_adopted_days() -> None:
    settings = Settings(processing_activities=ACTIVITIES)
    periods = {a.id: policy_for(a) for a in settings.processing_activities}
    assert periods["toegang"] is not None and periods["toegang"].period == Period(months=6)
    assert periods["interne-controle"] is not None and periods["interne-controle"].period == Period(
        months=120
    )
    assert periods["kort"] is not None and periods["kort"].period == Period(days=30)
    unknown = Settings(
        processing_activities=[
            {"id": "raadsel", "uri": "urn:x:raadsel", "name": "?", "retention_category": "1.2.3"}
        ]
    )
    assert policy_for(unknown.processing_activities[0]) is None


def test_pseudonyms_are_keyed_and_refused_without_a_key() -> None:
    first = Pseudonymiser(KEY.encode(), "K").pseudonym("999990019")
    assert first == Pseudonymiser(KEY.encode(), "K").pseudonym("999990019")
    assert first != Pseudonymiser(b"another-key-of-length-16", "K").pseudonym("999990019")
    assert "999990019" not in first and len(first) == 64
    with pytest.raises(ConfigurationError):
        Pseudonymiser(b"short", "K")
    from hub.audit.errors import AuditUnavailable

    with pytest.raises(AuditUnavailable):
        Pseudonymiser(None, "K").pseudonym("999990019")


# --- schema ----------------------------------------------------------------------------------


def test_migrated_audit_schema_matches_the_models(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    database.upgrade(url)
    engine = database.create_engine(url)
    try:
        with engine.connect() as connection:
            # the catalogue's own tables are compared by the catalogue's tests
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, type_, parent: type_ != "table" or name.startswith("audit_"),
                },
            )
            differences = list(compare_metadata(context, AuditBase.metadata))
    finally:
        engine.dispose()
    assert differences == []


# --- the chain -------------------------------------------------------------------------------


def test_appends_form_one_dense_chain(store: AuditStore) -> None:
    first = store.append([draft(), draft()])
    second = store.append([draft()])
    assert (first.first_id, first.last_id, second.first_id, second.last_id) == (1, 2, 3, 3)
    rows = store.records(RecordFilter(activity="toegang"))
    previous = hashes.GENESIS
    for row in rows:
        assert row["content_hash"] == hashes.record_hash(row, None)
        assert row["chain_hash"] == hashes.link(previous, row["content_hash"])
        previous = row["chain_hash"]
    assert store.head()["last_chain_hash"] == previous == second.chain_hash
    found = verify(store)
    assert found.intact and found.records == 3 and found.head_id == 3, found.problems


def test_sqlite_commits_wait_for_the_disk_unless_told_not_to(tmp_path: Path) -> None:
    for fsync, level in [(True, 2), (False, 1)]:  # FULL, NORMAL
        with AuditStore.open(f"sqlite:///{tmp_path / 'sync.db'}", fsync=fsync) as store:
            with store.writer_connection() as connection:
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar_one() == level
            store.append([draft()])
            assert verify(store).intact


def test_caller_identities_are_kept_apart_and_shared(store: AuditStore) -> None:
    alice = CallerIdentity("alice", "https://idp.example.nl", "viewer", ("steward", "analyst"))
    store.append([draft(caller=alice), draft(caller=None)])
    store.append(
        [draft(caller=CallerIdentity("alice", "https://idp.example.nl", "viewer", ("analyst", "steward")))]
    )
    rows = store.records(RecordFilter(activity="toegang"))
    assert [row["caller_id"] for row in rows] == [1, None, 1]
    # nothing of the identity is in the records themselves
    assert not any("alice" in str(value) for row in rows for value in row.values())
    caller = store.caller(1)
    assert caller is not None
    assert (caller["subject"], caller["issuer"], caller["client"], caller["roles"]) == (
        "alice",
        "https://idp.example.nl",
        "viewer",
        ["analyst", "steward"],
    )
    assert verify(store).intact


def test_concurrent_writers_share_one_chain(url: str) -> None:
    """Two stores (as two processes would) appending at once: one dense chain that verifies."""
    stores = [AuditStore.open(url), AuditStore.open(url)]
    barrier = threading.Barrier(4)

    def work(store: AuditStore) -> None:
        barrier.wait()
        for _ in range(15):
            store.append([draft(), draft()])

    try:
        threads = [threading.Thread(target=work, args=(stores[i % 2],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        found = verify(stores[0])
        assert found.intact, found.problems
        assert (found.records, found.first_id, found.last_id) == (120, 1, 120)
    finally:
        for store in stores:
            store.close()


def test_the_database_refuses_changes_to_records(store: AuditStore) -> None:
    store.append([draft(), draft(caller=CallerIdentity("bob", None, None))])
    for statement in [
        "UPDATE audit_records SET path = '/elsewhere' WHERE id = 1",
        "DELETE FROM audit_records WHERE id = 2",
        "UPDATE audit_callers SET subject = 'mallory'",
        "DELETE FROM audit_callers",
    ] + (["TRUNCATE audit_records"] if store.postgresql else []):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as connection:
            connection.exec_driver_sql(statement)
    assert verify(store).intact and store.count() == 2


def test_verify_names_changed_deleted_and_inserted_records(store: AuditStore, config: Path) -> None:
    for _ in range(4):
        store.append([draft(), draft(), draft()])
    intact = run_hub("audit", "verify", config=config, process=True)
    assert intact.returncode == 0, intact.stderr
    assert "intact: 12 records (ids 1..12)" in intact.stdout

    tamper(
        store,
        "UPDATE audit_records SET result_count = 0 WHERE id = 4",
        "DELETE FROM audit_records WHERE id = 7",
        # a copy of record 9 under the next free id: plausible, but it breaks the chain
        "INSERT INTO audit_records SELECT 13, kind, trace_id, span_id, parent_span_id, foreign_span_id,"
        " name, start_time, end_time, status_code, http_method, http_status, path, query, collection_id,"
        " result_count, activity_id, activity_uri, data_subject_id, data_subject_id_type, denied_reason,"
        " caller_id, content_hash, chain_hash FROM audit_records WHERE id = 9",
    )
    broken = run_hub("audit", "verify", config=config, process=True)
    assert broken.returncode == 1
    problems = broken.stderr
    assert "record 4 changed" in problems
    assert "record 7 deleted" in problems
    assert "record 13 inserted" in problems
    # each problem once, and no innocent record named
    found = verify(store)
    assert len(found.problems) == 3, found.problems
    for innocent in (1, 5, 8, 9, 12):
        assert not any(f"record {innocent} " in p for p in found.problems)


def test_verify_names_a_record_rewritten_with_fresh_hashes(store: AuditStore) -> None:
    store.append([draft() for _ in range(5)])
    row = store.records(RecordFilter(activity="toegang"))[2]
    row["result_count"] = 999
    content = hashes.record_hash(row, None)
    chained = hashes.link(store.records(RecordFilter(activity="toegang"))[1]["chain_hash"], content)
    tamper(
        store,
        f"UPDATE audit_records SET result_count = 999, content_hash = '{content}', chain_hash = '{chained}'"
        " WHERE id = 3",
    )
    found = verify(store)
    assert found.problems == [
        "record 4 does not follow record 3 in the chain: record 4 was inserted or changed, "
        "or record 3 rewritten"
    ]


def test_verify_notices_a_cut_tail_and_a_changed_identity(store: AuditStore) -> None:
    store.append([draft(caller=CallerIdentity("carol", "https://idp", "app")) for _ in range(3)])
    tamper(store, "DELETE FROM audit_records WHERE id = 3", "UPDATE audit_callers SET subject = 'dave'")
    problems = verify(store).problems
    assert "record 3 deleted" in problems
    assert "caller identity 1 changed" in problems
    # the records still point at the rewritten identity, whose content no longer matches
    assert "record 1 changed: its content does not give its hash" in problems


# --- destruction -----------------------------------------------------------------------------


def test_runs_of_consecutive_ids() -> None:
    assert runs([1, 2, 3, 5, 7, 8]) == [(1, 3), (5, 5), (7, 8)]
    assert runs([]) == []


def test_purge_destroys_expired_records_and_keeps_a_declaration(store: AuditStore, config: Path) -> None:
    old, recent = NOW - timedelta(days=200), NOW - timedelta(days=20)
    ancient = NOW - timedelta(days=365 * 11)
    pseudonym = Pseudonymiser(KEY.encode(), "K").pseudonym("999990019")
    eve = CallerIdentity("eve", "https://idp", "viewer")
    frank = CallerIdentity("frank", "https://idp", "viewer")
    held_trace = new_trace_id()
    store.append(
        [
            draft(ended=old, caller=eve),  # 1 destroyed (6 months)
            draft(ended=old, activity="interne-controle"),  # 2 kept (10 years)
            draft(ended=old, caller=eve),  # 3 destroyed
            draft(ended=old, caller=frank),  # 4 destroyed
            draft(ended=recent),  # 5 kept: recent
            draft(ended=old, trace_id=held_trace),  # 6 held with its trace
            draft(ended=old, trace_id=held_trace, subject=pseudonym, kind=KIND_SUBJECT),  # 7 held
            draft(ended=ancient, activity="interne-controle"),  # 8 destroyed (over 10 years)
            draft(ended=old, activity="kort"),  # 9 destroyed (30 days adopted)
            draft(ended=recent, activity="kort"),  # 10 kept
            draft(ended=old, activity="verdwenen"),  # 11 kept: no retention known
            draft(ended=old, caller=frank),  # 12 destroyed
        ]
    )
    hold = run_hub(
        "audit",
        "hold",
        "add",
        "--reason",
        "bezwaarprocedure 2026-17",
        "--data-subject",
        "999990019",
        config=config,
    )
    assert hold.returncode == 0, hold.stderr
    assert run_hub("audit", "hold", "list", config=config, check=True).stdout.count('"reason"') == 1

    dry = run_hub("audit", "purge", "--dry-run", config=config, check=True)
    assert "toegang (12.1.8, 6 months): would destroy 4 record(s)" in dry.stdout
    assert "2 kept by legal holds" in dry.stdout
    assert "kept 1 record(s) of activity 'verdwenen'" in dry.stderr
    assert store.count() == 12 and declarations(store) == []

    done = run_hub("audit", "purge", config=config, check=True)
    assert "toegang (12.1.8, 6 months): destroyed 4 record(s)" in done.stdout
    assert "interne-controle (4.1, 10 years): destroyed 1 record(s)" in done.stdout
    assert "kort (99.9, 30 days): destroyed 1 record(s)" in done.stdout
    remaining = [row["id"] for row in store.records(RecordFilter(after_id=0, activity="toegang"))]
    assert remaining == [5, 6, 7]
    assert store.count() == 6
    # eve and frank were only in destroyed records: their identities went with them
    assert store.caller(1) is None and store.caller(2) is None

    kept = {d["activity_id"]: d for d in declarations(store)}
    access = kept["toegang"]
    assert access["category"] == "12.1.8"
    assert "Selectielijst gemeenten en intergemeentelijke organen 2020" in access["grounds"]
    assert "12.1.8" in access["grounds"] and "6 months" in access["grounds"]
    assert "Deleted from the audit database" in access["method"]
    assert (access["record_count"], access["held_count"], access["caller_count"]) == (4, 2, 2)
    assert (access["first_record_id"], access["last_record_id"]) == (1, 12)
    assert abs(access["destroyed_at"] - NOW) < timedelta(minutes=5)
    assert kept["interne-controle"]["record_count"] == 1 and kept["kort"]["record_count"] == 1
    shown = run_hub("audit", "declarations", config=config, check=True).stdout
    assert '"category": "12.1.8"' in shown and '"record_count": 4' in shown

    after = run_hub("audit", "verify", config=config, process=True)
    assert after.returncode == 0, after.stderr
    assert "6 destroyed under 3 declarations" in after.stdout
    # the chain goes on after a purge
    store.append([draft(), draft()])
    assert verify(store).intact
    # a second purge finds nothing new
    again = run_hub("audit", "purge", config=config, check=True)
    assert "destroyed 0 record(s)" in again.stdout and "2 kept by legal holds" in again.stdout
    assert len(declarations(store)) == 3


def test_released_hold_no_longer_blocks(store: AuditStore, config: Path) -> None:
    trace = new_trace_id()
    store.append(
        [draft(ended=NOW - timedelta(days=400), trace_id=trace), draft(ended=NOW - timedelta(days=400))]
    )
    hold_id = add_hold(store, "audit by the FG", HoldCriteria(trace_id=trace))
    report = purge(store, settings_for(config))
    assert [(d.record_count, d.held_count) for d in report.destructions] == [(1, 1)]
    assert [row["trace_id"] for row in store.records(RecordFilter(trace_id=trace))] == [trace]
    release_hold(store, hold_id)
    assert list_holds(store) == [] and list_holds(store, released=True)[0]["released_at"] is not None
    report = purge(store, settings_for(config))
    assert [(d.record_count, d.held_count) for d in report.destructions] == [(1, 0)]
    assert store.count() == 0
    found = verify(store)
    assert found.intact and found.destroyed == 2 and found.declarations == 2, found.problems
    with pytest.raises(NotFound):
        release_hold(store, hold_id)


def test_time_range_hold_and_refused_holds(store: AuditStore, config: Path) -> None:
    long_ago = NOW - timedelta(days=300)
    store.append([draft(ended=long_ago), draft(ended=NOW - timedelta(days=250))])
    add_hold(
        store,
        "WOO-verzoek",
        HoldCriteria(from_time=long_ago - timedelta(days=1), until_time=long_ago + timedelta(days=1)),
    )
    report = purge(store, settings_for(config))
    assert [(d.record_count, d.held_count) for d in report.destructions] == [(1, 1)]
    with pytest.raises(BadRequest):
        add_hold(store, "no criteria", HoldCriteria())
    with pytest.raises(BadRequest):
        add_hold(store, " ", HoldCriteria(activity_id="toegang"))
    refused = run_hub("audit", "hold", "add", "--reason", "x", "--trace-id", "XYZ", config=config)
    assert refused.returncode != 0


def test_verify_names_tampering_with_destruction(store: AuditStore) -> None:
    store.append([draft(ended=NOW - timedelta(days=400)) for _ in range(3)] + [draft()])
    purge(store, Settings(processing_activities=ACTIVITIES))
    assert verify(store).intact
    # a record slipped back in under an id that was destroyed
    tamper(
        store,
        "INSERT INTO audit_records SELECT 2, kind, trace_id, span_id, parent_span_id, foreign_span_id,"
        " name, start_time, end_time, status_code, http_method, http_status, path, query, collection_id,"
        " result_count, activity_id, activity_uri, data_subject_id, data_subject_id_type, denied_reason,"
        " caller_id, content_hash, chain_hash FROM audit_records WHERE id = 4",
        "UPDATE audit_declarations SET record_count = 2",
    )
    problems = verify(store).problems
    assert "record 2 inserted: declaration 1 destroyed its id" in problems
    assert "declaration 1 changed (or the record ids it destroyed)" in problems


def test_purge_on_a_busy_chain_keeps_it_whole(url: str) -> None:
    """Writers keep appending while a purge destroys: the chain verifies afterwards."""
    settings = Settings(processing_activities=ACTIVITIES)
    with AuditStore.open(url) as writer, AuditStore.open(url) as purger:
        writer.append([draft(ended=NOW - timedelta(days=400)) for _ in range(300)])
        stop = threading.Event()

        def keep_writing() -> None:
            while not stop.is_set():
                writer.append([draft(ended=NOW - timedelta(days=400)), draft()])

        thread = threading.Thread(target=keep_writing)
        thread.start()
        try:
            for _ in range(3):
                purge(purger, settings)
        finally:
            stop.set()
            thread.join()
        found = verify(purger)
        assert found.intact, found.problems
        assert found.destroyed >= 300


def make_config(tmp_path: Path, url: str, **audit: Any) -> Path:
    path = tmp_path / "other.yml"
    path.write_text(yaml.safe_dump({"database_url": url, "audit": audit}), encoding="utf-8")
    return path


def test_a_separate_audit_database(tmp_path: Path) -> None:
    catalogue, audit_db = tmp_path / "catalogue.db", tmp_path / "audit.db"
    config = make_config(tmp_path, f"sqlite:///{catalogue}", database_url=f"sqlite:///{audit_db}")
    with AuditStore.open(f"sqlite:///{audit_db}") as store:
        store.append([draft()])
    done = run_hub("audit", "verify", config=config, check=True)
    assert "1 records" in done.stdout
    assert not catalogue.exists()
