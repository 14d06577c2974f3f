"""What a steward declares for a linked (``connector: linked``) or union (``connector: union``)
collection; validated like any connector's settings."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.base import ConnectorSettings
from hub.composite.keys import KeyFormat

MEMBER_NAME = r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$"
"""Member names prefix property names (``<name>:<property>``): no colon, dot or space in them."""

ID_KEY = "id"
"""The key that means "the feature id" rather than a property."""


class OnMemberError(StrEnum):
    """What a linked or union collection answers when one of its members fails."""

    PARTIAL = "partial"
    """The other members' data, with a warning naming the member that failed."""
    ERROR = "error"
    """A 502 or 504 problem naming the member that failed."""


class Lookup(StrEnum):
    """How a secondary member of a linked collection is asked for the features of a page."""

    KEYS = "keys"
    """For the page's keys: one ``IN`` filter per 100 keys where it can filter, else key by key."""
    BBOX = "bbox"
    """For its features in the bounding box of the page's geometries, matched on the key in the
    hub: one query instead of one per key, for a source that selects by box but cannot filter
    (the 3D BAG API), whose features lie where the primary's do (the same buildings). A feature
    outside that box is not found."""


class MemberSpec(BaseModel):
    """One member: a hub collection, by id."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(min_length=1, description="Hub collection id of the member")
    name: str | None = Field(
        None,
        pattern=MEMBER_NAME,
        max_length=64,
        description="How the member is named in property names and warnings; its collection id when absent",
    )

    @property
    def label(self) -> str:
        """The member's name (explicit or its collection id)."""
        return self.name or self.collection


class LinkedMember(MemberSpec):
    """A member of a linked collection: a collection and the property holding the join key."""

    key: str = Field(min_length=1, description="Property holding the join key, or `id` for the feature id")
    lookup: Lookup = Field(
        Lookup.KEYS,
        description="keys: ask for the page's keys; bbox: ask for what lies in the page's bounding box",
    )


class CompositeSettings(ConnectorSettings):
    """Settings shared by linked and union collections."""

    on_member_error: OnMemberError = Field(
        OnMemberError.PARTIAL,
        description="partial: answer without a failing member, with a warning; error: answer 502/504",
    )
    timeout: float = Field(
        30.0, gt=0, le=300, description="Seconds before the whole answer fails (members keep their own)"
    )

    def _unique_names(self, members: list[MemberSpec]) -> None:
        names = [member.label for member in members]
        doubles = sorted({name for name in names if names.count(name) > 1})
        if doubles:
            raise ValueError(f"member names must differ; give members a `name`: {', '.join(doubles)}")
        bad = [name for name in names if not re.match(MEMBER_NAME, name)]
        if bad:
            raise ValueError(
                f"member name(s) {', '.join(bad)} cannot prefix property names; give them a `name` "
                "of lower-case letters, digits, '-' and '_'"
            )


class LinkedSettings(CompositeSettings):
    """A linked collection: the primary member's features, each joined with the features of the
    other members that carry the same key."""

    members: list[LinkedMember] = Field(
        min_length=2, description="The members; the first is the primary (geometry, ids, paging)"
    )
    key_format: KeyFormat = Field(
        KeyFormat.BAG, description="bag: BAG identifiers in any form match; text: keys compared as text"
    )
    concurrency: int = Field(
        32, ge=1, le=100, description="Most requests in flight per member when it is asked key by key"
    )

    @model_validator(mode="after")
    def _names(self) -> LinkedSettings:
        self._unique_names(list(self.members))
        return self

    @property
    def primary(self) -> LinkedMember:
        """The member that provides geometry, ids and paging."""
        return self.members[0]


class UnionSettings(CompositeSettings):
    """A union collection: the features of every member, one after the other."""

    members: list[MemberSpec] = Field(min_length=2, description="The members, in the order they are served")
    member_property: str = Field(
        "member",
        min_length=1,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Property naming the member each feature comes from",
    )

    @model_validator(mode="after")
    def _names(self) -> UnionSettings:
        self._unique_names(list(self.members))
        return self
