"""The audit trail under load, against the hub as its own process (``hub serve``).

Every request carries its own W3C trace id, so each can be found in the log: 2,000 requests from
50 concurrent clients leave exactly one request record each, and a chain that verifies; a hub
killed (SIGKILL) in the middle of such a load leaves a chain that verifies too, with a record
for every request that was answered, also when responses wait for the database rather than the
disk (``audit.fsync: false``); two uvicorn workers, each with its own writer process, keep one
chain.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.hub import hub_server_process, hub_settings
from tests.test_audit import KEY, sources

REQUESTS = 2000
CLIENTS = 50
ITEMS = "/ogc/v1/collections/percelen/items"
REPO = Path(__file__).resolve().parents[1]


async def load(
    base_url: str, trace_ids: list[str], *, clients: int = CLIENTS, halfway: asyncio.Event | None = None
) -> dict[str, int]:
    """Send one items request per trace id from ``clients`` concurrent clients, each with its own
    connection; the status each got (0: no answer). ``halfway`` is set after 300 answers."""
    answered: dict[str, int] = {}
    pending = iter(trace_ids)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            for trace_id in pending:
                try:
                    response = await http.get(
                        ITEMS,
                        params={"limit": 5},
                        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
                    )
                    answered[trace_id] = response.status_code
                    if halfway is not None and len(answered) >= 300:
                        halfway.set()
                except httpx.HTTPError:
                    answered[trace_id] = 0

    await asyncio.gather(*(client() for _ in range(clients)))
    return answered


def request_records(database: Path) -> dict[str, int]:
    """Request-level records per trace id."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT trace_id, count(*) FROM audit_records"
            " WHERE kind = 'request' AND path = ? GROUP BY trace_id",
            (ITEMS,),
        )
        return dict(rows.fetchall())


def verify(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_AUDIT_PSEUDONYM_KEY", KEY)


def test_one_record_per_request_under_concurrent_load(tmp_path: Path) -> None:
    settings = hub_settings(tmp_path, sources(tmp_path))
    trace_ids = [secrets.token_hex(16) for _ in range(REQUESTS)]
    with hub_server_process(settings) as (base_url, _process):
        started = time.monotonic()
        answered = asyncio.run(load(base_url, trace_ids))
        seconds = time.monotonic() - started
    assert sorted(set(answered.values())) == [200], {
        s: list(answered.values()).count(s) for s in answered.values()
    }
    records = request_records(tmp_path / "hub.db")
    assert set(records) == set(trace_ids)
    assert set(records.values()) == {1}
    with sqlite3.connect(tmp_path / "hub.db") as connection:
        children = connection.execute(
            "SELECT count(*) FROM audit_records WHERE kind = 'data-subject'"
        ).fetchone()[0]
    # five parcels of three owners per page: a child record per owner
    assert children == 3 * REQUESTS
    checked = verify(settings.config_file or tmp_path)
    assert checked.returncode == 0, checked.stderr
    rate = REQUESTS / seconds
    print(f"\n{REQUESTS} requests, {CLIENTS} clients: {seconds:.1f} s ({rate:.0f}/s); {checked.stdout}")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("fsync", [True, False], ids=["fsync", "no-fsync"])
def test_a_server_killed_mid_load_leaves_a_chain_that_verifies(tmp_path: Path, fsync: bool) -> None:
    settings = hub_settings(tmp_path, sources(tmp_path), audit={"fsync": fsync})
    trace_ids = [secrets.token_hex(16) for _ in range(REQUESTS)]
    database = tmp_path / "hub.db"

    async def load_and_kill(base_url: str, pid: int) -> dict[str, int]:
        halfway = asyncio.Event()
        running = asyncio.create_task(load(base_url, trace_ids, halfway=halfway))
        # kill once a few hundred requests are answered, while others are in every stage
        await asyncio.wait_for(halfway.wait(), 120)
        os.kill(pid, signal.SIGKILL)
        return await running

    with hub_server_process(settings) as (base_url, process):
        answered = asyncio.run(load_and_kill(base_url, process.pid))
        assert process.wait(timeout=10) == -signal.SIGKILL
    served = {trace_id for trace_id, status in answered.items() if status == 200}
    unanswered = [trace_id for trace_id, status in answered.items() if status == 0]
    assert len(served) >= 300 and unanswered, "the kill did not land mid-load"
    records = request_records(database)
    # never served unlogged; a record without an answer is a request killed after its commit
    assert served <= set(records)
    assert set(records.values()) == {1}
    checked = verify(settings.config_file or tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "intact" in checked.stdout


def test_several_workers_keep_one_chain(tmp_path: Path) -> None:
    """``uvicorn --factory hub.app:create_app_from_env --workers 2``, as the getting-started guide
    deploys it: each worker appends through a writer process of its own, all to one chain."""
    settings = hub_settings(tmp_path, sources(tmp_path))
    assert settings.config_file is not None
    port = settings.server.base_url.rsplit(":", 1)[1].split("/")[0]
    command = [sys.executable, "-m", "uvicorn", "--factory", "hub.app:create_app_from_env"]
    command += ["--port", port, "--workers", "2", "--log-level", "warning"]
    env = {**os.environ, "HUB_CONFIG_FILE": str(settings.config_file)}
    log = tmp_path / "workers.log"
    with log.open("wb") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        writers: set[int] = set()
        deadline = time.monotonic() + 60
        # both workers up: each has started its writer process
        while len(writers) < 2:
            assert server.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, f"writers: {writers}"
            writers = _writer_processes(under=server.pid)
            time.sleep(0.2)
        trace_ids = [secrets.token_hex(16) for _ in range(REQUESTS)]
        answered = asyncio.run(load(settings.server.base_url, trace_ids))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(set(answered.values())) == [200]
    records = request_records(tmp_path / "hub.db")
    assert set(records) == set(trace_ids) and set(records.values()) == {1}
    checked = verify(settings.config_file)
    assert checked.returncode == 0, checked.stderr
    # stopped with their workers
    assert not any(_alive(pid) for pid in writers)


def _parent(pid: int) -> int:
    # /proc/<pid>/stat: "pid (name) state ppid ...", the name in parentheses may hold spaces
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _writer_processes(*, under: int) -> set[int]:
    """Audit writer processes whose worker is a child of the server ``under``."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"hub.audit.writer_process" not in cmdline.read_bytes().split(b"\0"):
                continue
            pid = int(cmdline.parent.name)
            if _parent(_parent(pid)) == under and _alive(pid):
                found.add(pid)
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return found
