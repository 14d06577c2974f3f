"""Handing records to the audit writer process and waiting for their commit (group commit).

Requests never touch the database themselves. Each hands its records to the writer process
(:mod:`hub.audit.writer_process`) and awaits its batch's commit; while one batch commits, the
records of the requests that arrive meanwhile gather into the next one. One commit (and one
fsync) thus serves many requests, the event loop never blocks on the database, and the work of
appending (hashes, SQL, commits) runs on another core instead of competing with requests for
the interpreter lock.

A request's records go over the pipe at once when the process is idle; while it commits a batch,
the records of each event-loop pass go as one line, and the lines that arrive meanwhile gather in
the pipe and become its next batch. The process answers per batch with the last line it covered,
which settles every request up to it. When the process dies, every waiting request is refused
(503) and the next record starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from hub.audit.errors import AuditUnavailable
from hub.audit.store import RecordDraft
from hub.audit.writer_process import WriterConfig, encode_draft

LOG = logging.getLogger(__name__)

START_TIMEOUT = 60.0
"""Seconds the writer process may take to open the database."""
STOP_TIMEOUT = 60.0
"""Seconds the writer process may take to write what it was sent when the server stops."""
RESTART_INTERVAL = 1.0
"""Seconds at least between starts of the writer process, so a database that fails every
start does not turn into a process per request."""


@dataclass(slots=True)
class _Pending:
    done: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class AuditWriter:
    """The web server's side of the writer process; start it in the application's lifespan."""

    def __init__(self, config: WriterConfig, *, timeout: float) -> None:
        self._config = config
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._seq = 0
        self._handover: list[tuple[Sequence[RecordDraft], _Pending]] = []
        """Records not sent yet; they go together as one line."""
        self._unsent = bytearray()
        """What the pipe did not take yet (it is full while the process is busy)."""
        self._sent: deque[tuple[int, list[_Pending]]] = deque()
        """Lines sent and not yet answered, in order."""
        self._answers = b""
        self._stopped = False
        self.batches = 0
        """Batches the process answered (the group-commit ratio is records / batches)."""

    async def start(self) -> None:
        """Start the writer process and wait until it has opened the database."""
        self._loop = asyncio.get_running_loop()
        await self._spawn()

    def launch(self) -> None:
        """Start the writer process without waiting for it (see :meth:`ready`): records handed
        over meanwhile are sent once it is ready, or refused if it cannot open the database."""
        self._loop = asyncio.get_running_loop()
        self._restart()

    async def ready(self) -> None:
        """Wait until the process :meth:`launch` started has opened the database."""
        if self._starting is not None:
            await asyncio.shield(self._starting)
        if self._process is None:
            raise AuditUnavailable("the audit log is not running", cause="the writer process did not start")

    async def stop(self) -> None:
        """Send what is queued, let the process write it and end, and wait for it."""
        self._stopped = True  # later records are refused, not sent to a new process
        if self._starting is not None:
            # a process still starting gets the records that waited for it first
            with contextlib.suppress(Exception):
                await self._starting
        process, self._process = self._process, None
        if process is None:
            self._fail_waiting("the audit writer stopped")
            return
        self._detach(process)
        self._flush_handover(process)
        unsent, self._unsent = bytes(self._unsent), bytearray()
        answers = await asyncio.to_thread(_finish, process, unsent)
        for line in (self._answers + answers).split(b"\n"):
            if line.strip():
                self._settle(*json.loads(line))
        self._answers = b""
        self._fail_waiting("the audit writer stopped")

    async def write(self, drafts: Sequence[RecordDraft]) -> None:
        """Store ``drafts`` durably; AuditUnavailable when that fails or takes too long."""
        loop = asyncio.get_running_loop()
        if self._loop is None or self._stopped:
            raise AuditUnavailable("the audit log is not running", cause="writer not running")
        done: asyncio.Future[None] = loop.create_future()
        pending = _Pending(done, loop)
        if loop is self._loop:
            self._enqueue(drafts, pending)
        else:
            self._loop.call_soon_threadsafe(self._enqueue, drafts, pending)
        # a plain timer rather than wait_for, which costs a task switch per request; a future that
        # expired (or whose request was cancelled) is done, and the answer leaves it alone
        timer = loop.call_later(self._timeout, _expire, done, self._timeout)
        try:
            await done
        finally:
            timer.cancel()

    # --- on the writer's event loop -------------------------------------------------------------

    def _enqueue(self, drafts: Sequence[RecordDraft], pending: _Pending) -> None:
        self._handover.append((drafts, pending))
        if not self._sent:
            self._hand_over()  # the process is idle: at once
        elif len(self._handover) == 1:
            # it is busy: what this event-loop pass adds goes as one line (one write, one
            # wake-up), and arrives while the current batch commits, ready to be the next
            assert self._loop is not None
            self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        """Send the records gathered (one request's, or all that waited for the process) as
        one line."""
        process = self._process
        if process is None or self._starting is not None:
            if self._starting is None and not self._stopped:
                self._restart()
            return  # sent once the process is ready (or refused by stop)
        self._flush_handover(process)
        self._send()

    def _flush_handover(self, process: subprocess.Popen[bytes]) -> None:
        handover, self._handover = self._handover, []
        if not handover:
            return
        self._seq += 1
        records = [encode_draft(draft) for drafts, _ in handover for draft in drafts]
        line = json.dumps([self._seq, records], separators=(",", ":"))
        self._unsent += line.encode()
        self._unsent += b"\n"
        self._sent.append((self._seq, [pending for _, pending in handover]))

    def _send(self) -> None:
        process, loop = self._process, self._loop
        if process is None or process.stdin is None or loop is None or not self._unsent:
            return
        try:
            written = os.write(process.stdin.fileno(), self._unsent)
        except BlockingIOError:
            written = 0
        except OSError as exc:  # the process is gone: its answers' end reports it
            LOG.error("the audit writer does not take records: %s", exc)
            return
        del self._unsent[:written]
        if self._unsent:
            loop.add_writer(process.stdin.fileno(), self._send_rest)

    def _send_rest(self) -> None:
        process, loop = self._process, self._loop
        if process is not None and process.stdin is not None and loop is not None:
            loop.remove_writer(process.stdin.fileno())
        self._send()

    def _on_answers(self) -> None:
        process = self._process
        if process is None or process.stdout is None:
            return
        try:
            chunk = os.read(process.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._lost(process)
            return
        self._answers += chunk
        *lines, self._answers = self._answers.split(b"\n")
        for line in lines:
            seq, error = json.loads(line)
            self._settle(seq, error)
            self.batches += 1

    def _settle(self, upto: int, error: str | None) -> None:
        failure = None
        if error is not None:
            LOG.error("audit records could not be written: %s", error)
            failure = AuditUnavailable("the audit log cannot be written", cause=error)
        while self._sent and self._sent[0][0] <= upto:
            _, waiting = self._sent.popleft()
            _resolve(waiting, failure)

    def _lost(self, process: subprocess.Popen[bytes]) -> None:
        """The process ended: refuse everyone waiting; the next record starts a new one."""
        self._detach(process)
        self._process = None
        _close_pipes(process)
        assert self._loop is not None
        self._loop.run_in_executor(None, process.wait)  # reaped, not left a zombie
        LOG.error("the audit writer process ended")
        self._unsent.clear()
        self._fail_waiting("the audit writer process ended")

    def _fail_waiting(self, reason: str) -> None:
        failure = AuditUnavailable("the audit log cannot be written", cause=reason)
        while self._sent:
            _, waiting = self._sent.popleft()
            _resolve(waiting, failure)
        handover, self._handover = self._handover, []
        _resolve([pending for _, pending in handover], failure)

    def _detach(self, process: subprocess.Popen[bytes]) -> None:
        loop = self._loop
        if loop is None:
            return
        for pipe, remove in ((process.stdout, loop.remove_reader), (process.stdin, loop.remove_writer)):
            if pipe is not None:
                with contextlib.suppress(ValueError, OSError):
                    remove(pipe.fileno())

    def _restart(self) -> None:
        assert self._loop is not None
        wait = max(0.0, self._started_at + RESTART_INTERVAL - time.monotonic())
        self._starting = self._loop.create_task(self._spawn(delay=wait))
        self._starting.add_done_callback(self._restarted)

    def _restarted(self, task: asyncio.Task[None]) -> None:
        self._starting = None
        if task.cancelled():
            return
        if task.exception() is not None:
            LOG.error("the audit writer process could not be started: %s", task.exception())
            self._fail_waiting("the audit writer process could not be started")
            return
        self._hand_over()

    async def _spawn(self, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        self._started_at = time.monotonic()
        process = await asyncio.to_thread(_launch)
        assert process.stdin is not None and process.stdout is not None
        try:
            handshake = asyncio.to_thread(_handshake, process, self._config)
            answer = await asyncio.wait_for(handshake, START_TIMEOUT)
        except BaseException:
            process.kill()
            await asyncio.to_thread(process.wait)
            _close_pipes(process)
            raise
        if answer != [0, None]:
            await asyncio.to_thread(process.wait)
            _close_pipes(process)
            detail = answer[1] if isinstance(answer, list) and len(answer) == 2 else "no answer"
            raise AuditUnavailable("the audit log cannot be opened", cause=str(detail))
        os.set_blocking(process.stdin.fileno(), False)
        os.set_blocking(process.stdout.fileno(), False)
        assert self._loop is not None
        self._loop.add_reader(process.stdout.fileno(), self._on_answers)
        self._process = process


def _launch() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.audit.writer_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        # its own session: a terminal's Ctrl-C stops the server, which then stops the writer
        # after its last records, instead of interrupting both at once
        start_new_session=True,
    )


def _handshake(process: subprocess.Popen[bytes], config: WriterConfig) -> object:
    """Send the configuration and read the process's first answer (blocking)."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(config.encode())
    process.stdin.flush()
    line = process.stdout.readline()
    return json.loads(line) if line else None


def _finish(process: subprocess.Popen[bytes], unsent: bytes) -> bytes:
    """Send the rest, close the pipe (the process then ends), wait for it and return its last
    answers (blocking)."""
    assert process.stdin is not None
    with contextlib.suppress(OSError):
        os.set_blocking(process.stdin.fileno(), True)
        if unsent:
            process.stdin.write(unsent)
        process.stdin.close()
    answers = b""
    if process.stdout is not None:
        os.set_blocking(process.stdout.fileno(), True)
        answers = _read_until_end(process, time.monotonic() + STOP_TIMEOUT)
    _close_pipes(process)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        LOG.error("the audit writer did not finish within %g s; stopped", STOP_TIMEOUT)
        process.kill()
        process.wait()
    return answers


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _read_until_end(process: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert process.stdout is not None
    chunks = []
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(process.stdout.fileno(), 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _resolve(waiting: list[_Pending], failure: AuditUnavailable | None) -> None:
    """Settle the futures of a batch, each on its own event loop."""
    current = asyncio.get_running_loop()
    for pending in waiting:
        if pending.loop.is_closed():
            continue
        if pending.loop is current:
            _settle_one(pending.done, failure)
        else:
            pending.loop.call_soon_threadsafe(_settle_one, pending.done, failure)


def _settle_one(future: asyncio.Future[None], failure: AuditUnavailable | None) -> None:
    if future.done():  # its request timed out already
        return
    if failure is None:
        future.set_result(None)
    else:
        future.set_exception(failure)


def _expire(future: asyncio.Future[None], seconds: float) -> None:
    if not future.done():
        future.set_exception(
            AuditUnavailable(
                "the audit log did not confirm the record in time", cause=f"no commit within {seconds:g} s"
            )
        )
