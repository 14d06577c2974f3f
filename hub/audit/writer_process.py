"""The audit writer process: ``python -m hub.audit.writer_process``, started by the web server.

It owns the audit log's appends. The server writes one JSON line per event-loop pass to its
standard input, ``[seq, [record, ...]]``; the process gathers every line that has arrived,
appends them as one batch (one transaction, one fsync), and answers ``[seq, error]`` on its
standard output with the last ``seq`` of the batch and ``null`` or what went wrong. The first
line it reads is its configuration (:class:`WriterConfig`); it answers it with ``[0, null]``
once the database is open.

Why a process and not a thread: the records' hashes, SQL parameters and commits are Python work
that would hold the server's interpreter lock while requests wait for it; here they run on
another core. The process ends when its standard input closes, after writing what it was sent,
so a server that is stopped, or killed, leaves whole batches and a chain that verifies.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import select
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from hub.audit.store import AuditStore, CallerIdentity, RecordDraft
from hub.catalogue.database import create_engine

LOG = logging.getLogger("hub.audit.writer")

MAX_BATCH_RECORDS = 2000
"""Most records one transaction takes; more wait for the next batch."""
READ_SIZE = 1 << 20

_FIELDS = tuple(f.name for f in fields(RecordDraft) if f.name != "caller")
_TIMES = ("start_time", "end_time")
_TIME_POSITIONS = tuple(_FIELDS.index(name) for name in _TIMES)
_VALUES = operator.attrgetter(*_FIELDS)


@dataclass(frozen=True)
class WriterConfig:
    """What the process needs to know, sent as its first line (never on the command line,
    where a database password would show in the process list)."""

    database_url: str
    fsync: bool
    otlp_endpoint: str | None = None
    otlp_headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The configuration line."""
        return json.dumps(asdict(self)).encode() + b"\n"


def encode_draft(draft: RecordDraft) -> list[Any]:
    """A record as the server sends it: its fields in order, then the caller."""
    # on every request's path: the fields read in one C call, the two times converted by position
    values: list[Any] = list(_VALUES(draft))
    for position in _TIME_POSITIONS:
        values[position] = values[position].isoformat()
    caller = draft.caller
    if caller is None:
        values.append(None)
    else:
        values.append([caller.subject, caller.issuer, caller.client, list(caller.roles)])
    return values


def decode_draft(values: list[Any]) -> RecordDraft:
    """The record :func:`encode_draft` sent."""
    *plain, caller = values
    named = dict(zip(_FIELDS, plain, strict=True))
    for name in _TIMES:
        named[name] = datetime.fromisoformat(named[name])
    identity = None if caller is None else CallerIdentity(caller[0], caller[1], caller[2], tuple(caller[3]))
    return RecordDraft(**named, caller=identity)


class _Input:
    """Complete lines from standard input: blocking for the first, then only what has arrived."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = b""
        self.closed = False

    def _read(self) -> None:
        chunk = os.read(self._fd, READ_SIZE)
        if not chunk:
            self.closed = True
        self._pending += chunk

    def _ready(self) -> bool:
        readable, _, _ = select.select([self._fd], [], [], 0)
        return bool(readable)

    def lines(self, budget: int) -> Iterator[bytes]:
        """At least one line unless the input closed; at most about ``budget`` records' worth."""
        while b"\n" not in self._pending and not self.closed:
            self._read()
        taken = 0
        while True:
            while b"\n" in self._pending and taken < budget:
                line, self._pending = self._pending.split(b"\n", 1)
                taken += line.count(b"],[") + 1  # about one per record: a budget, not a count
                yield line
            if taken >= budget or self.closed or not self._ready():
                return
            self._read()


def _answer(seq: int, error: str | None) -> None:
    os.write(1, json.dumps([seq, error]).encode() + b"\n")


def serve(config: WriterConfig, source: _Input) -> None:
    """Append batches until the input closes."""
    store = AuditStore(create_engine(config.database_url), fsync=config.fsync)
    exporter = None
    if config.otlp_endpoint:
        from hub.audit.otlp import OtlpExporter  # (and httpx) only when exporting

        exporter = OtlpExporter(
            config.otlp_endpoint, headers=config.otlp_headers, service_name="urban-twin-hub"
        )
        exporter.start()
    # connected before the answer: a database that cannot be reached fails the server's start
    connection: Connection | None = store.writer_connection()
    _answer(0, None)
    try:
        while not source.closed:
            last_seq = 0
            drafts: list[RecordDraft] = []
            for line in source.lines(MAX_BATCH_RECORDS):
                seq, records = json.loads(line)
                last_seq = seq
                drafts.extend(decode_draft(values) for values in records)
            if not last_seq:
                continue
            try:
                if connection is None:
                    connection = store.writer_connection()
                appended = store.append(drafts, connection=connection)
            except Exception as exc:
                LOG.error("audit records could not be written: %s", exc)
                _answer(last_seq, str(exc) or type(exc).__name__)
                if connection is not None:
                    connection.close()
                connection = None  # start the next batch on a fresh connection
                continue
            _answer(last_seq, None)
            if exporter is not None:
                exporter.offer(appended)
    finally:
        if connection is not None:
            connection.close()
        store.close()
        if exporter is not None:
            exporter.stop()


def main() -> int:
    """Read the configuration, open the database, then append what the server sends."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    source = _Input(0)
    lines = source.lines(1)
    try:
        config = WriterConfig(**json.loads(next(lines)))
    except (StopIteration, ValueError, TypeError) as exc:
        LOG.error("no valid configuration on standard input: %s", exc)
        return 2
    try:
        serve(config, source)
    except Exception as exc:
        LOG.exception("the audit writer stopped")
        _answer(-1, str(exc) or type(exc).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
