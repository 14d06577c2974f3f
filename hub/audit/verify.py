"""Verifying the audit trail: every record, caller identity and declaration, against the chain.

Walks the records in id order inside one snapshot (a running hub may keep appending). A gap in
the ids must be exactly covered by runs a declaration of destruction destroyed, whose kept last
chain hash continues the chain; anything else is named:

- a record whose content no longer gives its content hash was **changed**;
- a missing id that no declaration destroyed was **deleted** (the head row shows a cut tail);
- a record with an id beyond the head, or with an id a declaration destroyed, was **inserted**;
- a record whose chain link is broken follows a rewritten record or was inserted in its place.

After a problem the walk continues from the stored hashes, so that each problem is named once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.audit import chain as hashes
from hub.audit import models
from hub.audit.store import AuditStore


@dataclass(slots=True)
class Verification:
    """What ``hub audit verify`` found."""

    records: int = 0
    first_id: int | None = None
    last_id: int | None = None
    head_id: int = 0
    head_hash: str = hashes.GENESIS
    destroyed: int = 0
    declarations: int = 0
    callers: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Whether nothing was found wrong."""
        return not self.problems

    def summary(self) -> str:
        """One line for people."""
        if self.records:
            span = f"{self.records} records (ids {self.first_id}..{self.last_id})"
        else:
            span = "no records"
        return (
            f"{span}, {self.destroyed} destroyed under {self.declarations} declarations of "
            f"destruction, {self.callers} caller identities; chain head {self.head_id} {self.head_hash}"
        )


@dataclass(frozen=True, slots=True)
class _Run:
    first: int
    last: int
    chain_hash: str
    declaration: int


def _ids(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first}..{last}"


def verify(store: AuditStore) -> Verification:
    """Check the whole audit trail; the result names every problem found."""
    engine = store.engine
    if store.postgresql:
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with engine.connect() as connection, connection.begin():
        return _verify(connection)


def _verify(connection: Connection) -> Verification:
    result = Verification()
    head = models.row_dict(connection.execute(sa.select(models.chain)).one())
    result.head_id, result.head_hash = head["last_record_id"], head["last_chain_hash"]
    identities = _check_callers(connection, result)
    runs = _check_declarations(connection, head, result)

    expected = 1
    previous: str | None = hashes.GENESIS
    index = 0

    def skip_to(target: int) -> None:
        """Account for the ids before ``target``: destroyed runs continue the chain, others are gaps."""
        nonlocal expected, previous, index
        while expected < target:
            run = runs[index] if index < len(runs) else None
            if run is not None and run.first == expected:
                if run.last >= target:
                    return  # the record at target lies inside a destroyed run: the caller names it
                previous, expected, index = run.chain_hash, run.last + 1, index + 1
                continue
            if run is not None and run.first < expected:
                index += 1  # overlaps a run already passed (named with the declarations)
                continue
            stop = min(target, run.first) if run is not None else target
            result.problems.append(f"{_ids(expected, stop - 1)} deleted")
            expected, previous = stop, None

    for record in _records(connection):
        record_id = record["id"]
        result.records += 1
        result.first_id = record_id if result.first_id is None else result.first_id
        result.last_id = record_id
        if record_id > head["last_record_id"] or record_id < 1:
            result.problems.append(
                f"record {record_id} inserted: it lies outside the chain (head {head['last_record_id']})"
            )
            continue
        skip_to(record_id)
        if index < len(runs) and runs[index].first <= record_id <= runs[index].last:
            result.problems.append(
                f"record {record_id} inserted: declaration {runs[index].declaration} destroyed its id"
            )
            continue
        caller_id = record["caller_id"]
        identity = None
        if caller_id is not None:
            identity = identities.get(caller_id)
            if identity is None:
                result.problems.append(f"record {record_id}: its caller identity {caller_id} was deleted")
        if identity is None and caller_id is not None:
            pass  # already named; the content check below would only repeat it
        elif hashes.record_hash(record, identity) != record["content_hash"]:
            result.problems.append(f"record {record_id} changed: its content does not give its hash")
        elif previous is not None and hashes.link(previous, record["content_hash"]) != record["chain_hash"]:
            result.problems.append(
                f"record {record_id} does not follow record {record_id - 1} in the chain: "
                f"record {record_id} was inserted or changed, or record {record_id - 1} rewritten"
            )
        previous = record["chain_hash"]
        expected = record_id + 1

    skip_to(head["last_record_id"] + 1)
    at_head = expected == head["last_record_id"] + 1
    if previous is not None and at_head and previous != head["last_chain_hash"]:
        result.problems.append(f"the chain head does not match record {head['last_record_id']}")
    for run in runs[index:]:
        if run.first > head["last_record_id"]:
            result.problems.append(
                f"declaration {run.declaration} names {_ids(run.first, run.last)} beyond the chain head"
            )
    return result


def _records(connection: Connection) -> Iterator[dict[str, Any]]:
    query = sa.select(models.records).order_by(models.records.c.id)
    for row in connection.execution_options(yield_per=2000).execute(query):
        yield models.row_dict(row)


def _check_callers(connection: Connection, result: Verification) -> dict[int, str]:
    """Caller ids to their identity hashes as recomputed (a rewritten identity is named)."""
    identities: dict[int, str] = {}
    for row in connection.execute(sa.select(models.callers)):
        caller = models.row_dict(row)
        recomputed = hashes.caller_hash(
            caller["subject"], caller["issuer"], caller["client"], caller["roles"]
        )
        if recomputed != caller["identity_hash"]:
            result.problems.append(f"caller identity {caller['id']} changed")
        identities[caller["id"]] = recomputed
        result.callers += 1
    return identities


def _check_declarations(connection: Connection, head: dict[str, Any], result: Verification) -> list[_Run]:
    """Check the declarations' own chain; return every destroyed run, in id order."""
    by_declaration: dict[int, list[tuple[int, int, str]]] = {}
    for row in connection.execute(sa.select(models.destroyed_ranges)):
        run = (row.first_id, row.last_id, row.last_chain_hash)
        by_declaration.setdefault(row.declaration_id, []).append(run)
    previous: str | None = hashes.GENESIS
    expected = 1
    seen: set[int] = set()
    query = sa.select(models.declarations).order_by(models.declarations.c.id)
    for row in connection.execute(query):
        declaration = models.row_dict(row)
        number = declaration["id"]
        seen.add(number)
        result.declarations += 1
        if number != expected:
            result.problems.append(f"declaration(s) {expected}..{number - 1} of destruction deleted")
            previous = None
        runs = by_declaration.get(number, [])
        if previous is not None and declaration["previous_hash"] != previous:
            result.problems.append(f"declaration {number} does not follow declaration {number - 1}")
        recomputed = hashes.declaration_hash(declaration["previous_hash"], declaration, runs)
        if recomputed != declaration["declaration_hash"]:
            result.problems.append(f"declaration {number} changed (or the record ids it destroyed)")
        result.destroyed += declaration["record_count"]
        previous = declaration["declaration_hash"]
        expected = number + 1
    if head["last_declaration_id"] != expected - 1:
        result.problems.append(
            f"the chain head names declaration {head['last_declaration_id']}, the last kept is {expected - 1}"
        )
    elif previous is not None and previous != head["last_declaration_hash"]:
        result.problems.append(f"the chain head does not match declaration {expected - 1}")
    every_run = (
        _Run(first, last, chain_hash, number)
        for number, found in by_declaration.items()
        for first, last, chain_hash in found
    )
    ordered = sorted(every_run, key=lambda run: run.first)
    for number in sorted(set(by_declaration) - seen):
        result.problems.append(f"destroyed record ids of declaration {number}, which is missing")
    for before, after in itertools.pairwise(ordered):
        if after.first <= before.last:
            result.problems.append(
                f"declarations {before.declaration} and {after.declaration} claim the same record ids"
            )
    return ordered
