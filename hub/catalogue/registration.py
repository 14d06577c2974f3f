"""A source registration: what a steward declares about one source."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SourceId = Annotated[str, Field(pattern=SLUG, min_length=1, max_length=64)]

# Keys of connection settings that would carry a secret; they must name an environment
# variable (``*_env``) instead of holding the value.
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|token|api_?key|credentials?)$", re.I)
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]+:[^/@]+@", re.I)


class Classification(StrEnum):
    """How open a source is; anything but ``open`` is denied to anonymous callers."""

    OPEN = "open"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    PERSONAL = "personal"


class ContactPoint(BaseModel):
    """Who answers questions about the source."""

    model_config = ConfigDict(extra="forbid")

    name: str
    email: str | None = None
    url: str | None = None


class AccessPolicy(BaseModel):
    """Who may read a source that is not open: callers with any of these roles or scopes."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)


class FieldProtection(BaseModel):
    """A personal or confidential property, shown only to entitled callers for a stated purpose."""

    model_config = ConfigDict(extra="forbid")

    classification: Literal["personal", "confidential"]
    roles: list[str] = Field(default_factory=list, description="Roles that may see the field")
    activities: list[str] | None = Field(
        None,
        description="Processing activities under which it may be read; any the caller may use when absent",
    )


class CollectionSpec(BaseModel):
    """One upstream collection the source exposes, optionally under an explicit hub id."""

    model_config = ConfigDict(extra="forbid")

    upstream: str = Field(min_length=1, description="The collection's id at the source")
    id: SourceId | None = Field(None, description="Hub collection id; derived when absent")
    title: str | None = None
    description: str | None = None


# The registration's own keys; everything else belongs to the connector's settings.
_REGISTRATION_KEYS = frozenset(
    {
        "id",
        "title",
        "description",
        "connector",
        "classification",
        "collections",
        "licence",
        "owner",
        "contact_point",
        "extent",
        "keywords",
        "theme",
        "access",
        "protected_fields",
        "subject_field",
    }
)


class SourceRegistration(BaseModel):
    """A registered source. Connection settings sit beside these keys, validated per kind."""

    model_config = ConfigDict(extra="allow")

    id: SourceId
    title: str = Field(min_length=1)
    description: str = ""
    connector: str = Field(min_length=1, description="Connector kind or dotted class path")
    classification: Classification = Classification.INTERNAL
    collections: list[CollectionSpec] | None = Field(
        None, description="Upstream collections to serve; all of them when absent"
    )
    licence: str | None = Field(None, description="URI of the licence")
    owner: str | None = Field(None, description="Organisation that owns the data")
    contact_point: ContactPoint | None = None
    extent: tuple[float, float, float, float] | None = Field(
        None, description="Spatial extent in CRS84: minlon, minlat, maxlon, maxlat"
    )
    keywords: list[str] = Field(default_factory=list)
    theme: list[str] = Field(default_factory=list, description="Theme URIs or labels")
    access: AccessPolicy = Field(
        default_factory=AccessPolicy, description="Who may read the source when it is not open"
    )
    protected_fields: dict[str, FieldProtection] = Field(
        default_factory=dict, description="Personal or confidential properties, by name"
    )
    subject_field: str | None = Field(
        None, description="Property identifying the data subject; logged pseudonymised"
    )

    @field_validator("collections", mode="before")
    @classmethod
    def _collections_as_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"upstream": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("extent")
    @classmethod
    def _extent_is_a_box(
        cls, value: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if value is None:
            return None
        minx, miny, maxx, maxy = value
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise ValueError("extent must be minlon,minlat,maxlon,maxlat in CRS84")
        return value

    @model_validator(mode="after")
    def _no_secret_in_clear(self) -> SourceRegistration:
        for key, value in self.connector_settings().items():
            if _SECRET_KEY.search(key) and isinstance(value, str):  # flags such as forward_token pass
                raise ValueError(
                    f"{key!r} would store a secret in clear; name an environment variable "
                    f"instead with '{key}_env'"
                )
            if isinstance(value, str) and _URL_WITH_PASSWORD.match(value):
                raise ValueError(
                    f"{key!r} holds a password in its URL; put it in an environment variable "
                    "and name that with 'password_env'"
                )
        return self

    def connector_settings(self) -> dict[str, Any]:
        """The keys that are not the registration's own: the connector's settings."""
        return dict(self.model_extra or {})

    def public_dict(self) -> dict[str, Any]:
        """The registration as stewards see it in the API and in YAML."""
        public = self.model_dump(mode="json", exclude_none=True)
        for key in ("access", "protected_fields"):  # empty policies are left out, as in YAML
            if not any(public.get(key, {}).values()):
                public.pop(key, None)
        return public


def is_registration_key(key: str) -> bool:
    """Whether ``key`` is one of the registration's own keys (not a connector setting)."""
    return key in _REGISTRATION_KEYS
