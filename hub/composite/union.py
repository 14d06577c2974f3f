"""Union collections: the same kind of feature from several sources (several municipalities'
registers, say) as one collection.

Each feature keeps its own properties, gains one naming its member (``member_property``, by
default ``member``) and has the id ``<member>:<id>``. Members are asked concurrently, with the
whole request (each member's feature service pushes down what it can), and their answers are
put one after the other in the order the members are declared. Paging is therefore stable: it
needs each member's count, which the first round of requests brings along (a member that does
not count is counted by reading it through). Sorted pages are merged: each member is asked for
its first ``offset + limit`` features in that order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from pygeofilter import ast

from connectors._cql import attributes
from connectors.base import (
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
from hub.composite.settings import MemberSpec, UnionSettings
from hub.features.crs import OFFERED_CRS
from hub.features.ordering import sort_features
from hub.features.params import ItemsRequest
from hub.features.service import SCAN_PAGE, ItemsResult

ID_SEPARATOR = ":"


@dataclass(slots=True)
class _Part:
    """One member's contribution to a page."""

    member: Member
    request: ItemsRequest
    count: int | None = None
    first: ItemsResult | None = None
    first_offset: int = 0


class UnionConnector(CompositeConnector):
    """A virtual collection of the features of several hub collections (``connector: union``)."""

    kind = "union"
    settings_model = UnionSettings
    settings: UnionSettings

    @property
    def member_specs(self) -> list[MemberSpec]:
        """The members, in the order their features are served."""
        return list(self.settings.members)

    # -- describing --------------------------------------------------------------------------

    async def describe(self) -> list[CollectionInfo]:
        """The members' properties merged by name, and the property naming the member."""
        self.described_with = self.member_state()
        members = await self.described_members()
        marker = self.settings.member_property
        fields: dict[str, FieldInfo] = {}
        for member in members:
            for f in member.fields:
                if f.name == marker:
                    raise ConnectorConfigError(
                        f"member {member.name} has a property {marker!r} already; choose another "
                        "member_property",
                        source_id=self.source_id,
                    )
                fields.setdefault(f.name, FieldInfo(f.name, f.type, f.title))
        fields[marker] = FieldInfo(marker, "string", "The member the feature comes from")
        infos = [m.binding.info for m in members]
        time_fields = {info.time_field for info in infos}
        time_field = time_fields.pop() if len(time_fields) == 1 else None
        if time_field is not None and any(time_field in m.hidden for m in members):
            time_field = None
        temporal = all(info.time_field or info.capabilities.datetime for info in infos)
        return [
            CollectionInfo(
                id=self.source_id,
                title=self.registration.title,
                description=self.registration.description
                or "Union of " + ", ".join(f"{m.name} ({m.binding.title})" for m in members),
                fields=list(fields.values()),
                storage_crs=infos[0].storage_crs,
                crs=list(OFFERED_CRS),
                extent_crs84=_envelope(
                    [m.binding.info.extent_crs84 or m.binding.source.registration.extent for m in members]
                ),
                temporal_extent=_period([info.temporal_extent for info in infos]),
                time_field=time_field,
                geometry_type=_same([info.geometry_type for info in infos]),
                capabilities=Capabilities(filter=True, sort=True, datetime=temporal, crs=OFFERED_CRS),
            )
        ]

    def supports_filter(self, collection: str, expression: ast.Node) -> bool:
        """Filters on the members' properties go to every member; one naming the member property
        is left to the hub (it reads the union through)."""
        return self.settings.member_property not in set(attributes(expression))

    # -- answering ---------------------------------------------------------------------------

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of the members' features, one member after the other (or merged when sorted)."""
        with self.answering():
            parts = self._parts(query)
            if query.sortby:
                features, matched, more = await self._merged(parts, query)
            else:
                features, matched, more = await self._concatenated(parts, query)
            return FeaturePage(features, query.crs, matched, more)

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One feature by its ``<member>:<id>``."""
        name, separator, inner = feature_id.partition(ID_SEPARATOR)
        if not separator:
            return None
        with self.answering():
            for found in self.resolve():
                if isinstance(found, MemberFailure):
                    if found.member.label == name:
                        raise found.error()
                    continue
                if found.name != name:
                    continue
                feature = await self.guarded(found.spec, self.service.item(found.binding, inner, crs))
                if isinstance(feature, MemberFailure):
                    if feature.status == 404:
                        return None
                    raise feature.error()
                return self._tagged(found, feature)
        return None

    def _parts(self, query: FeatureQuery) -> list[_Part]:
        """The members asked, each with the request in its own terms."""
        marker = self.settings.member_property
        equals = dict(query.property_equals)
        only = equals.pop(marker, None)
        parts = []
        failures = []
        for found in self.resolve():
            name = found.member.label if isinstance(found, MemberFailure) else found.name
            if only is not None and name != only:
                continue
            if isinstance(found, MemberFailure):
                failures.append(found)
                continue
            known = found.binding.field_names - found.hidden
            if not set(equals) <= known:
                continue  # a property the member lacks is null there: it can equal nothing
            # a sort key the member lacks is null throughout it, so leaving it out keeps its order
            sortby = tuple(k for k in query.sortby if k.property in known)
            request = ItemsRequest(
                limit=query.limit,
                offset=query.offset,
                bbox=query.bbox,
                datetime=query.datetime,
                property_equals=equals,
                filter=query.filter,
                filter_crs=query.filter_crs,
                sortby=sortby,
                crs=query.crs,
            )
            parts.append(_Part(found, request))
        self.tolerate(failures)
        return parts

    async def _ask(self, parts: list[_Part], requests: list[ItemsRequest]) -> list[ItemsResult | None]:
        """Ask members concurrently; a failed member is tolerated (``None``) or fails the answer."""
        found = await asyncio.gather(
            *(
                self.guarded(part.member.spec, self.service.items(part.member.binding, request))
                for part, request in zip(parts, requests, strict=True)
            )
        )
        self.tolerate([f for f in found if isinstance(f, MemberFailure)])
        return [None if isinstance(f, MemberFailure) else f for f in found]

    async def _concatenated(
        self, parts: list[_Part], query: FeatureQuery
    ) -> tuple[list[Feature], int | None, bool | None]:
        """The window ``[offset, offset + limit)`` of the members' features one after the other."""
        # Round one: the first member at the offset, the others from their start; every answer
        # brings the member's count, and on the first page it is the whole answer.
        firsts = [replace(p.request, offset=query.offset if i == 0 else 0) for i, p in enumerate(parts)]
        answers = await self._ask(parts, firsts)
        for i, (part, answer) in enumerate(zip(parts, answers, strict=True)):
            part.first, part.first_offset = answer, firsts[i].offset
            if answer is None:
                part.count = 0  # left out, with a warning
            else:
                part.count = _count_of(answer, firsts[i].offset, query.limit)
        features: list[Feature] = []
        skip = query.offset
        more = False
        for part in parts:
            if part.count is None:
                part.count = await self._count(part)
            if skip >= part.count:
                skip -= part.count
                continue
            room = query.limit - len(features)
            if room <= 0:
                more = True
                break
            page = part.first
            if page is None or part.first_offset != skip:
                asked = await self._ask([part], [replace(part.request, offset=skip, limit=room)])
                page = asked[0]
            if page is not None:
                features += [self._tagged(part.member, f) for f in page.features[:room]]
                if skip + min(room, len(page.features)) < part.count:
                    more = True
            skip = 0
        counts = [p.count for p in parts]
        matched = sum(c for c in counts if c is not None) if all(c is not None for c in counts) else None
        if matched is not None:
            more = query.offset + len(features) < matched
        return features, matched, more

    async def _count(self, part: _Part) -> int:
        """A member's number of matching features, read through when it does not say."""
        request = replace(part.request, limit=SCAN_PAGE, offset=0, sortby=(), skip_geometry=True)
        counted = 0
        while True:
            answer = (await self._ask([part], [replace(request, offset=counted)]))[0]
            if answer is None:
                return counted
            if answer.number_matched is not None:
                return answer.number_matched
            counted += len(answer.features)
            if not answer.features or answer.has_more is False or len(answer.features) < SCAN_PAGE:
                return counted
            if counted >= self.service.max_scan_features:
                raise UnsupportedQuery(
                    f"member {part.member.name} does not count its features and holds more than "
                    f"{counted}; page this union with a filter or bbox that narrows it",
                    source_id=self.source_id,
                )

    async def _merged(
        self, parts: list[_Part], query: FeatureQuery
    ) -> tuple[list[Feature], int | None, bool | None]:
        """A sorted window: each member's first ``offset + limit`` in that order, merged."""
        wanted = query.offset + query.limit
        if wanted > self.service.max_scan_features:
            raise UnsupportedQuery(
                f"a sorted union is merged in the hub, up to {self.service.max_scan_features} features "
                "deep; narrow the query",
                source_id=self.source_id,
            )
        answers = await self._ask(parts, [replace(p.request, offset=0, limit=wanted) for p in parts])
        merged: list[Feature] = []
        counts: list[int | None] = []
        more = False
        for part, answer in zip(parts, answers, strict=True):
            if answer is None:
                counts.append(0)
                continue
            merged += [self._tagged(part.member, f) for f in answer.features]
            counts.append(answer.number_matched)
            if answer.has_more or (answer.number_matched or 0) > len(answer.features):
                more = True
        sort_features(merged, tuple(SortKey(k.property, k.ascending) for k in query.sortby))
        window = merged[query.offset : wanted]
        matched = sum(c for c in counts if c is not None) if all(c is not None for c in counts) else None
        more = wanted < matched if matched is not None else more or len(merged) > wanted
        return window, matched, more

    def _tagged(self, member: Member, feature: Feature) -> Feature:
        """A member's feature as the union serves it: its id prefixed, its member named."""
        properties = {k: v for k, v in (feature.get("properties") or {}).items() if k not in member.hidden}
        properties[self.settings.member_property] = member.name
        tagged: dict[str, Any] = {
            "type": "Feature",
            "id": f"{member.name}{ID_SEPARATOR}{feature.get('id')}",
            "geometry": feature.get("geometry"),
            "properties": properties,
        }
        return tagged


def _count_of(answer: ItemsResult, offset: int, limit: int) -> int | None:
    """A member's count from one answer: stated, or evident from a short last page."""
    if answer.number_matched is not None:
        return answer.number_matched
    if answer.features and (
        answer.has_more is False or (answer.has_more is None and len(answer.features) < limit)
    ):
        return offset + len(answer.features)
    if not answer.features and offset == 0:
        return 0
    return None


def _envelope(
    boxes: list[tuple[float, float, float, float] | None],
) -> tuple[float, float, float, float] | None:
    if any(box is None for box in boxes):
        return None
    known = [box for box in boxes if box is not None]
    return (
        min(b[0] for b in known),
        min(b[1] for b in known),
        max(b[2] for b in known),
        max(b[3] for b in known),
    )


def _period(periods: list[tuple[str | None, str | None] | None]) -> tuple[str | None, str | None] | None:
    known = [p for p in periods if p is not None]
    if not known:
        return None
    starts = [p[0] for p in known]
    ends = [p[1] for p in known]
    start = None if None in starts else min(s for s in starts if s is not None)
    end = None if None in ends else max(e for e in ends if e is not None)
    return (start, end)


def _same(values: list[str | None]) -> str | None:
    return values[0] if len(set(values)) == 1 else None
