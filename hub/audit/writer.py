"""The single writer: records of concurrent requests stored in group-committed batches.

Requests never touch the database themselves. Each hands its records to the writer thread and
awaits its batch's commit; while one batch commits, the records of the requests that arrive
meanwhile gather into the next one. One commit (and one fsync) thus serves many requests, the
event loop never blocks on the database, and a batch is atomic: a process killed mid-write
leaves whole batches or nothing, and the chain verifies either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from hub.audit.errors import AuditUnavailable
from hub.audit.store import Appended, AuditStore, RecordDraft

LOG = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 2000
"""Most records one transaction takes; more wait for the next batch."""


@dataclass(slots=True)
class _Pending:
    drafts: Sequence[RecordDraft]
    done: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


_STOP = object()


class AuditWriter:
    """Owns the audit store's writes; start it in the application's lifespan."""

    def __init__(
        self,
        store: AuditStore,
        *,
        timeout: float,
        on_commit: Callable[[Appended], None] | None = None,
    ) -> None:
        self.store = store
        self._timeout = timeout
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[list[_Pending] | object] = queue.SimpleQueue()
        self._handover: list[_Pending] = []
        """Records of this event-loop pass, handed to the thread together (one wake-up)."""
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self.batches = 0
        """Transactions committed so far (the group-commit ratio is records / batches)."""

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread (blocking: call it off the event loop)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def write(self, drafts: Sequence[RecordDraft]) -> None:
        """Store ``drafts`` durably; AuditUnavailable when that fails or takes too long."""
        if self._thread is None:
            raise AuditUnavailable("the audit log is not running", cause="writer not started")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._handover:
            loop.call_soon(self._hand_over)
        self._handover.append(_Pending(drafts, done, loop))
        # a plain timer rather than wait_for, which costs a task switch per request; a future that
        # expired (or whose request was cancelled) is done, and the writer leaves it alone
        timer = loop.call_later(self._timeout, _expire, done, self._timeout)
        try:
            await done
        finally:
            timer.cancel()

    def _hand_over(self) -> None:
        """Give the thread every record of this loop pass at once: waking it (and contending
        for the interpreter lock with it) per request would cost more than the write."""
        handover, self._handover = self._handover, []
        self._queue.put(handover)

    def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                stopping = self._next_batch()
        finally:
            self._disconnect()

    def _next_batch(self) -> bool:
        """Take what is queued (waiting for the first) and commit it; True when told to stop."""
        first = self._queue.get()
        if not isinstance(first, list):
            return True
        batch = list(first)
        size = sum(len(pending.drafts) for pending in batch)
        stopping = False
        while size < MAX_BATCH_RECORDS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, list):
                stopping = True  # after this batch: what was queued before the stop is written
                break
            batch.extend(item)
            size += sum(len(pending.drafts) for pending in item)
        self._commit(batch)
        return stopping

    def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def _commit(self, batch: list[_Pending]) -> None:
        error: AuditUnavailable | None = None
        appended: Appended | None = None
        try:
            if self._connection is None:
                self._connection = self.store.writer_connection()
            drafts = [draft for pending in batch for draft in pending.drafts]
            appended = self.store.append(drafts, connection=self._connection)
            self.batches += 1
        except Exception as exc:
            LOG.error("audit records could not be written: %s", exc)
            error = AuditUnavailable("the audit log cannot be written", cause=str(exc))
            self._disconnect()  # start the next batch on a fresh connection
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for pending in batch:
            by_loop.setdefault(pending.loop, []).append(pending.done)
        # one wake-up per event loop for the whole batch
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, futures, error)
        if appended is not None and self._on_commit is not None:
            try:
                self._on_commit(appended)
            except Exception:  # exporting is best effort and never fails a request
                LOG.exception("audit export failed")


def _settle(futures: list[asyncio.Future[None]], error: AuditUnavailable | None) -> None:
    for future in futures:
        if future.done():  # its request timed out already
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _expire(future: asyncio.Future[None], seconds: float) -> None:
    if not future.done():
        future.set_exception(
            AuditUnavailable(
                "the audit log did not confirm the record in time", cause=f"no commit within {seconds:g} s"
            )
        )
