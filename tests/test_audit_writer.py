"""The audit writer process: batches, its death while requests wait, restarts, and stopping
with records in flight. A real ``python -m hub.audit.writer_process`` on a SQLite file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.audit.errors import AuditUnavailable
from hub.audit.store import AuditStore, CallerIdentity
from hub.audit.trail import AuditTrail
from hub.audit.verify import verify
from hub.audit.writer import AuditWriter
from hub.audit.writer_process import WriterConfig, decode_draft, encode_draft
from hub.errors import ConfigurationError
from hub.settings import Settings
from tests.test_audit_trail import draft

CALLER = CallerIdentity("medewerker-1", "https://issuer.example.nl", "viewer", ("gis", "beheer"))


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditStore.open(url).close()  # the server migrates before it starts the writer
    return url


@pytest.fixture
async def writer(database: str) -> AsyncIterator[AuditWriter]:
    started = AuditWriter(WriterConfig(database, fsync=False), timeout=10.0)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


def stored(database: str) -> list[dict[str, object]]:
    with AuditStore.open(database) as store:
        assert verify(store).intact
        with store.engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT trace_id, caller_id FROM audit_records ORDER BY id")
            return [dict(row._mapping) for row in rows]


def writer_pid(writer: AuditWriter) -> int:
    process = writer._process
    assert process is not None, "the writer process is not running"
    return process.pid


def test_a_record_crosses_the_pipe_unchanged() -> None:
    original = draft(caller=CALLER, subject="pseudonym-1")
    assert decode_draft(encode_draft(original)) == original
    anonymous = draft()
    assert decode_draft(encode_draft(anonymous)) == anonymous


async def test_concurrent_writes_share_batches_and_one_chain(writer: AuditWriter, database: str) -> None:
    drafts = [draft(caller=CALLER if n % 2 else None) for n in range(300)]
    await asyncio.gather(*(writer.write([one]) for one in drafts))
    rows = stored(database)
    assert sorted(row["trace_id"] for row in rows) == sorted(d.trace_id for d in drafts)
    assert sum(1 for row in rows if row["caller_id"] is not None) == 150
    # lines that arrive while the process commits become one batch: far fewer commits than records
    assert writer.batches < 100


async def test_a_write_that_fails_is_refused_and_the_next_one_is_stored(
    writer: AuditWriter, database: str
) -> None:
    await writer.write([draft()])
    path = database.removeprefix("sqlite:///")
    import sqlite3

    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE audit_records RENAME TO audit_records_away")
    with pytest.raises(AuditUnavailable) as refused:
        await writer.write([draft()])
    assert "audit_records" in (refused.value.cause or "")
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE audit_records_away RENAME TO audit_records")
    after = draft()
    await writer.write([after])
    assert [row["trace_id"] for row in stored(database)][-1] == after.trace_id


async def test_waiting_requests_are_refused_when_the_process_dies_and_it_is_restarted(
    writer: AuditWriter, database: str
) -> None:
    first = writer_pid(writer)
    await writer.write([draft()])
    os.kill(first, signal.SIGSTOP)  # the process takes the records but cannot answer
    waiting = asyncio.ensure_future(writer.write([draft()]))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    started = time.monotonic()
    os.kill(first, signal.SIGKILL)
    with pytest.raises(AuditUnavailable, match="cannot be written"):
        await waiting
    # refused at once, not after the write timeout of 10 s
    assert time.monotonic() - started < 5
    later = draft()
    await writer.write([later])
    assert writer_pid(writer) != first
    traces = [row["trace_id"] for row in stored(database)]
    assert traces[-1] == later.trace_id and len(traces) == 2


async def test_stopping_writes_what_was_handed_over(database: str) -> None:
    writer = AuditWriter(WriterConfig(database, fsync=True), timeout=10.0)
    await writer.start()
    drafts = [draft() for _ in range(200)]
    writes = [asyncio.ensure_future(writer.write([one])) for one in drafts]
    await asyncio.sleep(0)  # handed over, not yet answered
    await writer.stop()
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [r for r in results if r is not None] == []
    assert len(stored(database)) == 200
    with pytest.raises(AuditUnavailable):
        await writer.write([draft()])


async def test_a_database_that_cannot_be_opened_stops_the_start(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'no-such-directory' / 'audit.db'}"
    writer = AuditWriter(WriterConfig(missing, fsync=False), timeout=10.0)
    with pytest.raises(AuditUnavailable, match="cannot be opened"):
        await writer.start()


def test_the_process_ends_when_its_server_is_killed(database: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from hub.audit.writer import AuditWriter
        from hub.audit.writer_process import WriterConfig

        async def main():
            writer = AuditWriter(WriterConfig({database!r}, fsync=True), timeout=10.0)
            await writer.start()
            print(writer._process.pid, flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=tmp_path)
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        assert _running(child)
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), "the writer process outlived its server"


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" not in state.split()[1]


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:log?mode=memory&uri=true"]
)
async def test_an_in_memory_audit_database_is_refused(url: str) -> None:
    trail = AuditTrail(Settings(database_url=url))
    with pytest.raises(ConfigurationError, match="in-memory"):
        await trail.start()
    assert trail.writer is None
