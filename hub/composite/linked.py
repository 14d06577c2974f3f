"""Linked collections: the primary member's features joined with other members' on a key.

``gebouwen`` = BAG panden (primary) + 3D BAG + municipal monuments, joined on the BAG pand
identificatie, is the example the design follows. Per page:

1. the primary member is asked for the page, with every part of the request that concerns
   only its own properties (bbox, datetime, filter terms, property values, sorting);
2. the page's keys are normalised (``NL.IMBAG.Pand.`` prefixes, bare or numeric ids) and every
   other member is asked for exactly those keys, all members concurrently: with one CQL2
   ``IN`` query per 100 keys where the member can filter, else key by key (the feature by id,
   or ``key=value``), many at a time;
3. each primary feature gets the matching features' properties, every property named
   ``<member>:<property>``; a member without a match contributes nulls.

A filter or sort that names other members' properties cannot be left to the primary: the hub
then joins the primary's features chunk by chunk and keeps those that match (reading at most
``server.max_scan_features`` of the primary), after first narrowing the primary to the keys
that a member's own filter selects where that is exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, cast

from pygeofilter import ast

from connectors._text import as_text, equals_all
from connectors.base import (
    BBox,
    Capabilities,
    CollectionInfo,
    Feature,
    FeaturePage,
    FeatureQuery,
    FieldInfo,
    SortKey,
)
from connectors.errors import ConnectorConfigError, UnsupportedQuery
from hub.composite.base import CompositeConnector, Member, MemberFailure
from hub.composite.expressions import (
    composite_name,
    conjoin,
    conjuncts,
    members_named,
    null_rejecting,
    split_name,
    strip_member,
)
from hub.composite.keys import key_forms, normalise_key, preferred_first
from hub.composite.settings import ID_KEY, LinkedMember, LinkedSettings, Lookup, MemberSpec
from hub.errors import NotFound
from hub.features.cql import compile_predicate, transform_literals
from hub.features.crs import OFFERED_CRS
from hub.features.ordering import sort_features
from hub.features.params import ItemsRequest
from hub.features.service import SCAN_PAGE, ItemsResult
from hub.registry import CollectionBinding

KEYS_PER_FILTER = 100
"""Keys per ``IN`` query: long lists make long URLs for upstreams that take the filter in a GET."""
BOX_PROBE_FACTOR = 4
"""Features a box read before keys asked one by one may read, per key: the box round a page of
buildings holds about one and a half times as many (Delft, 3D BAG)."""
SEMI_JOIN_KEYS = 1000
"""Most keys a member's own filter may select for the primary to be narrowed to them."""
SCAN_CHUNK = 100
"""Primary features joined per step when the hub filters or sorts the joined features itself."""


@dataclass(slots=True)
class _Plan:
    """How one request is split between the primary and the hub."""

    primary: Member
    secondaries: list[Member]
    unusable: list[MemberFailure]
    primary_filter: list[ast.Node] = field(default_factory=list)
    primary_equals: dict[str, str] = field(default_factory=dict)
    primary_sort: tuple[SortKey, ...] = ()
    residual_filter: list[ast.Node] = field(default_factory=list)
    residual_equals: dict[str, str] = field(default_factory=dict)
    residual_sort: tuple[SortKey, ...] = ()

    @property
    def joined_only(self) -> bool:
        """Whether part of the request can only be answered over joined features."""
        return bool(self.residual_filter or self.residual_equals or self.residual_sort)


class _NoMatch:
    """A member's own filter selects no key: nothing can match."""


class LinkedConnector(CompositeConnector):
    """A virtual collection joining hub collections on a key (``connector: linked``)."""

    kind = "linked"
    settings_model = LinkedSettings
    settings: LinkedSettings

    def __init__(self, settings: Any, *, source_id: str, http: Any):
        super().__init__(settings, source_id=source_id, http=http)
        # per member: which key form (bare, prefixed, ...) matched last, tried first next time
        self._form_hits: dict[str, int] = {}

    @property
    def member_specs(self) -> list[MemberSpec]:
        """The members, the primary first."""
        return list(self.settings.members)

    def composite_field_name(self, spec: MemberSpec, name: str) -> str:
        """``<member>:<property>``."""
        return composite_name(spec.label, name)

    # -- describing --------------------------------------------------------------------------

    async def describe(self) -> list[CollectionInfo]:
        """The joined schema: every member's properties under ``<member>:<property>``."""
        self.described_with = self.member_state()
        members = await self.described_members()
        fields: list[FieldInfo] = []
        for member in members:
            key = _spec(member).key
            if key != ID_KEY and key not in member.binding.field_names:
                raise ConnectorConfigError(
                    f"member {member.name}: collection {member.binding.id!r} has no property {key!r} "
                    f"to join on; it has: {', '.join(sorted(member.binding.field_names)) or 'none'}",
                    source_id=self.source_id,
                )
            fields += [
                FieldInfo(
                    composite_name(member.name, f.name),
                    f.type,
                    title=f"{f.title or f.name} ({member.name}: {member.binding.title})",
                )
                for f in member.fields
            ]
        primary = members[0]
        info = primary.binding.info
        time_field = None
        if info.time_field and info.time_field not in primary.hidden:
            time_field = composite_name(primary.name, info.time_field)
        temporal = bool(time_field or info.capabilities.datetime)
        return [
            CollectionInfo(
                id=self.source_id,
                title=self.registration.title,
                description=self.registration.description or _summary(members),
                fields=fields,
                storage_crs=info.storage_crs,
                crs=list(OFFERED_CRS),
                extent_crs84=info.extent_crs84 or primary.binding.source.registration.extent,
                temporal_extent=info.temporal_extent,
                time_field=time_field,
                geometry_type=info.geometry_type,
                capabilities=Capabilities(filter=True, sort=True, datetime=temporal, crs=OFFERED_CRS),
            )
        ]

    def supports_filter(self, collection: str, expression: ast.Node) -> bool:
        """Every filter: what the primary cannot take is evaluated over the joined features."""
        return True

    # -- answering ---------------------------------------------------------------------------

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of joined features."""
        with self.answering():
            plan = self._plan(query)
            if not plan.joined_only:
                page = await self._primary_page(plan, query, query.limit, query.offset, plan.primary_filter)
                features = await self._join(plan, page.features, query.crs)
                return FeaturePage(features, query.crs, page.number_matched, page.has_more)
            return await self._joined_scan(plan, query)

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One primary feature by id, joined."""
        with self.answering():
            plan = self._plan(FeatureQuery(limit=1, crs=crs))
            found = await self.guarded(
                plan.primary.spec, self.service.item(plan.primary.binding, feature_id, crs)
            )
            if isinstance(found, MemberFailure):
                if found.status == 404:
                    return None
                raise found.error()
            return (await self._join(plan, [found], crs))[0]

    def _plan(self, query: FeatureQuery) -> _Plan:
        """Resolve the members and split the request between the primary and the hub."""
        resolved = self.resolve()
        primary = resolved[0]
        if isinstance(primary, MemberFailure):
            raise primary.error()
        plan = _Plan(
            primary,
            [m for m in resolved[1:] if isinstance(m, Member)],
            [m for m in resolved[1:] if isinstance(m, MemberFailure)],
        )

        def own(name: str) -> str | None:
            parts = split_name(name)
            return parts[1] if parts is not None and parts[0] == primary.name else None

        for term in conjuncts(query.filter):
            if members_named(term) <= {primary.name}:
                plan.primary_filter.append(strip_member(term))
            else:
                plan.residual_filter.append(term)
        for name, value in query.property_equals.items():
            prop = own(name)
            if prop is not None:
                plan.primary_equals[prop] = value
            else:
                plan.residual_equals[name] = value
        primary_sort = tuple(SortKey(own(k.property) or "", k.ascending) for k in query.sortby)
        if all(k.property for k in primary_sort):
            plan.primary_sort = primary_sort
        else:
            plan.residual_sort = query.sortby
        return plan

    async def _primary_page(
        self, plan: _Plan, query: FeatureQuery, limit: int, offset: int, terms: list[ast.Node]
    ) -> ItemsResult:
        """A page of the primary member; its failure is the answer's."""
        request = ItemsRequest(
            limit=limit,
            offset=offset,
            bbox=query.bbox,
            datetime=query.datetime,
            property_equals=plan.primary_equals,
            filter=conjoin(terms),
            filter_crs=query.filter_crs,
            sortby=plan.primary_sort if not plan.residual_sort else (),
            crs=query.crs,
        )
        page = await self.guarded(plan.primary.spec, self.service.items(plan.primary.binding, request))
        if isinstance(page, MemberFailure):
            raise page.error()
        return page

    async def _joined_scan(self, plan: _Plan, query: FeatureQuery) -> FeaturePage:
        """Join the primary chunk by chunk and keep what matches; sort when asked."""
        narrowed = await self._narrow(plan, query)
        if isinstance(narrowed, _NoMatch):
            return FeaturePage([], query.crs, 0, False)
        terms = plan.primary_filter + ([narrowed] if narrowed is not None else [])
        matches = self._residual_predicate(plan, query)
        wanted = query.offset + query.limit
        needs_all = bool(plan.residual_sort)
        chunk = SCAN_PAGE if needs_all else min(SCAN_PAGE, max(SCAN_CHUNK, wanted + 1))
        limit = self.service.max_scan_features
        kept: list[Feature] = []
        read = 0
        while True:
            page = await self._primary_page(plan, query, chunk, read, terms)
            joined = await self._join(plan, page.features, query.crs)
            kept += [feature for feature in joined if matches(feature)]
            read += len(page.features)
            exhausted = (
                not page.features
                or page.has_more is False
                or (page.has_more is None and len(page.features) < chunk)
                or (page.number_matched is not None and read >= page.number_matched)
            )
            if exhausted:
                break
            if not needs_all and len(kept) > wanted:
                return FeaturePage(kept[query.offset : wanted], query.crs, None, True)
            if read >= limit:
                raise UnsupportedQuery(
                    f"filtering or sorting on properties of other members than the primary "
                    f"({plan.primary.name}) joins its features in the hub, which reads at most {limit} "
                    "of them; narrow the query with bbox or a property of the primary",
                    source_id=self.source_id,
                )
        if needs_all:
            sort_features(kept, plan.residual_sort)
        total = len(kept)
        return FeaturePage(kept[query.offset : wanted], query.crs, total, wanted < total)

    def _residual_predicate(self, plan: _Plan, query: FeatureQuery) -> Callable[[Feature], bool]:
        """The test of the joined features for what the primary could not apply."""
        checks: list[Callable[[Feature], bool]] = []
        expression = conjoin(plan.residual_filter)
        if expression is not None:
            types = {
                composite_name(m.name, f.name): f.type
                for m in [plan.primary, *plan.secondaries]
                for f in m.fields
            }
            literals = transform_literals(expression, query.filter_crs, query.crs)
            checks.append(compile_predicate(literals, types))
        if plan.residual_equals:
            expected = dict(plan.residual_equals)
            checks.append(lambda feature: equals_all(feature, expected))
        return lambda feature: all(check(feature) for check in checks)

    async def _narrow(self, plan: _Plan, query: FeatureQuery) -> ast.Node | _NoMatch | None:
        """A condition on the primary's key selecting only features that can match the terms on one
        other member's properties (a semi-join), or ``None`` when no such term narrows exactly.

        Only terms that are false for nulls qualify: a primary feature without a match in that
        member can never satisfy them, so leaving it out changes nothing.
        """
        primary_key = _spec(plan.primary).key
        if primary_key == ID_KEY:
            return None  # the primary cannot be filtered on its feature ids
        by_name = {m.name: m for m in plan.secondaries}
        terms: dict[str, list[ast.Node]] = {}
        for term in plan.residual_filter:
            named = members_named(term)
            if len(named) == 1 and next(iter(named)) in by_name and null_rejecting(term):
                terms.setdefault(next(iter(named)), []).append(strip_member(term))
        equals: dict[str, dict[str, str]] = {}
        for name, value in plan.residual_equals.items():
            parts = split_name(name)
            if parts is not None and parts[0] in by_name:
                equals.setdefault(parts[0], {})[parts[1]] = value
        chosen = sorted(set(terms) | set(equals))
        if not chosen:
            return None
        found = await asyncio.gather(
            *(
                self.guarded(
                    by_name[name].spec,
                    self._keys_matching(
                        by_name[name], conjoin(terms.get(name, [])), equals.get(name, {}), query
                    ),
                )
                for name in chosen
            )
        )
        failures = [f for f in found if isinstance(f, MemberFailure)]
        self.tolerate(failures)
        if failures:
            return _NoMatch()  # the failed member's properties are null: its terms match nothing
        key_sets = [cast(set[str] | None, keys) for keys in found]
        known = [keys for keys in key_sets if keys is not None]
        if not known:
            return None
        keys = set.intersection(*known)
        if not keys:
            return _NoMatch()
        field_type = plan.primary.binding.field_types.get(primary_key)
        values = [
            form for key in sorted(keys) for form in key_forms(key, self.settings.key_format, field_type)
        ]
        return ast.In(ast.Attribute(primary_key), values, False)

    async def _keys_matching(
        self, member: Member, expression: ast.Node | None, equals: dict[str, str], query: FeatureQuery
    ) -> set[str] | None:
        """The keys of a member's features that satisfy its terms (``None``: too many to narrow by)."""
        key = _spec(member).key
        keys: set[str] = set()
        request = ItemsRequest(
            limit=SCAN_PAGE,
            property_equals=equals,
            filter=expression,
            filter_crs=query.filter_crs,
            skip_geometry=True,
            crs=member.binding.info.storage_crs,
        )
        async for features in self._read_through(member.binding, request):
            for feature in features:
                value = feature.get("id") if key == ID_KEY else (feature.get("properties") or {}).get(key)
                normalised = normalise_key(value, self.settings.key_format)
                if normalised is not None:
                    keys.add(normalised)
            if len(keys) > SEMI_JOIN_KEYS:
                return None
        return keys

    async def _read_through(
        self, binding: CollectionBinding, request: ItemsRequest
    ) -> AsyncGenerator[list[Feature]]:
        """Every page of a member's answer to ``request``, at most ``max_scan_features`` features."""
        offset = 0
        while True:
            page = await self.service.items(binding, replace(request, offset=offset))
            yield page.features
            offset += len(page.features)
            done = (
                not page.features
                or page.has_more is False
                or (page.has_more is None and len(page.features) < request.limit)
                or (page.number_matched is not None and offset >= page.number_matched)
            )
            if done:
                return
            if offset >= self.service.max_scan_features:
                raise UnsupportedQuery(
                    f"collection {binding.id!r} holds more than {offset} features matching the "
                    "keys or terms asked for",
                    source_id=binding.source.registration.id,
                )

    # -- joining -----------------------------------------------------------------------------

    async def _join(self, plan: _Plan, features: list[Feature], crs: str) -> list[Feature]:
        """The features (their geometry in ``crs``) with every member's properties; members
        looked up concurrently."""
        primary = plan.primary
        key_format = self.settings.key_format
        keys = [normalise_key(_key_value(_spec(primary).key, f), key_format) for f in features]
        wanted = {key for key in keys if key is not None}
        found = await asyncio.gather(
            *(
                self.guarded(member.spec, self._lookup(member, wanted, features, crs))
                for member in plan.secondaries
            )
        )
        self.tolerate(plan.unusable + [f for f in found if isinstance(f, MemberFailure)])
        # the names each member's properties get, worked out once for the page, not per feature
        primary_names = _Renaming(primary)
        secondaries = [
            (_Renaming(member), table if isinstance(table, dict) else {})
            for member, table in zip(plan.secondaries, found, strict=True)
        ]
        joined = []
        for feature, key in zip(features, keys, strict=True):
            properties = primary_names.renamed(feature.get("properties") or {})
            for names, table in secondaries:
                properties.update(names.nulls)
                match = table.get(key) if key is not None else None
                if match is not None:
                    properties.update(names.renamed(match))
            joined.append(
                {
                    "type": "Feature",
                    "id": feature.get("id"),
                    "geometry": feature.get("geometry"),
                    "properties": properties,
                }
            )
        return joined

    async def _lookup(
        self, member: Member, keys: set[str], features: list[Feature], crs: str
    ) -> dict[str, dict[str, Any]]:
        """The properties of the first feature per key in a member (in the member's own order)."""
        if not keys:
            return {}
        key = _spec(member).key
        box = _bounds(features, crs) if _spec(member).lookup is Lookup.BBOX else None
        if box is not None:
            return await self._in_box(member, keys, box)
        ordered = sorted(keys)
        if key == ID_KEY:
            return await self._one_by_one(member, ordered, self._by_id, features, crs)
        field_type = member.binding.field_types.get(key)
        chunks = [ordered[i : i + KEYS_PER_FILTER] for i in range(0, len(ordered), KEYS_PER_FILTER)]
        expressions = [self._in(key, chunk, field_type) for chunk in chunks]
        binding = member.binding
        can_filter = binding.info.capabilities.filter and all(
            binding.source.connector.supports_filter(binding.upstream_id, e)
            for e in expressions
            if e is not None
        )
        if not can_filter:
            return await self._one_by_one(member, ordered, self._by_value, features, crs)
        tables = await _all_or_first_error(
            self._by_filter(member, expression) for expression in expressions if expression is not None
        )
        table: dict[str, dict[str, Any]] = {}
        for part in tables:
            for found_key, properties in part.items():
                table.setdefault(found_key, properties)
        return table

    async def _one_by_one(
        self,
        member: Member,
        keys: list[str],
        fetch: Callable[[Member, Any], Awaitable[dict[str, Any] | None]],
        features: list[Feature],
        crs: str,
    ) -> dict[str, dict[str, Any]]:
        """Keys a member cannot filter by, asked for one by one; when they take more than one
        round of ``concurrency`` requests and the member selects by box itself, what lies in the
        page's box is read first (one query, the pages of a paging source at once), and only the
        keys not found there are asked for apart, so none is missed."""
        box = None
        if len(keys) > self.settings.concurrency and member.binding.info.capabilities.bbox:
            box = _bounds(features, crs)
        if box is None:
            return await self._key_by_key(member, keys, fetch)
        # a box round scattered features may hold a great many others: read a few times the
        # page's worth at most, and ask for the rest apart
        budget = max(1, int(BOX_PROBE_FACTOR * len(keys)))
        table = await self._in_box(member, set(keys), box, budget=budget)
        missing = [k for k in keys if k not in table]
        if missing:
            table.update(await self._key_by_key(member, missing, fetch))
        return table

    async def _in_box(
        self, member: Member, keys: set[str], box: BBox, budget: int | None = None
    ) -> dict[str, dict[str, Any]]:
        """The member's features in the page's bounding box, kept where their key is wanted
        (with a ``budget``: what the first pages holding at most that many features hold)."""
        request = ItemsRequest(
            limit=SCAN_PAGE if budget is None else min(SCAN_PAGE, budget),
            bbox=box,
            skip_geometry=True,
            crs=member.binding.info.storage_crs,
            # the box holds at least the page's features: a source that pages may ask for them
            # all at once instead of learning from a first page how many there are
            expected=len(keys),
        )
        return await self._table(member, request, keys, budget)

    async def _table(
        self, member: Member, request: ItemsRequest, keys: set[str] | None = None, budget: int | None = None
    ) -> dict[str, dict[str, Any]]:
        """The properties of the first feature per key in a member's answer to ``request``,
        read through (only ``keys``, if given; at most about ``budget`` features, if given)."""
        key = _spec(member).key
        table: dict[str, dict[str, Any]] = {}
        read = 0
        async with aclosing(self._read_through(member.binding, request)) as pages:
            async for features in pages:
                for feature in features:
                    found = normalise_key(_key_value(key, feature), self.settings.key_format)
                    if found is not None and (keys is None or found in keys):
                        table.setdefault(found, dict(feature.get("properties") or {}))
                read += len(features)
                if (keys is not None and len(table) == len(keys)) or (budget is not None and read >= budget):
                    break
        return table

    def _in(self, key: str, chunk: list[str], field_type: str | None) -> ast.Node | None:
        values = [form for k in chunk for form in key_forms(k, self.settings.key_format, field_type)]
        return ast.In(ast.Attribute(key), values, False) if values else None

    async def _by_filter(self, member: Member, expression: ast.Node) -> dict[str, dict[str, Any]]:
        """One ``key IN (...)`` query (read through when more features match than a page holds)."""
        request = ItemsRequest(
            limit=SCAN_PAGE, filter=expression, skip_geometry=True, crs=member.binding.info.storage_crs
        )
        return await self._table(member, request)

    async def _key_by_key(
        self,
        member: Member,
        keys: list[str],
        fetch: Callable[[Member, Any], Awaitable[dict[str, Any] | None]],
    ) -> dict[str, dict[str, Any]]:
        """Ask for each key apart, ``concurrency`` at a time, trying the key's forms in turn."""
        limiter = asyncio.Semaphore(self.settings.concurrency)
        key = _spec(member).key
        field_type = None if key == ID_KEY else member.binding.field_types.get(key)

        failed = asyncio.Event()

        async def one(wanted: str) -> tuple[str, dict[str, Any] | None]:
            forms = key_forms(wanted, self.settings.key_format, field_type)
            preferred = self._form_hits.get(member.name)
            async with limiter:
                if failed.is_set():
                    return wanted, None  # the member failed already: its answer is lost anyway
                try:
                    for form in preferred_first(forms, preferred):
                        properties = await fetch(member, form)
                        if properties is not None:
                            self._form_hits[member.name] = forms.index(form)
                            return wanted, properties
                except Exception:
                    failed.set()
                    raise
            return wanted, None

        found = await _all_or_first_error(one(k) for k in keys)
        return {k: properties for k, properties in found if properties is not None}

    async def _by_id(self, member: Member, form: Any) -> dict[str, Any] | None:
        binding = member.binding
        try:
            feature = await self.service.item(binding, str(form), binding.info.storage_crs)
        except NotFound:
            return None
        return dict(feature.get("properties") or {})

    async def _by_value(self, member: Member, form: Any) -> dict[str, Any] | None:
        binding = member.binding
        key = _spec(member).key
        request = ItemsRequest(
            limit=1,
            property_equals={key: as_text(form) or ""},
            skip_geometry=True,
            crs=binding.info.storage_crs,
        )
        page = await self.service.items(binding, request)
        return dict(page.features[0].get("properties") or {}) if page.features else None


class _Renaming:
    """A member's properties under their names in the linked collection, protected ones left out."""

    __slots__ = ("_hidden", "_member", "_names", "nulls")

    def __init__(self, member: Member):
        self._member = member.name
        self._hidden = member.hidden
        self._names = {f.name: composite_name(self._member, f.name) for f in member.fields}
        self.nulls: dict[str, None] = dict.fromkeys(self._names.values())
        """Every property of the member's schema, null: a feature without a match has these."""

    def renamed(self, properties: dict[str, Any]) -> dict[str, Any]:
        """``properties`` under their composite names (names the schema lacks included)."""
        names = self._names
        return {
            names.get(name) or composite_name(self._member, name): value
            for name, value in properties.items()
            if name not in self._hidden
        }


def _bounds(features: list[Feature], crs: str) -> BBox | None:
    """The bounding box of the features' geometries, in ``crs``'s own axis order (as they are)."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(coordinates: Any) -> None:
        if coordinates and isinstance(coordinates[0], int | float):
            xs.append(float(coordinates[0]))
            ys.append(float(coordinates[1]))
        else:
            for part in coordinates or ():
                walk(part)

    for feature in features:
        geometry = feature.get("geometry") or {}
        for part in geometry.get("geometries") or [geometry]:
            walk(part.get("coordinates"))
    if not xs:
        return None
    return BBox(min(xs), min(ys), max(xs), max(ys), crs=crs)


def _spec(member: Member) -> LinkedMember:
    return cast(LinkedMember, member.spec)


def _key_value(key: str, feature: Feature) -> Any:
    return feature.get("id") if key == ID_KEY else (feature.get("properties") or {}).get(key)


def _summary(members: list[Member]) -> str:
    primary, *others = members
    joined = ", ".join(f"{m.name} ({m.binding.title}, on {_spec(m).key})" for m in others)
    return f"{primary.name} ({primary.binding.title}, on {_spec(primary).key}) joined with {joined}"


async def _all_or_first_error[T](work: Iterable[Awaitable[T]]) -> list[T]:
    """Run every awaitable concurrently; when one fails, raise its error once all have ended.

    In-flight requests are not cancelled: each ends within its source's timeout anyway, and
    cancelling an HTTP request from outside while its own timeout fires can leave its
    connection open. Work that has not started yet skips itself (see ``_key_by_key``).
    """
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)
