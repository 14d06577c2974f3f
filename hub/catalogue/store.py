"""The catalogue store: source registrations persisted in SQLite or PostgreSQL/PostGIS.

The store is synchronous on purpose; the web layer calls it through a threadpool, and every
method opens and closes its own session, so one store is shared by all threads.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hub.catalogue.database import WRITE, create_engine, upgrade_engine
from hub.catalogue.models import EXTENT_SRID, Source, extent_geometry
from hub.catalogue.registration import SourceRegistration
from hub.errors import BadRequest, ConfigurationError, Conflict, NotFound

BBox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class StoredSource:
    """A registration as the catalogue holds it, with its bookkeeping."""

    registration: SourceRegistration
    seeded: bool
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> str:
        """The source's id."""
        return self.registration.id


@dataclass(frozen=True, slots=True)
class SeedResult:
    """What seeding from the configuration file did, by source id."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    # Declared in the file, but a steward has registered or edited the source since: the
    # steward's version stands.
    skipped: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the catalogue changed."""
        return bool(self.added or self.updated or self.removed)


class CatalogueStore:
    """Persistent catalogue of source registrations, safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgis = engine.dialect.name == "postgresql"
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(**{WRITE: True}), expire_on_commit=False)

    @classmethod
    def open(cls, database_url: str | URL) -> CatalogueStore:
        """Open the catalogue at ``database_url``, creating or upgrading its schema first."""
        engine = create_engine(database_url)
        try:
            upgrade_engine(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The engine the store uses."""
        return self._engine

    def close(self) -> None:
        """Close the store's database connections."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def list(self) -> builtins.list[StoredSource]:
        """All registered sources, ordered by id."""
        with self._read() as session:
            rows = session.scalars(sa.select(Source).order_by(Source.id))
            return [_stored(row) for row in rows]

    def get(self, source_id: str) -> StoredSource | None:
        """The source with this id, or None."""
        with self._read() as session:
            row = session.get(Source, source_id)
            return None if row is None else _stored(row)

    def add(self, registration: SourceRegistration, *, seeded: bool = False) -> StoredSource:
        """Register a new source; Conflict when its id is taken."""
        now = _now()
        try:
            with self._write.begin() as session:
                if session.get(Source, registration.id) is not None:
                    raise _conflict(registration.id)
                row = Source(id=registration.id, seeded=seeded, created_at=now, updated_at=now)
                _fill(row, registration)
                session.add(row)
        except IntegrityError as exc:
            # Under PostgreSQL's read committed, another writer can insert the same id between
            # the check above and this insert; the primary key catches it.
            if self.get(registration.id) is not None:
                raise _conflict(registration.id) from exc
            raise
        return _stored(row)

    def replace(self, registration: SourceRegistration) -> StoredSource:
        """Replace a source's registration; NotFound when there is none with its id.

        The source becomes the steward's: seeding from the configuration file no longer
        overwrites it, so an edit made through the API survives a restart.
        """
        with self._write.begin() as session:
            row = _locked(session, registration.id)
            _fill(row, registration)
            row.seeded = False
            row.updated_at = _now()
        return _stored(row)

    def delete(self, source_id: str) -> None:
        """Remove a source; NotFound when there is none with this id."""
        with self._write.begin() as session:
            session.delete(_locked(session, source_id))

    def intersecting(self, bbox_crs84: Sequence[float]) -> builtins.list[str]:
        """Ids of the sources whose extent meets the box, or whose extent is unknown.

        The box is minlon, minlat, maxlon, maxlat (a 6-number 3D box is cut to 2D); a box with
        minlon > maxlon crosses the antimeridian. Edges that only touch count as meeting.
        """
        boxes = _split_antimeridian(_horizontal(bbox_crs84))
        if self._postgis:
            meets = sa.or_(
                *(
                    sa.func.ST_Intersects(extent_geometry, sa.func.ST_MakeEnvelope(*box, EXTENT_SRID))
                    for box in boxes
                )
            )
        else:
            meets = sa.or_(
                *(
                    sa.and_(
                        Source.minx <= maxx,
                        Source.maxx >= minx,
                        Source.miny <= maxy,
                        Source.maxy >= miny,
                    )
                    for minx, miny, maxx, maxy in boxes
                )
            )
        query = sa.select(Source.id).where(sa.or_(Source.minx.is_(None), meets))
        with self._read() as session:
            return builtins.list(session.scalars(query.order_by(Source.id)))

    def seed(self, registrations: Iterable[SourceRegistration]) -> SeedResult:
        """Bring the configuration file's sources into the catalogue; report what changed.

        New sources are added as seeded; seeded sources whose declaration changed are replaced,
        and seeded sources the file no longer declares are removed. Sources a steward
        registered or edited are left alone.
        """
        wanted: dict[str, SourceRegistration] = {}
        for registration in registrations:
            if registration.id in wanted:
                raise ConfigurationError(
                    f"source {registration.id!r} is declared more than once in the configuration"
                )
            wanted[registration.id] = registration
        added: builtins.list[str] = []
        updated: builtins.list[str] = []
        removed: builtins.list[str] = []
        unchanged: builtins.list[str] = []
        skipped: builtins.list[str] = []
        now = _now()
        with self._write.begin() as session:
            if self._postgis:
                # Several hub processes may start together; the first seeds, the others wait
                # and then find nothing to do (SQLite's IMMEDIATE transaction does the same).
                session.execute(sa.text("LOCK TABLE sources IN SHARE ROW EXCLUSIVE MODE"))
            rows = {row.id: row for row in session.scalars(sa.select(Source))}
            for source_id, registration in wanted.items():
                row = rows.get(source_id)
                if row is None:
                    row = Source(id=source_id, seeded=True, created_at=now, updated_at=now)
                    _fill(row, registration)
                    session.add(row)
                    added.append(source_id)
                elif not row.seeded:
                    skipped.append(source_id)
                elif row.registration == registration.public_dict():
                    unchanged.append(source_id)
                else:
                    _fill(row, registration)
                    row.updated_at = now
                    updated.append(source_id)
            for source_id, row in rows.items():
                if row.seeded and source_id not in wanted:
                    session.delete(row)
                    removed.append(source_id)
        return SeedResult(
            added=tuple(sorted(added)),
            updated=tuple(sorted(updated)),
            removed=tuple(sorted(removed)),
            unchanged=tuple(sorted(unchanged)),
            skipped=tuple(sorted(skipped)),
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _conflict(source_id: str) -> Conflict:
    return Conflict(f"a source with id {source_id!r} is already registered")


def _locked(session: Session, source_id: str) -> Source:
    row = session.scalars(sa.select(Source).where(Source.id == source_id).with_for_update()).one_or_none()
    if row is None:
        raise NotFound(f"no source with id {source_id!r}")
    return row


def _fill(row: Source, registration: SourceRegistration) -> None:
    """Copy a registration into a row: the document, and the columns derived from it."""
    row.title = registration.title
    row.connector = registration.connector
    row.classification = registration.classification.value
    row.owner = registration.owner
    row.licence = registration.licence
    row.registration = registration.public_dict()
    row.minx, row.miny, row.maxx, row.maxy = registration.extent or (None, None, None, None)


def _stored(row: Source) -> StoredSource:
    return StoredSource(
        registration=SourceRegistration.model_validate(row.registration),
        seeded=row.seeded,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _horizontal(bbox: Sequence[float]) -> BBox:
    values = [float(value) for value in bbox]
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(math.isfinite(value) for value in values):
        raise BadRequest("bbox must be 4 (or 6) finite numbers")
    minx, miny, maxx, maxy = values
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadRequest("bbox must be minlon,minlat,maxlon,maxlat in CRS84")
    return minx, miny, maxx, maxy


def _split_antimeridian(bbox: BBox) -> builtins.list[BBox]:
    minx, miny, maxx, maxy = bbox
    if minx <= maxx:
        return [bbox]
    return [(minx, miny, 180.0, maxy), (-180.0, miny, maxx, maxy)]
